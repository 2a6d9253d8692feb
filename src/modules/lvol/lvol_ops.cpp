// Lvol operations (control thread): each validates, prepares the data it depends on (zeroed or
// copied clusters), applies one metadata operation and commits it through the journal before it
// answers. Operations that change an lvol's map wholesale freeze its I/O meanwhile.
#include "modules/lvol/lvol.h"
#include "modules/lvol/lvstore.h"
#include "util/log.h"

#include <cerrno>
#include <memory>

namespace nocstor::lvol {

namespace {

bool valid_name(const std::string& n, std::string* why) {
    if (n.empty() || n.size() > kMaxNameBytes || n.find('/') != std::string::npos) {
        *why = "lvol name '" + n + "' must be 1-63 bytes without '/'";
        return false;
    }
    return true;
}

uint64_t clusters_of(const Lvstore* s, uint64_t bytes) {
    return (bytes + s->sb.cluster_bytes - 1) / s->sb.cluster_bytes;
}

// The lvol named by bdev name, UUID or alias: its bdev, store and metadata. False with a message.
bool lookup(const std::string& name, LvolBdev** b, const LvolMeta** m, Result& done) {
    *b = find_lvol(name);
    if (!*b || (*b)->lvs->unloading) {
        done(-ENODEV, "no lvol named " + name);
        return false;
    }
    *m = (*b)->lvs->state.lvol((*b)->id);
    if (!*m) {
        done(-ENODEV, "no lvol named " + name);
        return false;
    }
    return true;
}

// Commits the creation of lvol `l` and registers its bdev: done(0, its UUID) once both are
// done. False (why set) when the metadata state refuses it.
bool commit_new_lvol(Lvstore* s, const LvolMeta& l, Result done, std::string* why) {
    Op op;
    op.type = OpType::CreateLvol;
    op.lvol = l;
    return s->apply_and_commit(
        op,
        [s, id = l.id, uuid = uuid_to_string(l.uuid), done](int rc) {
            if (rc) return done(rc, "metadata write failed");
            std::string err;
            if (int r = s->register_lvol(id, &err)) return done(r, err);
            done(0, uuid);
        },
        why);
}

// Zeroes every cluster of `runs` (reserved meanwhile); done(ok) after the last.
void zero_runs(Lvstore* s, const std::vector<Run>& runs, std::function<void(bool)> done) {
    IoJoin join(std::move(done));
    for (const Run& r : runs)
        md_zero(s->base_desc, s->sb.data_offset + uint64_t(r.pcl) * s->sb.cluster_bytes,
                uint64_t(r.count) * s->sb.cluster_bytes, join.add());
    join.close();
}

void reserve(Lvstore* s, const std::vector<Run>& runs, bool on) {
    for (const Run& r : runs)
        for (uint32_t i = 0; i < r.count; ++i) {
            if (on)
                s->reserved.insert(r.pcl + i);
            else
                s->reserved.erase(r.pcl + i);
        }
}

// `count` free clusters for lvol clusters [first, first + count), zeroed, reserved until the
// operation that takes them is applied. done(rc, runs).
void take_zeroed(Lvstore* s, uint64_t first, uint64_t count,
                 std::function<void(int, std::vector<Run>)> done) {
    std::vector<Run> runs;
    if (!s->state.find_free(count, &runs, &s->reserved)) return done(-ENOSPC, {});
    uint64_t l = first;
    for (Run& r : runs) {
        r.lidx = l;
        l += r.count;
    }
    reserve(s, runs, true);
    zero_runs(s, runs, [s, runs, done = std::move(done)](bool ok) {
        reserve(s, runs, false);
        done(ok ? 0 : -EIO, runs);
    });
}

// Commits op (already applied); answers with `result` or the failure.
std::function<void(int)> answer(Result done, std::string result) {
    return [done = std::move(done), result](int rc) {
        if (rc) return done(rc, "metadata write failed: the lvstore stops changing metadata");
        done(0, result);
    };
}

}  // namespace

void lvol_create(const LvolCreateOptions& o, Result done) {
    Lvstore* s = find_lvstore(o.lvs_uuid, o.lvs_name);
    if (!s) return done(-ENODEV, "no lvstore " + (o.lvs_uuid.empty() ? o.lvs_name : o.lvs_uuid));
    std::string why;
    if (!valid_name(o.name, &why)) return done(-EINVAL, why);
    if (s->state.find(o.name))
        return done(-EEXIST, "lvol " + s->sb.name + "/" + o.name + " exists");
    if (o.size_bytes == 0) return done(-EINVAL, "size must be at least 1 byte (one cluster)");
    const uint64_t n = clusters_of(s, o.size_bytes);
    if (n > s->state.total_clusters() * 1024 || n >= (1ull << 32))
        return done(-EINVAL, "size " + std::to_string(o.size_bytes) + " B is too large");
    auto create = [s, o, n, done](std::vector<Run> runs) {
        LvolMeta l;
        l.id = s->state.next_id();
        l.uuid = uuid_generate_random();
        l.name = o.name;
        l.num_clusters = n;
        l.thin = o.thin;
        l.clear_method = o.clear_method;
        l.map.assign(n, kUnallocated);
        for (const Run& r : runs)
            for (uint32_t i = 0; i < r.count; ++i) l.map[r.lidx + i] = r.pcl + i;
        std::string why;
        if (!commit_new_lvol(s, l, done, &why)) return done(-EINVAL, why);
    };
    if (o.thin) return create({});
    take_zeroed(s, 0, n, [s, create, done, n](int rc, std::vector<Run> runs) {
        if (rc == -ENOSPC)
            return done(-ENOSPC, "lvstore " + s->sb.name + " has " +
                                     std::to_string(s->state.free_clusters()) +
                                     " free clusters, a thick lvol of this size needs " +
                                     std::to_string(n));
        if (rc) return done(rc, "zeroing the new clusters failed");
        create(std::move(runs));
    });
}

void lvol_snapshot(const std::string& lvol, const std::string& snapshot_name, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    Lvstore* s = b->lvs;
    std::string why;
    if (!valid_name(snapshot_name, &why)) return done(-EINVAL, why);
    if (s->state.find(snapshot_name)) return done(-EEXIST, "lvol " + snapshot_name + " exists");
    b->freeze([s, b, snapshot_name, done] {
        const LvolMeta* m = s->state.lvol(b->id);
        Op op;
        op.type = OpType::Snapshot;
        op.id = b->id;
        op.lvol.id = s->state.next_id();
        op.lvol.uuid = uuid_generate_random();
        op.lvol.name = snapshot_name;
        const uint32_t snap_id = op.lvol.id;
        const std::string uuid = uuid_to_string(op.lvol.uuid);
        std::string why;
        if (!s->state.apply(op, &why)) {
            b->unfreeze();
            return done(-EINVAL, why);
        }
        // The snapshot takes the origin's clusters; the origin starts empty on top of it.
        if (int rc = s->register_lvol(snap_id, &why)) {
            NOC_ERROR("lvol", "snapshot {}: {}", snapshot_name, why);
            b->unfreeze();
            return done(rc, why);
        }
        b->set_map(std::make_unique<ClusterMap>(m->num_clusters));
        b->set_parent(s->bdevs.at(snap_id));
        b->set_esnap(nullptr);  // the snapshot took the external parent
        s->journal->commit(op, [b, uuid, done](int rc) {
            b->unfreeze();
            if (rc) return done(rc, "metadata write failed");
            done(0, uuid);
        });
    });
}

void lvol_clone(const std::string& snapshot, const std::string& clone_name, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(snapshot, &b, &m, done)) return;
    Lvstore* s = b->lvs;
    if (!m->read_only) return done(-EINVAL, "lvol " + snapshot + " is not a snapshot (read-only)");
    std::string why;
    if (!valid_name(clone_name, &why)) return done(-EINVAL, why);
    if (s->state.find(clone_name)) return done(-EEXIST, "lvol " + clone_name + " exists");
    LvolMeta l;
    l.id = s->state.next_id();
    l.uuid = uuid_generate_random();
    l.name = clone_name;
    l.num_clusters = m->num_clusters;
    l.thin = true;
    l.parent = m->id;
    l.clear_method = m->clear_method;
    l.map.assign(l.num_clusters, kUnallocated);
    if (!commit_new_lvol(s, l, done, &why)) done(-EINVAL, why);
}

