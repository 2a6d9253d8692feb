// The data path of the cache vbdev: one user I/O (within one line) as an operation on the
// owner thread of the line's set. The order of the writes is what keeps the table on disk
// safe after a crash (cache_format.h): the data goes before the entry that says it is valid,
// a block is marked dirty before the cache's copy may differ from the core's, an evicted
// line's new entry is on disk before new data goes into it, and a block is marked clean only
// once the core has it.
#include "modules/cache/cache_bdev.h"

#include "util/log.h"

#include <cerrno>

namespace nocstor::cache {

namespace {

enum Step : uint8_t {
    kStart = 0,
    kDone,
    // Reads
    kReadOverlay,  // core read done: the dirty blocks come from the cache, run by run
    kReadOverlayRun,
    kReadHit,   // from the cache; on an error, blocks that are not dirty come from the core
    kReadFill,  // core read done: fill the line from the data read
    kReadFillMapped,
    kReadFillWritten,
    // Writes
    kInvalCore,  // clean copies dropped: write the core
    kInvalEnd,
    kThroughIo,
    kThroughEnd,
    kBackIo,
    kBackEnd,
    // Cleaning
    kCleanRead = kCleanStepRead,
    kCleanWrite,
    kCleanFlush,
};

void sub_done(BdevIo* bio, bool ok, void* arg) {
    auto* s = static_cast<SubIo*>(arg);
    Op* op = s->op;
    bdev_free_io(bio);
    if (!ok) {
        Counters& k = op->owner->counters;
        if (s->core) {
            op->core_failed = true;
            Counters::add(s->type == IoType::Read ? k.core_rd_errors : k.core_wr_errors);
        } else {
            op->cache_failed = true;
            Counters::add(s->type == IoType::Read ? k.cache_rd_errors : k.cache_wr_errors);
            cache_device_failed(op->c);
        }
    }
    if (--op->pending == 0) continue_op(op);
}

void resubmit(void* arg) {
    submit_sub(static_cast<SubIo*>(arg));
}

// The user's iovecs from byte `off`, `len` bytes, into op->iov.
bool slice_user_iov(Op* op, uint64_t off, uint64_t len) {
    op->iovcnt = 0;
    const BdevIo* io = op->io;
    for (int i = 0; i < io->iovcnt && len > 0; ++i) {
        const uint64_t l = io->iovs[i].iov_len;
        if (off >= l) {
            off -= l;
            continue;
        }
        if (op->iovcnt == Op::kMaxIovs) return false;
        const uint64_t n = std::min(l - off, len);
        op->iov[op->iovcnt++] = {static_cast<char*>(io->iovs[i].iov_base) + off, n};
        len -= n;
        off = 0;
    }
    return len == 0;
}

// Sets up sub-I/O `i`: the user's whole buffer, on the core or on the op's line in the cache.
void user_core_io(Op* op, int i, IoType t) {
    SubIo& s = op->sub[i];
    s.core = true;
    s.type = t;
    s.iov = op->io->iovs;
    s.iovcnt = op->io->iovcnt;
    s.offset_blocks = op->io->offset_blocks;
    s.num_blocks = op->io->num_blocks;
}

void user_cache_io(Op* op, int i, IoType t) {
    SubIo& s = op->sub[i];
    s.core = false;
    s.type = t;
    s.iov = op->io->iovs;
    s.iovcnt = op->io->iovcnt;
    s.offset_blocks = op->c->cache_block_of(*op->set, op->line, op->first);
    s.num_blocks = op->count;
}

// The user's I/O itself goes to the cache bdev (no second bdev_io) when the owner is the
// thread it was submitted on; false when that cannot be (then a child I/O does it).
void forwarded_done(BdevIo*, bool ok, void* arg, bool core) {
    Op* op = static_cast<Op*>(arg);
    if (!ok) {
        Counters& k = op->owner->counters;
        const bool rd = op->io->type == IoType::Read;
        if (core) {
            op->core_failed = true;
            Counters::add(rd ? k.core_rd_errors : k.core_wr_errors);
        } else {
            op->cache_failed = true;
            Counters::add(rd ? k.cache_rd_errors : k.cache_wr_errors);
            cache_device_failed(op->c);
        }
    }
    continue_op(op);
}

bool forward_to_cache(Op* op) {
    if (op->origin != Thread::current()) return false;
    return bdev_forward_io(
               op->c->cache_desc, op->owner->cache_ch, op->io,
               op->c->cache_block_of(*op->set, op->line, op->first),
               [](BdevIo* io, bool ok, void* arg) { forwarded_done(io, ok, arg, false); }, op) == 0;
}

// The same to the core (same blocks).
bool forward_to_core(Op* op) {
    if (op->origin != Thread::current()) return false;
    return bdev_forward_io(
               op->c->core_desc, op->owner->core_ch, op->io, op->io->offset_blocks,
               [](BdevIo* io, bool ok, void* arg) { forwarded_done(io, ok, arg, true); }, op) == 0;
}

void issue(Op* op, int n) {
    op->pending = uint32_t(n);
    for (int i = 0; i < n; ++i) submit_sub(&op->sub[i]);
}

void fail_and_finish(Op* op, IoStatus st = IoStatus::Failed) {
    op->status = st;
    finish_op(op);
}

// The lowest run of set bits in m: false when none.
bool next_run(const LineMask& m, uint32_t limit, uint32_t* first, uint32_t* count) {
    uint32_t i = 0;
    while (i < limit && !m.test(i)) ++i;
    if (i == limit) return false;
    uint32_t j = i;
    while (j < limit && m.test(j)) ++j;
    *first = i;
    *count = j - i;
    return true;
}

// A line for op->core_line: a free one or the least recently used clean one. *evicted: it
// held another core line (its new entry must be on disk before new data goes in).
bool allocate_line(Op* op, bool* evicted) {
    CacheSet* set = op->set;
    Owner* o = op->owner;
    if (!o->promote(op->core_line)) return false;
    uint32_t l = set->take_free();
    *evicted = false;
    if (l == CacheSet::kNone) {
        l = set->evict([o](uint64_t core_line) { return o->locked(core_line); });
        if (l == CacheSet::kNone) return false;
        *evicted = true;
        Counters::add(o->counters.evictions);
    }
    set->map(l, op->core_line);
    op->line = l;
    return true;
}

bool promotes_reads(Mode m) {
    return m == Mode::WriteThrough || m == Mode::WriteBack || m == Mode::WriteAround ||
           m == Mode::WriteInvalidate;
}

// --- reads ---

void start_read(Op* op) {
    CacheSet* set = op->set;
    Counters& k = op->owner->counters;
    const Mode mode = op->mode;
    op->line = set->lookup(op->core_line);
    const bool failed = op->c->failed.load(std::memory_order_relaxed);
    if (op->line != CacheSet::kNone && failed && !(set->entry(op->line).dirty & op->mask).any()) {
        op->line = CacheSet::kNone;  // a failed cache device serves dirty blocks only
    }
    if (op->line != CacheSet::kNone) {
        const Entry& e = set->entry(op->line);
        if (e.valid.covers(op->mask) && !failed) {
            Counters::add(k.rd_hits);
            Counters::add(k.cache_rd_blocks, op->count);
            set->touch(op->line);
            op->step = kReadHit;
            if (forward_to_cache(op)) return;
            user_cache_io(op, 0, IoType::Read);
            return issue(op, 1);
        }
        Counters::add(mode == Mode::PassThrough ? k.rd_pt : k.rd_partial_misses);
        op->step = (e.dirty & op->mask).any() ? kReadOverlay : kReadFill;
    } else {
        Counters::add(mode == Mode::PassThrough ? k.rd_pt : k.rd_full_misses);
        op->step = kReadFill;
    }
    Counters::add(k.core_rd_blocks, op->count);
    if (forward_to_core(op)) return;
    user_core_io(op, 0, IoType::Read);
    issue(op, 1);
}

// The core's copy is in the user's buffer; the dirty blocks over it come from the cache.
void read_overlay_next(Op* op) {
    if (op->core_failed || op->cache_failed) return fail_and_finish(op, IoStatus::MediaError);
    if (op->step == kReadOverlay) {
        op->todo = op->set->entry(op->line).dirty & op->mask;
        op->step = kReadOverlayRun;
    } else {
        op->todo = op->todo & ~LineMask::range(op->run_first, op->run_count);
    }
    if (!next_run(op->todo, op->c->blocks_per_line, &op->run_first, &op->run_count))
        return finish_op(op);
    const uint64_t bs = op->c->bs;
    if (!slice_user_iov(op, (op->run_first - op->first) * bs, op->run_count * bs))
        return fail_and_finish(op);
    SubIo& s = op->sub[0];
    s.core = false;
    s.type = IoType::Read;
    s.iov = op->iov;
    s.iovcnt = op->iovcnt;
    s.offset_blocks = op->c->cache_block_of(*op->set, op->line, op->run_first);
    s.num_blocks = op->run_count;
    Counters::add(op->owner->counters.cache_rd_blocks, op->run_count);
    issue(op, 1);
}

void read_fill(Op* op) {
    if (op->core_failed) return fail_and_finish(op, IoStatus::MediaError);
    const Mode mode = op->mode;
    if (!promotes_reads(mode) || op->c->detaching.load(std::memory_order_relaxed))
        return finish_op(op);
    bool evicted = false;
    if (op->line == CacheSet::kNone && !allocate_line(op, &evicted)) return finish_op(op);
    op->step = kReadFillMapped;
    if (evicted) return persist(op);
    continue_op(op);
}

void read_fill_write(Op* op) {
    op->set->touch(op->line);
    op->step = kReadFillWritten;
    Counters::add(op->owner->counters.cache_wr_blocks, op->count);
    user_cache_io(op, 0, IoType::Write);
    issue(op, 1);
}

void read_fill_written(Op* op) {
    if (op->cache_failed) return finish_op(op);  // the user's read itself succeeded
    Entry& e = op->set->entry(op->line);
    e.valid = e.valid | op->mask;
    op->step = kDone;
    persist(op);
}

// --- writes ---

void write_core_only(Op* op) {
    op->step = kDone;
    Counters::add(op->owner->counters.core_wr_blocks, op->count);
    if (forward_to_core(op)) return;
    user_core_io(op, 0, IoType::Write);
    issue(op, 1);
}

// pt, wi: the core gets the write, the cache's copies of those blocks are dropped.
void write_invalidate(Op* op) {
    Entry& e = op->set->entry(op->line);
    const LineMask clean_valid = e.valid & op->mask & ~e.dirty;
    op->step = kInvalCore;
    if (!clean_valid.any()) return continue_op(op);
    e.valid = e.valid & ~clean_valid;
    persist(op);
}

void write_invalidate_end(Op* op) {
    if (op->core_failed) return fail_and_finish(op);
    Entry& e = op->set->entry(op->line);
    if (!(e.valid & op->mask).any()) return finish_op(op);
    const LineMask before = e.dirty;
    e.valid = e.valid & ~op->mask;
    e.dirty = e.dirty & ~op->mask;
    op->set->dirty_changed(before, e.dirty);
    op->step = kDone;
    persist(op);
}

// wt, wa (hit), wb, wo: the blocks of the line the write covers and that hold a clean copy are
// marked dirty first (an evicted line's new entry is written first instead).
void write_to_line(Op* op, bool evicted, Step next) {
    Entry& e = op->set->entry(op->line);
    op->set->touch(op->line);
    op->step = next;
    if (evicted) return persist(op);
    const LineMask pre = e.valid & op->mask & ~e.dirty;
    if (!pre.any()) return continue_op(op);
    const LineMask before = e.dirty;
    e.dirty = e.dirty | pre;
    op->set->dirty_changed(before, e.dirty);
    persist(op);
}

void write_through_io(Op* op) {
    op->step = kThroughEnd;
    Counters& k = op->owner->counters;
    Counters::add(k.core_wr_blocks, op->count);
    Counters::add(k.cache_wr_blocks, op->count);
    user_core_io(op, 0, IoType::Write);
    user_cache_io(op, 1, IoType::Write);
    issue(op, 2);
}

void write_through_end(Op* op) {
    Entry& e = op->set->entry(op->line);
    const Entry old = e;
    if (!op->cache_failed && !op->core_failed) {
        e.valid = e.valid | op->mask;
        e.dirty = e.dirty & ~op->mask;
    } else if (!op->core_failed) {  // only the core has the data
        e.valid = e.valid & ~op->mask;
        e.dirty = e.dirty & ~op->mask;
    } else if (!op->cache_failed) {  // only the cache has it: it is dirty
        e.valid = e.valid | op->mask;
        e.dirty = e.dirty | op->mask;
        op->status = IoStatus::Failed;
    } else {
        op->status = IoStatus::Failed;
    }
    op->set->dirty_changed(old.dirty, e.dirty);
    op->step = kDone;
    if (old.valid == e.valid && old.dirty == e.dirty) return finish_op(op);
    persist(op);
}

void write_back_io(Op* op) {
    op->step = kBackEnd;
    Counters::add(op->owner->counters.cache_wr_blocks, op->count);
    if (forward_to_cache(op)) return;
    user_cache_io(op, 0, IoType::Write);
    issue(op, 1);
}

void write_back_end(Op* op) {
    if (op->cache_failed) {
        // The core takes the write instead; the line's copies of these blocks are dropped
        // after it (kInvalEnd), as in pt mode.
        op->cache_failed = false;
        op->step = kInvalEnd;
        Counters::add(op->owner->counters.core_wr_blocks, op->count);
        user_core_io(op, 0, IoType::Write);
        return issue(op, 1);
    }
    Entry& e = op->set->entry(op->line);
    const Entry old = e;
    e.valid = e.valid | op->mask;
    e.dirty = e.dirty | op->mask;
    op->set->dirty_changed(old.dirty, e.dirty);
    op->step = kDone;
    if (old.valid == e.valid && old.dirty == e.dirty) return finish_op(op);
    persist(op);
}

void start_write(Op* op) {
    CacheSet* set = op->set;
    Counters& k = op->owner->counters;
    const Mode mode = op->mode;
    op->line = set->lookup(op->core_line);
    const bool mapped = op->line != CacheSet::kNone;
    if (mapped)
        Counters::add(set->entry(op->line).valid.covers(op->mask) ? k.wr_hits
                                                                  : k.wr_partial_misses);
    else
        Counters::add(mode == Mode::PassThrough ? k.wr_pt : k.wr_full_misses);
    switch (mode) {
        case Mode::PassThrough:
        case Mode::WriteInvalidate:
            if (!mapped) return write_core_only(op);
            return write_invalidate(op);
        case Mode::WriteAround:
            if (!mapped) return write_core_only(op);
            return write_to_line(op, false, kThroughIo);
        case Mode::WriteThrough:
        case Mode::WriteBack:
        case Mode::WriteOnly: {
            bool evicted = false;
            if (!mapped &&
                (op->c->detaching.load(std::memory_order_relaxed) || !allocate_line(op, &evicted)))
                return write_core_only(op);
            return write_to_line(op, evicted, mode == Mode::WriteThrough ? kThroughIo : kBackIo);
        }
    }
}

// --- cleaning: the line's dirty blocks go back to the core ---

void clean_start(Op* op) {
    CacheSet* set = op->set;
    if (op->line >= set->size()) return finish_op(op);
    const Entry& e = set->entry(op->line);
    if (e.core_line != op->core_line || !e.dirty.any()) return finish_op(op);
    op->todo = e.dirty;
    op->mask = e.dirty;  // what this pass cleans
    uint32_t first = 0, count = 0, last = 0;
    next_run(e.dirty, op->c->blocks_per_line, &first, &count);
    for (uint32_t i = 0; i < op->c->blocks_per_line; ++i)
        if (e.dirty.test(i)) last = i;
    op->first = first;
    op->count = last + 1 - first;
    op->iov[0] = {op->buf, uint64_t(op->count) * op->c->bs};
    SubIo& s = op->sub[0];
    s.core = false;
    s.type = IoType::Read;
    s.iov = op->iov;
    s.iovcnt = 1;
    s.offset_blocks = op->c->cache_block_of(*set, op->line, first);
    s.num_blocks = op->count;
    op->step = kCleanRead;
    Counters::add(op->owner->counters.cache_rd_blocks, op->count);
    issue(op, 1);
}

void clean_write_next(Op* op) {
    if (op->cache_failed || op->core_failed) return fail_and_finish(op, IoStatus::MediaError);
    if (op->step == kCleanWrite)
        op->todo = op->todo & ~LineMask::range(op->run_first, op->run_count);
    op->step = kCleanWrite;
    if (!next_run(op->todo, op->c->blocks_per_line, &op->run_first, &op->run_count)) {
        op->step = kCleanFlush;
        SubIo& s = op->sub[0];
        s.core = true;
        s.type = IoType::Flush;
        s.offset_blocks = 0;
        s.num_blocks = op->c->core_desc->bdev()->num_blocks;
        return issue(op, 1);
    }
    op->iov[1] = {op->buf + uint64_t(op->run_first - op->first) * op->c->bs,
                  uint64_t(op->run_count) * op->c->bs};
    SubIo& s = op->sub[0];
    s.core = true;
    s.type = IoType::Write;
    s.iov = &op->iov[1];
    s.iovcnt = 1;
    s.offset_blocks = op->core_line * op->c->blocks_per_line + op->run_first;
    s.num_blocks = op->run_count;
    Counters::add(op->owner->counters.core_wr_blocks, op->run_count);
    issue(op, 1);
}

void clean_flushed(Op* op) {
    if (op->core_failed) return fail_and_finish(op, IoStatus::MediaError);
    Entry& e = op->set->entry(op->line);
    const LineMask before = e.dirty;
    e.dirty = e.dirty & ~op->mask;
    op->set->dirty_changed(before, e.dirty);
    Counters::add(op->owner->counters.cleaned_lines);
    op->step = kDone;
    persist(op);
}

void run_locked(Op* op) {
    switch (op->kind) {
        case OpKind::Read:
            return start_read(op);
        case OpKind::Write:
            return start_write(op);
        case OpKind::Clean:
            return clean_start(op);
    }
}

}  // namespace

void submit_sub(SubIo* s) {
    Op* op = s->op;
    CacheBdev* c = op->c;
    BdevDesc* d = s->core ? c->core_desc : c->cache_desc;
    IoChannel* ch = s->core ? op->owner->core_ch : op->owner->cache_ch;
    int rc;
    switch (s->type) {
        case IoType::Read:
            rc = bdev_readv(d, ch, s->iov, s->iovcnt, s->offset_blocks, s->num_blocks, sub_done, s);
            break;
        case IoType::Write:
            rc =
                bdev_writev(d, ch, s->iov, s->iovcnt, s->offset_blocks, s->num_blocks, sub_done, s);
            break;
        case IoType::Flush:
            rc = bdev_flush(d, ch, s->offset_blocks, s->num_blocks, sub_done, s);
            if (rc == -ENOTSUP) rc = 1;  // nothing to flush
            break;
        default:
            rc = -ENOTSUP;
    }
    if (rc == -ENOMEM) {
        s->wait.cb = resubmit;
        s->wait.arg = s;
        bdev_queue_io_wait(ch, &s->wait);
        return;
    }
    if (rc == 1) {
        if (--op->pending == 0) continue_op(op);
    } else if (rc != 0) {
        (s->core ? op->core_failed : op->cache_failed) = true;
        if (--op->pending == 0) continue_op(op);
    }
}

void continue_op(Op* op) {
    switch (op->step) {
        case kDone:
            if (op->kind == OpKind::Read && (op->core_failed || op->cache_failed))
                op->status = IoStatus::MediaError;
            else if (op->kind == OpKind::Write && op->status == IoStatus::Success &&
                     (op->core_failed || op->cache_failed))
                op->status = IoStatus::Failed;
            return finish_op(op);
        case kReadHit:
            if (!op->cache_failed) return finish_op(op);
            if ((op->set->entry(op->line).dirty & op->mask).any())
                return fail_and_finish(op, IoStatus::MediaError);
            op->cache_failed = false;
            op->step = kDone;
            Counters::add(op->owner->counters.core_rd_blocks, op->count);
            user_core_io(op, 0, IoType::Read);
            return issue(op, 1);
        case kReadOverlay:
        case kReadOverlayRun:
            return read_overlay_next(op);
        case kReadFill:
            return read_fill(op);
        case kReadFillMapped:
            return read_fill_write(op);
        case kReadFillWritten:
            return read_fill_written(op);
        case kInvalCore:
            op->step = kInvalEnd;
            Counters::add(op->owner->counters.core_wr_blocks, op->count);
            user_core_io(op, 0, IoType::Write);
            return issue(op, 1);
        case kInvalEnd:
            return write_invalidate_end(op);
        case kThroughIo:
            return write_through_io(op);
        case kThroughEnd:
            return write_through_end(op);
        case kBackIo:
            return write_back_io(op);
        case kBackEnd:
            return write_back_end(op);
        case kCleanRead:
        case kCleanWrite:
            return clean_write_next(op);
        case kCleanFlush:
            return clean_flushed(op);
        default:
            NOC_ERROR("bdev", "cache {}: operation in unknown step {}", op->c->name, op->step);
            return fail_and_finish(op);
    }
}

void start_op(Op* op) {
    for (SubIo& s : op->sub) s.op = op;
    if (op->owner->lock(op)) run_locked(op);
}

void finish_op(Op* op) {
    Owner* o = op->owner;
    Op* next = o->unlock(op);
    BdevIo* io = op->io;
    const IoStatus st = op->status;
    Thread* origin = op->origin;
    if (op->kind == OpKind::Clean) {
        clean_line_done(op);  // puts the op back
    } else {
        o->put_op(op);
        if (origin == Thread::current())
            bdev_io_complete(io, st);
        else
            origin->send([io, st] { bdev_io_complete(io, st); });
    }
    if (next) run_locked(next);
}

void run_user_io(CacheBdev* c, BdevIo* io, bool bypass) {
    const uint64_t core_line = io->offset_blocks / c->blocks_per_line;
    const uint32_t set = set_of(core_line, uint32_t(c->sets.size()));
    const uint32_t owner_index = set % uint32_t(c->owner_threads.size());
    Thread* origin = Thread::current();
    auto begin = [c, io, origin, core_line, set, owner_index, bypass] {
        Owner* o = c->owner_here(owner_index);
        Op* op = o ? o->get_op() : nullptr;
        if (!op) {
            if (origin == Thread::current())
                bdev_io_complete(io, IoStatus::NoMemory);
            else
                origin->send([io] { bdev_io_complete(io, IoStatus::NoMemory); });
            return;
        }
        op->c = c;
        op->owner = o;
        op->set = c->sets[set].get();
        op->io = io;
        op->origin = origin;
        op->kind = io->type == IoType::Read ? OpKind::Read : OpKind::Write;
        op->mode = bypass || c->failed.load(std::memory_order_relaxed)
                       ? Mode::PassThrough
                       : c->mode.load(std::memory_order_relaxed);
        op->step = kStart;
        op->core_line = core_line;
        op->line = CacheSet::kNone;
        op->first = uint32_t(io->offset_blocks % c->blocks_per_line);
        op->count = uint32_t(io->num_blocks);
        op->mask = LineMask::range(op->first, op->count);
        op->pending = 0;
        op->cache_failed = op->core_failed = false;
        op->status = IoStatus::Success;
        start_op(op);
    };
    Thread* t = c->owner_thread_of(set);
    if (t == origin)
        begin();
    else
        t->send(std::move(begin));
}

}  // namespace nocstor::cache
