#include "modules/lvol/lvstore.h"

#include "util/log.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace nocstor::lvol {

std::vector<Lvstore*>& lvstores() {
    static std::vector<Lvstore*> stores;
    return stores;
}

Lvstore* find_lvstore(const std::string& uuid, const std::string& name) {
    for (Lvstore* s : lvstores()) {
        if (s->unloading) continue;
        if (!uuid.empty() && uuid_to_string(s->sb.uuid) == uuid) return s;
        if (!name.empty() && s->sb.name == name) return s;
    }
    return nullptr;
}

LvolBdev* find_lvol(const std::string& name) {
    Bdev* b = bdev_get_by_name(name);
    if (!b || b->module != lvol_bdev_module()) return nullptr;
    return static_cast<LvolBdev*>(b);
}

Lvstore::Lvstore(BdevDesc* base, Recovered r) : base_desc(base), sb(r.sb), state(r.state) {
    cluster_shift_ = uint32_t(std::countr_zero(sb.cluster_bytes / base->bdev()->block_size));
    data_start_ = sb.data_offset / base->bdev()->block_size;
    journal = std::make_unique<LvsJournal>(base, sb, &state, r);
}

Lvstore::~Lvstore() = default;

int Lvstore::register_lvol(uint32_t id, std::string* err) {
    const LvolMeta* m = state.lvol(id);
    if (!m) return *err = "no lvol " + std::to_string(id), -ENOENT;
    auto b = std::make_unique<LvolBdev>(this, id, uuid_to_string(m->uuid));
    b->uuid = m->uuid;
    b->cluster = base()->cluster;  // an lvol runs where its store's base does
    b->aliases.push_back(alias(*m));
    auto map = std::make_unique<ClusterMap>(m->num_clusters);
    for (uint64_t i = 0; i < m->num_clusters; ++i)
        map->entries[i].store(m->map[i], std::memory_order_relaxed);
    b->set_map(std::move(map));
    b->set_read_only(m->read_only);
    if (!m->esnap.empty()) b->set_esnap(esnap(m->esnap));
    if (m->parent != kNoLvol) {
        auto it = bdevs.find(m->parent);
        if (it == bdevs.end()) return *err = "parent of " + m->name + " is not open", -ENOENT;
        b->set_parent(it->second);
    }
    LvolBdev* raw = b.get();
    const int rc = bdev_register(std::move(b));
    if (rc) return *err = "cannot register bdev for lvol " + m->name, rc;
    bdevs[id] = raw;
    return 0;
}

bool Lvstore::apply_and_commit(const Op& op, std::function<void(int)> done, std::string* err) {
    if (journal->failed()) return *err = "lvstore " + sb.name + " failed a metadata write", false;
    if (!state.apply(op, err)) return false;
    journal->commit(op, std::move(done));
    return true;
}

void Lvstore::write_superblock(std::function<void(bool)> done) {
    ++sb.seq;
    auto buf = std::make_shared<AlignedBuffer>(sb.page_bytes);
    sb_encode(sb, buf->data());
    const uint64_t off = (sb.seq % 2) * sb.page_bytes;
    md_write(base_desc, off, buf->data(), buf->size(), true,
             [buf, done = std::move(done)](bool ok) { done(ok); });
}