void lvol_rename(const std::string& lvol, const std::string& new_name, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    Lvstore* s = b->lvs;
    std::string why;
    if (!valid_name(new_name, &why)) return done(-EINVAL, why);
    if (m->name == new_name) return done(0, "");
    if (s->state.find(new_name)) return done(-EEXIST, "lvol " + new_name + " exists");
    Op op;
    op.type = OpType::Rename;
    op.id = b->id;
    op.name = new_name;
    if (!s->apply_and_commit(
            op,
            [s, b, done](int rc) {
                if (rc) return done(rc, "metadata write failed");
                if (const LvolMeta* m = s->state.lvol(b->id)) b->aliases = {s->alias(*m)};
                done(0, "");
            },
            &why))
        done(-EINVAL, why);
}

void lvol_set_read_only(const std::string& lvol, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    if (m->read_only) return done(0, "");
    Op op;
    op.type = OpType::SetReadOnly;
    op.id = b->id;
    std::string why;
    // Read-only from now on for new writes (the ones in flight finish), once the change is
    // accepted.
    if (!b->lvs->apply_and_commit(op, answer(done, ""), &why)) return done(-EINVAL, why);
    b->set_read_only(true);
}

void lvol_resize(const std::string& lvol, uint64_t size_bytes, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    Lvstore* s = b->lvs;
    if (m->read_only) return done(-EPERM, "lvol " + lvol + " is read-only");
    if (size_bytes == 0) return done(-EINVAL, "size must be at least one cluster");
    const uint64_t n = clusters_of(s, size_bytes), old = m->num_clusters;
    if (n == old) return done(0, "");
    if (n < old && b->open_descriptors())
        return done(-EBUSY,
                    "lvol " + lvol + " is open (exported?): it cannot shrink under its user");
    auto apply = [s, b, n, done](std::vector<Run> runs) {
        b->freeze([s, b, n, runs, done] {
            Op op;
            op.type = OpType::Resize;
            op.id = b->id;
            op.num = n;
            op.runs = runs;
            std::string why;
            if (!s->state.apply(op, &why)) {
                b->unfreeze();
                return done(-EINVAL, why);
            }
            const LvolMeta* m = s->state.lvol(b->id);
            auto map = std::make_unique<ClusterMap>(n);
            for (uint64_t i = 0; i < n; ++i)
                map->entries[i].store(m->map[i], std::memory_order_relaxed);
            const uint64_t old_blocks = b->num_blocks;
            b->set_map(std::move(map));
            const uint64_t new_blocks = b->num_blocks;
            b->num_blocks = old_blocks;  // bdev_notify_blockcnt_change sets it and tells the users
            s->journal->commit(op, [b, new_blocks, done](int rc) {
                bdev_notify_blockcnt_change(b, new_blocks);
                b->unfreeze();
                if (rc) return done(rc, "metadata write failed");
                done(0, "");
            });
        });
    };
    if (n < old || m->thin) return apply({});
    take_zeroed(s, old, n - old, [apply, done](int rc, std::vector<Run> runs) {
        if (rc == -ENOSPC) return done(rc, "not enough free clusters to grow a thick lvol");
        if (rc) return done(rc, "zeroing the new clusters failed");
        apply(std::move(runs));
    });
}

