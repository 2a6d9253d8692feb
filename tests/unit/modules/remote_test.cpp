// The remote bdev over the real NoC between data clusters of one runtime (clusters share a core,
// unpinned): random I/O shapes verified against a shadow copy, zero copy for arena buffers and
// one copy for the rest (by counter), SGLs with many segments, a NoC ring of two slots, and a
// peer that does not answer in time.
#include "mod_test_env.h"

#include "modules/delay.h"
#include "modules/malloc.h"
#include "modules/remote/remote_bdev.h"
#include "modules/remote/remote_port.h"

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

namespace nocstor::test {
namespace {

using remote::RemoteBdev;
using Role = ClusterSpec::Role;

// Control on core 0; data clusters 1 (two reactors: the NoC thread and another), 2 and 3.
std::vector<ClusterSpec> three_clusters() {
    return {{0, Role::Control, {0}},
            {1, Role::Data, {0, 0}},
            {2, Role::Data, {0}},
            {3, Role::Data, {0}}};
}

constexpr uint32_t kBlock = 512;

int create_malloc(ModEnv& env, const std::string& name, uint64_t blocks, int cluster) {
    int rc = -1;
    env.run(env.ctl(), [&] {
        BdevClusterScope scope(cluster);
        MallocBdevOptions o;
        o.name = name;
        o.num_blocks = blocks;
        o.block_size = kBlock;
        std::string err;
        rc = malloc_bdev_create(o, &err);
    });
    return rc;
}

int create_remote(ModEnv& env, const std::string& name, const std::string& base, int cluster,
                  uint64_t timeout_ms = 30000, std::string* err_out = nullptr) {
    int rc = -1;
    env.run(env.ctl(), [&] {
        remote::RemoteCreateOptions o;
        o.name = name;
        o.base_bdev_name = base;
        o.cluster = cluster;
        o.timeout_ms = timeout_ms;
        std::string err;
        rc = remote::remote_bdev_create(o, &err);
        if (err_out) *err_out = err;
    });
    return rc;
}

// Waits for the examine of new bdevs (RAID and lvol read their superblocks through them).
void settle(ModEnv& env) {
    EXPECT_TRUE(
        env.run_async(env.ctl(), [](std::function<void()> done) { bdev_wait_for_examine(done); }));
}

RemoteBdev* remote_of(const std::string& name) {
    return static_cast<RemoteBdev*>(bdev_get_by_name(name));
}

uint64_t counter(const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
}

// Random writes and read-backs on one bdev from one thread: `lanes` disjoint regions run at
// once (so nothing in flight overlaps), each alternating a write and a read of the same random
// range, with buffers in the arena (1, 2 or many segments) or on the heap (bounced).
struct VerifyJob {
    struct Lane {
        VerifyJob* job;
        uint64_t first_block;
        int left;
        bool reading = false;
        uint64_t off = 0, n = 0;
        Buffer arena;  // when the buffers come from the arena
        std::vector<unsigned char> heap;
        iovec iov[remote::kMaxSegments + 8];
        int iovcnt = 0;
        std::vector<unsigned char> expect;
    };
    BdevDesc* desc = nullptr;
    IoChannel* ch = nullptr;
    std::vector<Lane> lanes;
    std::mt19937_64 rng{42};
    uint64_t lane_blocks = 0;
    int active = 0;
    int errors = 0;
    int heap_ios = 0;  // data requests whose buffers were not in the arena
    std::function<void()> done;

    // Splits [p, p + len) into `segs` block-multiple segments.
    void split(Lane& l, unsigned char* p, uint64_t len, int segs) {
        const uint64_t blocks = len / kBlock;
        segs = int(std::min<uint64_t>(uint64_t(segs), blocks));
        uint64_t at = 0;
        l.iovcnt = 0;
        for (int i = 0; i < segs; ++i) {
            const uint64_t b = i == segs - 1
                                   ? blocks - at / kBlock
                                   : 1 + rng() % ((blocks - at / kBlock) - (segs - 1 - i));
            l.iov[l.iovcnt++] = {p + at, size_t(b * kBlock)};
            at += b * kBlock;
        }
    }

