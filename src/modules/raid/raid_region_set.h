// A fixed-size set of bitmap regions that the control thread fills and any thread tests: which
// regions a resync or a partial rebuild still has to go through.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>

namespace nocstor::raid {

class RegionSet {
  public:
    explicit RegionSet(uint64_t regions)
        : n_(regions), words_(std::make_unique<std::atomic<uint64_t>[]>((regions + 63) / 64)) {
        clear();
    }
    uint64_t size() const { return n_; }
    void clear() {
        for (uint64_t i = 0; i < (n_ + 63) / 64; ++i) words_[i].store(0);
    }
    void set(uint64_t r) { words_[r / 64].fetch_or(uint64_t(1) << (r % 64)); }
    // Every region from r on.
    void set_from(uint64_t r) {
        for (; r < n_; ++r) set(r);
    }
    bool test(uint64_t r) const {
        return r < n_ && (words_[r / 64].load(std::memory_order_acquire) >> (r % 64)) & 1;
    }
    // The first region >= r in the set, or size().
    uint64_t next(uint64_t r) const {
        while (r < n_) {
            const uint64_t w = words_[r / 64].load(std::memory_order_acquire) >> (r % 64);
            if (w) return std::min(n_, r + uint64_t(std::countr_zero(w)));
            r = (r / 64 + 1) * 64;
        }
        return n_;
    }
    uint64_t count() const {
        uint64_t c = 0;
        for (uint64_t i = 0; i < (n_ + 63) / 64; ++i) c += std::popcount(words_[i].load());
        return c;
    }

  private:
    uint64_t n_;
    std::unique_ptr<std::atomic<uint64_t>[]> words_;
};

}  // namespace nocstor::raid
