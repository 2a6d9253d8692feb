// Messages between lightweight threads on two cores, against a mutex + condition-variable queue
// measured in the same run. Run: build/bin/runtime_bench --benchmark_min_time=2
#include "runtime/reactor.h"
#include "runtime/thread.h"

#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

using namespace nocstor;

namespace {

int core_count() {
    return int(std::thread::hardware_concurrency());
}

void pin_self(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core % core_count(), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// --- nocstor: producer thread on core 0 -> reactor on core 1 ---
void BM_MessageThroughput_Nocstor(benchmark::State& state) {
    pin_self(0);
    ReactorOptions o;
    o.idle_sleep_us = 1000;
    Reactor r(0, 1 % core_count(), 1, o);
    r.add_thread(std::make_unique<Thread>("consumer", 1, 0));
    Thread* t = r.main_thread();
    r.start();
    std::atomic<uint64_t> received{0};
    uint64_t sent = 0;
    for (auto _ : state) {
        for (int i = 0; i < 1000; ++i) {
            t->send([&received] {
                received.store(received.load(std::memory_order_relaxed) + 1,
                               std::memory_order_relaxed);
            });
        }
        sent += 1000;
    }
    while (received.load(std::memory_order_relaxed) < sent) std::this_thread::yield();
    state.SetItemsProcessed(int64_t(sent));
    r.stop();
    r.join();
}
BENCHMARK(BM_MessageThroughput_Nocstor)->UseRealTime();

// --- baseline: std::mutex + std::condition_variable queue of std::function ---
struct MutexQueue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> q;
    bool stop = false;
    void push(std::function<void()> f) {
        {
            std::lock_guard lock(mu);
            q.push_back(std::move(f));
        }
        cv.notify_one();
    }
    void run(int core = 1) {
        pin_self(core);
        std::unique_lock lock(mu);
        for (;;) {
            cv.wait(lock, [&] { return stop || !q.empty(); });
            if (q.empty() && stop) return;
            auto f = std::move(q.front());
            q.pop_front();
            lock.unlock();
            f();
            lock.lock();
        }
    }
};

void BM_MessageThroughput_MutexCondvar(benchmark::State& state) {
    pin_self(0);
    MutexQueue mq;
    std::thread consumer([&] { mq.run(); });
    std::atomic<uint64_t> received{0};
    uint64_t sent = 0;
    for (auto _ : state) {
        for (int i = 0; i < 1000; ++i)
            mq.push([&received] { received.fetch_add(1, std::memory_order_relaxed); });
        sent += 1000;
    }
    while (received.load() < sent) std::this_thread::yield();
    {
        std::lock_guard lock(mq.mu);
        mq.stop = true;
    }
    mq.cv.notify_one();
    consumer.join();
    state.SetItemsProcessed(int64_t(sent));
}
BENCHMARK(BM_MessageThroughput_MutexCondvar)->UseRealTime();

// --- round trip between two threads on two cores ---
// A chain of kRounds ping-pongs runs between the two threads; the benchmark thread only starts it
// and sleeps (futex) until it ends, so it does not steal a core from the spinning reactors.
constexpr int kRounds = 1000;

struct PingPongState {
    Thread* a;
    Thread* b;
    int left = 0;
    std::atomic<bool> done{false};
};

void ping(PingPongState* s);
void pong(PingPongState* s) {
    s->a->send([s] { ping(s); });
}
void ping(PingPongState* s) {
    if (s->left-- == 0) {
        s->done.store(true, std::memory_order_release);
        s->done.notify_one();
        return;
    }
    s->b->send([s] { pong(s); });
}

void BM_PingPong_Nocstor(benchmark::State& state) {
    ReactorOptions o;
    o.idle_sleep_us = 100000;  // stay awake: measures the queue, not the wake-up
    Reactor a(0, 0, 1, o), b(1, 1 % core_count(), 1, o);
    a.add_thread(std::make_unique<Thread>("a", 1, 0));
    b.add_thread(std::make_unique<Thread>("b", 1, 1));
    PingPongState s;
    s.a = a.main_thread();
    s.b = b.main_thread();
    a.start();
    b.start();
    for (auto _ : state) {
        s.left = kRounds;
        s.done.store(false);
        s.a->send([p = &s] { ping(p); });
        s.done.wait(false, std::memory_order_acquire);
    }
    state.counters["round_trip_ns"] =
        benchmark::Counter(double(state.iterations()) * kRounds,
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    a.stop();
    b.stop();
    a.join();
    b.join();
}
BENCHMARK(BM_PingPong_Nocstor)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_PingPong_MutexCondvar(benchmark::State& state) {
    MutexQueue qa, qb;
    std::thread ta([&] { qa.run(0); });
    std::thread tb([&] { qb.run(1); });
    std::atomic<bool> done{false};
    int left = 0;
    std::function<void()> ping_fn;
    ping_fn = [&] {
        if (left-- == 0) {
            done.store(true, std::memory_order_release);
            done.notify_one();
            return;
        }
        qb.push([&] { qa.push(ping_fn); });
    };
    for (auto _ : state) {
        left = kRounds;
        done.store(false);
        qa.push(ping_fn);
        done.wait(false, std::memory_order_acquire);
    }
    state.counters["round_trip_ns"] =
        benchmark::Counter(double(state.iterations()) * kRounds,
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    for (auto* q : {&qa, &qb}) {
        {
            std::lock_guard lock(q->mu);
            q->stop = true;
        }
        q->cv.notify_one();
    }
    ta.join();
    tb.join();
}
BENCHMARK(BM_PingPong_MutexCondvar)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
