#include "modules/lvol/lvol_bdev.h"

#include "modules/lvol/lvstore.h"
#include "runtime/runtime.h"

#include <nlohmann/json.hpp>

#include <cstring>

namespace nocstor::lvol {

namespace {

// NVMe generic status codes an lvol reports itself.
constexpr uint8_t kScNamespaceWriteProtected = 0x20;
constexpr uint8_t kScCapacityExceeded = 0x81;

struct LvolChannel : IoChannel {
    explicit LvolChannel(BdevDesc* base) : base_ch(bdev_get_io_channel(base)) {}
    ~LvolChannel() override { bdev_put_io_channel(base_ch); }
    IoChannel* base_ch;
    uint64_t in_flight = 0;
    BdevIoQueue held;  // arrived while frozen
};

// Unmap / write-zeroes over several clusters: one base I/O per allocated cluster.
struct RangeCtx {
    uint32_t pending;
    bool failed;
};

LvolChannel* chan(BdevIo* io) {
    return static_cast<LvolChannel*>(io->module_channel);
}

void complete(BdevIo* io, IoStatus s) {
    --chan(io)->in_flight;
    bdev_io_complete(io, s);
}

void complete_nvme(BdevIo* io, uint8_t sc) {
    --chan(io)->in_flight;
    bdev_io_complete_nvme(io, 0, sc);
}

void base_done(BdevIo* base_io, bool ok, void* arg) {
    auto* io = static_cast<BdevIo*>(arg);
    const IoStatus st = base_io->status;
    const uint8_t sct = base_io->nvme_sct, sc = base_io->nvme_sc;
    bdev_free_io(base_io);
    if (!ok && st == IoStatus::NvmeError) {
        --chan(io)->in_flight;
        return bdev_io_complete_nvme(io, sct, sc);
    }
    complete(io, ok ? IoStatus::Success : (st == IoStatus::Pending ? IoStatus::Failed : st));
}

void range_done(BdevIo* base_io, bool ok, void* arg) {
    auto* io = static_cast<BdevIo*>(arg);
    bdev_free_io(base_io);
    auto* c = io->ctx<RangeCtx>();
    if (!ok) c->failed = true;
    if (--c->pending == 0) complete(io, c->failed ? IoStatus::Failed : IoStatus::Success);
}

IoStatus submit_status(int rc) {
    return rc == -ENOMEM ? IoStatus::NoMemory : IoStatus::Failed;
}

}  // namespace

LvolBdev::LvolBdev(Lvstore* l, uint32_t lvol_id, const std::string& bdev_name)
    : Bdev(bdev_name, lvol_bdev_module()), lvs(l), id(lvol_id), map_(new ClusterMap(0)) {
    product_name = "Logical Volume";
    block_size = l->base()->block_size;
    write_cache = l->base()->write_cache;
    optimal_io_boundary = uint32_t(l->cluster_blocks());
    required_alignment = l->base()->required_alignment;
}

LvolBdev::~LvolBdev() = default;

void LvolBdev::set_map(std::unique_ptr<ClusterMap> m) {
    map_ = std::move(m);
    num_blocks = map_->size * lvs->cluster_blocks();
}

bool LvolBdev::io_type_supported(IoType t) const {
    switch (t) {
        case IoType::Read:
        case IoType::Write:
        case IoType::Flush:
        case IoType::Reset:
            return true;
        case IoType::Unmap:
            return lvs->base()->io_type_supported(IoType::Unmap);
        case IoType::WriteZeroes:
            // A clone's unallocated clusters would need a copy first: the bdev layer writes
            // zeroes with plain writes then, which allocate.
            return parent() == nullptr && lvs->base()->io_type_supported(IoType::WriteZeroes);
        default:
            return false;
    }
}

std::unique_ptr<IoChannel> LvolBdev::create_channel() {
    return std::make_unique<LvolChannel>(lvs->base_desc);
}

void LvolBdev::submit_request(IoChannel* ch, BdevIo* io) {
    auto* c = static_cast<LvolChannel*>(ch);
    if (frozen_.load(std::memory_order_acquire)) {
        c->held.push(io);
        return;
    }
    ++c->in_flight;
    switch (io->type) {
        case IoType::Read:
        case IoType::Write:
            return submit_rw(ch, io);
        case IoType::Unmap:
        case IoType::WriteZeroes:
            return submit_ranges(ch, io);
        case IoType::Flush: {
            int rc =
                bdev_flush(lvs->base_desc, c->base_ch, 0, lvs->base()->num_blocks, base_done, io);
            if (rc) complete(io, submit_status(rc));
            return;
        }
        case IoType::Reset:
            return complete(io, IoStatus::Success);
        default:
            return complete(io, IoStatus::Unsupported);
    }
}

void LvolBdev::resubmit(BdevIo* io) {
    submit_rw(io->module_channel, io);
}

void LvolBdev::fail_waiting(BdevIo* io, int rc) {
    if (rc == -ENOSPC) return complete_nvme(io, kScCapacityExceeded);
    complete(io, IoStatus::Failed);
}

void LvolBdev::submit_rw(IoChannel* ch, BdevIo* io) {
    auto* c = static_cast<LvolChannel*>(ch);
    const uint64_t cb = lvs->cluster_blocks();
    const uint64_t idx = io->offset_blocks / cb, within = io->offset_blocks % cb;
    uint32_t pcl = map_->get(idx);
    int rc;
    if (io->type == IoType::Write) {
        if (read_only()) return complete_nvme(io, kScNamespaceWriteProtected);
        if (pcl == kUnallocated) {
            Thread* origin = Thread::current();
            Lvstore* store = lvs;
            Runtime::instance()->control_thread()->send(
                [store, self = this, idx, io, origin] { store->allocate(self, idx, io, origin); });
            return;
        }
        rc = bdev_writev(lvs->base_desc, c->base_ch, io->iovs, io->iovcnt,
                         lvs->cluster_start(pcl) + within, io->num_blocks, base_done, io, io->fua);
    } else {
        // Not here: the parent snapshot chain, then zeroes.
        for (const LvolBdev* src = this; pcl == kUnallocated;) {
            src = src->parent();
            if (!src) break;
            pcl = src->map_->get(idx);
        }
        if (pcl == kUnallocated) {
            for (int i = 0; i < io->iovcnt; ++i)
                std::memset(io->iovs[i].iov_base, 0, io->iovs[i].iov_len);
            return complete(io, IoStatus::Success);
        }
        rc = bdev_readv(lvs->base_desc, c->base_ch, io->iovs, io->iovcnt,
                        lvs->cluster_start(pcl) + within, io->num_blocks, base_done, io);
    }
    if (rc) complete(io, submit_status(rc));
}

void LvolBdev::submit_ranges(IoChannel* ch, BdevIo* io) {
    auto* c = static_cast<LvolChannel*>(ch);
    if (read_only()) return complete_nvme(io, kScNamespaceWriteProtected);
    const uint64_t cb = lvs->cluster_blocks();
    auto* ctx = io->ctx<RangeCtx>();
    ctx->pending = 1;
    ctx->failed = false;
    for (uint64_t at = io->offset_blocks, end = io->offset_blocks + io->num_blocks; at < end;) {
        const uint64_t idx = at / cb, within = at % cb, n = std::min(cb - within, end - at);
        const uint32_t pcl = map_->get(idx);
        at += n;
        // Unallocated: unmap has nothing to do; write-zeroes reads zeroes there already (no
        // parent: see io_type_supported).
        if (pcl == kUnallocated) continue;
        ++ctx->pending;
        const uint64_t off = lvs->cluster_start(pcl) + within;
        int rc = io->type == IoType::Unmap
                     ? bdev_unmap(lvs->base_desc, c->base_ch, off, n, range_done, io)
                     : bdev_write_zeroes(lvs->base_desc, c->base_ch, off, n, range_done, io);
        if (rc) {
            --ctx->pending;
            ctx->failed = true;
            break;
        }
    }
    if (--ctx->pending == 0) complete(io, ctx->failed ? IoStatus::Failed : IoStatus::Success);
}

void LvolBdev::freeze(std::function<void()> done) {
    frozen_.store(true, std::memory_order_seq_cst);
    // Each channel, on its own thread: wait until nothing it submitted is in flight.
    struct Drain {
        LvolChannel* ch;
        std::function<void(int)> next;
        Poller* poller = nullptr;
    };
    for_each_channel(
        [](IoChannel& ch, std::function<void(int)> next) {
            auto* c = static_cast<LvolChannel*>(&ch);
            if (c->in_flight == 0) return next(0);
            auto d = std::make_shared<Drain>(Drain{c, std::move(next)});
            d->poller = Thread::current()->register_poller(
                "lvol_drain",
                [d] {
                    if (d->ch->in_flight) return 0;
                    Thread::current()->unregister_poller(d->poller);
                    auto n = std::move(d->next);
                    n(0);
                    return 1;
                },
                100);
        },
        [done = std::move(done)](int) { done(); });
}

void LvolBdev::unfreeze() {
    frozen_.store(false, std::memory_order_seq_cst);
    for_each_channel(
        [this](IoChannel& ch, std::function<void(int)> next) {
            auto* c = static_cast<LvolChannel*>(&ch);
            BdevIoQueue held = c->held;
            c->held = {};
            while (BdevIo* io = held.pop()) submit_request(&ch, io);
            next(0);
        },
        [](int) {});
}

void LvolBdev::dump_info_json(nlohmann::json& out) const {
    const LvolMeta* m = lvs->state.lvol(id);
    nlohmann::json j = {{"lvol_store_uuid", uuid_to_string(lvs->sb.uuid)},
                        {"base_bdev", lvs->base()->name}};
    if (m) {
        j["thin_provision"] = m->thin;
        j["num_allocated_clusters"] = m->allocated();
        j["snapshot"] = m->snapshot;
        j["clone"] = m->parent != kNoLvol;
        j["esnap_clone"] = !m->esnap.empty();
        if (const LvolMeta* p = m->parent != kNoLvol ? lvs->state.lvol(m->parent) : nullptr)
            j["base_snapshot"] = p->name;
        nlohmann::json clones = nlohmann::json::array();
        for (uint32_t c : lvs->state.children(id))
            if (const LvolMeta* cm = lvs->state.lvol(c)) clones.push_back(cm->name);
        if (m->snapshot) j["clones"] = clones;
        j["read_only"] = m->read_only;
    }
    out["lvol"] = j;
}

}  // namespace nocstor::lvol