void lvol_delete(const std::string& lvol, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    Lvstore* s = b->lvs;
    if (b->long_ops)
        return done(-EBUSY, "lvol " + m->name +
                                " is being inflated or decoupled: delete it once that is done");
    const auto kids = s->state.children(b->id);
    if (kids.size() > 1)
        return done(-EBUSY, "snapshot " + m->name + " has " + std::to_string(kids.size()) +
                                " clones: delete or inflate all but one first");
    const uint32_t id = b->id;
    if (kids.size() == 1) {
        // A snapshot with one clone merges into it: the clone takes the clusters it does not
        // have yet (no copy) and the snapshot's parent; its I/O is frozen meanwhile, and the
        // snapshot's bdev goes once nothing can read through it any more.
        auto cit = s->bdevs.find(kids[0]);
        if (cit == s->bdevs.end()) return done(-ENODEV, "the clone is not open");
        LvolBdev* child = cit->second;
        child->freeze([s, id, b, child, done] {
            Op op;
            op.type = OpType::MergeSnapshot;
            op.id = id;
            op.other = child->id;
            std::string why;
            const LvolMeta* snap = s->state.lvol(id);
            const uint32_t grand = snap ? snap->parent : kNoLvol;
            if (!s->state.apply(op, &why)) {
                child->unfreeze();
                return done(-EINVAL, why);
            }
            const LvolMeta* cm = s->state.lvol(child->id);
            for (uint64_t i = 0; i < cm->map.size(); ++i)
                if (child->map().get(i) == kUnallocated && cm->map[i] != kUnallocated)
                    child->publish(i, cm->map[i]);
            auto git = s->bdevs.find(grand);
            child->set_parent(git == s->bdevs.end() ? nullptr : git->second);
            child->set_esnap(cm->esnap.empty() ? nullptr : s->esnap(cm->esnap));
            s->journal->commit(op, [b, child, done](int rc) {
                child->unfreeze();
                bdev_unregister(b, [rc, done](int) {
                    if (rc) return done(rc, "metadata write failed");
                    done(0, "");
                });
            });
        });
        return;
    }
    // The bdev goes first (its users are told), then the clusters are cleared as asked, then
    // the metadata.
    bdev_unregister(b, [s, id, done](int) {
        const LvolMeta* m = s->state.lvol(id);
        if (!m) return done(-ENODEV, "lvol vanished");
        std::vector<Run> runs = m->runs();
        const ClearMethod cm = m->clear_method;
        auto commit = [s, id, done](bool) {
            Op op;
            op.type = OpType::DeleteLvol;
            op.id = id;
            std::string why;
            if (!s->apply_and_commit(
                    op,
                    [s, done](int rc) {
                        s->esnap_release_unused([rc, done] { answer(done, "")(rc); });
                    },
                    &why))
                done(-EINVAL, why);
        };
        if (cm == ClearMethod::None || runs.empty()) return commit(true);
        // Cleared before the delete is committed: afterwards the clusters may be reused.
        struct Group {
            uint32_t pending = 1;
            std::function<void(bool)> done;
        };
        auto g = std::make_shared<Group>();
        g->done = commit;
        auto one = [g](bool) {
            if (--g->pending == 0) g->done(true);
        };
        for (const Run& r : runs) {
            ++g->pending;
            const uint64_t off = s->sb.data_offset + uint64_t(r.pcl) * s->sb.cluster_bytes;
            const uint64_t len = uint64_t(r.count) * s->sb.cluster_bytes;
            if (cm == ClearMethod::Unmap)
                md_unmap(s->base_desc, off, len, one);
            else
                md_zero(s->base_desc, off, len, one);
        }
        one(true);
    });
}