    void start_io(Lane& l) {
        if (!l.reading) {
            if (l.left-- == 0) {
                if (--active == 0) done();
                return;
            }
            l.n = 1 + rng() % 64;
            l.off = l.first_block + rng() % (lane_blocks - l.n + 1);
        }
        const uint64_t len = l.n * kBlock;
        const int kind = int(rng() % 4);  // arena x1, arena x2, arena xN, heap
        const int segs = kind == 0   ? 1
                         : kind == 1 ? 2
                                     : 3 + int(rng() % (remote::kMaxSegments - 3));
        unsigned char* p;
        if (kind < 3) {
            p = reinterpret_cast<unsigned char*>(l.arena.data);
        } else {
            l.heap.assign(len, 0);
            p = l.heap.data();
            ++heap_ios;
        }
        split(l, p, len, kind == 3 ? 1 + int(rng() % 8) : segs);
        if (!l.reading) {
            l.expect.resize(len);
            for (auto& b : l.expect) b = uint8_t(rng());
            std::memcpy(p, l.expect.data(), len);
        } else {
            std::memset(p, 0xee, len);
        }
        auto cb = [](BdevIo* io, bool ok, void* arg) {
            auto* l = static_cast<Lane*>(arg);
            bdev_free_io(io);
            VerifyJob* j = l->job;
            if (!ok) ++j->errors;
            if (l->reading) {
                std::vector<unsigned char> got(l->n * kBlock);
                uint64_t at = 0;
                for (int i = 0; i < l->iovcnt; ++i) {
                    std::memcpy(got.data() + at, l->iov[i].iov_base, l->iov[i].iov_len);
                    at += l->iov[i].iov_len;
                }
                if (got != l->expect) ++j->errors;
            }
            l->reading = !l->reading;
            j->start_io(*l);
        };
        const int rc = l.reading ? bdev_readv(desc, ch, l.iov, l.iovcnt, l.off, l.n, cb, &l)
                                 : bdev_writev(desc, ch, l.iov, l.iovcnt, l.off, l.n, cb, &l);
        if (rc) {
            ++errors;
            if (--active == 0) done();
        }
    }
};

// Runs a VerifyJob on `t` against `name` and waits for it.
void verify(ModEnv& env, Thread* t, const std::string& name, int lanes, int ios_per_lane,
            uint64_t seed, int* errors, int* heap_ios) {
    VerifyJob job;
    job.rng.seed(seed);
    BufferPool& pool = env.rt().noc().buffers(t->cluster_id());
    const bool ok = env.run_async(
        t,
        [&](std::function<void()> done) {
            ASSERT_EQ(bdev_open(name, true, nullptr, &job.desc), 0);
            job.ch = bdev_get_io_channel(job.desc);
            const uint64_t blocks = job.desc->bdev()->num_blocks;
            job.lane_blocks = blocks / uint64_t(lanes);
            job.lanes.resize(size_t(lanes));
            job.active = lanes;
            job.done = done;
            for (int i = 0; i < lanes; ++i) {
                auto& l = job.lanes[size_t(i)];
                l.job = &job;
                l.first_block = uint64_t(i) * job.lane_blocks;
                l.left = ios_per_lane;
                l.arena = pool.get(BufClass::Large);
                ASSERT_TRUE(l.arena);
            }
            for (auto& l : job.lanes) job.start_io(l);
        },
        60000);
    EXPECT_TRUE(ok) << "verify job on " << name << " did not finish";
    env.run(t, [&] {
        for (auto& l : job.lanes) pool.put(l.arena);
        bdev_put_io_channel(job.ch);
        bdev_close(job.desc);
    });
    *errors = job.errors;
    *heap_ios = job.heap_ios;
}

TEST(Remote, RandomShapesVerifyAcrossClustersWithZeroCopyForArenaBuffers) {
    ModEnv env(three_clusters());
    ASSERT_EQ(create_malloc(env, "m2", 8192, 2), 0);
    ASSERT_EQ(create_malloc(env, "m3", 8192, 3), 0);
    EXPECT_EQ(bdev_get_by_name("m2")->cluster, 2);
    ASSERT_EQ(create_remote(env, "r2", "m2", 1), 0);
    ASSERT_EQ(create_remote(env, "r3", "m3", 1), 0);
    EXPECT_EQ(bdev_get_by_name("r2")->cluster, 1);
    // Examine read each new bdev (RAID and lvol superblocks), through bounce buffers.
    settle(env);
    const uint64_t examined = counter(remote_of("r2")->counters().bounced);
    EXPECT_EQ(counter(remote_of("r3")->counters().bounced), examined);
    // From cluster 1's NoC thread (direct) and its other reactor (through a message).
    int errors = 0, heap = 0, errors2 = 0, heap2 = 0;
    std::thread other([&] { verify(env, env.data(1), "r3", 8, 40, 7, &errors2, &heap2); });
    verify(env, env.data(0), "r2", 8, 40, 3, &errors, &heap);
    other.join();
    EXPECT_EQ(errors, 0);
    EXPECT_EQ(errors2, 0);
    // Exactly the heap buffers were copied; everything else crossed as arena offsets.
    for (auto [name, h] : {std::pair{"r2", heap}, std::pair{"r3", heap2}}) {
        const auto& c = remote_of(name)->counters();
        EXPECT_EQ(counter(c.bounced), examined + uint64_t(h)) << name;
        EXPECT_EQ(counter(c.zero_copy) + counter(c.bounced), examined + 2u * 8u * 40u) << name;
        EXPECT_GT(counter(c.indirect_sgl), 0u) << name;
        EXPECT_EQ(counter(c.timeouts), 0u) << name;
    }
    // The data really is in the other cluster's bdev: what goes in through r2 comes out of m2.
    std::vector<unsigned char> in(8 * kBlock), out(8 * kBlock);
    fill_pattern(in.data(), in.size(), 99);
    {
        TestDesc r2(env, "r2");
        ASSERT_TRUE(r2.write(in.data(), 100, 8).ok);
    }
    TestDesc m2(env, "m2", /*writable=*/false);
    ASSERT_EQ(m2.open_rc(), 0);
    ASSERT_TRUE(m2.read(out.data(), 100, 8).ok);
    EXPECT_EQ(in, out);
}

TEST(Remote, CreateChecksClustersAndBaseOwnership) {
    ModEnv env(three_clusters());
    ASSERT_EQ(create_malloc(env, "m2", 1024, 2), 0);
    std::string err;
    EXPECT_EQ(create_remote(env, "r", "m2", 2, 30000, &err), -EINVAL);  // same cluster
    EXPECT_NE(err.find("already owned by cluster 2"), std::string::npos) << err;
    EXPECT_EQ(create_remote(env, "r", "m2", 9, 30000, &err), -EINVAL);
    EXPECT_NE(err.find("not a data cluster"), std::string::npos) << err;
    EXPECT_EQ(create_remote(env, "r", "m2", 0, 30000, &err), -EINVAL);  // the control cluster
    EXPECT_EQ(create_remote(env, "r", "nope", 1, 30000, &err), -ENODEV);
    ASSERT_EQ(create_remote(env, "r", "m2", 1, 30000, &err), 0) << err;
    EXPECT_EQ(create_remote(env, "r2", "m2", 3, 30000, &err), -EPERM);  // claimed
    // Default placement: the data cluster that owns the fewest bdevs (here 3, then 1 or 3).
    ASSERT_EQ(create_malloc(env, "any", 1024, -1), 0);
    EXPECT_EQ(bdev_get_by_name("any")->cluster, 3);
    // A vbdev goes where its base is; asking for another cluster is refused.
    int rc = 0;
    env.run(env.ctl(), [&] {
        BdevClusterScope scope(1);
        DelayBdevOptions o;
        o.name = "d";
        o.base_bdev_name = "any";
        rc = delay_bdev_create(o, &err);
    });
    EXPECT_EQ(rc, -EXDEV);
    EXPECT_NE(err.find("owned by cluster 3"), std::string::npos) << err;
    env.run(env.ctl(), [&] {
        DelayBdevOptions o;
        o.name = "d";
        o.base_bdev_name = "any";
        rc = delay_bdev_create(o, &err);
    });
    ASSERT_EQ(rc, 0) << err;
    EXPECT_EQ(bdev_get_by_name("d")->cluster, 3);
}

TEST(Remote, TwoSlotRingQueuesInsteadOfDropping) {
    ModEnv env(three_clusters(), /*ring_slots=*/2);
    ASSERT_EQ(create_malloc(env, "m2", 8192, 2), 0);
    ASSERT_EQ(create_remote(env, "r2", "m2", 1), 0);
    int errors = 0, heap = 0;
    verify(env, env.data(0), "r2", 16, 30, 11, &errors, &heap);
    EXPECT_EQ(errors, 0);
    EXPECT_GT(env.rt().noc().stats(1).ring_full, 0u);
}

TEST(Remote, PeerThatDoesNotAnswerInTimeFailsTheIoAndItsLateAnswerIsCounted) {
    ModEnv env(three_clusters());
    ASSERT_EQ(create_malloc(env, "m2", 1024, 2), 0);
    int rc = -1;
    std::string err;
    env.run(env.ctl(), [&] {
        DelayBdevOptions o;
        o.name = "slow";
        o.base_bdev_name = "m2";
        o.avg_read_latency = o.p99_read_latency = 600'000;  // µs
        o.avg_write_latency = o.p99_write_latency = 600'000;
        rc = delay_bdev_create(o, &err);
    });
    ASSERT_EQ(rc, 0) << err;
    ASSERT_EQ(create_remote(env, "r", "slow", 1, /*timeout_ms=*/100), 0);
    // The examine reads time out too; their late answers come after the delay.
    settle(env);
    const auto& c = remote_of("r")->counters();
    for (int i = 0; i < 300 && counter(c.late_completions) < counter(c.timeouts); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const uint64_t before = counter(c.timeouts);
    EXPECT_EQ(counter(c.late_completions), before);
    TestDesc d(env, "r");
    ASSERT_EQ(d.open_rc(), 0);
    // A heap buffer (bounced): it fails at the first timeout.
    std::vector<unsigned char> heap(4096);
    auto t0 = std::chrono::steady_clock::now();
    IoResult r = d.read(heap.data(), 0, 8);
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.status, IoStatus::Timeout);
    EXPECT_LT(ms, 500);
    // An arena buffer (zero copy): the peer may still write into it, so it waits for the
    // abort's answer one more timeout; the delay bdev holds it past that.
    Buffer b = env.rt().noc().buffers(1).get(BufClass::Small);
    ASSERT_TRUE(b);
    t0 = std::chrono::steady_clock::now();
    r = d.read(b.data, 0, 8);
    ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_EQ(r.status, IoStatus::Timeout);
    EXPECT_GE(ms, 190);
    EXPECT_EQ(counter(c.timeouts), before + 2);
    EXPECT_EQ(counter(c.aborts_sent), before + 2);
    // Both answers come after the delay: their slots and buffers are freed then.
    for (int i = 0; i < 300 && counter(c.late_completions) < before + 2; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(counter(c.late_completions), before + 2);
    env.rt().noc().buffers(1).put(b);
    d.close();
}

}  // namespace
}  // namespace nocstor::test
