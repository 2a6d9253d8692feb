// I/O statistics of one bdev on one channel (thread), summed on demand across channels.
#pragma once

#include "bdev/bdev_io.h"
#include "util/histogram.h"

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace nocstor {

// What bdev_reset_iostat / bdev_get_iostat reset_mode clear (SPDK's modes).
enum class StatsReset { None, All, MaxMin, Errors };

// The latency histogram of a bdev's statistics: a Histogram's buckets and percentiles in two
// forms. A channel's is dense (a whole ~30 KiB Histogram, allocated with the channel by
// make_dense(), off the data path, so that record() never allocates there). The others (a
// bdev's retired statistics, the sums bdev_get_iostat builds, copies) are compact: only the
// range of buckets that counted something, allocated by merge() on the control path. A bdev's
// registration allocates no histogram at all, and a channel that did a few I/Os (the superblock
// reads of an examine) leaves a few hundred bytes in the retired statistics, not 30 KiB.
class LatencyHistogram {
  public:
    LatencyHistogram() = default;
    LatencyHistogram(const LatencyHistogram& o) { *this = o; }
    LatencyHistogram& operator=(const LatencyHistogram& o);
    LatencyHistogram(LatencyHistogram&&) noexcept = default;
    LatencyHistogram& operator=(LatencyHistogram&&) noexcept = default;

    // Turns this histogram into a zeroed dense one (a channel's, when it is created).
    void make_dense();
    bool dense() const { return dense_ != nullptr; }
    // Bytes of bucket storage it holds (tests: registration allocates none).
    size_t storage_bytes() const;

    void record(uint64_t value) {
        if (!dense_) [[unlikely]]
            make_dense();  // not a channel's (those are dense from their creation)
        dense_->record(value);
    }
    void merge(const LatencyHistogram& o);
    // Empties it; a dense one stays dense (a channel's keeps its storage).
    void reset();

    uint64_t percentile(double p) const;
    uint64_t min() const { return dense_ ? dense_->min() : count_ ? min_ : 0; }
    uint64_t max() const { return dense_ ? dense_->max() : max_; }
    uint64_t count() const { return dense_ ? dense_->count() : count_; }
    uint64_t sum() const { return dense_ ? dense_->sum() : sum_; }
    double mean() const { return count() ? double(sum()) / double(count()) : 0.0; }
    uint64_t bucket_count(size_t index) const {
        if (dense_) return dense_->bucket_count(index);
        return index >= lo_ && index - lo_ < span_.size() ? span_[index - lo_] : 0;
    }

  private:
    std::unique_ptr<Histogram> dense_;
    // Compact form: buckets [lo_, lo_ + span_.size()) and the totals.
    std::vector<uint64_t> span_;
    size_t lo_ = 0;
    uint64_t count_ = 0, sum_ = 0, min_ = UINT64_MAX, max_ = 0;
};

struct BdevStats {
    struct PerType {
        uint64_t ops = 0;
        uint64_t bytes = 0;
        uint64_t errors = 0;
        uint64_t latency_sum_ns = 0;
        uint64_t latency_min_ns = UINT64_MAX;
        uint64_t latency_max_ns = 0;
    };
    std::array<PerType, size_t(IoType::Count)> by_type{};
    LatencyHistogram latency;  // all I/O types together, nanoseconds
    uint64_t nomem_retries = 0;

    void record(IoType t, uint64_t bytes, uint64_t latency_ns, bool ok) {
        auto& s = by_type[size_t(t)];
        ++s.ops;
        s.bytes += bytes;
        if (!ok) ++s.errors;
        s.latency_sum_ns += latency_ns;
        if (latency_ns < s.latency_min_ns) s.latency_min_ns = latency_ns;
        if (latency_ns > s.latency_max_ns) s.latency_max_ns = latency_ns;
        latency.record(latency_ns);
    }
    void merge(const BdevStats& o);
    void reset(StatsReset mode);
};

}  // namespace nocstor
