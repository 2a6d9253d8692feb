// One set of cache lines: which core line each line holds (a hash from core line to line), a
// CLOCK replacement hand over them (a hit only sets a bit in the entry it reads anyway: an LRU
// list would cost two more cache misses per hit), the free ones, and the writer that puts the set's
// entries in the line table on disk, one table block at a time, coalescing the updates that arrive
// while a write of the same block is in flight. A set is used only by its owner thread
// (cache_bdev.h).
#pragma once

#include "modules/cache/cache_format.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace nocstor::cache {

struct Op;

class CacheSet {
  public:
    static constexpr uint32_t kNone = UINT32_MAX;

    // Lines [first_line, first_line + lines) of the cache; their entries fill whole table
    // blocks of `entries_per_block`.
    CacheSet(uint32_t index, uint64_t first_line, uint32_t lines, uint32_t entries_per_block);

    uint32_t index() const { return index_; }
    uint64_t first_line() const { return first_; }
    uint32_t size() const { return n_; }

    // --- state (what the entries say now; the table on disk follows through persist) ---
    Entry& entry(uint32_t line) { return entries_[line]; }
    const Entry& entry(uint32_t line) const { return entries_[line]; }
    // The line holding core_line, or kNone.
    uint32_t lookup(uint64_t core_line) const;
    // Loading: puts an entry read from disk in place (before any I/O), then finish_load()
    // makes every line left unmapped free (a new set only calls finish_load()).
    void load(uint32_t line, const Entry& e);
    void finish_load();
    // Maps core_line to `line` (a free line, or a victim): the entry becomes {core_line, no
    // block valid}, with a new generation, most recently used.
    void map(uint32_t line, uint64_t core_line);
    void touch(uint32_t line) {  // used now
        entries_[line].referenced = true;
        entries_[line].atime = now_ms_;
    }
    // When the line was last used (the owner's coarse clock, ms), for the cleaner.
    uint32_t last_use(uint32_t line) const { return entries_[line].atime; }
    void set_clock(uint32_t now_ms) { now_ms_ = now_ms; }
    // A free line (kNone when none is).
    uint32_t take_free();
    // A line not used since the clock hand last passed it, clean and for which
    // `busy(core_line)` is false (looking at no more than `scan` lines); it is unmapped and
    // returned, or kNone.
    template <class Busy>
    uint32_t evict(Busy busy, uint32_t scan = 128);
    // Any thread may read these (the owner writes them).
    uint64_t dirty_lines() const { return dirty_lines_.load(std::memory_order_relaxed); }
    uint64_t mapped_lines() const { return mapped_.load(std::memory_order_relaxed); }
    uint64_t dirty_blocks() const { return dirty_blocks_.load(std::memory_order_relaxed); }
    // Call after changing an entry's dirty mask (keeps the counters).
    void dirty_changed(const LineMask& before, const LineMask& after);

    // --- the table block writer ---
    uint32_t entries_per_block() const { return per_block_; }
    uint32_t blocks() const { return uint32_t(md_.size()); }
    struct MdBlock {
        bool inflight = false;  // a write of this block is in flight (or waits for a buffer)
        bool snapshot_taken = false;
        bool again = false;          // updated since the in-flight write took its snapshot
        Op* waiting = nullptr;       // ops the in-flight write completes
        Op* waiting_next = nullptr;  // ops the next write completes
    };
    MdBlock& md(uint32_t block) { return md_[block]; }

  private:
    void hash_insert(uint64_t core_line, uint32_t line);
    void hash_erase(uint64_t core_line);
    size_t slot_of(uint64_t core_line) const {
        return size_t((core_line * 0x9E3779B97F4A7C15ull) >> 17) & mask_;
    }

    uint32_t index_;
    uint64_t first_;
    uint32_t n_;
    uint32_t per_block_;
    std::unique_ptr<Entry[]> entries_;
    uint64_t next_gen_ = 1;
    // The replacement clock's hand; the free list of unmapped lines.
    uint32_t hand_ = 0;
    uint32_t now_ms_ = 0;
    std::vector<uint32_t> free_;
    // Open addressing, linear probing; the key is kept in the slot so that a lookup touches one
    // cache line of memory, not the entries of every line it probes.
    struct Slot {
        uint64_t core_line;
        uint32_t line_plus1;  // 0: empty
    };
    std::unique_ptr<Slot[]> table_;
    size_t mask_ = 0;
    static void add(std::atomic<uint64_t>& v, int64_t d) {
        v.store(v.load(std::memory_order_relaxed) + uint64_t(d), std::memory_order_relaxed);
    }
    std::atomic<uint64_t> dirty_lines_{0}, dirty_blocks_{0}, mapped_{0};
    std::vector<MdBlock> md_;
};

template <class Busy>
uint32_t CacheSet::evict(Busy busy, uint32_t scan) {
    // One sweep plus `scan`: a sweep may only clear reference bits (amortized O(1) per
    // eviction, as CLOCK is).
    for (uint64_t n = 0; n < uint64_t(n_) + scan; ++n) {
        const uint32_t l = hand_;
        hand_ = hand_ + 1 == n_ ? 0 : hand_ + 1;
        Entry& e = entries_[l];
        if (e.core_line == kNoCoreLine || e.dirty.any()) continue;
        if (e.referenced) {
            e.referenced = false;
            continue;
        }
        if (busy(e.core_line)) continue;
        hash_erase(e.core_line);
        add(mapped_, -1);
        entries_[l] = Entry{};
        return l;
    }
    return kNone;
}

}  // namespace nocstor::cache
