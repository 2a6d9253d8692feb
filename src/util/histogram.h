// Log-linear latency histogram (the HdrHistogram / SPDK histogram_data layout): values below
// 2^kBits are counted exactly; each range [2^e, 2^(e+1)) above is split linearly into 2^kBits
// sub-buckets of width 2^(e-kBits). A value is reported as the middle of its bucket, so the
// relative error is at most 2^-(kBits+1) (0.8% with kBits = 6; the bucket width itself is 1.6% of
// its lower bound). Fixed memory (~30 KiB), no allocation, no locks: one histogram per thread,
// merge() to aggregate.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace nocstor {

class Histogram {
  public:
    static constexpr int kBits = 6;
    static constexpr uint64_t kSub = uint64_t(1) << kBits;
    static constexpr size_t kBuckets = size_t(kSub) * (64 - kBits + 1);

    void record(uint64_t value) { record_n(value, 1); }
    void record_n(uint64_t value, uint64_t n) {
        counts_[bucket_of(value)] += n;
        count_ += n;
        sum_ += value * n;
        if (value < min_) min_ = value;
        if (value > max_) max_ = value;
    }
    void merge(const Histogram& other);
    // Adds buckets [first, first + n) given as counts, and the totals of the values behind them
    // (another histogram of this geometry kept in another form).
    void merge_buckets(const uint64_t* counts, size_t first, size_t n, uint64_t count, uint64_t sum,
                       uint64_t min, uint64_t max);
    void reset();

    // p in [0, 100]. 0 gives min(), 100 gives max(), an empty histogram gives 0.
    uint64_t percentile(double p) const;
    uint64_t min() const { return count_ ? min_ : 0; }
    uint64_t max() const { return max_; }
    uint64_t count() const { return count_; }
    uint64_t sum() const { return sum_; }
    double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }

    // Bucket geometry, public for tests and for exporters.
    static size_t bucket_of(uint64_t value) {
        if (value < kSub) return size_t(value);
        int e = 63 - __builtin_clzll(value);  // e >= kBits
        int shift = e - kBits;
        return size_t(shift + 1) * kSub + size_t((value >> shift) - kSub);
    }
    static uint64_t bucket_low(size_t index);
    static uint64_t bucket_width(size_t index);
    uint64_t bucket_count(size_t index) const { return counts_[index]; }

  private:
    std::array<uint64_t, kBuckets> counts_{};
    uint64_t count_ = 0;
    uint64_t sum_ = 0;
    uint64_t min_ = UINT64_MAX;
    uint64_t max_ = 0;
};

}  // namespace nocstor
