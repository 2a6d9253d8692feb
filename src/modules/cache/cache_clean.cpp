// Cleaning: dirty lines written back to the core by their set's owner, a few lines at a time
// per owner, each with its own buffer (read the dirty span from the cache, write the dirty runs
// to the core, flush the core, then mark the blocks clean).
#include "modules/cache/cache_bdev.h"

#include "runtime/runtime.h"
#include "util/log.h"
#include "util/tick.h"

#include <algorithm>

namespace nocstor::cache {

struct FlushRun {
    std::atomic<uint32_t> owners_left{0};
    std::atomic<uint64_t> errors{0};
    Thread* caller = nullptr;
    CacheBdev* c = nullptr;
    std::function<void(int)> done;
};

namespace {

// The next dirty line at or after the owner's cursor (advancing it), or false at the end.
bool next_dirty(Owner* o, CacheSet** set, uint32_t* line) {
    while (o->clean_set < o->sets.size()) {
        CacheSet* s = o->sets[o->clean_set];
        while (o->clean_line < s->size()) {
            const uint32_t l = o->clean_line++;
            if (s->entry(l).dirty.any()) {
                *set = s;
                *line = l;
                return true;
            }
        }
        ++o->clean_set;
        o->clean_line = 0;
    }
    return false;
}

void finish_pass(Owner* o) {
    o->cleaning = false;
    Thread::current()->unregister_poller(o->clean_poller);
    o->clean_poller = nullptr;
    std::shared_ptr<FlushRun> run = std::move(o->flush_run);
    if (o->clean_errors) run->errors.fetch_add(o->clean_errors);
    if (run->owners_left.fetch_sub(1) == 1) {
        run->caller->send([run] {
            const int rc = run->errors.load() ? -EIO : 0;
            run->c->flush_status.store(rc);
            run->c->flush_owners_running.store(0);
            if (run->done) run->done(rc);
        });
    }
}

// Starts cleaning one dirty line (false: no operation free).
bool issue_clean(Owner* o, CacheSet* set, uint32_t line) {
    Op* op = o->get_op();
    if (!op) return false;
    op->c = o->c;
    op->owner = o;
    op->set = set;
    op->io = nullptr;
    op->origin = Thread::current();
    op->kind = OpKind::Clean;
    op->step = 0;
    op->core_line = set->entry(line).core_line;
    op->line = line;
    op->pending = 0;
    op->cache_failed = op->core_failed = false;
    op->status = IoStatus::Success;
    op->buf = o->clean_bufs[--o->clean_bufs_free];
    ++o->cleaners_inflight;
    start_op(op);
    return true;
}

int clean_poll(Owner* o) {
    int started = 0;
    bool at_end = false;
    while (o->clean_bufs_free > 0) {
        CacheSet* set = nullptr;
        uint32_t line = 0;
        if (!next_dirty(o, &set, &line)) {
            at_end = true;
            break;
        }
        if (!issue_clean(o, set, line)) {  // user I/O holds every operation: at the next pass
            --o->clean_line;
            break;
        }
        ++started;
    }
    if (at_end && o->cleaners_inflight == 0 && o->cleaning) {
        finish_pass(o);
        return 1;
    }
    // Keep polling while lines are in flight: their completions bring more to do.
    return started > 0 ? started : (o->cleaning ? 1 : 0);
}

// The background cleaner (policy alru): every 10 ms, per set of this owner, dirty lines unused
// for stale_ms are written back, and a set dirtier than dirty_high_pct is drained to
// dirty_low_pct whatever the age of its lines; at most max_lines_per_sec per owner.
constexpr uint64_t kBackgroundPeriodUs = 10'000;
constexpr uint32_t kScanPerSet = 512;

int background_poll(Owner* o) {
    const uint64_t now = now_ns();
    o->now_ms = uint32_t(now / 1'000'000);
    for (CacheSet* s : o->sets) s->set_clock(o->now_ms);
    CacheBdev* c = o->c;
    const uint32_t cap = c->max_lines_per_sec.load(std::memory_order_relaxed);
    const double elapsed = o->bg_last_ns ? double(now - o->bg_last_ns) / 1e9 : 0;
    o->bg_last_ns = now;
    o->bg_tokens = cap ? std::min<double>(cap, o->bg_tokens + cap * elapsed) : 1e18;
    if (o->cleaning || c->cleaning.load(std::memory_order_relaxed) == CleaningPolicy::Nop ||
        c->detaching.load(std::memory_order_relaxed))
        return 0;
    const uint32_t stale = c->stale_ms.load(std::memory_order_relaxed);
    const uint8_t high = c->dirty_high_pct.load(std::memory_order_relaxed);
    const uint8_t low = c->dirty_low_pct.load(std::memory_order_relaxed);
    int started = 0;
    for (size_t k = 0; k < o->sets.size(); ++k) {
        CacheSet* s = o->sets[k];
        const uint64_t dirty = s->dirty_lines();
        if (dirty == 0) {
            o->bg_draining[k] = 0;
            continue;
        }
        if (dirty * 100 > uint64_t(s->size()) * high) o->bg_draining[k] = 1;
        if (dirty * 100 <= uint64_t(s->size()) * low) o->bg_draining[k] = 0;
        uint32_t& cur = o->bg_cursor[k];
        for (uint32_t n = 0; n < std::min(kScanPerSet, s->size());
             ++n, cur = (cur + 1) % s->size()) {
            if (o->clean_bufs_free == 0 || o->bg_tokens < 1) return started;
            const Entry& e = s->entry(cur);
            if (!e.dirty.any() || o->locked(e.core_line)) continue;
            if (!o->bg_draining[k] && o->now_ms - s->last_use(cur) < stale) continue;
            if (!issue_clean(o, s, cur)) return started;
            o->bg_tokens -= 1;
            ++started;
        }
    }
    return started;
}

}  // namespace

void clean_line_done(Op* op) {
    Owner* o = op->owner;
    o->clean_bufs[o->clean_bufs_free++] = op->buf;
    if (op->status != IoStatus::Success) {
        ++o->clean_errors;
        const uint64_t lba = op->core_line * o->c->blocks_per_line;
        const uint64_t n = op->mask.count();
        if (op->step == kCleanStepRead) {
            // The dirty data is on the cache device only, and it does not read: lost.
            Counters::add(o->counters.lost_dirty_lines);
            NOC_ERROR(
                "bdev",
                "cache {}: DIRTY DATA LOST: {} dirty blocks of core blocks [{}, {}) cannot be "
                "read from the cache device {}; reads of them fail",
                o->c->name, n, lba, lba + o->c->blocks_per_line, o->c->cache_desc->bdev()->name);
        } else {
            NOC_ERROR("bdev", "cache {}: core blocks [{}, {}) stay dirty: {} ({})", o->c->name, lba,
                      lba + o->c->blocks_per_line,
                      op->core_failed ? "the core failed the write-back"
                                      : "the line table could not record the write-back",
                      io_status_name(op->status));
        }
    }
    --o->cleaners_inflight;
    o->put_op(op);
}

void cache_device_failed(CacheBdev* c) {
    bool expected = false;
    if (!c->failed.compare_exchange_strong(expected, true)) return;
    NOC_ERROR("bdev",
              "cache {}: the cache device {} failed an I/O: the cache runs as pass-through from "
              "now on, and writes its dirty lines back to {} as far as the device still reads",
              c->name, c->cache_desc->bdev()->name, c->core_desc->bdev()->name);
    Runtime* rt = Runtime::instance();
    Thread* ctl = rt ? rt->control_thread() : Thread::current();
    ctl->send([c, name = c->name] {
        if (bdev_get_by_name(name) != c || c->removing()) return;
        cache_save_settings(c, [name](int rc, std::string) {
            if (rc)
                NOC_ERROR("bdev", "cache {}: cannot record the failure in the superblock", name);
        });
        if (c->flush_owners_running.load()) return;  // a flush is already going
        flush_all_lines(c, [name](int rc) {
            if (rc)
                NOC_ERROR("bdev", "cache {}: some dirty lines could not be written back (above)",
                          name);
            else
                NOC_INFO("bdev", "cache {}: every dirty line is back on the core", name);
        });
    });
}

void start_background_cleaner(Owner* o) {
    o->bg_cursor.assign(o->sets.size(), 0);
    o->bg_draining.assign(o->sets.size(), 0);
    o->bg_poller = Thread::current()->register_poller(
        "cache_cleaner", [o] { return background_poll(o); }, kBackgroundPeriodUs);
}

void flush_all_lines(CacheBdev* c, std::function<void(int)> done) {
    auto run = std::make_shared<FlushRun>();
    const uint32_t n = uint32_t(c->owner_threads.size());
    run->owners_left = n;
    run->caller = Thread::current();
    run->c = c;
    run->done = std::move(done);
    c->flush_owners_running.store(n);
    for (uint32_t i = 0; i < n; ++i) {
        c->owner_threads[i]->send([c, i, run] {
            Owner* o = c->owner_here(i);
            if (!o) {
                run->errors.fetch_add(1);
                if (run->owners_left.fetch_sub(1) == 1)
                    run->caller->send([run] {
                        run->c->flush_status.store(-EIO);
                        run->c->flush_owners_running.store(0);
                        if (run->done) run->done(-EIO);
                    });
                return;
            }
            o->clean_set = 0;
            o->clean_line = 0;
            o->clean_errors = 0;
            o->cleaning = true;
            o->flush_run = run;
            if (!o->clean_poller)
                o->clean_poller = Thread::current()->register_poller("cache_clean",
                                                                     [o] { return clean_poll(o); });
        });
    }
}

}  // namespace nocstor::cache
