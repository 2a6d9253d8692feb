// Preallocated data buffers carved from the NoC's shared arena, so a buffer is named everywhere by
// its arena offset, plus ObjectPool<T> for request objects in process memory. Both have a global
// lock-free free list (MpmcIndexRing of indices) and a small per-owner cache in front of it, so the
// common get/put touches no shared cache line. Exhaustion returns an empty Buffer / nullptr: the
// caller queues the request and retries later. Nothing here blocks or allocates after creation.
//
// Why an explicit cache object (BufferCache / ObjectCache) instead of thread_local: the owner of a
// cache is the lightweight thread (or reactor) that does the I/O, and lightweight threads are not
// OS threads; an explicit object also makes the flush point obvious (its destructor or flush()),
// works when clusters become processes, and costs no TLS lookup on the hot path. A cache must be
// used by one thread at a time; buffers may be put into any cache or straight into the pool.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "runtime/mpmc_index_ring.h"

namespace nocstor {

namespace detail {
// The global rings have room for twice the number of indices, so a push can only fail
// transiently (see mpmc_index_ring.h); spinning on it never loses an index.
inline void push_index(MpmcIndexRing& global, uint32_t v) {
    while (!global.push(v)) {
    }
}

// A per-owner stash of free indices in front of a global MpmcIndexRing; refills and flushes half
// of its capacity at a time so alternating get/put never hits the global ring.
template <uint32_t N>
struct IndexStash {
    static_assert(N >= 2 && N % 2 == 0);
    uint32_t n = 0;
    uint32_t idx[N];

    bool get(MpmcIndexRing& global, uint32_t* out) {
        if (n == 0) n = uint32_t(global.pop_n(idx, N / 2));
        if (n == 0) return false;
        *out = idx[--n];
        return true;
    }
    void put(MpmcIndexRing& global, uint32_t v) {
        if (n == N) {
            for (uint32_t i = N / 2; i < N; ++i) push_index(global, idx[i]);
            n = N / 2;
        }
        idx[n++] = v;
    }
    void flush(MpmcIndexRing& global) {
        for (uint32_t i = 0; i < n; ++i) push_index(global, idx[i]);
        n = 0;
    }
};
}  // namespace detail

enum class BufClass : uint8_t { Small = 0, Large = 1 };

struct BufferPoolConfig {
    uint32_t small_count = 1024;
    uint32_t large_count = 64;
    uint32_t small_size = 8 * 1024;    // multiple of 4 KiB
    uint32_t large_size = 132 * 1024;  // 128 KiB of data + room for metadata / unaligned I/O
};

struct Buffer {
    std::byte* data = nullptr;  // in this process
    uint64_t offset = 0;        // in the arena: the same in every cluster / process
    uint32_t size = 0;
    uint32_t index = 0;  // within its class
    BufClass cls = BufClass::Small;
    explicit operator bool() const { return data != nullptr; }
};

class BufferPool {
  public:
    static constexpr size_t kAlign = 4096;

    // Bytes the pool needs in the arena, from a 4 KiB aligned offset (free lists + buffers).
    static size_t bytes_needed(const BufferPoolConfig& cfg);
    // Lays out a pool at arena_base + offset (both 4 KiB aligned), all buffers free.
    static BufferPool create(std::byte* arena_base, uint64_t offset, const BufferPoolConfig& cfg);
    // A view of a pool created at that offset, possibly by another process mapping the arena.
    static BufferPool attach(std::byte* arena_base, uint64_t offset);

    BufferPool() = default;
    bool valid() const { return h_ != nullptr; }

    // Straight from the global free list (no cache). Empty Buffer when none is free.
    Buffer get(BufClass cls);
    void put(const Buffer& b) { detail::push_index(ring(b.cls), b.index); }
    // The buffer containing arena offset `off` (a buffer's start or any byte inside it).
    Buffer from_offset(uint64_t off) const;
    bool owns(uint64_t off) const;
    Buffer at(BufClass cls, uint32_t index) const;

    std::byte* ptr(uint64_t off) const { return arena_ + off; }
    uint32_t count(BufClass cls) const;
    uint32_t buffer_size(BufClass cls) const;
    size_t free_approx(BufClass cls) const { return ring(cls).size_approx(); }

