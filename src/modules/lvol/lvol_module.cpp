// The lvol module: creating an lvstore on a bdev, opening the stores found on bdevs as they
// appear (examine: no configuration entry is needed to bring them back), closing them cleanly
// (a checkpoint and the clean flag) when their base goes away or the daemon stops, deleting them.
#include "modules/lvol/lvol.h"
#include "modules/lvol/lvstore.h"
#include "runtime/poll_until.h"
#include "util/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace nocstor::lvol {

namespace {

class LvolModule : public BdevModule {
  public:
    LvolModule() : BdevModule("lvol") {}
    void examine(Bdev* b) override;
    // Stores close (checkpoint, clean flag) before the layer removes bdevs: nothing else
    // would release their bases.
    // Stores whose lvols carry nothing close first (releasing their bases); a store with an lvol
    // that something is stacked on (a RAID member, a remote bdev) waits until the layer has
    // removed that stack from the top, or the stack would see its member vanish (and a RAID
    // record it as failed). The layer asks again once only claimed bases are left.
    void prepare_fini(std::function<void()> done) override { unload_unstacked(std::move(done)); }
    void fini(std::function<void()> done) override;
    void unload_unstacked(std::function<void()> done);
};

LvolModule g_module;

void unload(Lvstore* s, bool destroy, std::function<void(int)> done);
void unload_base(Lvstore* s, bool destroy, std::function<void(int)> done);

// Opens `name` writable and claims it for the module; the store unloads when it goes away.
int open_base(const std::string& name, BdevDesc** desc, std::string* err) {
    auto on_event = [name](BdevEvent ev, Bdev*) {
        if (ev != BdevEvent::Remove) return;
        for (Lvstore* s : lvstores()) {
            if (s->base()->name == name && !s->unloading) {
                NOC_WARN("lvol", "base bdev {} of lvstore {} is going away: closing the store",
                         name, s->sb.name);
                unload(s, false, [](int) {});
                return;
            }
        }
    };
    int rc = bdev_open(name, true, on_event, desc);
    if (rc) return *err = "cannot open bdev " + name + ": " + std::strerror(-rc), rc;
    rc = bdev_claim((*desc)->bdev(), &g_module);
    if (rc) {
        bdev_close(*desc);
        *desc = nullptr;
        return *err = "bdev " + name + " is already claimed", -EPERM;
    }
    return 0;
}

void close_base(BdevDesc* desc) {
    bdev_release_claim(desc->bdev());
    bdev_close(desc);
}

// Registers the lvol bdevs of a store, parents before their clones.
void register_all(Lvstore* s) {
    std::vector<uint32_t> left;
    for (const auto& [id, l] : s->state.lvols()) left.push_back(id);
    while (!left.empty()) {
        size_t before = left.size();
        for (auto it = left.begin(); it != left.end();) {
            const LvolMeta* l = s->state.lvol(*it);
            if (l->parent != kNoLvol && !s->bdevs.count(l->parent)) {
                ++it;
                continue;
            }
            std::string err;
            if (s->register_lvol(*it, &err))
                NOC_ERROR("lvol", "lvstore {}: lvol {}: {}", s->sb.name, l->name, err);
            it = left.erase(it);
        }
        if (left.size() == before) break;  // cannot happen after recover()'s checks
    }
}

// Unregisters the store's lvol bdevs, clones before their parents; then done.
void unregister_all(Lvstore* s, std::function<void()> done) {
    LvolBdev* leaf = nullptr;
    for (const auto& [id, b] : s->bdevs) {
        bool has_child = false;
        for (const auto& [cid, c] : s->bdevs) has_child = has_child || c->parent() == b;
        if (!has_child) {
            leaf = b;
            break;
        }
    }
    if (!leaf) return done();
    const uint32_t id = leaf->id;
    bdev_unregister(leaf, [s, id, done = std::move(done)](int) mutable {
        s->bdevs.erase(id);
        unregister_all(s, std::move(done));
    });
}

// then() once no inflate or decouple runs on an lvol of `s` (each holds its lvol; with the store
// unloading, its next allocation is refused and it ends).
void when_no_long_ops(Lvstore* s, std::function<void()> then) {
    poll_until(
        [s] {
            for (const auto& [id, b] : s->bdevs)
                if (b->long_ops) return false;
            return true;
        },
        std::move(then), "lvol_unload_wait", 1000);
}

void unload(Lvstore* s, bool destroy, std::function<void(int)> done) {
    s->unloading = true;
    when_no_long_ops(s, [s, destroy, done = std::move(done)]() mutable {
        unregister_all(s, [s, destroy, done = std::move(done)]() mutable {
            // The lvols are gone: so are their reads of external parents.
            esnap_close_all(s, [s, destroy, done = std::move(done)]() mutable {
                unload_base(s, destroy, std::move(done));
            });
        });
    });
}

void unload_base(Lvstore* s, bool destroy, std::function<void(int)> done) {
    auto finish = [s, done = std::move(done)](int rc) mutable {
        auto& all = lvstores();
        all.erase(std::remove(all.begin(), all.end(), s), all.end());
        close_base(s->base_desc);
        delete s;
        done(rc);
    };
    if (destroy) {
        // Both superblock copies zeroed: the bdev holds no store any more.
        auto zeros = std::make_shared<AlignedBuffer>(2 * s->sb.page_bytes);
        md_write(s->base_desc, 0, zeros->data(), zeros->size(), true,
                 [zeros, finish = std::move(finish)](bool ok) mutable { finish(ok ? 0 : -EIO); });
        return;
    }
    // Clean stop: everything in a checkpoint, then the clean flag. A base being removed
    // takes no more writes: the journal already holds everything (the next open replays it).
    if (s->journal->failed()) return finish(-EIO);
    if (s->base()->removing()) {
        NOC_INFO("lvol", "lvstore {} closed with its base: the next open replays the journal",
                 s->sb.name);
        return finish(0);
    }
    s->journal->checkpoint([s, finish = std::move(finish)](int rc) mutable {
        if (rc) return finish(rc);
        s->sb.clean = true;
        s->write_superblock([s, finish = std::move(finish)](bool ok) mutable {
            NOC_INFO("lvol", "lvstore {} closed{}", s->sb.name, ok ? " cleanly" : "");
            finish(ok ? 0 : -EIO);
        });
    });
}

// Opens the store on `desc` (claimed) from its metadata region; done(rc, message).
uint64_t now_ms() {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

void load(BdevDesc* desc, const Superblock& sb, Result done) {
    const uint64_t t0 = now_ms();
    auto buf = std::make_shared<AlignedBuffer>(sb.data_offset, false);
    md_read(desc, 0, buf->data(), sb.data_offset, [desc, sb, buf, done, t0](bool ok) {
        const std::string base = desc->bdev()->name;
        const uint64_t t_read = now_ms();
        if (!ok) {
            close_base(desc);
            return done(-EIO, "cannot read the metadata of lvstore " + sb.name + " on " + base);
        }
        Recovered r;
        std::string why;
        if (!recover(buf->data(), buf->size(), sb, &r, &why)) {
            close_base(desc);
            return done(-EUCLEAN, "lvstore " + sb.name + " on " + base + " is damaged: " + why +
                                      " (nocstor-lvs-check tells more; it was not changed)");
        }
        if (find_lvstore(uuid_to_string(sb.uuid), "") || find_lvstore("", sb.name)) {
            close_base(desc);
            return done(-EEXIST, "an lvstore with the UUID or name of " + sb.name + " (on " + base +
                                     ") is already open");
        }
        const uint64_t batches = r.batches, ops = r.ops, t_recover = now_ms();
        auto* s = new Lvstore(desc, std::move(r));
        lvstores().push_back(s);
        // From now on the store is in use: not clean until it is closed again.
        s->sb.clean = false;
        s->write_superblock([s, done, sb, base, batches, ops, t0, t_read, t_recover](bool ok) {
            if (!ok) NOC_ERROR("lvol", "lvstore {}: superblock write failed", s->sb.name);
            const uint64_t t_sb = now_ms();
            register_all(s);
            const uint64_t t_end = now_ms();
            for (const auto& [id, e] : s->esnaps) {
                if (e->open.load(std::memory_order_acquire)) continue;
                std::string users;
                for (const auto& [lid, l] : s->state.lvols())
                    if (l.esnap == id) users += (users.empty() ? "" : ", ") + l.name;
                NOC_WARN("lvol",
                         "lvstore {}: external parent {} of {} is missing: the clones reading it "
                         "are degraded until it appears",
                         s->sb.name, id, users);
            }
            // An unclean shutdown is worth a warning: the operator sees what the replay did.
            const std::string what = fmt::format(
                "lvstore {} on {}: {} lvols, {}/{} clusters used, {}; opened in {} ms (metadata "
                "read {} ms, recovery {} ms, superblock {} ms, {} bdevs registered in {} ms)",
                s->sb.name, base, s->state.lvols().size(), s->state.used_clusters(),
                s->state.total_clusters(),
                sb.clean ? "clean shutdown"
                         : fmt::format("unclean shutdown, {} journal batches ({} operations) "
                                       "replayed",
                                       batches, ops),
                t_end - t0, t_read - t0, t_recover - t_read, t_sb - t_recover, s->bdevs.size(),
                t_end - t_sb);
            if (sb.clean)
                NOC_INFO("lvol", "{}", what);
            else
                NOC_WARN("lvol", "{}", what);
            done(0, uuid_to_string(s->sb.uuid));
        });
    });
}

void LvolModule::examine(Bdev* b) {
    // The missing external parent of esnap clones: opened (and claimed) for them.
    if (!b->claimed_by() && esnap_examine(b)) return;
    if (b->claimed_by() || b->module == &g_module) return;
    const std::string name = b->name;
    const uint32_t bs = b->block_size;
    const uint64_t bytes = std::max<uint64_t>(8192, 2 * uint64_t(bs));
    if (b->num_blocks * bs < bytes) return;
    BdevDesc* ro = nullptr;
    if (bdev_open(name, false, nullptr, &ro)) return;
    bdev_examine_begin();
    auto buf = std::make_shared<AlignedBuffer>(bytes);
    md_read(ro, 0, buf->data(), bytes, [ro, buf, name](bool ok) {
        bdev_close(ro);
        Superblock sb;
        bool damaged = false;
        std::string why;
        if (!ok || !read_superblock(buf->data(), buf->size(), &sb, &damaged, &why)) {
            if (damaged) NOC_ERROR("lvol", "bdev {}: {}; not opened", name, why);
            return bdev_examine_end();
        }
        BdevDesc* desc = nullptr;
        if (open_base(name, &desc, &why)) {
            NOC_WARN("lvol", "bdev {} holds lvstore {} but {}", name, sb.name, why);
            return bdev_examine_end();
        }
        load(desc, sb, [name](int rc, std::string msg) {
            if (rc) NOC_ERROR("lvol", "{}", msg);
            bdev_examine_end();
        });
    });
}

void LvolModule::unload_unstacked(std::function<void()> done) {
    for (Lvstore* s : lvstores()) {
        if (s->unloading) continue;
        bool stacked = false;
        for (const auto& entry : s->bdevs) stacked |= entry.second->claimed_by() != nullptr;
        if (!stacked)
            return unload(s, false, [this, done = std::move(done)](int) mutable {
                unload_unstacked(std::move(done));
            });
    }
    done();
}

void LvolModule::fini(std::function<void()> done) {
    if (lvstores().empty()) return done();
    unload(lvstores().front(), false,
           [this, done = std::move(done)](int) mutable { fini(std::move(done)); });
}

}  // namespace

BdevModule* lvol_bdev_module() {
    return &g_module;
}

void LvolBdev::destruct(std::function<void()> done) {
    lvs->bdevs.erase(id);
    done();
}

void lvs_create(const LvsCreateOptions& o, Result done) {
    if (o.lvs_name.empty() || o.lvs_name.size() > kMaxNameBytes ||
        o.lvs_name.find('/') != std::string::npos)
        return done(-EINVAL, "lvs_name must be 1-63 bytes without '/'");
    if (find_lvstore("", o.lvs_name)) return done(-EEXIST, "lvstore " + o.lvs_name + " exists");
    Bdev* b = bdev_get_by_name(o.bdev_name);
    if (!b) return done(-ENODEV, "no bdev named " + o.bdev_name);
    Superblock sb;
    std::string why;
    if (int rc = bdev_check_same_cluster(b, "lvstore", &why)) return done(rc, why);
    if (!layout_new(b->size_bytes(), b->block_size, o.cluster_bytes, &sb, &why))
        return done(-EINVAL, "bdev " + o.bdev_name + ": " + why);
    BdevDesc* desc = nullptr;
    if (int rc = open_base(o.bdev_name, &desc, &why)) return done(rc, why);
    sb.uuid = uuid_generate_random();
    sb.name = o.lvs_name;
    // Refuse to format over a damaged lvstore (a valid one would have been opened by examine).
    auto head = std::make_shared<AlignedBuffer>(2 * sb.page_bytes);
    md_read(desc, 0, head->data(), head->size(), [desc, sb, head, o, done](bool ok) {
        Superblock old;
        bool damaged = false;
        std::string why;
        if (!ok) {
            close_base(desc);
            return done(-EIO, "cannot read bdev " + o.bdev_name);
        }
        if (read_superblock(head->data(), head->size(), &old, &damaged, &why) || damaged) {
            close_base(desc);
            return done(-EEXIST, "bdev " + o.bdev_name + " holds an lvstore (" +
                                     (damaged ? why : old.name) +
                                     "): delete it first (bdev_lvol_delete_lvstore), or clear "
                                     "the bdev's first 8 KiB");
        }
        // Data region cleared as asked, journal zeroed, an empty checkpoint in slot 0, then
        // both superblock copies (the store exists once they are on disk).
        Recovered r;
        r.sb = sb;
        r.state = LvsState(sb.total_clusters);
        r.ckpt.seq = 1;
        r.ckpt.uuid = sb.uuid;
        r.ckpt.journal_seq = 1;
        r.ckpt.journal_pos = 0;
        r.ckpt_slot = 0;
        r.next_seq = 1;
        std::vector<uint8_t> enc;
        ckpt_encode(r.ckpt, {}, r.state.used_bits(), sb.page_bytes, &enc);
        auto ckpt = std::make_shared<AlignedBuffer>(enc.size());
        std::memcpy(ckpt->data(), enc.data(), enc.size());
        auto fail = [desc, done, o](const char* what) {
            close_base(desc);
            done(-EIO, "lvstore creation on " + o.bdev_name + " failed: " + what);
        };
        auto write_sbs = [desc, sb, r, done, fail]() mutable {
            auto page = std::make_shared<AlignedBuffer>(2 * sb.page_bytes);
            Superblock a = sb, b = sb;
            a.seq = 2;  // copy A (even), the newest
            b.seq = 1;  // copy B
            sb_encode(a, page->data());
            sb_encode(b, page->data() + sb.page_bytes);
            md_write(desc, 0, page->data(), page->size(), true,
                     [desc, page, r, done, fail](bool ok) mutable {
                         if (!ok) return fail("superblock write");
                         r.sb.seq = 2;
                         auto* s = new Lvstore(desc, std::move(r));
                         lvstores().push_back(s);
                         NOC_INFO("lvol", "lvstore {} created on {}: {} clusters of {} KiB",
                                  s->sb.name, s->base()->name, s->sb.total_clusters,
                                  s->sb.cluster_bytes >> 10);
                         done(0, uuid_to_string(s->sb.uuid));
                     });
        };
        auto write_ckpt = [desc, sb, ckpt, fail, write_sbs]() mutable {
            md_zero(desc, sb.journal_offset, sb.journal_bytes,
                    [desc, sb, ckpt, fail, write_sbs](bool ok) mutable {
                        if (!ok) return fail("journal clear");
                        md_write(desc, sb.ckpt_offset, ckpt->data(), ckpt->size(), false,
                                 [desc, ckpt, fail, write_sbs](bool ok) mutable {
                                     if (!ok) return fail("checkpoint write");
                                     md_flush(desc, [fail, write_sbs](bool ok) mutable {
                                         if (!ok) return fail("flush");
                                         write_sbs();
                                     });
                                 });
                    });
        };
        const uint64_t data_bytes = sb.total_clusters * sb.cluster_bytes;
        auto cleared = [fail, write_ckpt](bool ok) mutable {
            if (!ok) return fail("clearing the data region");
            write_ckpt();
        };
        switch (o.clear_method) {
            case ClearMethod::None:
                return cleared(true);
            case ClearMethod::Unmap:
                return md_unmap(desc, sb.data_offset, data_bytes, cleared);
            case ClearMethod::WriteZeroes:
                return md_zero(desc, sb.data_offset, data_bytes, cleared);
        }
    });
}

void lvs_delete(const std::string& uuid, const std::string& name, Result done) {
    Lvstore* s = find_lvstore(uuid, name);
    if (!s) return done(-ENODEV, "no lvstore " + (uuid.empty() ? name : uuid));
    for (const auto& [id, b] : s->bdevs) {
        if (b->open_descriptors())
            return done(-EBUSY,
                        "lvol " + b->aliases.front() + " is open (exported?): delete it first");
        if (b->long_ops)
            return done(-EBUSY, "lvol " + b->aliases.front() +
                                    " is being inflated or decoupled: delete the store once "
                                    "that is done");
    }
    unload(s, true, [done](int rc) { done(rc, rc ? "metadata write failed" : ""); });
}

void lvs_rename(const std::string& old_name, const std::string& new_name, Result done) {
    Lvstore* s = find_lvstore("", old_name);
    if (!s) return done(-ENODEV, "no lvstore " + old_name);
    if (new_name.empty() || new_name.size() > kMaxNameBytes ||
        new_name.find('/') != std::string::npos)
        return done(-EINVAL, "new_name must be 1-63 bytes without '/'");
    if (old_name == new_name) return done(0, "");
    if (find_lvstore("", new_name)) return done(-EEXIST, "lvstore " + new_name + " exists");
    s->sb.name = new_name;
    s->write_superblock([s, old_name, done](bool ok) {
        if (!ok) {
            s->sb.name = old_name;
            return done(-EIO, "superblock write failed");
        }
        // The aliases follow ("lvs/lvol").
        for (auto& [id, b] : s->bdevs) {
            if (const LvolMeta* m = s->state.lvol(id)) b->aliases = {s->alias(*m)};
        }
        done(0, "");
    });
}

void lvs_grow(const std::string& uuid, const std::string& name, Result done) {
    Lvstore* s = find_lvstore(uuid, name);
    if (!s) return done(-ENODEV, "no lvstore " + (uuid.empty() ? name : uuid));
    const uint64_t total = clusters_for(s->sb, s->base()->size_bytes());
    if (total <= s->sb.total_clusters) return done(0, "");
    if (total > s->sb.max_clusters)
        return done(-ENOSPC, "the store's metadata was sized for " +
                                 std::to_string(s->sb.max_clusters) +
                                 " clusters, the base now holds " + std::to_string(total));
    // The superblock first: once it is on disk the clusters exist (a crash before leaves the
    // store as it was); only then may allocations use them.
    const uint64_t old_total = s->sb.total_clusters, old_base = s->sb.base_bytes;
    s->sb.total_clusters = total;
    s->sb.base_bytes = s->base()->size_bytes();
    s->write_superblock([s, total, old_total, old_base, done](bool ok) {
        if (!ok) {
            s->sb.total_clusters = old_total;
            s->sb.base_bytes = old_base;
            return done(-EIO, "superblock write failed");
        }
        s->state.grow(total);
        NOC_INFO("lvol", "lvstore {} grew from {} to {} clusters", s->sb.name, old_total, total);
        done(0, "");
    });
}

int lvs_list(const std::string& uuid, const std::string& name, nlohmann::json* out) {
    *out = nlohmann::json::array();
    for (Lvstore* s : lvstores()) {
        if (s->unloading) continue;
        if (!uuid.empty() && uuid_to_string(s->sb.uuid) != uuid) continue;
        if (!name.empty() && s->sb.name != name) continue;
        out->push_back(s->info_json());
    }
    return (!uuid.empty() || !name.empty()) && out->empty() ? -ENODEV : 0;
}

}  // namespace nocstor::lvol
