// Cleaning: dirty lines written back to the core by their set's owner, a few lines at a time
// per owner, each with its own buffer (read the dirty span from the cache, write the dirty runs
// to the core, flush the core, then mark the blocks clean).
#include "modules/cache/cache_bdev.h"

#include "util/log.h"

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
        Op* op = o->get_op();
        if (!op) {  // user I/O holds every operation: go on at the next pass
            --o->clean_line;
            break;
        }
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
        ++started;
        start_op(op);
    }
    if (at_end && o->cleaners_inflight == 0 && o->cleaning) {
        finish_pass(o);
        return 1;
    }
    // Keep polling while lines are in flight: their completions bring more to do.
    return started > 0 ? started : (o->cleaning ? 1 : 0);
}

}  // namespace

void clean_line_done(Op* op) {
    Owner* o = op->owner;
    o->clean_bufs[o->clean_bufs_free++] = op->buf;
    if (op->status != IoStatus::Success) {
        ++o->clean_errors;
        NOC_ERROR("bdev", "cache {}: cleaning core line {} failed: {}", o->c->name, op->core_line,
                  io_status_name(op->status));
    }
    --o->cleaners_inflight;
    o->put_op(op);
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