  private:
    friend class BufferCache;
    struct Header;
    MpmcIndexRing& ring(BufClass c) { return rings_[int(c)]; }
    const MpmcIndexRing& ring(BufClass c) const { return rings_[int(c)]; }

    std::byte* arena_ = nullptr;
    const Header* h_ = nullptr;
    MpmcIndexRing rings_[2];
};

// Per-owner cache in front of a BufferPool (see the comment at the top). Flushes on destruction.
class BufferCache {
  public:
    static constexpr uint32_t kSlots = 32;

    explicit BufferCache(BufferPool& pool) : pool_(&pool) {}
    ~BufferCache() { flush(); }
    BufferCache(const BufferCache&) = delete;
    BufferCache& operator=(const BufferCache&) = delete;

    Buffer get(BufClass cls) {
        uint32_t i;
        if (!stash_[int(cls)].get(pool_->ring(cls), &i)) return {};
        return pool_->at(cls, i);
    }
    void put(const Buffer& b) { stash_[int(b.cls)].put(pool_->ring(b.cls), b.index); }
    void put(uint64_t arena_offset) { put(pool_->from_offset(arena_offset)); }
    // Returns every cached buffer to the global free list.
    void flush() {
        for (int c = 0; c < 2; ++c) stash_[c].flush(pool_->rings_[c]);
    }
    size_t cached(BufClass cls) const { return stash_[int(cls)].n; }
    BufferPool& pool() const { return *pool_; }

  private:
    BufferPool* pool_;
    detail::IndexStash<kSlots> stash_[2];
};

// Fixed-capacity pool of T (request objects) in process memory. All T are default-constructed at
// creation and destroyed with the pool; get() hands out an existing object (the caller resets the
// fields it uses) and put() takes it back without running a destructor, like SPDK's bdev_io pool.
template <class T>
class ObjectPool {
  public:
    explicit ObjectPool(uint32_t capacity)
        : capacity_(capacity), objects_(std::make_unique<T[]>(capacity)) {
        uint32_t ring_cap = 2;
        while (ring_cap < 2 * capacity) ring_cap *= 2;  // room for 2x: see push_index
        ring_mem_.reset(static_cast<std::byte*>(
            ::operator new(MpmcIndexRing::bytes_needed(ring_cap), std::align_val_t(64))));
        free_ = MpmcIndexRing::format(ring_mem_.get(), ring_cap);
        for (uint32_t i = 0; i < capacity; ++i) free_.push(i);
    }
    ObjectPool(const ObjectPool&) = delete;
    ObjectPool& operator=(const ObjectPool&) = delete;

    T* get() {
        uint32_t i;
        return free_.pop(&i) ? &objects_[i] : nullptr;
    }
    void put(T* obj) { detail::push_index(free_, index_of(obj)); }

    uint32_t index_of(const T* obj) const {
        assert(obj >= objects_.get() && obj < objects_.get() + capacity_);
        return uint32_t(obj - objects_.get());
    }
    T* at(uint32_t index) { return &objects_[index]; }
    uint32_t capacity() const { return capacity_; }
    size_t free_approx() const { return free_.size_approx(); }

  private:
    template <class U, uint32_t N>
    friend class ObjectCache;
    struct AlignedDelete {
        void operator()(std::byte* p) const { ::operator delete(p, std::align_val_t(64)); }
    };

    uint32_t capacity_;
    std::unique_ptr<T[]> objects_;
    std::unique_ptr<std::byte, AlignedDelete> ring_mem_;
    MpmcIndexRing free_;
};

template <class T, uint32_t N = 32>
class ObjectCache {
  public:
    explicit ObjectCache(ObjectPool<T>& pool) : pool_(&pool) {}
    ~ObjectCache() { flush(); }
    ObjectCache(const ObjectCache&) = delete;
    ObjectCache& operator=(const ObjectCache&) = delete;

    T* get() {
        uint32_t i;
        return stash_.get(pool_->free_, &i) ? pool_->at(i) : nullptr;
    }
    void put(T* obj) { stash_.put(pool_->free_, pool_->index_of(obj)); }
    void flush() { stash_.flush(pool_->free_); }
    size_t cached() const { return stash_.n; }

  private:
    ObjectPool<T>* pool_;
    detail::IndexStash<N> stash_;
};

}  // namespace nocstor
