// Reactor, lightweight thread, message and poller behaviour with real OS threads.
#include "runtime/reactor.h"
#include "runtime/mpsc_queue.h"
#include "runtime/thread.h"
#include "util/tick.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace nocstor;
using namespace std::chrono_literals;

namespace {

ReactorOptions test_opts(uint64_t idle_us = 200) {
    ReactorOptions o;
    o.pin = false;
    o.idle_sleep_us = idle_us;
    return o;
}

template <typename Pred>
bool wait_for(Pred p, std::chrono::milliseconds limit = 5000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!p()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(100us);
    }
    return true;
}

}  // namespace

TEST(MpscQueue, ConcurrentProducersLoseAndDuplicateNothing) {
    constexpr int kProducers = 3, kPerProducer = 200000;
    MpscQueue<uint64_t> q(1024);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&q, p] {
            for (uint64_t i = 0; i < kPerProducer; ++i) {
                uint64_t v = (uint64_t(p) << 32) | i;
                while (!q.try_push(std::move(v))) std::this_thread::yield();
            }
        });
    }
    std::vector<uint64_t> next(kProducers, 0);
    uint64_t got = 0, v;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (got < uint64_t(kProducers) * kPerProducer &&
           std::chrono::steady_clock::now() < deadline) {
        if (!q.try_pop(v)) continue;
        int p = int(v >> 32);
        ASSERT_LT(p, kProducers);
        // Per-producer order: each producer's values arrive exactly in sequence.
        ASSERT_EQ(v & 0xffffffffu, next[p]) << "producer " << p;
        ++next[p];
        ++got;
    }
    for (auto& t : producers) t.join();
    EXPECT_EQ(got, uint64_t(kProducers) * kPerProducer);
    EXPECT_FALSE(q.try_pop(v));
}

TEST(MpscQueue, FullQueueRejectsPush) {
    MpscQueue<int> q(4);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(q.try_push(int(i)));
    EXPECT_FALSE(q.try_push(99));
    int v;
    EXPECT_TRUE(q.try_pop(v));
    EXPECT_EQ(v, 0);
    EXPECT_TRUE(q.try_push(4));
}

TEST(Reactor, MessagesFromOneSenderRunInOrder) {
    Reactor r(0, -1, 1, test_opts());
    r.add_thread(std::make_unique<Thread>("t", 1, 0));
    Thread* t = r.main_thread();
    r.start();
    constexpr int kSenders = 2, kEach = 50000;
    std::vector<int> last(kSenders, -1);
    std::atomic<int> errors{0}, done{0};
    std::vector<std::thread> senders;
    for (int s = 0; s < kSenders; ++s) {
        senders.emplace_back([&, s] {
            for (int i = 0; i < kEach; ++i) {
                t->send([&, s, i] {
                    if (last[s] != i - 1) errors.fetch_add(1);
                    last[s] = i;
                    done.fetch_add(1);
                });
            }
        });
    }
    for (auto& th : senders) th.join();
    ASSERT_TRUE(wait_for([&] { return done.load() == kSenders * kEach; }));
    EXPECT_EQ(errors.load(), 0);
    r.stop();
    r.join();
}

TEST(Reactor, ActiveAndTimedPollersRunAtTheirPeriod) {
    Reactor r(0, -1, 1, test_opts(1000000));  // never sleep: measure scheduling alone
    r.add_thread(std::make_unique<Thread>("t", 1, 0));
    Thread* t = r.main_thread();
    std::atomic<uint64_t> active_runs{0}, timed_runs{0};
    std::atomic<uint64_t> first_ns{0}, last_ns{0};
    t->send([&] {
        t->register_poller("active", [&] {
            active_runs.fetch_add(1, std::memory_order_relaxed);
            return 0;
        });
        t->register_poller(
            "timed",
            [&] {
                uint64_t now = now_ns();
                if (timed_runs.fetch_add(1) == 0) first_ns = now;
                last_ns = now;
                return 1;
            },
            10000 /* 10 ms */);
    });
    r.start();
    std::this_thread::sleep_for(205ms);
    r.stop();
    r.join();
    EXPECT_GT(active_runs.load(), 1000u);
    // 205 ms at a 10 ms period: ~21 runs; allow scheduling noise on a busy 2-core machine.
    EXPECT_GE(timed_runs.load(), 15u);
    EXPECT_LE(timed_runs.load(), 22u);
    double mean_period_ms = double(last_ns - first_ns) / 1e6 / double(timed_runs.load() - 1);
    EXPECT_NEAR(mean_period_ms, 10.0, 2.0);
}

