// Throughput of the RAID parity code (src/modules/raid/raid_parity.*, ISA-L underneath) against a
// memcpy of the same bytes, so that the ratios are measured in one run on one noisy machine.
//   build-bench/bin/raid_parity_bench --benchmark_min_time=0.5
// Arguments: k data strips, strip bytes. Bytes processed (GB/s in the output):
//   generate, check: the k data strips (k * strip);  update: the changed strip (one
//   read-modify-write of one strip = update() with the old data, then with the new);
//   reconstruct: the strips read (k - missing data strips + as many parities = k * strip);
//   memcpy: the k * strip bytes copied.
// cold:1 cycles through 256 MiB of strips (the data comes from memory); cold:0 reuses one set
// (in the caches); cold:2 (k = 4 only) cycles through 8 sets, as many stripes as a writer of
// full stripes keeps in flight at QD8 (its buffers: in the L2/L3 caches).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "modules/raid/raid_parity.h"

namespace nocstor::raid {
namespace {

// Sets of k data strips, P, Q and a spare strip (the new data of an update), 64-byte aligned.
// Hot (cold = 0): one set, used over and over, in the caches. Cold: sets over kColdBytes, one per
// iteration in turn, so that the strips come from memory as a member's I/O buffers would.
// Warm (cold = 2): kWarmSets sets in turn.
constexpr size_t kColdBytes = size_t(256) << 20;
constexpr size_t kWarmSets = 8;

struct Buffers {
    Buffers(uint32_t k, size_t len, int64_t cold) : k(k), len(len) {
        const size_t set_bytes = len * (k + 3);
        n_sets = cold == 2 ? kWarmSets : cold ? std::max<size_t>(2, kColdBytes / set_bytes) : 1;
        mem = static_cast<uint8_t*>(std::aligned_alloc(64, set_bytes * n_sets));
        uint64_t x = 0x9e3779b97f4a7c15ull;
        auto* w = reinterpret_cast<uint64_t*>(mem);
        for (size_t i = 0; i < set_bytes * n_sets / 8; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w[i] = x;
        }
        ptrs.resize(n_sets * k);
        for (size_t s = 0; s < n_sets; ++s)
            for (uint32_t d = 0; d < k; ++d) ptrs[s * k + d] = set(s) + d * len;
    }
    ~Buffers() { std::free(mem); }
    uint8_t* set(size_t s) const { return mem + s * len * (k + 3); }
    uint8_t* const* data(size_t s) const { return ptrs.data() + s * k; }
    uint8_t* P(size_t s) const { return set(s) + k * len; }
    uint8_t* Q(size_t s) const { return set(s) + (k + 1) * len; }
    uint8_t* spare(size_t s) const { return set(s) + (k + 2) * len; }
    size_t next() {
        cur = cur + 1 == n_sets ? 0 : cur + 1;
        return cur;
    }
    uint32_t k;
    size_t len, n_sets = 1, cur = 0;
    uint8_t* mem;
    std::vector<uint8_t*> ptrs;
};

uint32_t K(const benchmark::State& s) {
    return uint32_t(s.range(0));
}
size_t Len(const benchmark::State& s) {
    return size_t(s.range(1));
}
int64_t Cold(const benchmark::State& s) {
    return s.range(2);
}

// Baseline: copy k strips (hot: to a buffer of their own; cold: into another set's).
void BM_Memcpy(benchmark::State& state) {
    Buffers b(K(state), Len(state), Cold(state));
    const size_t n = K(state) * b.len;
    std::vector<uint8_t> hot_dst(Cold(state) ? 0 : n);
    for (auto _ : state) {
        const size_t s = b.next();
        uint8_t* dst = Cold(state) ? b.set((s + b.n_sets / 2) % b.n_sets) : hot_dst.data();
        std::memcpy(dst, b.set(s), n);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations() * n));
}

void BM_Raid5Generate(benchmark::State& state) {
    Parity par(K(state), 1);
    Buffers b(K(state), Len(state), Cold(state));
    for (auto _ : state) {
        const size_t s = b.next();
        par.generate(b.len, b.data(s), b.P(s), nullptr);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations() * K(state) * b.len));
}

void BM_Raid6Generate(benchmark::State& state) {
    Parity par(K(state), 2);
    Buffers b(K(state), Len(state), Cold(state));
    for (auto _ : state) {
        const size_t s = b.next();
        par.generate(b.len, b.data(s), b.P(s), b.Q(s));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations() * K(state) * b.len));
}

