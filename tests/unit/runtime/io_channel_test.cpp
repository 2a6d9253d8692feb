// I/O channel lifetime and for_each_channel across real reactors.
#include "runtime/io_channel.h"
#include "runtime/reactor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace nocstor;
using namespace std::chrono_literals;

namespace {

std::atomic<int> g_created{0}, g_destroyed{0};

struct CountingChannel : IoChannel {
    int visits = 0;
    CountingChannel() { g_created++; }
    ~CountingChannel() override { g_destroyed++; }
};

struct CountingDevice : IoDevice {
    CountingDevice() : IoDevice("counting") {}
    std::unique_ptr<IoChannel> create_channel() override {
        return std::make_unique<CountingChannel>();
    }
};

template <typename Pred>
bool wait_for(Pred p) {
    auto end = std::chrono::steady_clock::now() + 5s;
    while (!p()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(100us);
    }
    return true;
}

struct TwoReactors : ::testing::Test {
    std::unique_ptr<Reactor> a, b;
    void SetUp() override {
        ReactorOptions o;
        o.pin = false;
        o.idle_sleep_us = 100;
        a = std::make_unique<Reactor>(0, -1, 1, o);
        b = std::make_unique<Reactor>(1, -1, 1, o);
        a->add_thread(std::make_unique<Thread>("a", 1, 0));
        b->add_thread(std::make_unique<Thread>("b", 1, 1));
        a->start();
        b->start();
        g_created = 0;
        g_destroyed = 0;
    }
    void TearDown() override {
        a->stop();
        b->stop();
        a->join();
        b->join();
    }
};

}  // namespace

TEST_F(TwoReactors, ChannelIsSharedPerThreadAndDestroyedAfterLastPut) {
    CountingDevice dev;
    std::atomic<bool> done{false};
    a->main_thread()->send([&] {
        IoChannel* c1 = dev.get_channel();
        IoChannel* c2 = dev.get_channel();
        EXPECT_EQ(c1, c2);
        EXPECT_EQ(c1->refs(), 2u);
        IoDevice::put_channel(c1);
        IoDevice::put_channel(c2);
        // Destruction is deferred to a message: still alive here.
        EXPECT_EQ(g_destroyed.load(), 0);
        done = true;
    });
    ASSERT_TRUE(wait_for([&] { return done.load(); }));
    ASSERT_TRUE(wait_for([&] { return g_destroyed.load() == 1; }));
    EXPECT_EQ(g_created.load(), 1);
    EXPECT_EQ(dev.live_channels(), 0);
}

TEST_F(TwoReactors, ReacquireBeforeDeferredDestroyKeepsChannel) {
    CountingDevice dev;
    std::atomic<bool> done{false};
    IoChannel* kept = nullptr;
    a->main_thread()->send([&] {
        IoChannel* c = dev.get_channel();
        IoDevice::put_channel(c);
        kept = dev.get_channel();  // before the deferred destroy message runs
        done = true;
    });
    ASSERT_TRUE(wait_for([&] { return done.load(); }));
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(g_destroyed.load(), 0);
    EXPECT_EQ(dev.live_channels(), 1);
    std::atomic<bool> put{false};
    a->main_thread()->send([&] {
        IoDevice::put_channel(kept);
        put = true;
    });
    ASSERT_TRUE(wait_for([&] { return g_destroyed.load() == 1; }));
}

