// Whole-runtime behaviour: clusters from a plan, ordered shutdown with messages in flight.
#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace nocstor;
using namespace std::chrono_literals;

namespace {
RuntimeOptions two_cluster_opts() {
    RuntimeOptions o;
    o.clusters = {{0, ClusterSpec::Role::Control, {0}}, {1, ClusterSpec::Role::Data, {0, 0}}};
    o.reactor.pin = false;
    o.reactor.idle_sleep_us = 100;
    return o;
}
}  // namespace

TEST(Runtime, BuildsClustersAndRunsStartOnControlThread) {
    Runtime rt(two_cluster_opts());
    ASSERT_EQ(rt.clusters().size(), 2u);
    EXPECT_EQ(rt.data_threads().size(), 2u);
    std::atomic<bool> on_control{false};
    rt.start([&] {
        on_control = Thread::current() == Runtime::instance()->control_thread();
        Runtime::instance()->request_shutdown();
    });
    rt.wait();
    EXPECT_TRUE(on_control.load());
}

TEST(Runtime, ShutdownStepsRunInReverseOrderAndInFlightMessagesComplete) {
    Runtime rt(two_cluster_opts());
    std::vector<std::string> order;
    std::atomic<int> inflight_done{0};
    constexpr int kMessages = 5000;
    rt.add_shutdown_step("first-registered", [&](std::function<void()> done) {
        order.push_back("first-registered");
        done();
    });
    rt.add_shutdown_step("drain", [&](std::function<void()> done) {
        order.push_back("drain");
        // Asynchronous step: completes after a round trip through every data thread.
        run_on_threads(
            Runtime::instance()->data_threads(), [](Thread*) {},
            [done = std::move(done)] { done(); });
    });
    rt.start([&] {
        for (int i = 0; i < kMessages; ++i) {
            Thread* t = Runtime::instance()->data_threads()[i % 2];
            t->send([&] { inflight_done++; });
        }
        Runtime::instance()->request_shutdown();
    });
    rt.wait();
    ASSERT_EQ(order.size(), 2u);
    EXPECT_EQ(order[0], "drain");
    EXPECT_EQ(order[1], "first-registered");
    EXPECT_EQ(inflight_done.load(), kMessages);
}

TEST(Runtime, RunOnThreadsVisitsEachThreadOnceThenCallsDone) {
    Runtime rt(two_cluster_opts());
    std::atomic<int> visits{0};
    std::atomic<bool> wrong{false};
    rt.start([&] {
        run_on_threads(
            Runtime::instance()->data_threads(),
            [&](Thread* t) {
                if (Thread::current() != t) wrong = true;
                visits++;
            },
            [&] {
                if (Thread::current() != Runtime::instance()->control_thread()) wrong = true;
                Runtime::instance()->request_shutdown();
            });
    });
    rt.wait();
    EXPECT_EQ(visits.load(), 2);
    EXPECT_FALSE(wrong.load());
}
