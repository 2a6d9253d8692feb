#include "runtime/noc.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "runtime/shm_region.h"
#include "runtime/spsc_ring.h"
#include "util/tick.h"

namespace nocstor {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

NocDescriptor make_desc(uint64_t seq) {
    NocDescriptor d{};
    d.opcode = kNocOpWrite;
    d.user_ctx = seq;
    d.slba = seq * 8;
    d.nlb = uint32_t(seq % 256) + 1;
    return d;
}

std::unique_ptr<NocFabric> make_fabric(int clusters, uint32_t slots = 256) {
    NocConfig cfg;
    cfg.clusters = clusters;
    cfg.ring_slots = slots;
    cfg.buffers.small_count = 64;
    cfg.buffers.large_count = 4;
    std::string err;
    auto f = NocFabric::create(cfg, &err);
    EXPECT_TRUE(f) << err;
    return f;
}

TEST(NocDescriptor, IsOneCacheLineShapedLikeAnSqe) {
    EXPECT_EQ(sizeof(NocDescriptor), 64u);
    EXPECT_EQ(alignof(NocDescriptor), 64u);
    EXPECT_EQ(offsetof(NocDescriptor, cid), 2u);
    EXPECT_EQ(offsetof(NocDescriptor, slba), 24u);
    EXPECT_EQ(offsetof(NocDescriptor, result), 60u);
}

TEST(ShmRegion, CreatesZeroedSharedMemoryVisibleThroughTheFd) {
    std::string err;
    auto r = ShmRegion::create("nocstor-test", 10000, &err);
    ASSERT_TRUE(r) << err;
    EXPECT_GE(r->size(), 10000u);
    EXPECT_EQ(r->size() % r->page_size(), 0u);
    EXPECT_GE(r->fd(), 0);
    EXPECT_EQ(r->base()[9999], std::byte{0});
    std::memcpy(r->base() + 100, "hello", 6);
    // A second mapping of the same fd (what another process would do) sees the same bytes.
    auto other = ShmRegion::attach(dup(r->fd()), &err);
    ASSERT_TRUE(other) << err;
    EXPECT_NE(other->base(), r->base());
    EXPECT_STREQ(reinterpret_cast<const char*>(other->base() + 100), "hello");
}

TEST(SpscRing, BatchesRespectCapacity) {
    alignas(64) static std::byte mem[SpscRing<NocDescriptor>::kHeaderBytes + 8 * 64];
    auto ring = SpscRing<NocDescriptor>::format(mem, 8);
    ASSERT_TRUE(ring.valid());
    std::vector<NocDescriptor> in(10), out(10);
    for (int i = 0; i < 10; ++i) in[i] = make_desc(i);
    EXPECT_EQ(ring.push_batch(in.data(), 10), 8u);
    EXPECT_FALSE(ring.try_push(in[9]));
    EXPECT_EQ(ring.pop_batch(out.data(), 3), 3u);
    EXPECT_EQ(ring.push_batch(in.data() + 8, 2), 2u);
    EXPECT_EQ(ring.pop_batch(out.data() + 3, 10), 7u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(out[i].user_ctx, uint64_t(i));
    EXPECT_TRUE(ring.empty());
}

// 10^6 descriptors through a real producer thread and consumer thread: none lost or duplicated,
// order kept (user_ctx is the sequence number, so "order kept" implies the other two).
TEST(SpscRing, ProducerConsumerThreadsKeepOrder) {
    constexpr uint64_t kCount = 1'000'000;
    constexpr uint32_t kSlots = 1024;
    std::vector<std::byte> storage(SpscRing<NocDescriptor>::bytes_needed(kSlots) + 64);
    void* mem = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
    auto ring = SpscRing<NocDescriptor>::format(mem, kSlots);
    uint64_t deadline = now_ns() + 8 * kSecond;
    std::thread producer([&] {
        NocDescriptor batch[16];
        uint64_t next = 0;
        while (next < kCount && now_ns() < deadline) {
            size_t n = std::min<uint64_t>(16, kCount - next);
            for (size_t i = 0; i < n; ++i) batch[i] = make_desc(next + i);
            size_t k = ring.push_batch(batch, n);
            next += k;
            if (k == 0) std::this_thread::yield();  // the machine may have fewer cores than threads
        }
    });
    uint64_t expect = 0, bad = 0;
    while (expect < kCount && now_ns() < deadline) {
        size_t k = ring.consume(64, [&](const NocDescriptor& d) {
            if (d.user_ctx != expect || d.slba != expect * 8) ++bad;
            ++expect;
        });
        if (k == 0) std::this_thread::yield();
    }
    producer.join();
    EXPECT_EQ(expect, kCount);
    EXPECT_EQ(bad, 0u);
    EXPECT_TRUE(ring.empty());
}

// Three clusters, each a thread that sends a numbered stream to both others while polling its
// own inbound rings; every (src, dst) stream must arrive complete, without duplicates, in order.
TEST(NocFabric, ThreeClustersConcurrentSendersLoseNothing) {
    constexpr int kClusters = 3;
    constexpr uint64_t kPerPair = 100'000;
    auto fabric = make_fabric(kClusters, 64);  // small rings so ring-full happens
    ASSERT_TRUE(fabric);
    uint64_t deadline = now_ns() + 8 * kSecond;
    std::atomic<int> finished{0};
    std::vector<std::vector<uint64_t>> next_expected(kClusters,
                                                     std::vector<uint64_t>(kClusters, 0));
    std::vector<uint64_t> errors(kClusters, 0);
    auto run = [&](int self) {
        NocEndpoint& ep = fabric->endpoint(self);
        std::vector<uint64_t> next_send(kClusters, 0);
        auto& expected = next_expected[self];
        bool done_sending = false;
        while (now_ns() < deadline) {
            bool all_sent = true, progress = false;
            for (int dst = 0; dst < kClusters; ++dst) {
                if (dst == self) continue;
                NocDescriptor batch[8];
                size_t n = std::min<uint64_t>(8, kPerPair - next_send[dst]);
                for (size_t i = 0; i < n; ++i) batch[i] = make_desc(next_send[dst] + i);
                size_t k = ep.send_batch(dst, batch, n);
                next_send[dst] += k;
                progress |= k > 0;
                all_sent &= next_send[dst] == kPerPair;
            }
            progress |= ep.poll([&](int src, const NocDescriptor& d) {
                if (d.src_cluster != src || d.user_ctx != expected[src]) ++errors[self];
                ++expected[src];
            }) > 0;
            if (!progress) std::this_thread::yield();  // 3 threads, maybe only 2 cores
            if (all_sent && !done_sending) {
                done_sending = true;
                finished.fetch_add(1);
            }
            bool all_received = true;
            for (int src = 0; src < kClusters; ++src) {
                if (src != self) all_received &= expected[src] == kPerPair;
            }
            if (done_sending && all_received && finished.load() == kClusters) break;
        }
    };
    std::vector<std::thread> threads;
    for (int c = 0; c < kClusters; ++c) threads.emplace_back(run, c);
    for (auto& t : threads) t.join();
    for (int dst = 0; dst < kClusters; ++dst) {
        EXPECT_EQ(errors[dst], 0u) << "cluster " << dst;
        auto st = fabric->stats(dst);
        EXPECT_EQ(st.sent, kPerPair * (kClusters - 1));
        EXPECT_EQ(st.received, kPerPair * (kClusters - 1));
        for (int src = 0; src < kClusters; ++src) {
            if (src == dst) continue;
            EXPECT_EQ(next_expected[dst][src], kPerPair) << src << "->" << dst;
        }
        EXPECT_FALSE(fabric->endpoint(dst).has_pending());
    }
}

TEST(NocFabric, SendFailsWhenRingIsFullAndRecovers) {
    auto fabric = make_fabric(2, 4);
    ASSERT_TRUE(fabric);
    auto& a = fabric->endpoint(0);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(a.send(1, make_desc(i)));
    EXPECT_FALSE(a.send(1, make_desc(4)));
    EXPECT_EQ(a.stats().ring_full, 1u);
    size_t got = fabric->endpoint(1).poll([](int, const NocDescriptor&) {}, 2);
    EXPECT_EQ(got, 2u);
    EXPECT_TRUE(a.send(1, make_desc(4)));
}

TEST(NocFabric, PollIsRoundRobinAcrossSources) {
    auto fabric = make_fabric(4, 64);
    ASSERT_TRUE(fabric);
    for (int src = 1; src < 4; ++src) {
        for (int i = 0; i < 30; ++i) ASSERT_TRUE(fabric->endpoint(src).send(0, make_desc(i)));
    }
    std::vector<int> per_src(4, 0);
    size_t n = fabric->endpoint(0).poll([&](int src, const NocDescriptor&) { ++per_src[src]; }, 30);
    EXPECT_EQ(n, 30u);
    for (int src = 1; src < 4; ++src) EXPECT_EQ(per_src[src], 10) << src;
}

// The sender writes data into a pool buffer and sends its arena offset; the receiver reads the
// same bytes through the offset; the completion returns the buffer.
TEST(NocFabric, ArenaReferencesResolveToTheSameBytes) {
    auto fabric = make_fabric(2);
    ASSERT_TRUE(fabric);
    auto& a = fabric->endpoint(0);
    auto& b = fabric->endpoint(1);
    BufferCache cache_a(a.buffers());
    Buffer buf = cache_a.get(BufClass::Small);
    ASSERT_TRUE(buf);
    std::memset(buf.data, 0x5a, buf.size);
    std::memcpy(buf.data + 100, "payload", 8);
    NocDescriptor d = make_desc(7);
    d.iov_cnt = 1;
    d.buf_off[0] = buf.offset + 100;
    d.buf_len[0] = 8;
    ASSERT_TRUE(a.send(1, d));
    bool seen = false;
    uint64_t received_off = 0;
    std::thread receiver([&] {  // another thread, as another cluster would
        b.poll([&](int src, const NocDescriptor& r) {
            EXPECT_EQ(src, 0);
            EXPECT_STREQ(reinterpret_cast<const char*>(b.arena_ptr(r.buf_off[0])), "payload");
            EXPECT_EQ(b.arena_ptr(r.buf_off[0]), buf.data + 100);
            seen = true;
            received_off = r.buf_off[0];
        });
    });
    receiver.join();
    EXPECT_TRUE(seen);
    // Each cluster has its own partition; the buffer is the sender's, and an interior offset
    // maps back to it.
    EXPECT_NE(&a.buffers(), &b.buffers());
    EXPECT_TRUE(a.buffers().owns(received_off));
    EXPECT_FALSE(b.buffers().owns(received_off));
    EXPECT_EQ(a.buffers().from_offset(received_off).offset, buf.offset);
    cache_a.put(received_off);
    // Through a second mapping of the region (what another process would see) too.
    std::string err;
    auto other = ShmRegion::attach(dup(fabric->region().fd()), &err);
    ASSERT_TRUE(other) << err;
    uint64_t region_off = fabric->region().offset_of(buf.data + 100);
    EXPECT_STREQ(reinterpret_cast<const char*>(other->base() + region_off), "payload");
}

TEST(NocFabric, NoDoorbellWhenPeerIsAwake) {
    auto fabric = make_fabric(2);
    ASSERT_TRUE(fabric);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(fabric->endpoint(0).send(1, make_desc(i)));
    EXPECT_EQ(fabric->stats(0).doorbells_rung, 0u);
    // Pending descriptors: the receiver must not go to sleep.
    EXPECT_FALSE(fabric->endpoint(1).prepare_to_sleep());
}

// A consumer blocked in epoll_wait on its doorbell is woken by a send (not by its 2 s timeout).
TEST(NocFabric, DoorbellWakesSleepingConsumer) {
    auto fabric = make_fabric(2);
    ASSERT_TRUE(fabric);
    auto& sender = fabric->endpoint(0);
    auto& sleeper = fabric->endpoint(1);
    constexpr int kRounds = 20;
    std::atomic<int> asleep_round{-1};
    std::atomic<uint64_t> sent_at{0};
    std::vector<uint64_t> latency_ns;
    std::thread consumer([&] {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        epoll_ctl(ep, EPOLL_CTL_ADD, sleeper.doorbell_fd(), &ev);
        for (int round = 0; round < kRounds; ++round) {
            ASSERT_TRUE(sleeper.prepare_to_sleep());
            asleep_round.store(round);
            epoll_event out;
            int n = epoll_wait(ep, &out, 1, 2000);
            uint64_t woke = now_ns();
            sleeper.finish_sleep();
            ASSERT_EQ(n, 1) << "not woken in round " << round;
            latency_ns.push_back(woke - sent_at.load());
            size_t got = 0;
            while (got == 0) got = sleeper.poll([](int, const NocDescriptor&) {});  // published
            EXPECT_EQ(got, 1u);
        }
        close(ep);
    });
    for (int round = 0; round < kRounds; ++round) {
        uint64_t wait_until = now_ns() + 2 * kSecond;
        while (asleep_round.load() != round && now_ns() < wait_until) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // let it block in epoll_wait
        sent_at.store(now_ns());
        ASSERT_TRUE(sender.send(1, make_desc(round)));
    }
    consumer.join();
    ASSERT_EQ(latency_ns.size(), size_t(kRounds));
    EXPECT_EQ(fabric->stats(0).doorbells_rung, uint64_t(kRounds));
    std::sort(latency_ns.begin(), latency_ns.end());
    std::printf("doorbell wake-up latency: min %.1f us, median %.1f us, max %.1f us\n",
                latency_ns.front() / 1e3, latency_ns[kRounds / 2] / 1e3, latency_ns.back() / 1e3);
    // Bounds that only a doorbell that does not ring can miss (the consumer would then sleep
    // until its 2 s epoll timeout); the latency itself is measured by bench/noc_bench, not here:
    // on a loaded 2-core CI machine a woken thread can wait milliseconds for its core.
    EXPECT_LT(latency_ns[kRounds / 2], 20'000'000u) << "median wake-up latency";
    EXPECT_LT(latency_ns[kRounds * 9 / 10], 100'000'000u) << "p90 wake-up latency";
}

// Stress for the sleep protocol: a consumer that sleeps whenever idle and a sender that sends at
// random moments; a lost wake-up would leave the consumer asleep with a descriptor pending.
TEST(NocFabric, NoLostWakeupUnderRaces) {
    auto fabric = make_fabric(2);
    ASSERT_TRUE(fabric);
    auto& sender = fabric->endpoint(0);
    auto& sleeper = fabric->endpoint(1);
    constexpr uint64_t kCount = 20'000;
    uint64_t deadline = now_ns() + 8 * kSecond;
    uint64_t received = 0, timeouts = 0;
    std::thread consumer([&] {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        epoll_ctl(ep, EPOLL_CTL_ADD, sleeper.doorbell_fd(), &ev);
        while (received < kCount && now_ns() < deadline) {
            size_t got = sleeper.poll([](int, const NocDescriptor&) {});
            received += got;
            if (got == 0 && received < kCount && sleeper.prepare_to_sleep()) {
                epoll_event out;
                if (epoll_wait(ep, &out, 1, 1000) == 0) ++timeouts;  // 1 s without a doorbell
                sleeper.finish_sleep();
            }
        }
        close(ep);
    });
    for (uint64_t i = 0; i < kCount && now_ns() < deadline;) {
        if (sender.send(1, make_desc(i))) {
            ++i;
        } else {
            std::this_thread::yield();
        }
        if (i % 7 == 0) std::this_thread::yield();
    }
    consumer.join();
    EXPECT_EQ(received, kCount);
    EXPECT_EQ(timeouts, 0u);
}

// --- another process on the same fabric (clusters as processes, issue 13) ---

// What the child of a fork sees: its own mapping of the region from duplicated fds, as if they
// had come over a Unix socket.
std::unique_ptr<NocFabric> attach_copy(const NocFabric& f) {
    NocFabricFds own = f.fds();
    NocFabricFds mine{dup(own.region), {}};
    for (int fd : own.doorbells) mine.doorbells.push_back(dup(fd));
    std::string err;
    return NocFabric::attach(std::move(mine), &err);
}

// Polls `ep` until `h` has seen one descriptor or `ms` pass; true if one came.
template <class H>
bool poll_one(NocEndpoint& ep, H&& h, int ms) {
    const uint64_t end = now_ns() + uint64_t(ms) * 1'000'000;
    while (now_ns() < end) {
        if (ep.poll(h, 1) == 1) return true;
        usleep(100);
    }
    return false;
}

int wait_child(pid_t pid) {
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// A child process attaches, reads the request's data through its arena offset, answers in the
// same buffer, and sends data from its own partition; its answer rings the parent's doorbell.
TEST(NocFabric, AnotherProcessAttachesAndExchangesDescriptorsAndData) {
    auto fabric = make_fabric(2);
    ASSERT_TRUE(fabric);
    auto& a = fabric->endpoint(0);
    Buffer buf = a.buffers().get(BufClass::Small);
    ASSERT_TRUE(buf);
    std::strcpy(reinterpret_cast<char*>(buf.data), "ping");
    NocDescriptor req = make_desc(1);
    req.iov_cnt = 1;
    req.buf_off[0] = buf.offset;
    req.buf_len[0] = 5;
    ASSERT_TRUE(a.send(1, req));
    ASSERT_TRUE(a.prepare_to_sleep());  // nothing inbound yet: the answer must ring

    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        auto f = attach_copy(*fabric);
        if (!f) _exit(2);
        NocEndpoint& b = f->endpoint(1);
        bool ok = false;
        const bool got = poll_one(
            b,
            [&](int src, const NocDescriptor& d) {
                char* p = reinterpret_cast<char*>(b.arena_ptr(d.buf_off[0]));
                ok = src == 0 && std::strcmp(p, "ping") == 0;
                std::strcpy(p, "pong");
                NocDescriptor c = d;
                c.flags = kNocFlagCompletion;
                b.send(0, c);
            },
            5000);
        if (!got) _exit(3);
        if (!ok) _exit(4);
        Buffer mine = b.buffers().get(BufClass::Small);
        if (!mine) _exit(5);
        std::strcpy(reinterpret_cast<char*>(mine.data), "from the child");
        NocDescriptor d = make_desc(2);
        d.iov_cnt = 1;
        d.buf_off[0] = mine.offset;
        _exit(b.send(0, d) ? 0 : 6);
    }
    pollfd pfd{a.doorbell_fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&pfd, 1, 5000), 1) << "the child's answer did not ring the doorbell";
    a.finish_sleep();
    EXPECT_EQ(wait_child(pid), 0);
    std::vector<NocDescriptor> got;
    while (a.poll([&](int src, const NocDescriptor& d) {
        EXPECT_EQ(src, 1);
        got.push_back(d);
    })) {
    }
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(got[0].flags & kNocFlagCompletion);
    EXPECT_STREQ(reinterpret_cast<char*>(buf.data), "pong");
    EXPECT_TRUE(fabric->buffers(1).owns(got[1].buf_off[0]));
    EXPECT_STREQ(reinterpret_cast<char*>(a.arena_ptr(got[1].buf_off[0])), "from the child");
    a.buffers().put(buf);
    fabric->buffers(1).put(fabric->buffers(1).from_offset(got[1].buf_off[0]));
}

// kill -9 of a cluster process: the rings live on in the region. Its successor attaches, drops
// the requests its predecessor never answered (their senders fail them), and serves new ones.
TEST(NocFabric, ARestartedPeerProcessDropsStaleRequestsAndServesNewOnes) {
    auto fabric = make_fabric(2);
    ASSERT_TRUE(fabric);
    auto& a = fabric->endpoint(0);
    const pid_t dead = fork();
    ASSERT_GE(dead, 0);
    if (dead == 0) {
        auto f = attach_copy(*fabric);
        pause();  // never answers
        _exit(0);
    }
    for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(a.send(1, make_desc(i)));
    usleep(20000);
    kill(dead, SIGKILL);
    EXPECT_EQ(wait_child(dead), 128 + SIGKILL);

    const pid_t next = fork();
    ASSERT_GE(next, 0);
    if (next == 0) {
        auto f = attach_copy(*fabric);
        if (!f) _exit(2);
        NocEndpoint& b = f->endpoint(1);
        if (b.discard_inbound() != 3) _exit(3);
        NocDescriptor ready = make_desc(1000);
        if (!b.send(0, ready)) _exit(4);
        uint64_t seen = 0;
        if (!poll_one(
                b,
                [&](int, const NocDescriptor& d) {
                    seen = d.user_ctx;
                    NocDescriptor c = d;
                    c.flags = kNocFlagCompletion;
                    b.send(0, c);
                },
                5000))
            _exit(5);
        _exit(seen == 77 ? 0 : 6);
    }
    uint64_t ctx = 0;
    ASSERT_TRUE(poll_one(
        a, [&](int, const NocDescriptor& d) { ctx = d.user_ctx; }, 5000));
    EXPECT_EQ(ctx, 1000u);  // the successor is up
    ASSERT_TRUE(a.send(1, make_desc(77)));
    NocDescriptor answer{};
    ASSERT_TRUE(poll_one(
        a, [&](int, const NocDescriptor& d) { answer = d; }, 5000));
    EXPECT_EQ(answer.user_ctx, 77u);
    EXPECT_TRUE(answer.flags & kNocFlagCompletion);
    EXPECT_EQ(wait_child(next), 0);
}

TEST(NocFabric, AttachRefusesWhatIsNotAFabric) {
    std::string err;
    auto region = ShmRegion::create("not-a-noc", 1 << 20, &err);
    ASSERT_TRUE(region) << err;
    EXPECT_FALSE(NocFabric::attach({dup(region->fd()), {}}, &err));
    EXPECT_NE(err.find("magic"), std::string::npos) << err;
    auto fabric = make_fabric(3);
    ASSERT_TRUE(fabric);
    NocFabricFds fds{dup(fabric->fds().region), {dup(fabric->fds().doorbells[0])}};
    EXPECT_FALSE(NocFabric::attach(std::move(fds), &err));
    EXPECT_NE(err.find("3 clusters, 1 doorbells"), std::string::npos) << err;
}

}  // namespace
}  // namespace nocstor
