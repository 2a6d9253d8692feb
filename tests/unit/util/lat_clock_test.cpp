// The latency clock: rdtsc calibrated against CLOCK_MONOTONIC where the TSC is invariant,
// CLOCK_MONOTONIC otherwise; both give nanoseconds that agree with now_ns().
#include "util/lat_clock.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>

namespace nocstor {
namespace {

void sleep_ms(long ms) {
    timespec t{0, ms * 1'000'000};
    nanosleep(&t, nullptr);
}

TEST(LatClock, CpuinfoFlagsDecideTheTsc) {
    EXPECT_TRUE(LatClock::cpuinfo_says_invariant_tsc(
        "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu tsc constant_tsc rep_good nonstop_tsc "
        "cpuid\nbogomips\t: 1\n"));
    EXPECT_TRUE(LatClock::cpuinfo_says_invariant_tsc("flags\t: nonstop_tsc constant_tsc"));
    EXPECT_FALSE(LatClock::cpuinfo_says_invariant_tsc("flags\t\t: fpu tsc constant_tsc cpuid\n"));
    EXPECT_FALSE(
        LatClock::cpuinfo_says_invariant_tsc("flags\t\t: fpu xconstant_tsc nonstop_tsc\n"));
    // Only the first flags line counts (every processor has the same).
    EXPECT_FALSE(
        LatClock::cpuinfo_says_invariant_tsc("flags\t: fpu\nflags\t: constant_tsc nonstop_tsc\n"));
    EXPECT_FALSE(LatClock::cpuinfo_says_invariant_tsc(""));
}

// Ticks over a sleep, turned into nanoseconds, match CLOCK_MONOTONIC over the same sleep.
TEST(LatClock, TicksAgreeWithClockMonotonic) {
    const LatClock::Params& p = LatClock::params();
    if (p.tsc) {
        EXPECT_GT(p.tsc_hz, 1e8);
        EXPECT_LT(p.tsc_hz, 1e11);
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
        const uint64_t n0 = now_ns();
        const uint64_t t0 = LatClock::now();
        sleep_ms(20);
        const uint64_t t1 = LatClock::now();
        const uint64_t n1 = now_ns();
        const uint64_t ticks_ns = LatClock::to_ns(t0, t1);
        const uint64_t mono_ns = n1 - n0;
        // The tick interval lies inside the CLOCK_MONOTONIC one, give or take 2% of calibration
        // error (a busy machine may preempt between the reads: retried).
        if (ticks_ns <= mono_ns + mono_ns / 50 && ticks_ns >= 20'000'000 - 20'000'000 / 50) return;
    }
    ADD_FAILURE() << "ticks never agreed with CLOCK_MONOTONIC (tsc " << p.tsc << ", " << p.tsc_hz
                  << " Hz)";
}

TEST(LatClock, DifferencesNeverGoNegative) {
    EXPECT_EQ(LatClock::to_ns(100, 50), 0u);
    EXPECT_EQ(LatClock::to_ns(100, 100), 0u);
    const uint64_t a = LatClock::now();
    const uint64_t b = LatClock::now();
    EXPECT_LT(LatClock::to_ns(a, b), 1'000'000'000u);
}

TEST(LatClock, FallbackIsClockMonotonic) {
    const LatClock::Params p = LatClock::calibrate(/*force_fallback=*/true);
    EXPECT_FALSE(p.tsc);
    EXPECT_EQ(p.mult, uint64_t(1) << 32);  // ticks are nanoseconds
}

// The reactor's loop clock follows CLOCK_MONOTONIC (it arms timerfds with its values): over a
// few re-anchoring intervals it never goes backwards and stays close to now_ns().
TEST(LoopClock, StaysMonotonicAndCloseToClockMonotonic) {
    LoopClock c;
    uint64_t prev = c.now();
    uint64_t worst_ahead = 0, worst_behind = 0;
    const uint64_t end = now_ns() + 3 * LoopClock::kReanchorNs;
    while (now_ns() < end) {
        const uint64_t before = now_ns();
        const uint64_t v = c.now();
        const uint64_t after = now_ns();
        ASSERT_GE(v, prev);
        prev = v;
        if (v > after) worst_ahead = std::max(worst_ahead, v - after);
        if (v < before) worst_behind = std::max(worst_behind, before - v);
    }
    // Calibration error over one 10 ms interval is a few microseconds at most (a preemption
    // between the reads of this loop only makes the clock look closer).
    EXPECT_LT(worst_ahead, 100'000u) << "behind " << worst_behind;
    EXPECT_LT(worst_behind, 100'000u) << "ahead " << worst_ahead;
}

}  // namespace
}  // namespace nocstor
