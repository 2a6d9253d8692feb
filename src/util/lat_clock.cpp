#include "util/lat_clock.h"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

namespace nocstor {

namespace {

bool has_word(const char* line, size_t len, const char* word) {
    const size_t wl = strlen(word);
    for (size_t i = 0; i + wl <= len; ++i) {
        if (memcmp(line + i, word, wl) != 0) continue;
        const bool start = i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t';
        const bool end =
            i + wl == len || line[i + wl] == ' ' || line[i + wl] == '\t' || line[i + wl] == '\n';
        if (start && end) return true;
    }
    return false;
}

#if NOCSTOR_HAVE_TSC
// One (CLOCK_MONOTONIC, TSC) pair: the TSC read between two clock reads, from the tightest of a
// few tries (a preemption between the reads would skew it).
void sample(uint64_t* ns, uint64_t* tsc) {
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 8; ++i) {
        const uint64_t a = now_ns();
        const uint64_t t = __rdtsc();
        const uint64_t b = now_ns();
        if (b - a < best_gap) {
            best_gap = b - a;
            *ns = a + (b - a) / 2;
            *tsc = t;
        }
    }
}
#endif

}  // namespace

bool LatClock::cpuinfo_says_invariant_tsc(const char* text) {
    const char* p = text;
    while (p && *p) {
        const char* nl = strchr(p, '\n');
        const size_t len = nl ? size_t(nl - p) : strlen(p);
        if (len >= 5 && strncmp(p, "flags", 5) == 0) {
            return has_word(p, len, "constant_tsc") && has_word(p, len, "nonstop_tsc");
        }
        p = nl ? nl + 1 : nullptr;
    }
    return false;
}

LatClock::Params LatClock::calibrate(bool force_fallback) {
    Params p;
#if NOCSTOR_HAVE_TSC
    if (force_fallback) return p;
    std::string text;
    if (FILE* f = fopen("/proc/cpuinfo", "re")) {
        char buf[4096];
        // The first processor's block is enough (its flags line is within the first few KiB).
        while (text.size() < (64u << 10)) {
            const size_t n = fread(buf, 1, sizeof(buf), f);
            if (n == 0) break;
            text.append(buf, n);
            if (text.find("\nflags") != std::string::npos &&
                text.find('\n', text.find("\nflags") + 1) != std::string::npos)
                break;
        }
        fclose(f);
    }
    if (!cpuinfo_says_invariant_tsc(text.c_str())) return p;
    uint64_t ns0, tsc0, ns1, tsc1;
    sample(&ns0, &tsc0);
    const timespec wait{0, 2'000'000};  // 2 ms: a few 1e-5 of error at the ends
    nanosleep(&wait, nullptr);
    sample(&ns1, &tsc1);
    if (ns1 <= ns0 || tsc1 <= tsc0) return p;
    const double hz = double(tsc1 - tsc0) * 1e9 / double(ns1 - ns0);
    if (hz < 1e8 || hz > 1e11) return p;  // not a believable TSC: keep CLOCK_MONOTONIC
    p.tsc = true;
    p.tsc_hz = hz;
    p.mult = uint64_t(1e9 / hz * double(uint64_t(1) << 32) + 0.5);
#else
    (void)force_fallback;
#endif
    return p;
}

}  // namespace nocstor
