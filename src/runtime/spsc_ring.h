// Lock-free single-producer single-consumer ring of 64-byte slots that lives in shared memory.
// Layout at the ring's offset: [producer line: tail, cached head][consumer line: head, cached
// tail][read-only line: capacity, magic][slots...]. Each side writes only its own cache line and
// refreshes its copy of the other side's index only when its cached view says full / empty, so
// under load the index lines move between cores once per batch, not once per slot. Indices are
// free-running 64-bit counters (never wrap in practice); capacity is a power of two.
// The SpscRing object is a per-process view (pointers); the memory holds no pointers.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace nocstor {

inline constexpr size_t kCacheLine = 64;

template <class T>
class SpscRing {
    static_assert(sizeof(T) == 64, "slots are exactly one cache line");
    static_assert(std::is_trivially_copyable_v<T>,
                  "slots are copied as raw bytes across processes");
    static_assert(std::atomic<uint64_t>::is_always_lock_free, "atomics must be address-free");

  public:
    static constexpr uint64_t kMagic = 0x5350'5343'5249'4e47ull;  // "SPSCRING"
    static constexpr size_t kHeaderBytes = 3 * kCacheLine;

    static size_t bytes_needed(uint32_t capacity) {
        return kHeaderBytes + size_t(capacity) * sizeof(T);
    }

    // Formats an empty ring in `mem` (64-byte aligned, bytes_needed(capacity) long).
    static SpscRing format(void* mem, uint32_t capacity) {
        auto* s = ::new (mem) Shared();
        s->capacity = capacity;
        s->magic = kMagic;
        return attach(mem);
    }
    // A view of a ring formatted by format(), possibly by another process.
    static SpscRing attach(void* mem) {
        SpscRing r;
        r.s_ = static_cast<Shared*>(mem);
        r.slots_ = reinterpret_cast<T*>(static_cast<std::byte*>(mem) + kHeaderBytes);
        r.capacity_ = r.s_->capacity;
        r.mask_ = r.capacity_ - 1;
        return r;
    }
    static bool valid_capacity(uint32_t c) { return c >= 2 && (c & (c - 1)) == 0; }

    SpscRing() = default;
    bool valid() const { return s_ != nullptr && s_->magic == kMagic; }
    uint32_t capacity() const { return capacity_; }

    // ---- producer side (one thread at a time) ----

    // Reserves up to n slots, calls fill(T& slot, size_t i) for each, publishes them together.
    // Returns how many were filled (fewer than n when the ring is full).
    template <class Fill>
    size_t produce(size_t n, Fill&& fill) {
        uint64_t tail = s_->tail.load(std::memory_order_relaxed);
        uint64_t free = capacity_ - (tail - s_->cached_head);
        if (free < n) {
            s_->cached_head = s_->head.load(std::memory_order_acquire);
            free = capacity_ - (tail - s_->cached_head);
        }
        size_t k = std::min<size_t>(n, free);
        for (size_t i = 0; i < k; ++i) fill(slots_[(tail + i) & mask_], i);
        if (k) s_->tail.store(tail + k, std::memory_order_release);
        return k;
    }
    bool try_push(const T& v) {
        return produce(1, [&](T& slot, size_t) { slot = v; }) == 1;
    }
    size_t push_batch(const T* v, size_t n) {
        return produce(n, [&](T& slot, size_t i) { slot = v[i]; });
    }

    // ---- consumer side (one thread at a time) ----

    // Calls fn(const T&) in place for up to max slots, then releases them together.
    template <class Fn>
    size_t consume(size_t max, Fn&& fn) {
        uint64_t head = s_->head.load(std::memory_order_relaxed);
        uint64_t avail = s_->cached_tail - head;
        if (avail < max) {
            s_->cached_tail = s_->tail.load(std::memory_order_acquire);
            avail = s_->cached_tail - head;
        }
        size_t k = std::min<size_t>(max, avail);
        for (size_t i = 0; i < k; ++i) fn(static_cast<const T&>(slots_[(head + i) & mask_]));
        if (k) s_->head.store(head + k, std::memory_order_release);
        return k;
    }
    bool try_pop(T* out) {
        return consume(1, [&](const T& v) { *out = v; }) == 1;
    }
    size_t pop_batch(T* out, size_t max) {
        size_t i = 0;
        return consume(max, [&](const T& v) { out[i++] = v; });
    }
    // Drops everything published so far without reading it; returns how many. For a consumer
    // that replaces a dead one and must not act on what was sent to its predecessor.
    size_t discard() {
        const uint64_t tail = s_->tail.load(std::memory_order_acquire);
        const uint64_t head = s_->head.load(std::memory_order_relaxed);
        s_->cached_tail = tail;
        s_->head.store(tail, std::memory_order_release);
        return size_t(tail - head);
    }
    // Consumer-side check that reads the producer's index (used by the sleep re-check).
    bool empty() const {
        return s_->tail.load(std::memory_order_acquire) == s_->head.load(std::memory_order_relaxed);
    }
    // Approximate from any thread (statistics).
    size_t size_approx() const {
        uint64_t h = s_->head.load(std::memory_order_relaxed);
        uint64_t t = s_->tail.load(std::memory_order_relaxed);
        return t >= h ? size_t(t - h) : 0;
    }

  private:
    struct Shared {
        alignas(kCacheLine) std::atomic<uint64_t> tail{0};  // written by the producer
        uint64_t cached_head = 0;                           // producer's last view of head
        alignas(kCacheLine) std::atomic<uint64_t> head{0};  // written by the consumer
        uint64_t cached_tail = 0;                           // consumer's last view of tail
        alignas(kCacheLine) uint32_t capacity = 0;
        uint64_t magic = 0;
    };
    static_assert(sizeof(Shared) == kHeaderBytes);

    Shared* s_ = nullptr;
    T* slots_ = nullptr;
    uint64_t capacity_ = 0;
    uint64_t mask_ = 0;
};

}  // namespace nocstor
