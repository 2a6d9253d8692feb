#include "util/histogram.h"

#include <algorithm>
#include <cmath>

namespace nocstor {

uint64_t Histogram::bucket_low(size_t index) {
    if (index < kSub) return index;
    size_t shift = index / kSub - 1;
    return (kSub + index % kSub) << shift;
}

uint64_t Histogram::bucket_width(size_t index) {
    if (index < kSub) return 1;
    return uint64_t(1) << (index / kSub - 1);
}

void Histogram::merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
}

void Histogram::merge_buckets(const uint64_t* counts, size_t first, size_t n, uint64_t count,
                              uint64_t sum, uint64_t min, uint64_t max) {
    for (size_t i = 0; i < n && first + i < kBuckets; ++i) counts_[first + i] += counts[i];
    count_ += count;
    sum_ += sum;
    min_ = std::min(min_, min);
    max_ = std::max(max_, max);
}

void Histogram::reset() {
    *this = Histogram{};
}

uint64_t Histogram::percentile(double p) const {
    if (count_ == 0) return 0;
    if (p <= 0) return min_;
    if (p >= 100) return max_;
    // The rank-th smallest value (1-based), nearest-rank definition.
    uint64_t rank = uint64_t(std::ceil(p / 100.0 * double(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
        seen += counts_[i];
        if (seen >= rank) {
            uint64_t mid = bucket_low(i) + (bucket_width(i) - 1) / 2;
            return std::clamp(mid, min_, max_);
        }
    }
    return max_;
}

}  // namespace nocstor