TEST(Reactor, PausedPollerDoesNotRunAndUnregisterFromInsideIsSafe) {
    Reactor r(0, -1, 1, test_opts());
    r.add_thread(std::make_unique<Thread>("t", 1, 0));
    Thread* t = r.main_thread();
    std::atomic<int> paused_runs{0}, self_runs{0};
    std::atomic<bool> ready{false};
    t->send([&] {
        Poller* p = t->register_poller("paused", [&] {
            paused_runs++;
            return 0;
        });
        t->pause_poller(p);
        Poller* self = nullptr;
        self = t->register_poller("self", [&, pself = &self] {
            self_runs++;
            t->unregister_poller(*pself);
            return 1;
        });
        ready = true;
    });
    r.start();
    ASSERT_TRUE(wait_for([&] { return ready.load(); }));
    std::this_thread::sleep_for(20ms);
    r.stop();
    r.join();
    EXPECT_EQ(paused_runs.load(), 0);
    EXPECT_EQ(self_runs.load(), 1);
}

TEST(Reactor, MessageToSleepingReactorRunsWithinOneMillisecond) {
    Reactor r(0, -1, 1, test_opts(100));
    r.add_thread(std::make_unique<Thread>("t", 1, 0));
    Thread* t = r.main_thread();
    r.start();
    int over = 0;
    std::vector<uint64_t> lat;
    for (int i = 0; i < 50; ++i) {
        // Let it fall asleep.
        ASSERT_TRUE(wait_for([&] { return r.stats().sleeps > uint64_t(i); }));
        std::this_thread::sleep_for(2ms);
        std::atomic<uint64_t> ran_at{0};
        uint64_t sent_at = now_ns();
        t->send([&] { ran_at = now_ns(); });
        ASSERT_TRUE(wait_for([&] { return ran_at.load() != 0; }));
        lat.push_back(ran_at - sent_at);
        if (ran_at - sent_at > 1'000'000) ++over;
    }
    r.stop();
    r.join();
    std::sort(lat.begin(), lat.end());
    // The median must be far below 1 ms; allow a few outliers from a noisy shared machine.
    EXPECT_LT(lat[lat.size() / 2], 1'000'000u);
    EXPECT_LE(over, 3) << "max " << lat.back() << " ns";
    EXPECT_GT(r.stats().wakeups_rung, 0u);
}

TEST(Reactor, IdleReactorSleepsInsteadOfSpinning) {
    Reactor r(0, -1, 1, test_opts(200));
    r.add_thread(std::make_unique<Thread>("t", 1, 0));
    r.main_thread()->send([t = r.main_thread()] {
        t->register_poller(
            "timed", [] { return 0; }, 50000);
    });
    timespec c0, c1;
    r.start();
    std::this_thread::sleep_for(20ms);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    std::this_thread::sleep_for(300ms);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    r.stop();
    r.join();
    double cpu_ms = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
    EXPECT_LT(cpu_ms, 30.0) << "an idle reactor used " << cpu_ms << " ms of CPU in 300 ms";
}

// Adaptive spinning: sparse work (2 ms apart) puts the reactor in interrupt mode (it spins only
// min_spin_us before sleeping); dense work (every ~10 µs, faster than the break-even gap) puts
// it back to spinning the full idle_sleep_us.
TEST(Reactor, SpinWindowFollowsTheGapsBetweenWork) {
    ReactorOptions o = test_opts(500);
    o.adaptive_spin = true;
    o.min_spin_us = 20;
    o.spin_break_even_us = 100;
    Reactor r(0, -1, 1, o);
    r.add_thread(std::make_unique<Thread>("t", 1, 0));
    Thread* t = r.main_thread();
    r.start();
    ASSERT_TRUE(wait_for([&] { return r.stats().spin_window_ns == 500'000u; }));
    std::atomic<int> ran{0};
    for (int i = 0; i < 20; ++i) {
        std::this_thread::sleep_for(2ms);
        t->send([&ran] { ++ran; });
    }
    ASSERT_TRUE(wait_for([&] { return ran.load() == 20; }));
    EXPECT_EQ(r.stats().spin_window_ns, 20'000u);
    EXPECT_GT(r.stats().idle_gap_ns, 100'000u);
    // Dense: a timed poller with work every 10 µs, i.e. gaps far below the break-even.
    std::atomic<int> polls{0};
    t->send([t, &polls] {
        t->register_poller(
            "dense",
            [&polls] {
                ++polls;
                return 1;
            },
            10);
    });
    ASSERT_TRUE(wait_for([&] { return r.stats().spin_window_ns == 500'000u; }))
        << "window " << r.stats().spin_window_ns << " gap " << r.stats().idle_gap_ns;
    r.stop();
    r.join();
}

TEST(Reactor, StopRunsMessagesAlreadyQueued) {
    Reactor r(0, -1, 1, test_opts());
    r.add_thread(std::make_unique<Thread>("t", 1, 0));
    Thread* t = r.main_thread();
    std::atomic<int> ran{0};
    r.start();
    for (int i = 0; i < 1000; ++i) t->send([&] { ran++; });
    r.stop();
    r.join();
    EXPECT_EQ(ran.load(), 1000);
}
