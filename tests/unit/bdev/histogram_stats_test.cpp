// The bdev layer's SPDK-layout histogram (bdev_enable_histogram) and statistics reset modes.
#include "bdev/bdev.h"
#include "util/spdk_histogram.h"

#include <gtest/gtest.h>

namespace nocstor {
namespace {

// SPDK's histogram_data.h, written out: the bucket a value lands in and the bucket's end.
TEST(SpdkHistogram, BucketLayoutMatchesSpdk) {
    const uint32_t g = 7;
    EXPECT_EQ(SpdkHistogram::range_of(0, g), 0u);
    EXPECT_EQ(SpdkHistogram::range_of(127, g), 0u);
    EXPECT_EQ(SpdkHistogram::range_of(128, g), 1u);
    EXPECT_EQ(SpdkHistogram::range_of(255, g), 1u);
    EXPECT_EQ(SpdkHistogram::range_of(256, g), 2u);
    EXPECT_EQ(SpdkHistogram::index_of(127, 0, g), 127u);
    EXPECT_EQ(SpdkHistogram::index_of(128, 1, g), 0u);
    EXPECT_EQ(SpdkHistogram::index_of(256 + 6, 2, g), 3u);  // buckets of 2 values in range 2
    // Every value lies below the end of its bucket and at or above the end of the previous one.
    for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 129ull, 1000ull, 123456789ull, 1ull << 40}) {
        const uint32_t r = SpdkHistogram::range_of(v, g);
        const uint64_t i = SpdkHistogram::index_of(v, r, g);
        EXPECT_LT(v, SpdkHistogram::bucket_end(r, i, g)) << v;
        const uint64_t start = i > 0   ? SpdkHistogram::bucket_end(r, i - 1, g)
                               : r > 0 ? SpdkHistogram::bucket_end(r - 1, (1u << g) - 1, g)
                                       : 0;
        EXPECT_GE(v, start) << v;
    }
}

TEST(SpdkHistogram, RangesAreClampedLikeSpdk) {
    // 1 us .. 120 s in ns, granularity 7: SPDK keeps ranges 3..30.
    SpdkHistogram h(7, 1000, 120'000'000'000ull);
    EXPECT_EQ(h.min_range(), SpdkHistogram::range_of(1000, 7));
    EXPECT_EQ(h.max_range(), SpdkHistogram::range_of(120'000'000'000ull - 1, 7));
    EXPECT_EQ(h.buckets().size(), size_t(h.max_range() - h.min_range() + 1) << 7);
    h.tally(5);           // below: first bucket
    h.tally(1ull << 50);  // above: last bucket
    h.tally(10'000);      // inside
    EXPECT_EQ(h.buckets().front(), 1u);
    EXPECT_EQ(h.buckets().back(), 1u);
    uint64_t total = 0;
    for (uint64_t b : h.buckets()) total += b;
    EXPECT_EQ(total, 3u);
    SpdkHistogram other(7, 1000, 120'000'000'000ull), odd(6, 1000, 120'000'000'000ull);
    other.tally(10'000);
    EXPECT_TRUE(h.merge(other));
    EXPECT_FALSE(h.merge(odd));
}

TEST(BdevStatsReset, Modes) {
    BdevStats s;
    s.record(IoType::Read, 4096, 1000, true);
    s.record(IoType::Read, 4096, 5000, false);
    s.reset(StatsReset::MaxMin);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].ops, 2u);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].latency_max_ns, 0u);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].latency_min_ns, UINT64_MAX);
    s.reset(StatsReset::Errors);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].errors, 0u);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].bytes, 8192u);
    s.reset(StatsReset::None);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].ops, 2u);
    s.reset(StatsReset::All);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].ops, 0u);
    EXPECT_EQ(s.latency.count(), 0u);
}

}  // namespace
}  // namespace nocstor