void Lvstore::allocate(LvolBdev* lvol, uint64_t idx, BdevIo* io, Thread* origin,
                       std::function<void(int)> done) {
    Waiter w{io, origin, std::move(done)};
    auto resume = [](const Waiter& w, LvolBdev* b, int rc) {
        if (!w.io) return w.done(rc);
        BdevIo* io = w.io;
        w.origin->send([b, io, rc] {
            if (rc)
                LvolBdev::fail_waiting(io, rc);
            else
                b->resubmit(io);
        });
    };
    if (lvol->map().get(idx) != kUnallocated) return resume(w, lvol, 0);  // raced: it is there
    const auto key = std::make_pair(lvol->id, idx);
    if (auto it = allocs_.find(key); it != allocs_.end()) {
        it->second.waiters.push_back(std::move(w));
        return;
    }
    std::vector<Run> runs;
    if (journal->failed() || unloading) return resume(w, lvol, -EIO);
    if (!state.find_free(1, &runs, &reserved)) {
        // A full store refuses every thin first write: one line per 5 s, with the count.
        ++nospace_refused_;
        const auto now = std::chrono::steady_clock::now();
        if (!nospace_logged_ || now - nospace_last_ >= std::chrono::seconds(5)) {
            NOC_WARN("lvol",
                     "lvstore {}: no free cluster for lvol {} (thin write refused; {} refused "
                     "since the last message)",
                     sb.name, lvol->name, nospace_refused_);
            nospace_logged_ = true;
            nospace_last_ = now;
            nospace_refused_ = 0;
        }
        return resume(w, lvol, -ENOSPC);
    }
    const uint32_t pcl = runs[0].pcl;
    reserved.insert(pcl);
    Alloc& a = allocs_[key];
    a.pcl = pcl;
    a.waiters.push_back(std::move(w));
    // The write that asked carries its data into the fill: one write fewer, and no second trip
    // to its thread before it completes. (The bdev layer splits on the cluster boundary, so the
    // write lies in this cluster; checked anyway.)
    const uint64_t cb = cluster_blocks();
    if (io && io->type == IoType::Write && io->num_blocks && io->offset_blocks / cb == idx &&
        (io->offset_blocks + io->num_blocks - 1) / cb == idx)
        a.carried = io;
    const uint32_t id = lvol->id;
    fill_cluster(id, idx, pcl, a.carried, [this, id, idx, pcl](bool ok) {
        if (!ok) return finish_alloc(id, idx, -EIO);
        if (const LvolMeta* m = state.lvol(id);
            m && idx < m->map.size() && m->map[idx] != kUnallocated) {
            // A delete merged the parent's cluster into the lvol while this copy of it was
            // filled: the same data, so the merged one stays. Only an inflate's or a decouple's
            // copy can race so (the merge freezes the lvol, which waits for writes that wait
            // for their cluster); a carried write's data would be lost: failed, never dropped.
            auto it = allocs_.find({id, idx});
            const bool carried = it != allocs_.end() && it->second.carried;
            return finish_alloc(id, idx, carried ? -EIO : 0, false);
        }
        Op op;
        op.type = OpType::AllocRuns;
        op.id = id;
        op.runs = {{idx, pcl, 1}};
        std::string err;
        if (!apply_and_commit(
                op, [this, id, idx](int rc) { finish_alloc(id, idx, rc); }, &err)) {
            NOC_ERROR("lvol", "lvstore {}: allocation failed: {}", sb.name, err);
            finish_alloc(id, idx, -EIO);
        }
    });
}

void Lvstore::finish_alloc(uint32_t id, uint64_t idx, int rc, bool publish) {
    auto it = allocs_.find({id, idx});
    if (it == allocs_.end()) return;
    Alloc a = std::move(it->second);
    allocs_.erase(it);
    reserved.erase(a.pcl);
    auto b = bdevs.find(id);
    LvolBdev* lvol = b == bdevs.end() ? nullptr : b->second;
    // Published only while the state still gives the cluster to the lvol: between the apply and
    // the commit's end a snapshot may have taken it (or a shrink dropped it). Only an inflate's or
    // a decouple's allocation can be overtaken so; a write's holds off the freeze.
    const LvolMeta* m = state.lvol(id);
    const bool still_its = m && idx < m->map.size() && m->map[idx] == a.pcl;
    if (rc == 0 && lvol && publish && still_its) lvol->publish(idx, a.pcl);
    for (Waiter& w : a.waiters) {
        if (!w.io) {
            w.done(rc);
            continue;
        }
        BdevIo* io = w.io;
        const bool written = io == a.carried;
        w.origin->send([lvol, io, rc, written] {
            if (rc || !lvol)
                LvolBdev::fail_waiting(io, rc ? rc : -EIO);
            else if (written)
                LvolBdev::finish_written(io);  // its data went in with the fill, before the commit
            else
                lvol->resubmit(io);
        });
    }
}

// A new cluster holds what the lvol read there before: its parent chain's data, the external
// parent's (zeros past its end), or zeroes — never what a freed cluster held. The carried
// write's data is written with it; all of it is on the base before the allocation is committed
// (the journal flushes the base first), so a crash never shows the cluster with stale parts.
void Lvstore::fill_cluster(uint32_t lvol_id, uint64_t idx, uint32_t pcl, BdevIo* carried,
                           std::function<void(bool)> done) {
    if (!carried) return fill_range(lvol_id, idx, pcl, 0, sb.cluster_bytes, std::move(done));
    IoJoin join(std::move(done));
    const uint64_t bs = base()->block_size;
    const uint64_t from = (carried->offset_blocks % cluster_blocks()) * bs;
    const uint64_t len = carried->num_blocks * bs, to = from + len;
    const uint64_t dst = sb.data_offset + uint64_t(pcl) * sb.cluster_bytes;
    if (from > 0) fill_range(lvol_id, idx, pcl, 0, from, join.add());
    if (to < sb.cluster_bytes) fill_range(lvol_id, idx, pcl, to, sb.cluster_bytes - to, join.add());
    md_writev(base_desc, dst + from, carried->iovs, carried->iovcnt, len, join.add());
    join.close();
}

