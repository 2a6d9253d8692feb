// Buffer and object pool get/put cost (through the per-owner cache and straight from the global
// free list) against malloc/free of the same sizes.
//   build-noc/bin/buffer_pool_bench
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "runtime/buffer_pool.h"
#include "runtime/noc.h"

namespace nocstor {
namespace {

std::unique_ptr<NocFabric> make_fabric() {
    NocConfig cfg;
    cfg.clusters = 2;
    cfg.ring_slots = 16;
    cfg.buffers.small_count = 1024;
    cfg.buffers.large_count = 64;
    std::string err;
    return NocFabric::create(cfg, &err);
}

// state.range(0) buffers are taken, then all returned, per iteration (1 = a get/put pair).
void BM_BufferCacheGetPut(benchmark::State& state) {
    auto fabric = make_fabric();
    BufferCache cache(fabric->buffers(0));
    const size_t n = size_t(state.range(0));
    std::vector<Buffer> held(n);
    for (auto _ : state) {
        for (size_t i = 0; i < n; ++i) held[i] = cache.get(BufClass::Small);
        for (size_t i = 0; i < n; ++i) cache.put(held[i]);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(int64_t(state.iterations() * n));
}
BENCHMARK(BM_BufferCacheGetPut)->Arg(1)->Arg(64)->MinTime(0.2);

void BM_BufferPoolGlobalGetPut(benchmark::State& state) {
    auto fabric = make_fabric();
    BufferPool& pool = fabric->buffers(0);
    const size_t n = size_t(state.range(0));
    std::vector<Buffer> held(n);
    for (auto _ : state) {
        for (size_t i = 0; i < n; ++i) held[i] = pool.get(BufClass::Small);
        for (size_t i = 0; i < n; ++i) pool.put(held[i]);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(int64_t(state.iterations() * n));
}
BENCHMARK(BM_BufferPoolGlobalGetPut)->Arg(1)->Arg(64)->MinTime(0.2);

void BM_MallocFree(benchmark::State& state) {
    const size_t size = size_t(state.range(0));
    const size_t n = size_t(state.range(1));
    std::vector<void*> held(n);
    for (auto _ : state) {
        for (size_t i = 0; i < n; ++i) held[i] = std::aligned_alloc(4096, size);
        for (size_t i = 0; i < n; ++i) std::free(held[i]);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(int64_t(state.iterations() * n));
}
BENCHMARK(BM_MallocFree)
    ->Args({8192, 1})
    ->Args({8192, 64})
    ->Args({132 * 1024, 1})
    ->Args({132 * 1024, 64})
    ->MinTime(0.2);

struct Request {
    uint64_t words[32];
};

void BM_ObjectCacheGetPut(benchmark::State& state) {
    ObjectPool<Request> pool(4096);
    ObjectCache<Request> cache(pool);
    for (auto _ : state) {
        Request* r = cache.get();
        benchmark::DoNotOptimize(r);
        cache.put(r);
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_ObjectCacheGetPut)->MinTime(0.2);

void BM_NewDeleteRequest(benchmark::State& state) {
    for (auto _ : state) {
        auto* r = new Request();
        benchmark::DoNotOptimize(r);
        delete r;
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_NewDeleteRequest)->MinTime(0.2);

}  // namespace
}  // namespace nocstor

BENCHMARK_MAIN();