namespace {

// Allocates (copying from the parent chain) every cluster of `b` that `want` selects, one after
// another, then done(rc).
void allocate_each(LvolBdev* b, std::function<bool(uint64_t)> want, uint64_t from,
                   std::function<void(int)> done) {
    const uint64_t n = b->map().size;
    while (from < n && (b->map().get(from) != kUnallocated || !want(from))) ++from;
    if (from >= n) return done(0);
    b->lvs->allocate(b, from, nullptr, nullptr, [b, want, from, done](int rc) {
        if (rc) return done(rc);
        allocate_each(b, want, from + 1, done);
    });
}

// The lvol's parent becomes `parent` (kNoLvol: none) and its external parent `esnap` ("" none):
// frozen, the change applied, the data path switched, committed, unfrozen. With `planned`: once
// frozen, unless planned() still holds (the chain changed meanwhile), nothing is changed and
// replan() runs instead.
void reparent(LvolBdev* b, uint32_t parent, const std::string& esnap, Result done,
              std::function<bool()> planned = nullptr, std::function<void()> replan = nullptr) {
    Lvstore* s = b->lvs;
    b->freeze([s, b, parent, esnap, done, planned, replan] {
        if (planned && !planned()) {
            b->unfreeze();
            return replan();
        }
        Op op;
        op.type = OpType::SetParent;
        op.id = b->id;
        op.other = parent;
        op.name = esnap;
        std::string why;
        if (!s->state.apply(op, &why)) {
            b->unfreeze();
            return done(-EINVAL, why);
        }
        auto it = s->bdevs.find(parent);
        b->set_parent(it == s->bdevs.end() ? nullptr : it->second);
        b->set_esnap(esnap.empty() ? nullptr : s->esnap(esnap));
        s->journal->commit(op, [s, b, done](int rc) {
            b->unfreeze();
            s->esnap_release_unused([rc, done] {
                if (rc) return done(rc, "metadata write failed");
                done(0, "");
            });
        });
    });
}

// An error when the chain of `m` reads an external parent that is missing.
bool refuse_degraded(const Lvstore* s, const LvolMeta* m, Result& done) {
    if (!s->degraded(m->id)) return false;
    done(-EIO, "lvol " + m->name + " is degraded: its external parent " + s->chain_esnap(m->id) +
                   " is missing");
    return true;
}

}  // namespace

