// Bounded multi-producer multi-consumer queue of 32-bit indices (Dmitry Vyukov's design): each
// cell carries a sequence number that tells producers and consumers whose turn it is, so push and
// pop cost one CAS on a shared position and no locks. Position-independent: it can live in shared
// memory (MpmcIndexRing is only a view). Not strictly lock-free: a thread preempted between its CAS
// and its sequence store makes others see that one cell as full/empty until it resumes; for free
// lists that only means a transient "no buffer", which callers already handle by retrying.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace nocstor {

class MpmcIndexRing {
  public:
    static size_t bytes_needed(uint32_t capacity) {
        return sizeof(Header) + size_t(capacity) * sizeof(Cell);
    }

    // Formats an empty ring; capacity must be a power of two >= 2.
    static MpmcIndexRing format(void* mem, uint32_t capacity) {
        auto* h = ::new (mem) Header();
        h->capacity = capacity;
        auto* cells = reinterpret_cast<Cell*>(h + 1);
        for (uint32_t i = 0; i < capacity; ++i) ::new (&cells[i]) Cell{{i}, 0};
        return attach(mem);
    }
    static MpmcIndexRing attach(void* mem) {
        MpmcIndexRing r;
        r.h_ = static_cast<Header*>(mem);
        r.cells_ = reinterpret_cast<Cell*>(r.h_ + 1);
        r.mask_ = r.h_->capacity - 1;
        return r;
    }

    bool push(uint32_t value) {
        uint64_t pos = h_->enq.load(std::memory_order_relaxed);
        for (;;) {
            Cell& c = cells_[pos & mask_];
            uint64_t seq = c.seq.load(std::memory_order_acquire);
            int64_t dif = int64_t(seq) - int64_t(pos);
            if (dif == 0) {
                if (h_->enq.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    c.value = value;
                    c.seq.store(pos + 1, std::memory_order_release);
                    return true;
                }
            } else if (dif < 0) {
                return false;  // full
            } else {
                pos = h_->enq.load(std::memory_order_relaxed);
            }
        }
    }

    bool pop(uint32_t* value) {
        uint64_t pos = h_->deq.load(std::memory_order_relaxed);
        for (;;) {
            Cell& c = cells_[pos & mask_];
            uint64_t seq = c.seq.load(std::memory_order_acquire);
            int64_t dif = int64_t(seq) - int64_t(pos + 1);
            if (dif == 0) {
                if (h_->deq.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    *value = c.value;
                    c.seq.store(pos + mask_ + 1, std::memory_order_release);
                    return true;
                }
            } else if (dif < 0) {
                return false;  // empty
            } else {
                pos = h_->deq.load(std::memory_order_relaxed);
            }
        }
    }

    size_t pop_n(uint32_t* out, size_t n) {
        size_t k = 0;
        while (k < n && pop(&out[k])) ++k;
        return k;
    }
    size_t push_n(const uint32_t* in, size_t n) {
        size_t k = 0;
        while (k < n && push(in[k])) ++k;
        return k;
    }
    size_t size_approx() const {
        uint64_t e = h_->enq.load(std::memory_order_relaxed);
        uint64_t d = h_->deq.load(std::memory_order_relaxed);
        return e > d ? size_t(e - d) : 0;
    }
    uint32_t capacity() const { return uint32_t(mask_ + 1); }

  private:
    struct Header {
        alignas(64) std::atomic<uint64_t> enq{0};
        alignas(64) std::atomic<uint64_t> deq{0};
        alignas(64) uint32_t capacity = 0;
    };
    struct Cell {
        std::atomic<uint64_t> seq;
        uint64_t value;
    };

    Header* h_ = nullptr;
    Cell* cells_ = nullptr;
    uint64_t mask_ = 0;
};

}  // namespace nocstor
