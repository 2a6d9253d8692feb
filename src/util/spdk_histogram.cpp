#include "util/spdk_histogram.h"

#include <algorithm>

namespace nocstor {

SpdkHistogram::SpdkHistogram(uint32_t granularity, uint64_t min_value, uint64_t max_value)
    : granularity_(granularity),
      min_range_(range_of(min_value, granularity)),
      max_range_(range_of(max_value - 1, granularity)),
      buckets_(size_t(max_range_ - min_range_ + 1) << granularity, 0) {}

bool SpdkHistogram::merge(const SpdkHistogram& other) {
    if (other.granularity_ != granularity_ || other.min_range_ != min_range_ ||
        other.max_range_ != max_range_)
        return false;
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    return true;
}

void SpdkHistogram::clear() {
    std::fill(buckets_.begin(), buckets_.end(), 0);
}

}  // namespace nocstor
