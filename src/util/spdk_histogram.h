// A latency histogram in SPDK's histogram_data layout, for bdev_get_histogram: SPDK's
// scripts/histogram.py and other tools read the buckets as they come.
//
// Granularity g: values below 2^g get one bucket each (range 0); range r >= 1 covers
// [2^(g+r-1), 2^(g+r)) in 2^g buckets of 2^(r-1) values. Only the ranges between those of
// min_value and max_value - 1 are kept; values outside count in the first or the last bucket.
// Buckets are stored range after range, ascending. Fixed memory once built; tally() is a few
// instructions with no allocation (the data path calls it).
#pragma once

#include <cstdint>
#include <vector>

namespace nocstor {

class SpdkHistogram {
  public:
    // granularity 1..24; min_value < max_value (both in the histogram's unit: nanoseconds).
    SpdkHistogram(uint32_t granularity, uint64_t min_value, uint64_t max_value);

    void tally(uint64_t value) {
        uint32_t range = range_of(value, granularity_);
        uint64_t index = index_of(value, range, granularity_);
        if (range < min_range_) {
            range = min_range_;
            index = 0;
        } else if (range > max_range_) {
            range = max_range_;
            index = (uint64_t{1} << granularity_) - 1;
        }
        ++buckets_[((range - min_range_) << granularity_) + index];
    }
    // False (nothing added) when the other histogram has another shape.
    bool merge(const SpdkHistogram& other);
    void clear();

    uint32_t granularity() const { return granularity_; }
    uint32_t min_range() const { return min_range_; }
    uint32_t max_range() const { return max_range_; }
    const std::vector<uint64_t>& buckets() const { return buckets_; }

    static uint32_t range_of(uint64_t value, uint32_t granularity) {
        const uint32_t clz = value ? uint32_t(__builtin_clzll(value)) : 64;
        const uint32_t lsb = 64 - granularity;
        return clz <= lsb ? lsb - clz : 0;
    }
    static uint64_t index_of(uint64_t value, uint32_t range, uint32_t granularity) {
        return (value >> (range ? range - 1 : 0)) & ((uint64_t{1} << granularity) - 1);
    }
    // One past the largest value of bucket (range, index).
    static uint64_t bucket_end(uint32_t range, uint64_t index, uint32_t granularity) {
        return range ? (uint64_t{1} << (range + granularity - 1)) + ((index + 1) << (range - 1))
                     : index + 1;
    }

  private:
    uint32_t granularity_;
    uint32_t min_range_;
    uint32_t max_range_;
    std::vector<uint64_t> buckets_;
};

}  // namespace nocstor