namespace {

// Inflate and decouple copy a cluster at a time. Meanwhile a snapshot of the lvol may take the
// clusters it has (it becomes a clone of the snapshot), or its parent may be merged into it by a
// delete: with the lvol frozen for the final re-parent, each checks that its copies still cover
// what the lvol's chain gives it, and otherwise runs again on the chain as it is now (as if it
// had been asked after the change), a bounded number of times.
constexpr int kMaxReplans = 8;

// done, and the lvol's long operation over (its delete is allowed again).
Result long_op(LvolBdev* b, Result done) {
    ++b->long_ops;
    return [b, done](int rc, std::string msg) {
        --b->long_ops;
        done(rc, std::move(msg));
    };
}

// True when `m` owns every cluster that `want` selects.
bool owns_all(const LvolMeta* m, const std::function<bool(uint64_t)>& want) {
    for (uint64_t i = 0; i < m->map.size(); ++i)
        if (m->map[i] == kUnallocated && want(i)) return false;
    return true;
}

Result replans_exhausted(Result done, const char* what) {
    return [done, what](int, std::string) {
        done(-EBUSY,
             std::string("the lvol's parent chain kept changing while ") + what + ": run it again");
    };
}

void run_inflate(LvolBdev* b, int attempt, Result done) {
    // Every cluster becomes its own (copied from the parent chain or the external parent, or
    // zeroed).
    allocate_each(
        b, [](uint64_t) { return true; }, 0,
        [b, attempt, done](int rc) {
            if (rc == -ENOSPC) return done(rc, "the lvstore ran out of clusters while inflating");
            if (rc) return done(rc, "allocation failed");
            Lvstore* s = b->lvs;
            auto planned = [s, b] {
                const LvolMeta* m = s->state.lvol(b->id);
                return m && owns_all(m, [](uint64_t) { return true; });
            };
            auto replan = [b, attempt, done] {
                if (attempt + 1 >= kMaxReplans)
                    return replans_exhausted(done, "inflating")(-EBUSY, "");
                NOC_INFO("lvol", "inflate of {}: a snapshot took clusters meanwhile; again",
                         b->aliases.front());
                run_inflate(b, attempt + 1, done);
            };
            reparent(b, kNoLvol, "", done, planned, replan);
        });
}

void run_decouple(LvolBdev* b, int attempt, Result done) {
    Lvstore* s = b->lvs;
    const LvolMeta* m = s->state.lvol(b->id);
    if (!m) return done(-ENODEV, "the lvol is gone");
    if (m->parent == kNoLvol && m->esnap.empty()) {
        // Asked with a parent, which a delete merged into the lvol meanwhile, with no parent of
        // its own left: nothing to decouple from any more.
        if (attempt > 0) return done(0, "");
        return done(-EINVAL, "lvol " + m->name + " has no parent");
    }
    auto replan = [b, attempt, done] {
        if (attempt + 1 >= kMaxReplans) return replans_exhausted(done, "decoupling")(-EBUSY, "");
        NOC_INFO("lvol", "decouple of {}: its parent chain changed meanwhile; again",
                 b->aliases.front());
        run_decouple(b, attempt + 1, done);
    };
    if (m->parent == kNoLvol) {
        // A clone of an external bdev: what that bdev holds is copied (SPDK), then the link goes.
        if (refuse_degraded(s, m, done)) return;
        const std::string esnap = m->esnap;
        const EsnapOpen* o = s->esnap(esnap)->open.load(std::memory_order_acquire);
        const uint64_t have = o ? o->blocks() * s->base()->block_size : 0;
        const uint64_t cb = s->sb.cluster_bytes;
        auto want = [have, cb](uint64_t i) { return i * cb < have; };
        allocate_each(b, want, 0, [s, b, esnap, want, replan, done](int rc) {
            if (rc == -ENOSPC) return done(rc, "the lvstore ran out of clusters while decoupling");
            if (rc) return done(rc, "allocation failed");
            auto planned = [s, b, esnap, want] {
                const LvolMeta* m = s->state.lvol(b->id);
                return m && m->parent == kNoLvol && m->esnap == esnap && owns_all(m, want);
            };
            reparent(b, kNoLvol, "", done, planned, replan);
        });
        return;
    }
    const uint32_t parent = m->parent;
    // Only what the parent itself holds is copied; the rest stays with the grandparent (or the
    // parent's external parent).
    auto want = [s, parent](uint64_t i) {
        const LvolMeta* p = s->state.lvol(parent);
        return p && i < p->map.size() && p->map[i] != kUnallocated;
    };
    allocate_each(b, want, 0, [s, b, parent, want, replan, done](int rc) {
        if (rc == -ENOSPC) return done(rc, "the lvstore ran out of clusters while decoupling");
        if (rc) return done(rc, "allocation failed");
        const LvolMeta* p = s->state.lvol(parent);
        if (!p) return replan();  // merged into the lvol by a delete
        // The parent's own parent takes its place; checked again once frozen, with the copies.
        const uint32_t grand = p->parent;
        const std::string grand_esnap = p->parent == kNoLvol ? p->esnap : "";
        auto planned = [s, b, parent, grand, grand_esnap, want] {
            const LvolMeta* m = s->state.lvol(b->id);
            const LvolMeta* p = s->state.lvol(parent);
            return m && p && m->parent == parent && p->parent == grand &&
                   (grand != kNoLvol || p->esnap == grand_esnap) && owns_all(m, want);
        };
        reparent(b, grand, grand_esnap, done, planned, replan);
    });
}

}  // namespace

