// NoC descriptor throughput between two threads pinned to two cores, against a bounded
// std::mutex + std::condition_variable queue carrying the same 64-byte descriptors.
//   build-noc/bin/noc_bench
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "runtime/noc.h"
#include "runtime/topology.h"

namespace nocstor {
namespace {

// The first two allowed cpus (producer, consumer); the same one twice on a 1-cpu machine.
std::pair<int, int> two_cpus() {
    auto ids = Topology::detect().cpu_ids();
    return {ids[0], ids.size() > 1 ? ids[1] : ids[0]};
}

void pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

void unpin() {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : Topology::detect().cpu_ids()) CPU_SET(c, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// kYieldNote: the NoC side calls sched_yield() when it makes no progress (ring empty / full).
// On dedicated cores that returns at once (nothing else to run), so it costs ~100 ns only when
// idle; on an oversubscribed machine it keeps a descheduled peer from turning every spin into a
// lost time slice, so the benchmark measures the ring rather than the scheduler.

NocDescriptor desc(uint64_t i) {
    NocDescriptor d{};
    d.opcode = kNocOpRead;
    d.user_ctx = i;
    d.slba = i;
    d.nlb = 8;
    return d;
}

// Each iteration sends state.range(0) descriptors (in one send_batch call where possible).
void BM_NocThroughput(benchmark::State& state) {
    const size_t batch = size_t(state.range(0));
    NocConfig cfg;
    cfg.clusters = 2;
    cfg.ring_slots = 1024;
    cfg.buffers.small_count = 16;
    cfg.buffers.large_count = 2;
    std::string err;
    auto fabric = NocFabric::create(cfg, &err);
    if (!fabric) {
        state.SkipWithError(err.c_str());
        return;
    }
    auto [cpu_tx, cpu_rx] = two_cpus();
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> received{0};
    std::thread consumer([&, cpu_rx = cpu_rx] {
        pin_to(cpu_rx);
        NocEndpoint& ep = fabric->endpoint(1);
        uint64_t n = 0, sum = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            size_t got = ep.poll([&](int, const NocDescriptor& d) { sum += d.user_ctx; }, 64);
            if (got) {
                received.store(n += got, std::memory_order_relaxed);
            } else {
                std::this_thread::yield();  // see kYieldNote
            }
        }
        benchmark::DoNotOptimize(sum);
    });
    pin_to(cpu_tx);
    NocEndpoint& ep = fabric->endpoint(0);
    std::vector<NocDescriptor> descs(batch);
    for (size_t i = 0; i < batch; ++i) descs[i] = desc(i);
    uint64_t sent = 0;
    for (auto _ : state) {
        size_t done = 0;
        while (done < batch) {
            size_t k = ep.send_batch(1, descs.data() + done, batch - done);
            if (k == 0) std::this_thread::yield();  // see kYieldNote
            done += k;
        }
        sent += batch;
    }
    while (received.load() < sent) {
    }
    stop = true;
    consumer.join();
    unpin();
    state.SetItemsProcessed(int64_t(sent));
    auto st = ep.stats();
    state.counters["ring_full"] = double(st.ring_full);
    state.counters["doorbells"] = double(st.doorbells_rung);
}
BENCHMARK(BM_NocThroughput)->Arg(1)->Arg(8)->Arg(32)->MinTime(0.5)->UseRealTime();

// The classic blocking queue: bounded to the same 1024 descriptors, producer waits when full.
struct MutexQueue {
    std::mutex mu;
    std::condition_variable not_empty, not_full;
    std::deque<NocDescriptor> q;
    size_t cap = 1024;
};

void BM_MutexCondvarThroughput(benchmark::State& state) {
    const size_t batch = size_t(state.range(0));
    MutexQueue mq;
    auto [cpu_tx, cpu_rx] = two_cpus();
    std::atomic<bool> stop{false};
    uint64_t received = 0;
    std::thread consumer([&, cpu_rx = cpu_rx] {
        pin_to(cpu_rx);
        uint64_t sum = 0;
        NocDescriptor local[64];
        for (;;) {
            size_t n = 0;
            {
                std::unique_lock lock(mq.mu);
                mq.not_empty.wait(lock, [&] { return !mq.q.empty() || stop.load(); });
                if (mq.q.empty() && stop.load()) break;
                while (n < 64 && !mq.q.empty()) {
                    local[n++] = mq.q.front();
                    mq.q.pop_front();
                }
                received += n;
            }
            mq.not_full.notify_one();
            for (size_t i = 0; i < n; ++i) sum += local[i].user_ctx;
        }
        benchmark::DoNotOptimize(sum);
    });
    pin_to(cpu_tx);
    std::vector<NocDescriptor> descs(batch);
    for (size_t i = 0; i < batch; ++i) descs[i] = desc(i);
    uint64_t sent = 0;
    for (auto _ : state) {
        size_t done = 0;
        while (done < batch) {
            {
                std::unique_lock lock(mq.mu);
                mq.not_full.wait(lock, [&] { return mq.q.size() < mq.cap; });
                while (done < batch && mq.q.size() < mq.cap) mq.q.push_back(descs[done++]);
            }
            mq.not_empty.notify_one();
        }
        sent += batch;
    }
    {
        std::lock_guard lock(mq.mu);
        stop = true;
    }
    mq.not_empty.notify_one();
    consumer.join();
    unpin();
    state.SetItemsProcessed(int64_t(sent));
    benchmark::DoNotOptimize(received);
}
BENCHMARK(BM_MutexCondvarThroughput)->Arg(1)->Arg(8)->Arg(32)->MinTime(0.5)->UseRealTime();

}  // namespace
}  // namespace nocstor

BENCHMARK_MAIN();
