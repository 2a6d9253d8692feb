// Whole-runtime behaviour: clusters from a plan, ordered shutdown with messages in flight.
#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
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

// noc.buffers is the data clusters' total: each gets an even share as its own arena partition,
// the control cluster a small one.
TEST(Runtime, SplitsTheBufferPoolIntoOnePartitionPerCluster) {
    RuntimeOptions o = two_cluster_opts();
    o.clusters = {{0, ClusterSpec::Role::Control, {0}},
                  {1, ClusterSpec::Role::Data, {0}},
                  {2, ClusterSpec::Role::Data, {0}}};
    o.noc.buffers.small_count = 1000;
    o.noc.buffers.large_count = 40;
    Runtime rt(o);
    auto& noc = rt.noc();
    EXPECT_EQ(noc.buffers(0).count(BufClass::Small), 64u);
    EXPECT_EQ(noc.buffers(0).count(BufClass::Large), 4u);
    for (int c : {1, 2}) {
        EXPECT_EQ(noc.buffers(c).count(BufClass::Small), 500u);
        EXPECT_EQ(noc.buffers(c).count(BufClass::Large), 20u);
        EXPECT_EQ(&noc.endpoint(c).buffers(), &noc.buffers(c));
    }
    Buffer b1 = noc.buffers(1).get(BufClass::Small);
    ASSERT_TRUE(b1);
    EXPECT_TRUE(noc.buffers(1).owns(b1.offset));
    EXPECT_FALSE(noc.buffers(2).owns(b1.offset));
    EXPECT_FALSE(noc.buffers(0).owns(b1.offset));
    noc.buffers(1).put(b1);
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

namespace {
// Sends d on ep, retrying from later messages of the current thread while the ring is full.
void send_or_retry(NocEndpoint* ep, int dst, const NocDescriptor& d) {
    if (ep->send(dst, d)) return;
    auto copy = std::make_shared<NocDescriptor>(d);  // a descriptor is too big for a message
    Thread::current()->send([ep, dst, copy] { send_or_retry(ep, dst, *copy); });
}
}  // namespace

TEST(Runtime, NocCarriesDescriptorsBetweenClustersWithoutLossOrDuplication) {
    RuntimeOptions o;
    o.clusters = {{0, ClusterSpec::Role::Control, {0}},
                  {1, ClusterSpec::Role::Data, {0}},
                  {2, ClusterSpec::Role::Data, {0}}};
    o.reactor.pin = false;
    o.reactor.idle_sleep_us = 50;  // sleep often: exercises the doorbells
    o.noc.ring_slots = 64;
    Runtime rt(o);
    constexpr uint32_t kCount = 20000, kWindow = 48;
    std::vector<uint8_t> seen(kCount, 0);  // touched only on cluster 2's NoC thread
    std::atomic<uint32_t> received{0}, dup{0}, acked{0};
    uint32_t next = 0;  // cluster 1's NoC thread only
    // Cluster 1 keeps a window of descriptors in flight to cluster 2, which acknowledges each.
    std::function<void()> pump = [&] {
        auto& ep = Runtime::instance()->noc().endpoint(1);
        while (next < kCount && next - acked.load() < kWindow) {
            NocDescriptor d{};
            d.opcode = kNocOpWrite;
            d.slba = next;
            d.user_ctx = next;
            if (!ep.send(2, d)) break;
            ++next;
        }
    };
    rt.set_noc_handler(kNocOpWrite, [&](int cluster, int src, const NocDescriptor& d) {
        if (cluster == 1 && (d.flags & kNocFlagCompletion)) {
            acked++;
            pump();
            return;
        }
        ASSERT_EQ(cluster, 2);
        ASSERT_EQ(src, 1);
        ASSERT_LT(d.slba, kCount);
        if (seen[d.slba]++) dup++;
        received++;
        NocDescriptor c{};
        c.opcode = kNocOpWrite;
        c.flags = kNocFlagCompletion;
        c.user_ctx = d.user_ctx;
        send_or_retry(&Runtime::instance()->noc().endpoint(2), 1, c);
    });
    rt.start([&] { Runtime::instance()->noc_thread(1)->send([&] { pump(); }); });
    auto end = std::chrono::steady_clock::now() + 20s;
    while (acked.load() < kCount && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(1ms);
    rt.request_shutdown();
    rt.wait();
    EXPECT_EQ(received.load(), kCount);
    EXPECT_EQ(acked.load(), kCount);
    EXPECT_EQ(dup.load(), 0u);
    for (uint32_t i = 0; i < kCount; ++i) ASSERT_EQ(seen[i], 1) << "descriptor " << i;
}

// Clusters as processes: this process runs the control cluster and cluster 1, a forked child
// runs cluster 2 on the same NoC (attached from the fds, with a control thread of its own). A
// descriptor from cluster 1 reaches the child's handler and its answer comes back; the child's
// kill -9 leaves this process running.
TEST(Runtime, AClusterInAnotherProcessAnswersOverTheSharedNoc) {
    constexpr uint8_t kPing = 0xd0;
    RuntimeOptions o = two_cluster_opts();
    o.clusters = {{0, ClusterSpec::Role::Control, {0}},
                  {1, ClusterSpec::Role::Data, {0}},
                  {2, ClusterSpec::Role::Data, {0}}};
    RuntimeOptions parent_opts = o;
    parent_opts.local_clusters = {0, 1};
    std::atomic<uint64_t> answered{0};
    auto rt = std::make_unique<Runtime>(parent_opts);
    EXPECT_TRUE(rt->clusters()[1].local);
    EXPECT_FALSE(rt->clusters()[2].local);
    EXPECT_EQ(rt->noc_thread(2), nullptr);
    EXPECT_EQ(rt->data_threads().size(), 1u);
    rt->set_noc_handler(kPing, [&](int cluster, int src, const NocDescriptor& d) {
        if (cluster == 1 && src == 2 && (d.flags & kNocFlagCompletion)) answered = d.user_ctx;
    });

    NocFabricFds fds = rt->noc().fds();
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        RuntimeOptions child_opts = o;
        child_opts.local_clusters = {2};
        NocFabricFds mine{dup(fds.region), {}};
        for (int fd : fds.doorbells) mine.doorbells.push_back(dup(fd));
        child_opts.attach = std::move(mine);
        try {
            Runtime child(child_opts);
            if (child.clusters()[0].local || child.noc_thread(2) == nullptr ||
                child.control_thread() == nullptr)
                _exit(2);
            child.set_noc_handler(kPing, [&child](int cluster, int src, const NocDescriptor& d) {
                NocDescriptor c = d;
                c.flags = kNocFlagCompletion;
                c.user_ctx = d.user_ctx * 2 + uint64_t(cluster);
                child.noc().endpoint(cluster).send(src, c);
            });
            child.start();
            pause();
        } catch (...) {
            _exit(3);
        }
        _exit(0);
    }
    rt->start();
    NocDescriptor d{};
    d.opcode = kPing;
    d.user_ctx = 20;
    auto ping = std::make_shared<NocDescriptor>(d);  // a descriptor is too big for a message
    rt->noc_thread(1)->send([&rt, ping] { rt->noc().endpoint(1).send(2, *ping); });
    for (int i = 0; i < 500 && answered.load() == 0; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(answered.load(), 42u);  // 20 * 2 + cluster 2
    kill(pid, SIGKILL);
    int st = 0;
    EXPECT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(st)) << "the child exited by itself with " << WEXITSTATUS(st);
    rt->request_shutdown();
    rt->wait();
}
