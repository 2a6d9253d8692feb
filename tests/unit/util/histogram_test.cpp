#include "util/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

namespace nocstor {
namespace {

// Percentile of a sorted sample with the nearest-rank definition used by Histogram.
uint64_t exact_percentile(const std::vector<uint64_t>& sorted, double p) {
    size_t rank = size_t(std::ceil(p / 100.0 * double(sorted.size())));
    rank = std::clamp<size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

void expect_close(uint64_t got, uint64_t want, double rel) {
    double err = std::abs(double(got) - double(want));
    EXPECT_LE(err, rel * double(want) + 1.0) << "got " << got << " want " << want;
}

TEST(Histogram, BucketGeometryIsContiguousAndBounded) {
    for (size_t i = 1; i < Histogram::kBuckets; ++i) {
        ASSERT_EQ(Histogram::bucket_low(i),
                  Histogram::bucket_low(i - 1) + Histogram::bucket_width(i - 1))
            << i;
    }
    for (uint64_t v : std::initializer_list<uint64_t>{0, 1, 63, 64, 65, 127, 128, 1000, 123456789,
                                                      (1ull << 40) + 12345, UINT64_MAX}) {
        size_t b = Histogram::bucket_of(v);
        ASSERT_LT(b, Histogram::kBuckets);
        EXPECT_GE(v, Histogram::bucket_low(b));
        EXPECT_LE(v - Histogram::bucket_low(b), Histogram::bucket_width(b) - 1);
        // Width relative to the lower bound: at most 1/64 (1.6%).
        EXPECT_LE(double(Histogram::bucket_width(b)),
                  double(Histogram::bucket_low(b)) / 64.0 + 1.0);
    }
}

TEST(Histogram, EmptyAndBasicStats) {
    Histogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.percentile(50), 0u);
    EXPECT_EQ(h.min(), 0u);
    for (uint64_t v = 1; v <= 100; ++v) h.record(v);
    EXPECT_EQ(h.count(), 100u);
    EXPECT_EQ(h.sum(), 5050u);
    EXPECT_EQ(h.min(), 1u);
    EXPECT_EQ(h.max(), 100u);
    EXPECT_DOUBLE_EQ(h.mean(), 50.5);
    EXPECT_EQ(h.percentile(0), 1u);
    EXPECT_EQ(h.percentile(100), 100u);
    EXPECT_EQ(h.percentile(50), 50u);  // exact below 64, within 1 bucket above
    h.reset();
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.max(), 0u);
}

TEST(Histogram, UniformDistributionPercentiles) {
    auto h = std::make_unique<Histogram>();
    for (uint64_t v = 1; v <= 1'000'000; ++v) h->record(v);
    for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
        expect_close(h->percentile(p), uint64_t(p * 10'000), 0.016);
    }
}

TEST(Histogram, ExponentialDistributionMatchesExactPercentiles) {
    std::mt19937_64 rng(42);
    std::exponential_distribution<double> dist(1.0 / 50'000.0);  // mean 50 us, in ns
    auto h = std::make_unique<Histogram>();
    std::vector<uint64_t> samples(200'000);
    for (auto& s : samples) {
        s = uint64_t(dist(rng)) + 1;
        h->record(s);
    }
    std::sort(samples.begin(), samples.end());
    for (double p : {5.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9}) {
        expect_close(h->percentile(p), exact_percentile(samples, p), 0.016);
    }
    EXPECT_EQ(h->max(), samples.back());
    EXPECT_EQ(h->min(), samples.front());
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
    auto a = std::make_unique<Histogram>();
    auto b = std::make_unique<Histogram>();
    auto all = std::make_unique<Histogram>();
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> dist(10.0, 1.5);
    for (int i = 0; i < 50'000; ++i) {
        uint64_t v = uint64_t(dist(rng));
        (i % 3 ? a : b)->record(v);
        all->record(v);
    }
    a->merge(*b);
    EXPECT_EQ(a->count(), all->count());
    EXPECT_EQ(a->sum(), all->sum());
    EXPECT_EQ(a->min(), all->min());
    EXPECT_EQ(a->max(), all->max());
    for (double p : {1.0, 50.0, 99.0, 99.99}) EXPECT_EQ(a->percentile(p), all->percentile(p));
}

}  // namespace
}  // namespace nocstor
