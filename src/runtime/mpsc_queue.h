// Bounded lock-free multi-producer single-consumer queue (Dmitry Vyukov's bounded MPMC algorithm
// used with one consumer). Each producer claims slots in increasing order, so the messages of
// one sender are consumed in the order they were sent.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace nocstor {

template <typename T>
class MpscQueue {
  public:
    explicit MpscQueue(size_t capacity_pow2) : mask_(capacity_pow2 - 1) {
        slots_ = std::make_unique<Slot[]>(capacity_pow2);
        for (size_t i = 0; i < capacity_pow2; ++i)
            slots_[i].seq.store(i, std::memory_order_relaxed);
    }

    // Any thread. False when the queue is full.
    bool try_push(T&& value) {
        size_t pos = tail_.load(std::memory_order_relaxed);
        for (;;) {
            Slot& slot = slots_[pos & mask_];
            size_t seq = slot.seq.load(std::memory_order_acquire);
            intptr_t diff = intptr_t(seq) - intptr_t(pos);
            if (diff == 0) {
                if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    slot.value = std::move(value);
                    slot.seq.store(pos + 1, std::memory_order_release);
                    return true;
                }
            } else if (diff < 0) {
                return false;
            } else {
                pos = tail_.load(std::memory_order_relaxed);
            }
        }
    }

    // Consumer thread only.
    bool try_pop(T& out) {
        Slot& slot = slots_[head_ & mask_];
        size_t seq = slot.seq.load(std::memory_order_acquire);
        if (intptr_t(seq) - intptr_t(head_ + 1) < 0) return false;
        out = std::move(slot.value);
        slot.seq.store(head_ + mask_ + 1, std::memory_order_release);
        ++head_;
        return true;
    }

    // Consumer side hint; may race with producers (used only for the sleep re-check).
    bool empty_approx() const {
        const Slot& slot = slots_[head_ & mask_];
        return intptr_t(slot.seq.load(std::memory_order_acquire)) - intptr_t(head_ + 1) < 0;
    }

  private:
    struct alignas(64) Slot {
        std::atomic<size_t> seq;
        T value;
    };
    std::unique_ptr<Slot[]> slots_;
    size_t mask_;
    alignas(64) std::atomic<size_t> tail_{0};
    alignas(64) size_t head_ = 0;
};

}  // namespace nocstor
