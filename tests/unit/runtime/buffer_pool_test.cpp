#include "runtime/buffer_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "runtime/noc.h"
#include "util/tick.h"

namespace nocstor {
namespace {

std::unique_ptr<NocFabric> make_fabric(uint32_t small, uint32_t large) {
    NocConfig cfg;
    cfg.clusters = 2;
    cfg.ring_slots = 16;
    cfg.buffers.small_count = small;
    cfg.buffers.large_count = large;
    std::string err;
    auto f = NocFabric::create(cfg, &err);
    EXPECT_TRUE(f) << err;
    return f;
}

// Partitions: each cluster's pool has its own size and free list; draining one leaves the
// others untouched, and a wrong number of partitions is refused.
TEST(BufferPool, EachClusterHasItsOwnPartitionOfTheArena) {
    NocConfig cfg;
    cfg.clusters = 2;
    cfg.ring_slots = 16;
    cfg.cluster_buffers = {{.small_count = 4, .large_count = 1},
                           {.small_count = 8, .large_count = 2}};
    std::string err;
    auto f = NocFabric::create(cfg, &err);
    ASSERT_TRUE(f) << err;
    EXPECT_EQ(f->buffers(0).count(BufClass::Small), 4u);
    EXPECT_EQ(f->buffers(1).count(BufClass::Small), 8u);
    EXPECT_EQ(f->buffers(1).count(BufClass::Large), 2u);
    std::vector<Buffer> taken;
    while (Buffer b = f->buffers(0).get(BufClass::Small)) taken.push_back(b);
    EXPECT_EQ(taken.size(), 4u);
    Buffer other = f->buffers(1).get(BufClass::Small);
    ASSERT_TRUE(other);
    for (const Buffer& b : taken) {
        EXPECT_FALSE(f->buffers(1).owns(b.offset));
        EXPECT_GE(b.data, f->arena());
        EXPECT_LT(b.data + b.size, f->arena() + f->arena_size() + 1);
        EXPECT_TRUE(b.offset + b.size <= other.offset || other.offset + other.size <= b.offset);
        f->buffers(0).put(b);
    }
    f->buffers(1).put(other);

    cfg.cluster_buffers.pop_back();
    EXPECT_FALSE(NocFabric::create(cfg, &err));
    EXPECT_NE(err.find("partitions"), std::string::npos) << err;
}

TEST(BufferPool, BuffersAreAlignedDistinctAndInsideTheArena) {
    auto fabric = make_fabric(16, 4);
    BufferPool& pool = fabric->buffers(0);
    EXPECT_EQ(pool.buffer_size(BufClass::Small), 8192u);
    EXPECT_EQ(pool.buffer_size(BufClass::Large), 132u * 1024);
    std::set<uint64_t> offsets;
    std::vector<Buffer> held;
    for (auto cls : {BufClass::Small, BufClass::Large}) {
        for (uint32_t i = 0; i < pool.count(cls); ++i) {
            Buffer b = pool.get(cls);
            ASSERT_TRUE(b);
            EXPECT_EQ(b.offset % 4096, 0u);
            EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 4096, 0u);
            EXPECT_LE(b.offset + b.size, fabric->arena_size());
            EXPECT_EQ(b.data, fabric->arena() + b.offset);
            EXPECT_TRUE(offsets.insert(b.offset).second);
            Buffer back = pool.from_offset(b.offset + b.size - 1);
            EXPECT_EQ(back.offset, b.offset);
            EXPECT_EQ(back.cls, cls);
            held.push_back(b);
        }
    }
    for (auto& b : held) pool.put(b);
}

TEST(BufferPool, ExhaustionReturnsEmptyAndRecoversAfterPuts) {
    auto fabric = make_fabric(40, 2);
    BufferPool& pool = fabric->buffers(0);
    BufferCache cache(pool);
    std::vector<Buffer> held;
    for (int i = 0; i < 40; ++i) {
        Buffer b = cache.get(BufClass::Small);
        ASSERT_TRUE(b) << i;
        held.push_back(b);
    }
    EXPECT_FALSE(cache.get(BufClass::Small));
    EXPECT_FALSE(pool.get(BufClass::Small));
    EXPECT_TRUE(cache.get(BufClass::Large));  // the other class is independent
    cache.put(held.back());
    held.pop_back();
    Buffer again = cache.get(BufClass::Small);
    EXPECT_TRUE(again);
    held.push_back(again);
    for (auto& b : held) cache.put(b);
    EXPECT_GT(cache.cached(BufClass::Small), 0u);
    cache.flush();
    EXPECT_EQ(cache.cached(BufClass::Small), 0u);
    EXPECT_EQ(pool.free_approx(BufClass::Small), 40u);
}

TEST(BufferPool, CacheDestructorReturnsBuffers) {
    auto fabric = make_fabric(64, 2);
    BufferPool& pool = fabric->buffers(0);
    {
        BufferCache cache(pool);
        Buffer b = cache.get(BufClass::Small);
        ASSERT_TRUE(b);
        EXPECT_LT(pool.free_approx(BufClass::Small), 64u);  // the cache took a batch
        cache.put(b);
    }
    EXPECT_EQ(pool.free_approx(BufClass::Small), 64u);
}

// Two threads get and put concurrently through their own caches; each buffer carries an owner
// tag in its first bytes that must be free (0) when handed out, so a double handout is caught.
TEST(BufferPool, ConcurrentGetPutNeverHandsOutABufferTwice) {
    auto fabric = make_fabric(64, 2);
    BufferPool& pool = fabric->buffers(0);
    std::atomic<uint64_t> double_handouts{0}, exhausted{0};
    uint64_t deadline = now_ns() + 3'000'000'000ull;
    auto worker = [&](uint64_t tag) {
        BufferCache cache(pool);
        std::vector<Buffer> held;
        for (int it = 0; it < 200'000 && now_ns() < deadline; ++it) {
            if (held.size() < 40 && (it % 3 != 2 || held.empty())) {
                Buffer b = cache.get(BufClass::Small);
                if (!b) {
                    exhausted.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                std::atomic_ref<uint64_t> owner(*reinterpret_cast<uint64_t*>(b.data));
                if (owner.exchange(tag) != 0) double_handouts.fetch_add(1);
                held.push_back(b);
            } else {
                Buffer b = held.back();
                held.pop_back();
                std::atomic_ref<uint64_t> owner(*reinterpret_cast<uint64_t*>(b.data));
                if (owner.exchange(0) != tag) double_handouts.fetch_add(1);
                // Alternate between the cache and the global list (a remote cluster's return).
                if (held.size() % 2)
                    cache.put(b);
                else
                    pool.put(b);
            }
        }
        for (auto& b : held) {
            std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(b.data)).store(0);
            cache.put(b);
        }
    };
    std::thread a(worker, 1), b(worker, 2);
    a.join();
    b.join();
    EXPECT_EQ(double_handouts.load(), 0u);
    EXPECT_EQ(pool.free_approx(BufClass::Small), 64u);  // nothing lost
}

struct Request {
    uint64_t id = 0;
    uint64_t owner = 0;
    char payload[48] = {};
};

TEST(ObjectPool, ExhaustionAndRecovery) {
    ObjectPool<Request> pool(10);
    ObjectCache<Request> cache(pool);
    std::set<Request*> seen;
    for (int i = 0; i < 10; ++i) {
        Request* r = cache.get();
        ASSERT_NE(r, nullptr);
        EXPECT_TRUE(seen.insert(r).second);
    }
    EXPECT_EQ(cache.get(), nullptr);
    EXPECT_EQ(pool.get(), nullptr);
    cache.put(*seen.begin());
    EXPECT_EQ(cache.get(), *seen.begin());
    for (Request* r : seen) cache.put(r);
    cache.flush();
    EXPECT_EQ(pool.free_approx(), 10u);
}

TEST(ObjectPool, ConcurrentGetPutNeverHandsOutTwice) {
    ObjectPool<Request> pool(32);
    std::atomic<uint64_t> errors{0};
    auto worker = [&](uint64_t tag) {
        ObjectCache<Request, 8> cache(pool);
        std::vector<Request*> held;
        for (int it = 0; it < 200'000; ++it) {
            if (held.size() < 20 && it % 3 != 2) {
                Request* r = cache.get();
                if (!r) continue;
                if (std::atomic_ref<uint64_t>(r->owner).exchange(tag) != 0) errors.fetch_add(1);
                held.push_back(r);
            } else if (!held.empty()) {
                Request* r = held.back();
                held.pop_back();
                if (std::atomic_ref<uint64_t>(r->owner).exchange(0) != tag) errors.fetch_add(1);
                if (it % 2)
                    cache.put(r);
                else
                    pool.put(r);
            }
        }
        for (Request* r : held) {
            std::atomic_ref<uint64_t>(r->owner).store(0);
            cache.put(r);
        }
    };
    std::thread a(worker, 1), b(worker, 2);
    a.join();
    b.join();
    EXPECT_EQ(errors.load(), 0u);
    EXPECT_EQ(pool.free_approx(), 32u);
}

}  // namespace
}  // namespace nocstor
