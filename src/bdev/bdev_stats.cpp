// The two forms of a bdev's latency histogram (bdev_stats.h).
#include "bdev/bdev_stats.h"

#include <algorithm>
#include <cmath>

namespace nocstor {

LatencyHistogram& LatencyHistogram::operator=(const LatencyHistogram& o) {
    if (this == &o) return *this;
    reset();
    merge(o);
    return *this;
}

void LatencyHistogram::make_dense() {
    if (dense_) return;
    dense_ = std::make_unique<Histogram>();
    if (count_) dense_->merge_buckets(span_.data(), lo_, span_.size(), count_, sum_, min_, max_);
    span_ = std::vector<uint64_t>();  // frees it (= {} would keep the capacity)
    lo_ = 0;
    count_ = sum_ = max_ = 0;
    min_ = UINT64_MAX;
}

size_t LatencyHistogram::storage_bytes() const {
    return dense_ ? sizeof(Histogram) : span_.capacity() * sizeof(uint64_t);
}

void LatencyHistogram::merge(const LatencyHistogram& o) {
    if (o.count() == 0) return;
    if (dense_) {
        if (o.dense_)
            dense_->merge(*o.dense_);
        else
            dense_->merge_buckets(o.span_.data(), o.lo_, o.span_.size(), o.count_, o.sum_, o.min_,
                                  o.max_);
        return;
    }
    // Compact: the range of buckets of o that counted something.
    size_t first, last;  // inclusive
    if (o.dense_) {
        first = 0;
        while (o.dense_->bucket_count(first) == 0) ++first;  // count() > 0: one is non-zero
        last = Histogram::kBuckets - 1;
        while (o.dense_->bucket_count(last) == 0) --last;
    } else {
        first = o.lo_;
        last = o.lo_ + o.span_.size() - 1;
    }
    if (span_.empty()) {
        lo_ = first;
        span_.assign(last - first + 1, 0);
    } else if (first < lo_ || last >= lo_ + span_.size()) {
        const size_t lo = std::min(lo_, first);
        const size_t hi = std::max(lo_ + span_.size() - 1, last);
        std::vector<uint64_t> grown(hi - lo + 1, 0);
        std::copy(span_.begin(), span_.end(), grown.begin() + long(lo_ - lo));
        span_ = std::move(grown);
        lo_ = lo;
    }
    for (size_t i = first; i <= last; ++i) span_[i - lo_] += o.bucket_count(i);
    count_ += o.count();
    sum_ += o.sum();
    min_ = std::min(min_, o.min());
    max_ = std::max(max_, o.max());
}

void LatencyHistogram::reset() {
    if (dense_) dense_->reset();
    span_ = std::vector<uint64_t>();  // frees it (= {} would keep the capacity)
    lo_ = 0;
    count_ = sum_ = max_ = 0;
    min_ = UINT64_MAX;
}

uint64_t LatencyHistogram::percentile(double p) const {
    if (dense_) return dense_->percentile(p);
    // Histogram::percentile over the compact buckets (the same answers).
    if (count_ == 0) return 0;
    if (p <= 0) return min_;
    if (p >= 100) return max_;
    uint64_t rank = uint64_t(std::ceil(p / 100.0 * double(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < span_.size(); ++i) {
        seen += span_[i];
        if (seen >= rank) {
            const size_t b = lo_ + i;
            const uint64_t mid = Histogram::bucket_low(b) + (Histogram::bucket_width(b) - 1) / 2;
            return std::clamp(mid, min_, max_);
        }
    }
    return max_;
}

}  // namespace nocstor
