// I/O statistics of one bdev on one channel (thread), summed on demand across channels.
#pragma once

#include "bdev/bdev_io.h"
#include "util/histogram.h"

#include <array>
#include <cstdint>

namespace nocstor {

// What bdev_reset_iostat / bdev_get_iostat reset_mode clear (SPDK's modes).
enum class StatsReset { None, All, MaxMin, Errors };

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
    Histogram latency;  // all I/O types together, nanoseconds
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
