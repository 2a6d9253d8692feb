#include "modules/lvol/lvol_bdev.h"

#include "modules/lvol/lvstore.h"
#include "runtime/poll_until.h"
#include "runtime/runtime.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

namespace nocstor::lvol {

namespace {

// NVMe generic status codes an lvol reports itself.
constexpr uint8_t kScNamespaceWriteProtected = 0x20;
constexpr uint8_t kScCapacityExceeded = 0x81;

struct LvolChannel : IoChannel {
    explicit LvolChannel(BdevDesc* base) : base_ch(bdev_get_io_channel(base)) {}
    ~LvolChannel() override {
        bdev_put_io_channel(base_ch);
        bdev_put_io_channel(esnap_ch);
    }
    IoChannel* base_ch;
    uint64_t in_flight = 0;
    BdevIoQueue held;  // arrived while frozen
    // This thread's channel to the external parent open `esnap_gen` (0: none), and the reads
    // of it in flight.
    IoChannel* esnap_ch = nullptr;
    uint64_t esnap_gen = 0;
    uint64_t esnap_in_flight = 0;
};

// A read of the external parent that ends past its end: the iovecs are cut to what it holds
// for the read (restored before completion), the rest is zeroed.
struct EsnapReadCtx {
    int saved_iovcnt;
    int cut;  // index of the shortened iovec, -1: none
    size_t saved_len;
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

// The lvol's own I/O, forwarded to the base (bdev_forward_io), is back.
void forwarded_done(BdevIo* io, bool ok, void*) {
    if (ok) return complete(io, IoStatus::Success);
    if (io->status == IoStatus::NvmeError) {
        --chan(io)->in_flight;
        return bdev_io_complete_nvme(io, io->nvme_sct, io->nvme_sc);
    }
    complete(io, io->status == IoStatus::Pending ? IoStatus::Failed : io->status);
}

void esnap_done(BdevIo* base_io, bool ok, void* arg) {
    auto* io = static_cast<BdevIo*>(arg);
    auto* x = io->ctx<EsnapReadCtx>();
    if (x->cut >= 0) {
        io->iovs[x->cut].iov_len = x->saved_len;
        io->iovcnt = x->saved_iovcnt;
    }
    --chan(io)->esnap_in_flight;
    base_done(base_io, ok, arg);
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
            return parent() == nullptr && esnap() == nullptr &&
                   lvs->base()->io_type_supported(IoType::WriteZeroes);
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

void LvolBdev::finish_written(BdevIo* io) {
    complete(io, IoStatus::Success);
}

void LvolBdev::fail_waiting(BdevIo* io, int rc) {
    if (rc == -ENOSPC) return complete_nvme(io, kScCapacityExceeded);
    complete(io, IoStatus::Failed);
}

void LvolBdev::submit_rw(IoChannel* ch, BdevIo* io) {
    auto* c = static_cast<LvolChannel*>(ch);
    const uint64_t idx = io->offset_blocks >> lvs->cluster_shift();
    const uint64_t within = io->offset_blocks & (lvs->cluster_blocks() - 1);
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
        const uint64_t at = lvs->cluster_start(pcl) + within;
        rc = bdev_forward_io(lvs->base_desc, c->base_ch, io, at, forwarded_done, nullptr);
        if (rc == -ENOTSUP)
            rc = bdev_writev(lvs->base_desc, c->base_ch, io->iovs, io->iovcnt, at, io->num_blocks,
                             base_done, io, io->fua);
    } else {
        // Not here: the parent snapshot chain, then the external parent of its top, then zeroes.
        const LvolBdev* src = this;
        while (pcl == kUnallocated) {
            const LvolBdev* p = src->parent();
            if (!p) break;
            src = p;
            pcl = p->map_->get(idx);
        }
        if (pcl == kUnallocated) {
            if (Esnap* e = src->esnap()) return read_esnap(ch, io, e, idx, within);
            for (int i = 0; i < io->iovcnt; ++i)
                std::memset(io->iovs[i].iov_base, 0, io->iovs[i].iov_len);
            return complete(io, IoStatus::Success);
        }
        const uint64_t at = lvs->cluster_start(pcl) + within;
        rc = bdev_forward_io(lvs->base_desc, c->base_ch, io, at, forwarded_done, nullptr);
        if (rc == -ENOTSUP)
            rc = bdev_readv(lvs->base_desc, c->base_ch, io->iovs, io->iovcnt, at, io->num_blocks,
                            base_done, io);
    }
    if (rc) complete(io, submit_status(rc));
}

// An unallocated cluster of a clone of an external bdev: that bdev at the same offset (zeros
// past its end); it missing (degraded), the read fails: never zeros or stale data instead.
void LvolBdev::read_esnap(IoChannel* ch, BdevIo* io, Esnap* e, uint64_t idx, uint64_t within) {
    auto* c = static_cast<LvolChannel*>(ch);
    const EsnapOpen* o = e->open.load(std::memory_order_acquire);
    if (!o) return complete(io, IoStatus::Failed);
    if (c->esnap_gen != o->gen) {
        // Another external parent than the last read's (the lvol was re-parented while frozen,
        // so nothing is in flight on the old one; if it were, come back later).
        if (c->esnap_in_flight) return complete(io, IoStatus::NoMemory);
        bdev_put_io_channel(c->esnap_ch);
        c->esnap_ch = bdev_get_io_channel(o->desc);
        c->esnap_gen = c->esnap_ch ? o->gen : 0;
        if (!c->esnap_ch) return complete(io, IoStatus::Failed);
    }
    const uint64_t at = idx * lvs->cluster_blocks() + within;
    const uint64_t ext_blocks = o->blocks();
    const uint64_t n = at >= ext_blocks ? 0 : std::min(io->num_blocks, ext_blocks - at);
    if (n == 0) {
        for (int i = 0; i < io->iovcnt; ++i)
            std::memset(io->iovs[i].iov_base, 0, io->iovs[i].iov_len);
        return complete(io, IoStatus::Success);
    }
    auto* x = io->ctx<EsnapReadCtx>();
    x->cut = -1;
    x->saved_iovcnt = io->iovcnt;
    if (n < io->num_blocks) {
        // Zero what lies past the end, then read the rest into the iovecs cut to its length.
        size_t keep = n * block_size;
        for (int i = 0; i < x->saved_iovcnt; ++i) {
            iovec& v = io->iovs[i];
            if (keep >= v.iov_len) {
                keep -= v.iov_len;
                continue;
            }
            std::memset(static_cast<uint8_t*>(v.iov_base) + keep, 0, v.iov_len - keep);
            if (x->cut < 0 && keep > 0) {
                x->cut = i;
                x->saved_len = v.iov_len;
                v.iov_len = keep;
                io->iovcnt = i + 1;
            } else if (x->cut < 0) {
                x->cut = i;  // cut before this iovec: nothing of it is read
                x->saved_len = v.iov_len;
                io->iovcnt = i;
            }
            keep = 0;
        }
    }
    ++c->esnap_in_flight;
    const int rc = bdev_readv(o->desc, c->esnap_ch, io->iovs, io->iovcnt, at, n, esnap_done, io);
    if (rc) {
        --c->esnap_in_flight;
        if (x->cut >= 0) {
            io->iovs[x->cut].iov_len = x->saved_len;
            io->iovcnt = x->saved_iovcnt;
        }
        complete(io, submit_status(rc));
    }
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
    frozen_.fetch_add(1, std::memory_order_seq_cst);
    // Each channel, on its own thread: wait until nothing it submitted is in flight.
    for_each_channel(
        [](IoChannel& ch, std::function<void(int)> next) {
            auto* c = static_cast<LvolChannel*>(&ch);
            poll_until([c] { return c->in_flight == 0; }, [next] { next(0); }, "lvol_drain");
        },
        [done = std::move(done)](int) { done(); });
}

void LvolBdev::drop_esnap_channel(uint64_t gen, std::function<void()> done) {
    for_each_channel(
        [gen](IoChannel& ch, std::function<void(int)> next) {
            auto* c = static_cast<LvolChannel*>(&ch);
            if (c->esnap_gen != gen) return next(0);
            poll_until([c] { return c->esnap_in_flight == 0; },
                       [c, next] {
                           bdev_put_io_channel(c->esnap_ch);
                           c->esnap_ch = nullptr;
                           c->esnap_gen = 0;
                           next(0);
                       },
                       "lvol_esnap_drop");
        },
        [done = std::move(done)](int) { done(); });
}

void LvolBdev::unfreeze() {
    if (frozen_.fetch_sub(1, std::memory_order_seq_cst) != 1) return;  // still frozen
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
        if (!m->esnap.empty()) j["external_snapshot_name"] = m->esnap;
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