void lvol_inflate(const std::string& lvol, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    if (m->read_only) return done(-EPERM, "lvol " + lvol + " is read-only");
    if (refuse_degraded(b->lvs, m, done)) return;
    run_inflate(b, 0, long_op(b, done));
}

void lvol_decouple_parent(const std::string& lvol, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    if (m->read_only) return done(-EPERM, "lvol " + lvol + " is read-only");
    if (m->parent == kNoLvol && m->esnap.empty())
        return done(-EINVAL, "lvol " + lvol + " has no parent");
    run_decouple(b, 0, long_op(b, done));
}

void lvol_clone_bdev(const std::string& bdev, const std::string& lvs_name,
                     const std::string& clone_name, Result done) {
    Lvstore* s = find_lvstore("", lvs_name);
    if (!s) return done(-ENODEV, "no lvstore " + lvs_name);
    std::string why;
    if (!valid_name(clone_name, &why)) return done(-EINVAL, why);
    if (s->state.find(clone_name))
        return done(-EEXIST, "lvol " + s->sb.name + "/" + clone_name + " exists");
    Bdev* ext = find_bdev_by_id(bdev);
    if (!ext) return done(-ENODEV, "no bdev with the name or UUID " + bdev);
    const std::string id = esnap_id_of(ext);
    if (id.empty() || id.size() > kMaxNameBytes)
        return done(-EINVAL, "bdev " + ext->name + " has no UUID and its name is too long (" +
                                 std::to_string(kMaxNameBytes) + " bytes at most) to record");
    if (ext->num_blocks == 0) return done(-EINVAL, "bdev " + ext->name + " is empty");
    Esnap* e = s->esnap(id);
    if (!e->open.load(std::memory_order_acquire) && !s->esnap_attach(e, ext, &why))
        return done(ext->block_size != s->base()->block_size ? -EINVAL : -EPERM, why);
    LvolMeta l;
    l.id = s->state.next_id();
    l.uuid = uuid_generate_random();
    l.name = clone_name;
    l.num_clusters = clusters_of(s, ext->size_bytes());
    l.thin = true;
    l.esnap = id;
    l.map.assign(l.num_clusters, kUnallocated);
    if (!commit_new_lvol(s, l, done, &why))
        s->esnap_release_unused([why, done] { done(-EINVAL, why); });
}

namespace {

// What set_parent and set_parent_bdev check of the lvol (SPDK: thin, and here writable).
bool reparentable(const std::string& lvol, const LvolMeta* m, Result& done) {
    if (m->read_only) {
        done(-EPERM, "lvol " + lvol + " is read-only (a snapshot's data does not change)");
        return false;
    }
    if (!m->thin) {
        done(-EINVAL, "lvol " + lvol + " is not thin provisioned");
        return false;
    }
    return true;
}

}  // namespace

