// The cache module's control path: creating (formatting) a cache, loading one from its cache
// device (create on a device that holds this core's cache, or examine when both bdevs appear),
// and tearing it down (a clean stop keeps every dirty line; delete writes them back first).
#include "modules/cache/cache.h"
#include "modules/cache/cache_bdev.h"
#include "modules/module_util.h"
#include "modules/raid/raid_sb_io.h"
#include "runtime/runtime.h"
#include "util/log.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <map>

namespace nocstor::cache {

namespace {

constexpr uint64_t kChunk = 1024 * 1024;  // table I/O of the control path

class CacheModule : public BdevModule {
  public:
    CacheModule() : BdevModule("cache") {}
    void examine(Bdev* b) override;
    // Superblocks found on bdevs whose core has not appeared yet, by cache bdev name.
    std::map<std::string, Superblock> pending;
};

CacheModule g_module;

using raid::SbTarget;

void read_sb(BdevDesc* desc, std::function<void(int rc, bool found, Superblock)> done) {
    raid::meta_read(desc, 0, 2 * kSbBytes, [done](int rc, const uint8_t* data) {
        if (rc) return done(rc, false, {});
        bool found = false;
        Superblock best;
        for (uint64_t off : kSbCopyOffset) {
            Superblock sb;
            if (sb_decode(data + off, &sb, nullptr) && (!found || sb.seq > best.seq)) {
                best = sb;
                found = true;
            }
        }
        done(0, found, best);
    });
}

// Runs step(offset, length, next) over [0, total) in chunks, then done(rc).
void for_chunks(uint64_t total,
                std::function<void(uint64_t, uint64_t, std::function<void(int)>)> step,
                std::function<void(int)> done) {
    struct Loop {
        uint64_t total, off = 0;
        std::function<void(uint64_t, uint64_t, std::function<void(int)>)> step;
        std::function<void(int)> done;
        void go(std::shared_ptr<Loop> self) {
            if (off >= total) return done(0);
            const uint64_t len = std::min(kChunk, total - off);
            const uint64_t at = off;
            off += len;
            step(at, len, [self](int rc) {
                if (rc) return self->done(rc);
                self->go(self);
            });
        }
    };
    auto l = std::make_shared<Loop>();
    l->total = total;
    l->step = std::move(step);
    l->done = std::move(done);
    l->go(l);
}

uint64_t table_span(const Superblock& sb) {
    const uint64_t bytes = table_bytes(sb);
    return (bytes + sb.block_size - 1) / sb.block_size * sb.block_size;
}

// Writes the table from the sets' entries (a new cache: every line free).
void write_table(BdevDesc* desc, CacheBdev* c, std::function<void(int)> done) {
    const uint64_t per_set = c->sb.lines_per_set();
    for_chunks(
        table_span(c->sb),
        [desc, c, per_set](uint64_t off, uint64_t len, std::function<void(int)> next) {
            std::vector<uint8_t> buf(len, 0);
            for (uint64_t i = 0; i < len / kEntryBytes; ++i) {
                const uint64_t line = off / kEntryBytes + i;
                if (line >= c->sb.line_count) break;
                entry_encode(c->sets[line / per_set]->entry(uint32_t(line % per_set)),
                             buf.data() + i * kEntryBytes);
            }
            raid::meta_write({SbTarget{0, desc}}, kTableOffset + off, buf.data(), len, false,
                             [next](uint32_t failed) { next(failed ? -EIO : 0); });
        },
        [desc, done](int rc) {
            if (rc) return done(rc);
            raid::meta_flush({SbTarget{0, desc}},
                             [done](uint32_t failed) { done(failed ? -EIO : 0); });
        });
}

// Reads the table into the sets. Of two entries naming one core line the newer mapping wins;
// damaged entries and the losers are dropped. *fixed: something was dropped (the table on disk
// must then be rewritten before any I/O, or a dropped entry could come back after a crash).
void read_table(BdevDesc* desc, CacheBdev* c, std::function<void(int, bool fixed)> done) {
    struct Seen {
        uint32_t set, line;
        uint64_t gen;
    };
    auto seen = std::make_shared<std::unordered_map<uint64_t, Seen>>();
    auto fixed = std::make_shared<bool>(false);
    auto entries = std::make_shared<std::vector<Entry>>(c->sb.line_count);
    const uint64_t per_set = c->sb.lines_per_set();
    const uint64_t core_lines = (c->sb.core_blocks + c->blocks_per_line - 1) / c->blocks_per_line;
    for_chunks(
        table_span(c->sb),
        [desc, c, entries, fixed](uint64_t off, uint64_t len, std::function<void(int)> next) {
            raid::meta_read(desc, kTableOffset + off, len,
                            [c, entries, fixed, off, len, next](int rc, const uint8_t* data) {
                                if (rc) return next(rc);
                                for (uint64_t i = 0; i < len / kEntryBytes; ++i) {
                                    const uint64_t line = off / kEntryBytes + i;
                                    if (line >= c->sb.line_count) break;
                                    Entry e;
                                    if (!entry_decode(data + i * kEntryBytes, &e)) {
                                        ++c->damaged_entries;
                                        *fixed = true;
                                        e = Entry{};
                                    }
                                    (*entries)[line] = e;
                                }
                                next(0);
                            });
        },
        [c, entries, seen, fixed, per_set, core_lines, done](int rc) {
            if (rc) return done(rc, false);
            auto& es = *entries;
            for (uint64_t line = 0; line < es.size(); ++line) {
                Entry& e = es[line];
                if (e.core_line == kNoCoreLine) continue;
                const uint32_t set = uint32_t(line / per_set);
                if (e.core_line >= core_lines || set_of(e.core_line, c->sb.set_count) != set) {
                    NOC_ERROR("bdev",
                              "cache {}: line {} names core line {} that cannot be there"
                              "{}; dropped",
                              c->name, line, e.core_line, e.dirty.any() ? " (dirty!)" : "");
                    ++c->damaged_entries;
                    *fixed = true;
                    e = Entry{};
                    continue;
                }
                auto [it, fresh] = seen->try_emplace(e.core_line, Seen{set, uint32_t(line), e.gen});
                if (fresh) continue;
                // Two mappings of one core line: the older one was being evicted (always clean).
                Entry& other = es[it->second.line];
                *fixed = true;
                if (e.gen > other.gen) {
                    other = Entry{};
                    it->second = Seen{set, uint32_t(line), e.gen};
                } else {
                    e = Entry{};
                }
            }
            if (c->sb.failed) {
                // The device failed while attached: only dirty blocks are trusted.
                *fixed = true;
                for (Entry& e : es) {
                    e.valid = e.dirty;
                    if (!e.dirty.any()) e = Entry{};
                }
            }
            for (uint64_t line = 0; line < es.size(); ++line)
                c->sets[line / per_set]->load(uint32_t(line % per_set), es[line]);
            for (auto& s : c->sets) s->finish_load();
            done(0, *fixed);
        });
}

// Opens and claims a bdev for the cache; the vbdev goes away when either bdev does.
int open_claimed(const std::string& name, CacheBdev** owner, BdevDesc** out, std::string* err) {
    int rc = bdev_open(
        name, true,
        [owner](BdevEvent ev, Bdev*) {
            // Only once registered (a create still in progress fails by itself).
            if (ev == BdevEvent::Remove && *owner && !(*owner)->removing() &&
                bdev_get_by_name((*owner)->name) == *owner)
                bdev_unregister(*owner, [](int) {});
        },
        out);
    if (rc == -EPERM) return fail(err, -EPERM, "bdev " + name + " is already claimed");
    if (rc) return fail(err, rc, "cannot open bdev " + name + ": " + std::strerror(-rc));
    if (bdev_claim((*out)->bdev(), &g_module)) {
        bdev_close(*out);
        *out = nullptr;
        return fail(err, -EPERM, "bdev " + name + " is already claimed");
    }
    return 0;
}

void release(BdevDesc*& d) {
    if (!d) return;
    bdev_release_claim(d->bdev());
    bdev_close(d);
    d = nullptr;
}

// Builds the vbdev on the two bdevs: loads (format == false) or formats the cache device,
// writes the superblock and registers.
struct Attach {
    Superblock sb;
    bool format = false;
    std::unique_ptr<CacheBdev> c;
    CacheBdev* raw = nullptr;  // for the descriptors' event callbacks
    BdevDesc* cache_desc = nullptr;
    BdevDesc* core_desc = nullptr;
    Done done;
    ~Attach() {
        release(cache_desc);
        release(core_desc);
    }
};

void register_attached(std::shared_ptr<Attach> a);

void finish_attach(std::shared_ptr<Attach> a) {
    CacheBdev* c = a->c.get();
    c->cache_desc = std::exchange(a->cache_desc, nullptr);
    c->core_desc = std::exchange(a->core_desc, nullptr);
    Bdev* core = c->core_desc->bdev();
    Bdev* cache = c->cache_desc->bdev();
    c->cluster = core->cluster;
    c->write_cache = core->write_cache || cache->write_cache;
    c->required_alignment = std::max(core->required_alignment, cache->required_alignment);
    if (Runtime* rt = Runtime::instance()) {
        const auto& cl = rt->clusters();
        if (c->cluster >= 0 && size_t(c->cluster) < cl.size() && !cl[c->cluster].threads.empty())
            c->owner_threads = cl[c->cluster].threads;
        else if (!rt->data_threads().empty())
            c->owner_threads = rt->data_threads();
        else
            c->owner_threads = {rt->control_thread()};
    } else {
        c->owner_threads = {Thread::current()};
    }
    c->owners.resize(c->owner_threads.size());
    // Each owner is made on its own thread (its channels belong there) before any I/O, and
    // lives until destruct.
    run_on_threads(
        c->owner_threads,
        [c](Thread* t) {
            for (size_t i = 0; i < c->owners.size(); ++i)
                if (c->owner_threads[i] == t)
                    c->owners[i] = std::make_unique<Owner>(c, uint32_t(i));
        },
        [a] { register_attached(a); });
}

void register_attached(std::shared_ptr<Attach> a) {
    CacheBdev* c = a->c.get();
    Bdev* core = c->core_desc->bdev();
    Bdev* cache = c->cache_desc->bdev();
    std::string name = c->name;
    if (bdev_get_by_name(name)) {
        // Taken meanwhile: the owners go on their threads, then the descriptors.
        auto* raw = a->c.release();
        return run_on_threads(
            raw->owner_threads,
            [raw](Thread* t) {
                for (size_t i = 0; i < raw->owners.size(); ++i)
                    if (raw->owner_threads[i] == t) raw->owners[i].reset();
            },
            [raw, a, name] {
                delete raw;  // releases the descriptors
                a->done(-EEXIST, "bdev " + name + " already exists");
            });
    }
    const int rc = bdev_register(std::move(a->c));
    if (rc) return a->done(rc, "cannot register " + name + ": " + std::strerror(-rc));
    NOC_INFO("bdev", "cache {}: {} on core {} with cache {} ({} lines of {} KiB, mode {})", name,
             a->format ? "created" : "re-attached", core->name, cache->name, a->sb.line_count,
             a->sb.line_size / 1024, mode_name(a->sb.mode));
    a->done(0, "");
}

void attach(std::shared_ptr<Attach> a, const std::string& cache_name,
            const std::string& core_name) {
    std::string err;
    a->c = std::make_unique<CacheBdev>(a->sb, &g_module);
    a->raw = a->c.get();
    // The event callbacks look at a->raw through this pointer-to-pointer, valid while the
    // vbdev lives (the descriptors are closed in its destruct).
    auto** slot = new CacheBdev*(a->raw);
    int rc = open_claimed(cache_name, slot, &a->cache_desc, &err);
    if (!rc) rc = open_claimed(core_name, slot, &a->core_desc, &err);
    if (rc) {
        delete slot;
        return a->done(rc, err);
    }
    a->c->event_slot.reset(slot);
    auto after_table = [a](int rc) {
        if (rc) return a->done(-EIO, "cannot write the cache's line table");
        a->sb.seq += 1;
        a->sb.clean = false;
        a->sb.failed = false;  // clean copies were dropped at load
        write_superblock(a->cache_desc, a->sb, [a](int rc) {
            if (rc) return a->done(-EIO, "cannot write the cache's superblock");
            a->c->sb = a->sb;
            finish_attach(a);
        });
    };
    if (a->format) {
        for (auto& s : a->c->sets) s->finish_load();
        return write_table(a->cache_desc, a->c.get(), after_table);
    }
    read_table(a->cache_desc, a->c.get(), [a, after_table](int rc, bool fixed) {
        if (rc) return a->done(-EIO, "cannot read the cache's line table");
        if (a->c->damaged_entries)
            NOC_WARN("bdev", "cache {}: {} damaged or stale entries dropped", a->sb.name,
                     a->c->damaged_entries);
        if (fixed) return write_table(a->cache_desc, a->c.get(), after_table);
        after_table(0);
    });
}

// Checks what the two bdevs allow before anything is written.
int check_bases(const std::string& cache_name, const std::string& core_name, std::string* err) {
    Bdev* cache = bdev_get_by_name(cache_name);
    Bdev* core = bdev_get_by_name(core_name);
    if (!cache) return fail(err, -ENODEV, "no bdev named " + cache_name + " (cache_bdev_name)");
    if (!core) return fail(err, -ENODEV, "no bdev named " + core_name + " (core_bdev_name)");
    if (cache == core) return fail(err, -EINVAL, "the cache and the core must be different bdevs");
    if (cache->claimed_by()) return fail(err, -EPERM, "bdev " + cache_name + " is already claimed");
    if (core->claimed_by()) return fail(err, -EPERM, "bdev " + core_name + " is already claimed");
    if (cache->block_size != core->block_size)
        return fail(err, -EINVAL,
                    "block sizes differ: cache " + std::to_string(cache->block_size) + ", core " +
                        std::to_string(core->block_size));
    if (cache->block_size > kSbBytes)
        return fail(err, -EINVAL, "blocks larger than 4 KiB are not supported");
    if (cache->cluster != core->cluster)
        return fail(err, -EXDEV,
                    "the cache and the core belong to different clusters (" +
                        std::to_string(cache->cluster) + ", " + std::to_string(core->cluster) +
                        "): put a remote bdev in front of one of them");
    return 0;
}

}  // namespace

BdevModule* cache_bdev_module() {
    return &g_module;
}

CacheBdev* find_cache(const std::string& name) {
    Bdev* b = bdev_get_by_name(name);
    return b && b->module == &g_module ? static_cast<CacheBdev*>(b) : nullptr;
}

void write_superblock(BdevDesc* desc, const Superblock& sb, std::function<void(int)> done) {
    std::vector<uint8_t> buf(kSbBytes);
    sb_encode(sb, buf.data());
    raid::meta_write({SbTarget{0, desc}}, kSbCopyOffset[sb.seq % 2], buf.data(), kSbBytes, true,
                     [done](uint32_t failed) { done(failed ? -EIO : 0); });
}

namespace {
void create_now(const CacheCreateOptions& o, Done done);
}  // namespace

void cache_create(const CacheCreateOptions& o, Done done) {
    // A cache that examine is re-attaching right now (its bdevs just appeared, as when a
    // configuration is replayed) is found below instead of raced with.
    bdev_wait_for_examine(
        [o, done = std::move(done)]() mutable { create_now(o, std::move(done)); });
}

namespace {
void create_now(const CacheCreateOptions& o, Done done) {
    std::string err;
    auto refuse = [&done](int rc, std::string why) { done(rc, std::move(why)); };
    if (o.name.empty()) return refuse(-EINVAL, "name is required");
    if (o.name.size() > 63) return refuse(-EINVAL, "name is longer than 63 bytes");
    if (o.core_bdev_name.size() > 63)
        return refuse(-EINVAL, "core_bdev_name is longer than 63 bytes");
    Mode mode;
    if (!parse_mode(o.mode, &mode))
        return refuse(-EINVAL, "mode '" + o.mode + "' is not wt, wb, wa, pt, wi or wo");
    if (CacheBdev* c = find_cache(o.name); c && !o.format &&
                                           c->cache_desc->bdev()->name == o.cache_bdev_name &&
                                           c->core_desc->bdev()->name == o.core_bdev_name) {
        // examine re-attached this very cache when its bdevs appeared (a configuration replayed
        // at start-up still has the create call): nothing to do but take the asked mode.
        NOC_INFO("bdev", "bdev_ocf_create {}: already attached to {} and {}", o.name,
                 o.cache_bdev_name, o.core_bdev_name);
        return cache_set_mode(o.name, o.mode, std::move(done));
    }
    if (bdev_get_by_name(o.name)) return refuse(-EEXIST, "bdev " + o.name + " already exists");
    if (int rc = check_bases(o.cache_bdev_name, o.core_bdev_name, &err)) return refuse(rc, err);
    BdevDesc* probe = nullptr;
    if (int rc = bdev_open(o.cache_bdev_name, false, nullptr, &probe))
        return refuse(rc, "cannot open " + o.cache_bdev_name);
    read_sb(probe, [o, mode, probe, done](int rc, bool found, Superblock old) {
        bdev_close(probe);
        if (rc) return done(-EIO, "cannot read " + o.cache_bdev_name);
        std::string err;
        if (int rc = check_bases(o.cache_bdev_name, o.core_bdev_name, &err)) return done(rc, err);
        if (bdev_get_by_name(o.name)) return done(-EEXIST, "bdev " + o.name + " already exists");
        Bdev* cache = bdev_get_by_name(o.cache_bdev_name);
        Bdev* core = bdev_get_by_name(o.core_bdev_name);
        auto a = std::make_shared<Attach>();
        a->done = done;
        if (found && !o.format) {
            if (old.core_name != o.core_bdev_name)
                return done(-EEXIST, o.cache_bdev_name + " holds the cache of core '" +
                                         old.core_name +
                                         "' (its dirty lines would be lost); pass format: true "
                                         "to format it anyway");
            if (old.core_blocks > core->num_blocks)
                return done(-EINVAL, "core " + o.core_bdev_name +
                                         " is smaller than the cache "
                                         "found on " +
                                         o.cache_bdev_name + " expects");
            // This core's cache: re-attach it with everything it holds.
            a->sb = old;
            a->sb.name = o.name;
            a->sb.mode = mode;
            a->format = false;
            return attach(a, o.cache_bdev_name, o.core_bdev_name);
        }
        Superblock sb;
        std::string why;
        if (!plan_layout(cache->size_bytes(), cache->block_size, o.cache_line_size * 1024, &sb,
                         &why))
            return done(-EINVAL, why);
        sb.seq = 0;
        sb.cache_uuid = uuid_generate_random();
        sb.name = o.name;
        sb.core_name = o.core_bdev_name;
        sb.core_uuid = core->uuid;
        sb.core_blocks = core->num_blocks;
        sb.mode = mode;
        a->sb = sb;
        a->format = true;
        attach(a, o.cache_bdev_name, o.core_bdev_name);
    });
}
}  // namespace

// --- examine: a cache device and its core, in whichever order they appear ---

namespace {

void try_attach_pending(const std::string& cache_name) {
    auto it = g_module.pending.find(cache_name);
    if (it == g_module.pending.end()) return;
    const Superblock sb = it->second;
    Bdev* core = bdev_get_by_name(sb.core_name);
    Bdev* cache = bdev_get_by_name(cache_name);
    if (!core || !cache || core->claimed_by() || cache->claimed_by()) return;
    if (bdev_get_by_name(sb.name)) {
        NOC_WARN("bdev", "cache {} on {}: a bdev of that name exists; not re-attached", sb.name,
                 cache_name);
        return;
    }
    std::string err;
    if (check_bases(cache_name, sb.core_name, &err) || sb.core_blocks > core->num_blocks) {
        NOC_ERROR("bdev", "cache {} on {}: cannot re-attach to core {}: {}", sb.name, cache_name,
                  sb.core_name, err.empty() ? "the core is smaller" : err);
        return;
    }
    g_module.pending.erase(it);
    auto a = std::make_shared<Attach>();
    a->sb = sb;
    a->format = false;
    bdev_examine_begin();
    a->done = [name = sb.name](int rc, std::string why) {
        if (rc) NOC_ERROR("bdev", "cache {}: re-attach failed: {}", name, why);
        bdev_examine_end();
    };
    attach(a, cache_name, sb.core_name);
}

}  // namespace

void CacheModule::examine(Bdev* b) {
    if (b->module == &g_module) return;
    // A core whose cache device appeared first.
    for (auto& [cache_name, sb] : pending) {
        if (sb.core_name == b->name) {
            const std::string n = cache_name;
            try_attach_pending(n);
            break;
        }
    }
    if (b->claimed_by() || b->block_size > kSbBytes || b->size_bytes() < 3 * kChunk) return;
    BdevDesc* d = nullptr;
    if (bdev_open(b->name, false, nullptr, &d)) return;
    bdev_examine_begin();
    const std::string name = b->name;
    read_sb(d, [d, name](int rc, bool found, Superblock sb) {
        bdev_close(d);
        if (!rc && found) {
            NOC_INFO("bdev", "cache {}: superblock found on {} (core {})", sb.name, name,
                     sb.core_name);
            g_module.pending[name] = sb;
            try_attach_pending(name);
        }
        bdev_examine_end();
    });
}

// --- teardown ---

void CacheBdev::destruct(std::function<void()> done) {
    detaching.store(true);
    auto proceed = [this, done]() {
        // Owners go on their own threads (their channels were taken there).
        run_on_threads(
            owner_threads,
            [this](Thread* t) {
                for (size_t i = 0; i < owners.size(); ++i)
                    if (owner_threads[i] == t) owners[i].reset();
            },
            [this, done] {
                auto close = [this, done](int) {
                    release(cache_desc);
                    release(core_desc);
                    done();
                };
                if (erase_on_destruct) {
                    std::vector<uint8_t> zero(2 * kSbBytes, 0);
                    return raid::meta_write({SbTarget{0, cache_desc}}, 0, zero.data(), zero.size(),
                                            true, [close](uint32_t f) { close(f ? -EIO : 0); });
                }
                Superblock s = sb;
                s.seq += 1;
                s.clean = true;
                store_settings(&s);
                write_superblock(cache_desc, s, close);
            });
    };
    if (flush_owners_running.load() == 0) return proceed();
    // A flush is still running: wait for it (its operations use the owners).
    auto* wait = new Poller*(nullptr);
    *wait = Thread::current()->register_poller(
        "cache_destruct",
        [this, wait, proceed]() {
            if (flush_owners_running.load() != 0) return 0;
            Thread::current()->unregister_poller(*wait);
            delete wait;
            proceed();
            return 1;
        },
        1000);
}

void cache_delete(const std::string& name, Done done) {
    CacheBdev* c = find_cache(name);
    if (!c) return done(-ENODEV, "no cache bdev named " + name);
    if (c->flush_owners_running.load())
        return done(-EBUSY, "a flush of " + name + " is in progress; wait for it to finish");
    flush_all_lines(c, [name, done](int rc) {
        CacheBdev* c = find_cache(name);
        if (!c) return done(-ENODEV, "no cache bdev named " + name);
        if (rc)
            return done(-EIO, "cannot write the dirty lines of " + name +
                                  " back to the core; the cache stays");
        c->erase_on_destruct = true;
        bdev_unregister(c, [done](int rc) { done(rc, rc ? "cannot unregister" : ""); });
    });
}

}  // namespace nocstor::cache