// One read-modify-write of data strip 1: take the old data out of P (and Q), put the new in.
void BM_Raid5Update(benchmark::State& state) {
    Parity par(K(state), 1);
    Buffers b(K(state), Len(state), Cold(state));
    for (auto _ : state) {
        const size_t s = b.next();
        par.update(b.len, 1, b.data(s)[1], b.P(s), nullptr);
        par.update(b.len, 1, b.spare(s), b.P(s), nullptr);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations() * b.len));
}

void BM_Raid6Update(benchmark::State& state) {
    Parity par(K(state), 2);
    Buffers b(K(state), Len(state), Cold(state));
    for (auto _ : state) {
        const size_t s = b.next();
        par.update(b.len, 1, b.data(s)[1], b.P(s), b.Q(s));
        par.update(b.len, 1, b.spare(s), b.P(s), b.Q(s));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations() * b.len));
}

// Reconstruction of the data strips in `missing` from the rest and the parities given (P, Q
// null: that parity is missing too).
void Reconstruct(benchmark::State& state, uint32_t p, std::vector<uint32_t> missing, bool use_p,
                 bool use_q) {
    Parity par(K(state), p);
    Buffers b(K(state), Len(state), Cold(state));
    for (size_t s = 0; s < b.n_sets; ++s)
        par.generate(b.len, b.data(s), b.P(s), p == 2 ? b.Q(s) : nullptr);
    const auto n = uint32_t(missing.size());
    for (auto _ : state) {
        const size_t s = b.next();
        if (!par.reconstruct(b.len, b.data(s), missing.data(), n, use_p ? b.P(s) : nullptr,
                             use_q ? b.Q(s) : nullptr))
            state.SkipWithError("reconstruct failed");
        benchmark::ClobberMemory();
    }
    // k - n data strips and n parities read.
    state.SetBytesProcessed(int64_t(state.iterations() * K(state) * b.len));
}

// Degraded read of data strip 1: the other k-1 and P.
void BM_Raid5Reconstruct1(benchmark::State& state) {
    Reconstruct(state, 1, {1}, true, false);
}
// raid6, one data strip missing, P present (what a raid6 with one member gone uses).
void BM_Raid6Reconstruct1(benchmark::State& state) {
    Reconstruct(state, 2, {1}, true, true);
}
// raid6, one data strip and P missing: solved from Q.
void BM_Raid6Reconstruct1FromQ(benchmark::State& state) {
    Reconstruct(state, 2, {1}, false, true);
}
// raid6, two data strips missing: k-2 data strips, P and Q.
void BM_Raid6Reconstruct2(benchmark::State& state) {
    Reconstruct(state, 2, {0, 2}, true, true);
}

// Scrub: P and Q checked against the data.
void BM_Raid6Check(benchmark::State& state) {
    Parity par(K(state), 2);
    Buffers b(K(state), Len(state), Cold(state));
    for (size_t s = 0; s < b.n_sets; ++s) par.generate(b.len, b.data(s), b.P(s), b.Q(s));
    for (auto _ : state) {
        const size_t s = b.next();
        if (!par.check(b.len, b.data(s), b.P(s), b.Q(s))) state.SkipWithError("check failed");
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations() * K(state) * b.len));
}

// k = 3, 4 and 6 data strips of 64 KiB (the sizes; k = 4: raid6 4+2, the issue's
// full-stripe write target), in cache and from memory; 4 KiB for the paths a 4 KiB I/O takes
// (one-block read-modify-write, degraded 4 KiB read), where per-call setup shows.
void Strips(benchmark::internal::Benchmark* b) {
    b->ArgNames({"k", "strip", "cold"});
    for (int64_t cold : {0, 1})
        for (int64_t k : {3, 4, 6}) b->Args({k, 64 << 10, cold});
    b->Args({4, 64 << 10, 2});
}
void StripsAnd4K(benchmark::internal::Benchmark* b) {
    Strips(b);
    for (int64_t k : {3, 6}) b->Args({k, 4 << 10, 0});
}

BENCHMARK(BM_Memcpy)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid5Generate)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid6Generate)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid5Update)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid6Update)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid5Reconstruct1)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid6Reconstruct1)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid6Reconstruct1FromQ)->Apply(Strips);
BENCHMARK(BM_Raid6Reconstruct2)->Apply(StripsAnd4K);
BENCHMARK(BM_Raid6Check)->Apply(Strips);

}  // namespace
}  // namespace nocstor::raid

BENCHMARK_MAIN();
