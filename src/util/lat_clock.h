// The clock of the bdev layer's latency statistics: the TSC (rdtsc, a few ns) where it is
// invariant (/proc/cpuinfo flags constant_tsc and nonstop_tsc), calibrated once against
// CLOCK_MONOTONIC; else CLOCK_MONOTONIC itself (now_ns, ~20+ ns through the vDSO and more under
// kvm-clock). Only differences of ticks read on one thread mean anything (an I/O completes on the
// thread that submitted it); to_ns() turns such a difference into nanoseconds. Not for timers or
// deadlines: those keep now_ns(), which follows CLOCK_MONOTONIC exactly.
#pragma once

#include "util/tick.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define NOCSTOR_HAVE_TSC 1
#else
#define NOCSTOR_HAVE_TSC 0
#endif

namespace nocstor {

class LatClock {
  public:
    // What calibrate() found: ticks are TSC cycles (tsc) or nanoseconds; ns = ticks * mult >> 32.
    struct Params {
        bool tsc = false;
        uint64_t mult = uint64_t(1) << 32;
        double tsc_hz = 0;
    };

    // The process's parameters, calibrated on the first call (~2 ms, thread-safe). Call it off
    // the data path once before the first I/O (the bdev layer does so when it creates a thread's
    // I/O pool) so that no I/O pays for it.
    static const Params& params() {
        static const Params p = calibrate();
        return p;
    }

    static uint64_t now() {
#if NOCSTOR_HAVE_TSC
        if (params().tsc) return __rdtsc();
#endif
        return now_ns();
    }

    // Nanoseconds between two ticks of one thread (0 if `to` is before `from`).
    static uint64_t to_ns(uint64_t from, uint64_t to) {
        if (to <= from) return 0;
        return uint64_t((unsigned __int128)(to - from) * params().mult >> 32);
    }

    // Reads /proc/cpuinfo and measures the TSC against CLOCK_MONOTONIC. With force_fallback (or
    // without an invariant TSC) the clock is CLOCK_MONOTONIC.
    static Params calibrate(bool force_fallback = false);
    // True if the first "flags" line of a /proc/cpuinfo text has constant_tsc and nonstop_tsc.
    static bool cpuinfo_says_invariant_tsc(const char* cpuinfo_text);
};

// One thread's cheap reading of CLOCK_MONOTONIC for its loop (the reactor's per-pass clock):
// the TSC extrapolated from an anchor, a real now_ns() read taken again every kReanchorNs, so it
// stays within a fraction of a microsecond of now_ns() (the TSC's calibration error over one
// interval) and never goes backwards. Values can be mixed with now_ns() (the reactor arms its
// timerfd with them). Without an invariant TSC it is now_ns(). Not thread-safe: one per thread.
class LoopClock {
  public:
    static constexpr uint64_t kReanchorNs = 10'000'000;

    LoopClock() { anchor(); }

    uint64_t now() {
#if NOCSTOR_HAVE_TSC
        const LatClock::Params& p = LatClock::params();
        if (p.tsc) {
            const uint64_t t = __rdtsc();
            if (t >= anchor_tsc_ && t - anchor_tsc_ < reanchor_ticks_) {
                const uint64_t v =
                    anchor_ns_ + uint64_t((unsigned __int128)(t - anchor_tsc_) * p.mult >> 32);
                return last_ = v > last_ ? v : last_;
            }
            anchor();
            return last_;
        }
#endif
        const uint64_t v = now_ns();
        return last_ = v > last_ ? v : last_;
    }

  private:
    void anchor() {
#if NOCSTOR_HAVE_TSC
        // Parameters first: the first call calibrates for milliseconds, which must not fall
        // between the two reads of the anchor.
        const LatClock::Params& p = LatClock::params();
        reanchor_ticks_ = p.tsc ? uint64_t(double(kReanchorNs) * p.tsc_hz / 1e9) : 0;
        // A preemption between the two reads would put the clock ahead until the next anchor:
        // take a pair read within 20 us of each other (a few tries), the TSC in their middle.
        const uint64_t tight = uint64_t(p.tsc_hz * 20e-6);
        uint64_t real = 0;
        for (int i = 0; i < 4; ++i) {
            const uint64_t t0 = __rdtsc();
            real = now_ns();
            const uint64_t t1 = __rdtsc();
            anchor_tsc_ = t0 + (t1 - t0) / 2;
            if (t1 - t0 < tight) break;
        }
#else
        const uint64_t real = now_ns();
#endif
        anchor_ns_ = real > last_ ? real : last_;
        last_ = anchor_ns_;
    }

    uint64_t anchor_ns_ = 0;
    uint64_t anchor_tsc_ = 0;
    uint64_t reanchor_ticks_ = 0;
    uint64_t last_ = 0;
};

}  // namespace nocstor