void Lvstore::fill_range(uint32_t lvol_id, uint64_t idx, uint32_t pcl, uint64_t off, uint64_t len,
                         std::function<void(bool)> done) {
    uint32_t src = kUnallocated;
    const LvolMeta* top = state.lvol(lvol_id);
    for (const LvolMeta* l = top; l && src == kUnallocated;) {
        top = l;
        if (l->parent == kNoLvol) break;
        l = state.lvol(l->parent);
        if (l && idx < l->map.size()) src = l->map[idx];
    }
    const uint64_t dst = sb.data_offset + uint64_t(pcl) * sb.cluster_bytes + off;
    if (src != kUnallocated)
        return copy_range(base_desc, sb.data_offset + uint64_t(src) * sb.cluster_bytes + off, len,
                          dst, std::move(done));
    if (!top || top->esnap.empty()) return md_zero(base_desc, dst, len, std::move(done));
    // From the external parent: it missing (degraded), the write fails.
    Esnap* e = esnap(top->esnap);
    EsnapOpen* o = e->open.load(std::memory_order_acquire);
    if (!o) return done(false);
    const uint64_t at = idx * sb.cluster_bytes + off,
                   have = o->blocks() * o->desc->bdev()->block_size;
    if (at >= have) return md_zero(base_desc, dst, len, std::move(done));
    const uint64_t n = std::min<uint64_t>(len, have - at);
    ++e->users;  // the open stays until this fill is done
    auto release = [e, done = std::move(done)](bool ok) {
        if (--e->users == 0) {
            auto waiting = std::move(e->on_idle);
            e->on_idle.clear();
            for (auto& f : waiting) f();
        }
        done(ok);
    };
    if (n == len) return copy_range(o->desc, at, n, dst, std::move(release));
    md_zero(base_desc, dst + n, len - n,
            [this, o, at, n, dst, release = std::move(release)](bool ok) mutable {
                if (!ok) return release(false);
                copy_range(o->desc, at, n, dst, std::move(release));
            });
}

void Lvstore::copy_range(BdevDesc* from_desc, uint64_t from, uint64_t len, uint64_t to,
                         std::function<void(bool)> done) {
    // In chunks of at most 4 MiB, one after another.
    struct Copy {
        BdevDesc* src;
        uint64_t from, to, left, chunk;
        AlignedBuffer buf;
        std::function<void(bool)> done;
    };
    const uint64_t chunk = std::min<uint64_t>(len, 4ull << 20);
    auto c = std::make_shared<Copy>(
        Copy{from_desc, from, to, len, chunk, AlignedBuffer(chunk, false), std::move(done)});
    auto step = std::make_shared<std::function<void()>>();
    *step = [this, c, step] {
        if (c->left == 0) {
            auto d = std::move(c->done);
            *step = nullptr;  // breaks the cycle
            return d(true);
        }
        const uint64_t n = std::min(c->chunk, c->left);
        md_read(c->src, c->from, c->buf.data(), n, [this, c, step, n](bool ok) {
            if (!ok) {
                auto d = std::move(c->done);
                *step = nullptr;
                return d(false);
            }
            md_write(base_desc, c->to, c->buf.data(), n, false, [c, step, n](bool ok) {
                if (!ok) {
                    auto d = std::move(c->done);
                    *step = nullptr;
                    return d(false);
                }
                c->from += n;
                c->to += n;
                c->left -= n;
                (*step)();
            });
        });
    };
    (*step)();
}

nlohmann::json Lvstore::info_json() const {
    return {{"uuid", uuid_to_string(sb.uuid)},
            {"name", sb.name},
            {"base_bdev", base()->name},
            {"total_data_clusters", state.total_clusters()},
            {"free_clusters", state.free_clusters() - reserved.size()},
            {"block_size", base()->block_size},
            {"cluster_size", sb.cluster_bytes},
            {"md_page_size", sb.page_bytes},
            {"journal_bytes", sb.journal_bytes},
            {"journal_used_bytes", journal->used_bytes()},
            {"journal_batches", journal->batches_written()},
            {"checkpoints", journal->checkpoints_written()},
            {"state", journal->failed() ? "failed" : "online"}};
}

}  // namespace nocstor::lvol
