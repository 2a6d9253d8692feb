// Per-owner state of a cache (operations, the core-line lock table, table block writes) and
// the writer that puts a set's entries on disk.
#include "modules/cache/cache_bdev.h"

#include "util/log.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nocstor::cache {

namespace {

uint8_t* aligned_alloc_or_die(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, n) != 0) std::abort();
    std::memset(p, 0, n);
    return static_cast<uint8_t*>(p);
}

uint32_t bucket_of(uint64_t core_line) {
    return uint32_t((core_line * 0x9E3779B97F4A7C15ull) >> 40) % Owner::kBuckets;
}

void md_submit(MdWrite* w);

void md_snapshot(MdWrite* w) {
    CacheSet* set = w->set;
    const uint32_t per = set->entries_per_block();
    const uint32_t bs = w->owner->c->bs;
    std::memset(w->buf, 0, bs);
    const uint32_t first = w->block * per;
    for (uint32_t i = 0; i < per && first + i < set->size(); ++i)
        entry_encode(set->entry(first + i), w->buf + i * kEntryBytes);
    set->md(w->block).snapshot_taken = true;
    w->iov = {w->buf, bs};
}

void md_retry(void* arg) {
    md_submit(static_cast<MdWrite*>(arg));
}

void md_done(BdevIo* bio, bool ok, void* arg);

void md_submit(MdWrite* w) {
    CacheBdev* c = w->owner->c;
    const uint64_t block =
        c->table_offset_blocks + w->set->first_line() / w->set->entries_per_block() + w->block;
    const int rc = bdev_writev(c->cache_desc, w->owner->cache_ch, &w->iov, 1, block, 1, md_done, w);
    if (rc == -ENOMEM) {
        w->wait.cb = md_retry;
        w->wait.arg = w;
        bdev_queue_io_wait(w->owner->cache_ch, &w->wait);
    } else if (rc != 0) {
        md_done(nullptr, false, w);
    }
}

void md_start(Owner* o, CacheSet* set, uint32_t block) {
    MdWrite* w = o->get_md();
    if (!w) {
        o->md_backlog.push_back({set, block});
        return;
    }
    w->set = set;
    w->block = block;
    md_snapshot(w);
    md_submit(w);
}

void md_done(BdevIo* bio, bool ok, void* arg) {
    auto* w = static_cast<MdWrite*>(arg);
    if (bio) bdev_free_io(bio);
    Owner* o = w->owner;
    Counters::add(o->counters.table_writes);
    if (!ok) {
        Counters::add(o->counters.cache_wr_errors);
        cache_device_failed(o->c);
    }
    CacheSet::MdBlock& m = w->set->md(w->block);
    Op* done = m.waiting;
    m.waiting = nullptr;
    if (m.again) {
        // Updates came in while this write was in flight: write the block again.
        m.again = false;
        m.waiting = m.waiting_next;
        m.waiting_next = nullptr;
        md_snapshot(w);
        md_submit(w);
    } else {
        m.inflight = false;
        m.snapshot_taken = false;
        o->put_md(w);
        if (!o->md_backlog.empty()) {
            const Owner::BlockRef r = o->md_backlog.front();
            o->md_backlog.erase(o->md_backlog.begin());
            md_start(o, r.set, r.block);
        }
    }
    while (done) {
        Op* op = done;
        done = op->next_md;
        if (!ok) {
            op->cache_failed = true;
            op->status = IoStatus::Failed;
        }
        continue_op(op);
    }
}

}  // namespace

void Counters::reset() {
    for (auto* c :
         {&rd_hits, &rd_partial_misses, &rd_full_misses, &rd_pt, &wr_hits, &wr_partial_misses,
          &wr_full_misses, &wr_pt, &core_rd_blocks, &core_wr_blocks, &cache_rd_blocks,
          &cache_wr_blocks, &core_rd_errors, &core_wr_errors, &cache_rd_errors, &cache_wr_errors})
        c->store(0, std::memory_order_relaxed);
}