void lvol_set_parent(const std::string& lvol, const std::string& parent, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    if (!reparentable(lvol, m, done)) return;
    LvolBdev* pb = find_lvol(parent);
    if (!pb || pb->lvs->unloading || !pb->lvs->state.lvol(pb->id))
        return done(-ENODEV, "no lvol named " + parent);
    Lvstore* s = b->lvs;
    if (pb->lvs != s)
        return done(-EINVAL, "snapshot " + parent + " is not in lvstore " + s->sb.name +
                                 ": use bdev_lvol_set_parent_bdev for a bdev of another store");
    const LvolMeta* pm = s->state.lvol(pb->id);
    if (pb == b) return done(-EINVAL, "an lvol cannot be its own parent");
    if (!pm->read_only) return done(-EINVAL, "lvol " + parent + " is not a snapshot (read-only)");
    if (m->parent == pm->id) return done(-EEXIST, parent + " is already the parent of " + lvol);
    if (pm->num_clusters > m->num_clusters)
        return done(-EINVAL, "snapshot " + parent + " (" + std::to_string(pm->num_clusters) +
                                 " clusters) is larger than lvol " + lvol + " (" +
                                 std::to_string(m->num_clusters) + ")");
    reparent(b, pm->id, "", done);
}

void lvol_set_parent_bdev(const std::string& lvol, const std::string& esnap_name, Result done) {
    LvolBdev* b;
    const LvolMeta* m;
    if (!lookup(lvol, &b, &m, done)) return;
    if (!reparentable(lvol, m, done)) return;
    Lvstore* s = b->lvs;
    Bdev* ext = find_bdev_by_id(esnap_name);
    if (!ext) return done(-ENODEV, "no bdev with the name or UUID " + esnap_name);
    const std::string id = esnap_id_of(ext);
    if (id.empty() || id.size() > kMaxNameBytes)
        return done(-EINVAL, "bdev " + ext->name + " has no UUID and its name is too long (" +
                                 std::to_string(kMaxNameBytes) + " bytes at most) to record");
    if (m->parent == kNoLvol && m->esnap == id)
        return done(-EEXIST, "bdev " + ext->name + " is already the parent of " + lvol);
    const uint64_t need = clusters_of(s, ext->size_bytes());
    if (need > m->num_clusters)
        return done(-EINVAL, "bdev " + ext->name + " (" + std::to_string(ext->size_bytes()) +
                                 " B) is larger than lvol " + lvol + " (" +
                                 std::to_string(m->num_clusters * s->sb.cluster_bytes) + " B)");
    std::string why;
    Esnap* e = s->esnap(id);
    if (!e->open.load(std::memory_order_acquire) && !s->esnap_attach(e, ext, &why))
        return done(ext->block_size != s->base()->block_size ? -EINVAL : -EPERM, why);
    reparent(b, kNoLvol, id, done);
}

int lvol_list(const std::string& lvs_uuid, const std::string& lvs_name, nlohmann::json* out) {
    *out = nlohmann::json::array();
    bool any = false;
    for (Lvstore* s : lvstores()) {
        if (s->unloading) continue;
        if (!lvs_uuid.empty() && uuid_to_string(s->sb.uuid) != lvs_uuid) continue;
        if (!lvs_name.empty() && s->sb.name != lvs_name) continue;
        any = true;
        for (const auto& [id, l] : s->state.lvols()) {
            const LvolMeta* parent = s->state.lvol(l.parent);
            out->push_back({{"alias", s->alias(l)},
                            {"uuid", uuid_to_string(l.uuid)},
                            {"name", l.name},
                            {"is_thin_provisioned", l.thin},
                            {"is_snapshot", l.snapshot},
                            {"is_clone", l.parent != kNoLvol},
                            {"parent", parent ? nlohmann::json(parent->name) : nlohmann::json()},
                            {"is_esnap_clone", !l.esnap.empty()},
                            {"external_snapshot_name",
                             l.esnap.empty() ? nlohmann::json() : nlohmann::json(l.esnap)},
                            {"is_degraded", s->degraded(id)},
                            {"read_only", l.read_only},
                            {"num_clusters", l.num_clusters},
                            {"num_allocated_clusters", l.allocated()},
                            {"lvs", {{"name", s->sb.name}, {"uuid", uuid_to_string(s->sb.uuid)}}}});
        }
    }
    return (!lvs_uuid.empty() || !lvs_name.empty()) && !any ? -ENODEV : 0;
}

}  // namespace nocstor::lvol