// Put, got again and put again before the first deferred destroy ran: two destroy messages
// are queued; the channel is destroyed exactly once and the second message touches nothing
// (before, it read and deleted the freed channel: heap corruption when 2,000 bdevs were
// examined one after the other on the control thread).
TEST_F(TwoReactors, PutGetPutBeforeTheDeferredDestroyDestroysOnce) {
    CountingDevice dev;
    std::atomic<bool> done{false};
    a->main_thread()->send([&] {
        for (int i = 0; i < 3; ++i) {
            IoChannel* c = dev.get_channel();
            IoDevice::put_channel(c);
        }
        done = true;
    });
    ASSERT_TRUE(wait_for([&] { return done.load(); }));
    ASSERT_TRUE(wait_for([&] { return dev.live_channels() == 0; }));
    std::this_thread::sleep_for(10ms);  // the later messages have run too
    EXPECT_EQ(g_created.load(), 1);
    EXPECT_EQ(g_destroyed.load(), 1);
    // And a channel created afterwards (maybe at the same address) lives on.
    IoChannel* again = nullptr;
    a->main_thread()->send([&] { again = dev.get_channel(); });
    ASSERT_TRUE(wait_for([&] { return again != nullptr; }));
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(dev.live_channels(), 1);
    EXPECT_EQ(g_destroyed.load(), 1);
    std::atomic<bool> put{false};
    a->main_thread()->send([&] {
        IoDevice::put_channel(again);
        put = true;
    });
    ASSERT_TRUE(wait_for([&] { return g_destroyed.load() == 2; }));
}

TEST_F(TwoReactors, ForEachChannelVisitsEveryChannelOnItsOwnThreadThenCompletes) {
    CountingDevice dev;
    std::atomic<int> ready{0};
    IoChannel *ca = nullptr, *cb = nullptr;
    a->main_thread()->send([&] {
        ca = dev.get_channel();
        ready++;
    });
    b->main_thread()->send([&] {
        cb = dev.get_channel();
        ready++;
    });
    ASSERT_TRUE(wait_for([&] { return ready.load() == 2; }));

    std::atomic<int> visited{0}, wrong_thread{0};
    std::atomic<bool> completed{false};
    std::atomic<int> status{-1};
    a->main_thread()->send([&] {
        dev.for_each_channel(
            [&](IoChannel& ch, std::function<void(int)> next) {
                if (Thread::current() != ch.thread()) wrong_thread++;
                static_cast<CountingChannel&>(ch).visits++;
                visited++;
                // Completes asynchronously, from a later message, like a reset would.
                Thread::current()->send([next = std::move(next)]() mutable { next(0); });
            },
            [&](int st) {
                if (Thread::current() != a->main_thread()) wrong_thread++;
                status = st;
                completed = true;
            });
    });
    ASSERT_TRUE(wait_for([&] { return completed.load(); }));
    EXPECT_EQ(status.load(), 0);
    EXPECT_EQ(visited.load(), 2);
    EXPECT_EQ(wrong_thread.load(), 0);
    EXPECT_EQ(static_cast<CountingChannel*>(ca)->visits, 1);
    EXPECT_EQ(static_cast<CountingChannel*>(cb)->visits, 1);
    a->main_thread()->send([&] { IoDevice::put_channel(ca); });
    b->main_thread()->send([&] { IoDevice::put_channel(cb); });
    ASSERT_TRUE(wait_for([&] { return dev.live_channels() == 0; }));
}

TEST_F(TwoReactors, ForEachChannelStopsOnError) {
    CountingDevice dev;
    std::atomic<int> ready{0};
    IoChannel *ca = nullptr, *cb = nullptr;
    a->main_thread()->send([&] {
        ca = dev.get_channel();
        ready++;
    });
    b->main_thread()->send([&] {
        cb = dev.get_channel();
        ready++;
    });
    ASSERT_TRUE(wait_for([&] { return ready.load() == 2; }));
    std::atomic<int> visited{0}, status{0};
    std::atomic<bool> completed{false};
    b->main_thread()->send([&] {
        dev.for_each_channel(
            [&](IoChannel&, std::function<void(int)> next) {
                visited++;
                next(-5);
            },
            [&](int st) {
                status = st;
                completed = true;
            });
    });
    ASSERT_TRUE(wait_for([&] { return completed.load(); }));
    EXPECT_EQ(visited.load(), 1);
    EXPECT_EQ(status.load(), -5);
    a->main_thread()->send([&] { IoDevice::put_channel(ca); });
    b->main_thread()->send([&] { IoDevice::put_channel(cb); });
    ASSERT_TRUE(wait_for([&] { return dev.live_channels() == 0; }));
}