Owner::Owner(CacheBdev* cache, uint32_t idx)
    : c(cache),
      index(idx),
      candidates_(std::make_unique<Candidate[]>(kCandidates)),
      ops_(std::make_unique<Op[]>(kOps)),
      mds_(std::make_unique<MdWrite[]>(kMdWrites)) {
    cache_ch = bdev_get_io_channel(c->cache_desc);
    core_ch = bdev_get_io_channel(c->core_desc);
    for (uint32_t i = 0; i < kOps; ++i) put_op(&ops_[i]);
    md_mem_ = aligned_alloc_or_die(size_t(kMdWrites) * c->bs);
    for (uint32_t i = 0; i < kMdWrites; ++i) {
        mds_[i].owner = this;
        mds_[i].buf = md_mem_ + size_t(i) * c->bs;
        put_md(&mds_[i]);
    }
    md_backlog.reserve(kOps + kCleanersPerOwner);
    const size_t line = size_t(c->blocks_per_line) * c->bs;
    clean_mem_ = aligned_alloc_or_die(line * kCleanersPerOwner);
    for (uint32_t i = 0; i < kCleanersPerOwner; ++i) clean_bufs[i] = clean_mem_ + i * line;
    clean_bufs_free = kCleanersPerOwner;
    for (size_t s = idx; s < c->sets.size(); s += c->owner_threads.size())
        sets.push_back(c->sets[s].get());
    start_background_cleaner(this);
}

Owner::~Owner() {
    if (clean_poller) Thread::current()->unregister_poller(clean_poller);
    if (bg_poller) Thread::current()->unregister_poller(bg_poller);
    if (cache_ch) bdev_put_io_channel(cache_ch);
    if (core_ch) bdev_put_io_channel(core_ch);
    free(md_mem_);
    free(clean_mem_);
}

Op* Owner::get_op() {
    Op* op = free_ops_;
    if (op) free_ops_ = op->next_free;
    return op;
}

void Owner::put_op(Op* op) {
    op->next_free = free_ops_;
    free_ops_ = op;
}

bool Owner::lock(Op* op) {
    Op** bucket = &buckets_[bucket_of(op->core_line)];
    for (Op* h = *bucket; h; h = h->next_in_bucket) {
        if (h->core_line != op->core_line) continue;
        op->next_waiter = nullptr;
        Op** tail = &h->waiters;
        while (*tail) tail = &(*tail)->next_waiter;
        *tail = op;
        return false;
    }
    op->waiters = nullptr;
    op->next_in_bucket = *bucket;
    *bucket = op;
    return true;
}

Op* Owner::unlock(Op* op) {
    Op** p = &buckets_[bucket_of(op->core_line)];
    while (*p && *p != op) p = &(*p)->next_in_bucket;
    if (!*p) return nullptr;
    *p = op->next_in_bucket;
    Op* next = op->waiters;
    if (!next) return nullptr;
    next->waiters = next->next_waiter;
    Op** bucket = &buckets_[bucket_of(next->core_line)];
    next->next_in_bucket = *bucket;
    *bucket = next;
    return next;
}

bool Owner::promote(uint64_t core_line) {
    const uint32_t needed = c->promotion_hits.load(std::memory_order_relaxed);
    if (needed <= 1) return true;
    Candidate& cand = candidates_[(core_line * 0x9E3779B97F4A7C15ull) >> 52];
    if (cand.core_line != core_line) {
        cand = {core_line, 1};
        return false;
    }
    if (++cand.misses < needed) return false;
    cand = Candidate{};
    return true;
}

bool Owner::locked(uint64_t core_line) const {
    for (Op* h = buckets_[bucket_of(core_line)]; h; h = h->next_in_bucket)
        if (h->core_line == core_line) return true;
    return false;
}

MdWrite* Owner::get_md() {
    MdWrite* m = free_md_;
    if (m) free_md_ = m->next;
    return m;
}

void Owner::put_md(MdWrite* m) {
    m->next = free_md_;
    free_md_ = m;
}

void persist(Op* op) {
    CacheSet* set = op->set;
    const uint32_t block = op->line / set->entries_per_block();
    CacheSet::MdBlock& m = set->md(block);
    if (!m.inflight) {
        m.inflight = true;
        m.snapshot_taken = false;
        op->next_md = m.waiting;
        m.waiting = op;
        return md_start(op->owner, set, block);
    }
    if (!m.snapshot_taken) {  // waits for a buffer: the snapshot will include this update
        op->next_md = m.waiting;
        m.waiting = op;
        return;
    }
    m.again = true;
    op->next_md = m.waiting_next;
    m.waiting_next = op;
}

}  // namespace nocstor::cache
