// The cache vbdev: its on-disk entries, the set (hash, LRU, eviction), every mode verified
// against a model over malloc bdevs with owner threads apart from the submitting one, dirty
// lines kept across a stop and re-attached by create and by examine, and what it refuses.
#include "modules/cache/cache.h"
#include "burst.h"
#include "mod_test_env.h"
#include "modules/cache/cache_format.h"
#include "modules/cache/cache_set.h"
#include "modules/error.h"
#include "modules/passthru.h"
#include "raid_test_util.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <map>
#include <random>
#include <thread>

using namespace nocstor;
using namespace nocstor::test;
using namespace nocstor::cache;

namespace {

constexpr uint32_t kBs = 512;
constexpr uint64_t kCoreBlocks = 16384;  // 8 MiB
constexpr uint64_t kCacheBlocks = 8192;  // 4 MiB: ~500 lines of 4 KiB, so lines get evicted

int create_cache(ModEnv& env, const std::string& mode, const std::string& cache,
                 const std::string& core, uint32_t line_kb = 4, std::string* why = nullptr,
                 bool format = false) {
    int rc = -1;
    env.run_async(env.ctl(), [&](auto done) {
        CacheCreateOptions o;
        o.name = "c0";
        o.mode = mode;
        o.cache_line_size = line_kb;
        o.cache_bdev_name = cache;
        o.core_bdev_name = core;
        o.format = format;
        cache_create(o, [&, done](int r, std::string err) {
            rc = r;
            if (why) *why = err;
            done();
        });
    });
    return rc;
}

int delete_cache(ModEnv& env, const std::string& name = "c0") {
    int rc = -1;
    env.run_async(
        env.ctl(),
        [&](auto done) {
            cache_delete(name, [&, done](int r, std::string) {
                rc = r;
                done();
            });
        },
        60000);
    return rc;
}

void set_cleaning(ModEnv& env, const std::string& policy, uint32_t stale_ms = 0, uint32_t high = 0,
                  uint32_t low = 0) {
    env.run_async(env.ctl(), [&](auto done) {
        CleaningOptions o;
        o.policy = policy;
        o.stale_ms = stale_ms;
        o.dirty_high_pct = high;
        o.dirty_low_pct = low;
        cache_set_cleaning("c0", o, [done](int rc, std::string err) {
            EXPECT_EQ(rc, 0) << err;
            done();
        });
    });
}

uint64_t dirty_lines(ModEnv& env) {
    nlohmann::json st;
    env.run(env.ctl(), [&] { EXPECT_EQ(cache_flush_status("c0", &st), 0); });
    return st.value("dirty_lines", uint64_t(0));
}

// Removes the vbdev as a shutdown does: no write-back, the superblock marked clean.
void stop_cache(ModEnv& env) {
    env.run_async(env.ctl(), [&](auto done) {
        bdev_unregister(bdev_get_by_name("c0"), [done](int) { done(); });
    });
}

struct Model {
    std::vector<uint8_t> data;
    std::mt19937_64 rng;
    uint64_t version = 1;
    explicit Model(uint64_t blocks, uint64_t seed) : data(blocks * kBs, 0), rng(seed) {}
};

// Sequential random reads and writes of 1..24 blocks (so across lines), each read checked.
void random_io(TestDesc& d, Model& m, int ops) {
    const uint64_t blocks = m.data.size() / kBs;
    AlignedBuf buf(24 * kBs);
    for (int i = 0; i < ops; ++i) {
        const uint64_t n = 1 + m.rng() % 24;
        const uint64_t off = m.rng() % (blocks - n);
        if (m.rng() % 2) {
            fill_pattern(buf.p, n * kBs, m.version++);
            ASSERT_TRUE(d.write(buf.p, off, n).ok) << "write " << off << "+" << n;
            std::memcpy(m.data.data() + off * kBs, buf.p, n * kBs);
        } else {
            ASSERT_TRUE(d.read(buf.p, off, n).ok) << "read " << off << "+" << n;
            ASSERT_EQ(std::memcmp(buf.p, m.data.data() + off * kBs, n * kBs), 0)
                << "read " << off << "+" << n << " after " << i << " operations";
        }
    }
}

// 64 writes at once to distinct blocks (several per line: they queue on the line's lock).
void concurrent_writes(ModEnv& env, TestDesc& d, Model& m, int batches) {
    const uint64_t blocks = m.data.size() / kBs;
    constexpr int kN = 64;
    AlignedBuf buf(kN * kBs);
    for (int b = 0; b < batches; ++b) {
        std::vector<uint64_t> lbas;
        const uint64_t base = m.rng() % (blocks - 512);
        while (lbas.size() < kN) {
            const uint64_t l = base + m.rng() % 512;
            if (std::find(lbas.begin(), lbas.end(), l) == lbas.end()) lbas.push_back(l);
        }
        for (int i = 0; i < kN; ++i) fill_pattern(buf.p + i * kBs, kBs, m.version++);
        std::atomic<int> left{kN}, failed{0};
        std::vector<iovec> iov(kN);
        env.run(env.data(0), [&] {
            for (int i = 0; i < kN; ++i) {
                iov[i] = {buf.p + i * kBs, kBs};
                const int rc = bdev_writev(
                    d.desc(), d.ch(), &iov[i], 1, lbas[i], 1,
                    [](BdevIo* io, bool ok, void* arg) {
                        auto* p =
                            static_cast<std::pair<std::atomic<int>*, std::atomic<int>*>*>(arg);
                        if (!ok) p->second->fetch_add(1);
                        p->first->fetch_sub(1);
                        bdev_free_io(io);
                        delete p;
                    },
                    new std::pair<std::atomic<int>*, std::atomic<int>*>(&left, &failed));
                if (rc) {
                    failed.fetch_add(1);
                    left.fetch_sub(1);
                }
            }
        });
        ASSERT_TRUE(wait_until([&] { return left.load() == 0; }));
        ASSERT_EQ(failed.load(), 0);
        for (int i = 0; i < kN; ++i)
            std::memcpy(m.data.data() + lbas[i] * kBs, buf.p + i * kBs, kBs);
    }
}

void expect_equal(const std::vector<uint8_t>& got, const Model& m, const char* what) {
    ASSERT_EQ(got.size(), m.data.size());
    for (size_t off = 0; off < got.size(); off += kBs)
        ASSERT_EQ(std::memcmp(got.data() + off, m.data.data() + off, kBs), 0)
            << what << ": block " << off / kBs << " differs";
}

nlohmann::json stats(ModEnv& env) {
    nlohmann::json s;
    env.run(env.ctl(), [&] { EXPECT_EQ(cache_get_stats("c0", &s), 0); });
    return s;
}

}  // namespace

TEST(CacheFormat, EntriesAndSuperblockRoundTripAndDamageIsSeen) {
    Entry e{1234, LineMask::range(0, 8), LineMask::range(2, 3), 77};
    uint8_t buf[kEntryBytes];
    entry_encode(e, buf);
    Entry d;
    ASSERT_TRUE(entry_decode(buf, &d));
    EXPECT_EQ(d.core_line, 1234u);
    EXPECT_TRUE(d.valid == e.valid);
    EXPECT_TRUE(d.dirty == e.dirty);
    EXPECT_EQ(d.gen, 77u);
    buf[3] ^= 1;
    EXPECT_FALSE(entry_decode(buf, &d));
    std::memset(buf, 0, sizeof buf);  // a formatted table reads as free lines
    ASSERT_TRUE(entry_decode(buf, &d));
    EXPECT_EQ(d.core_line, kNoCoreLine);
    // Dirty but not valid cannot be: refused.
    entry_encode(Entry{5, LineMask::range(0, 1), LineMask::range(1, 1), 1}, buf);
    EXPECT_FALSE(entry_decode(buf, &d));
    EXPECT_EQ(LineMask::range(60, 10).count(), 10u);
    EXPECT_TRUE(LineMask::range(60, 10).test(69));

    Superblock sb;
    std::string why;
    ASSERT_TRUE(plan_layout(64ull << 20, 512, 8192, &sb, &why)) << why;
    sb.name = "c0";
    sb.core_name = "core";
    sb.core_blocks = 1 << 20;
    sb.mode = Mode::WriteBack;
    sb.seq = 9;
    std::vector<uint8_t> raw(kSbBytes);
    sb_encode(sb, raw.data());
    Superblock back;
    ASSERT_TRUE(sb_decode(raw.data(), &back, &why)) << why;
    EXPECT_EQ(back.name, "c0");
    EXPECT_EQ(back.core_name, "core");
    EXPECT_EQ(back.line_count, sb.line_count);
    EXPECT_EQ(back.mode, Mode::WriteBack);
    EXPECT_GE(back.data_offset, kTableOffset + back.line_count * kEntryBytes);
    EXPECT_LE(back.data_offset + back.line_count * back.line_size, 64ull << 20);
    raw[300] ^= 1;
    EXPECT_FALSE(sb_decode(raw.data(), &back, &why));
    EXPECT_FALSE(plan_layout(1 << 20, 512, 4096, &sb, &why));
    EXPECT_FALSE(plan_layout(64ull << 20, 512, 3000, &sb, &why));
    EXPECT_FALSE(plan_layout(64ull << 20, 4096, 2048, &sb, &why));
}

TEST(CacheSetTest, LookupLruAndEvictionAgainstAModel) {
    CacheSet set(0, 0, 256, 8);
    set.finish_load();
    std::map<uint64_t, uint32_t> model;  // core line -> line
    std::mt19937_64 rng(5);
    for (int i = 0; i < 20000; ++i) {
        const uint64_t core = rng() % 1000;
        const uint32_t l = set.lookup(core);
        if (model.count(core)) {
            ASSERT_EQ(l, model[core]) << "core line " << core;
            set.touch(l);
            continue;
        }
        ASSERT_EQ(l, CacheSet::kNone);
        uint32_t line = set.take_free();
        if (line == CacheSet::kNone) {
            line = set.evict([](uint64_t c) { return c % 7 == 0; });  // "locked" core lines
            ASSERT_NE(line, CacheSet::kNone);
            for (auto it = model.begin(); it != model.end(); ++it)
                if (it->second == line) {
                    ASSERT_NE(it->first % 7, 0u) << "evicted a busy line";
                    model.erase(it);
                    break;
                }
        }
        set.map(line, core);
        model[core] = line;
        // Some lines are dirty (at most 64): never evicted.
        if (rng() % 10 == 0 && set.dirty_lines() < 64) {
            Entry& e = set.entry(line);
            e.valid = LineMask::range(0, 1);
            e.dirty = e.valid;
            set.dirty_changed(LineMask{}, e.dirty);
        }
    }
    for (auto& [core, line] : model) {
        ASSERT_EQ(set.lookup(core), line);
        if (set.entry(line).dirty.any()) continue;
    }
    EXPECT_EQ(set.mapped_lines(), model.size());
}

class CacheModes : public ::testing::TestWithParam<const char*> {};

TEST_P(CacheModes, EveryReadMatchesAModelAndTheCoreHasEverythingAfterDelete) {
    ModEnv env(2);  // the owner of a line is often not the submitting thread
    make_malloc(env, "fast", kCacheBlocks);
    make_malloc(env, "slow", kCoreBlocks);
    ASSERT_EQ(create_cache(env, GetParam(), "fast", "slow"), 0);
    Model m(kCoreBlocks, 42);
    {
        TestDesc d(env, "c0");
        ASSERT_EQ(d.open_rc(), 0);
        random_io(d, m, 3000);
        concurrent_writes(env, d, m, 20);
        random_io(d, m, 1500);
        expect_equal(read_all(env, "c0"), m, "through the cache");
    }
    nlohmann::json s = stats(env);
    const std::string mode = GetParam();
    if (mode == "wb" || mode == "wt") {  // wo fills no line on reads: all end dirty
        EXPECT_GT(s["lines"]["evicted"].get<uint64_t>(), 0u) << s.dump();
    }
    if (mode != "pt" && mode != "wo") {
        EXPECT_GT(s["requests"]["rd_hits"]["count"].get<uint64_t>(), 0u) << s.dump();
    }
    if (mode == "pt") {
        EXPECT_EQ(s["usage"]["occupancy"]["count"].get<uint64_t>(), 0u) << s.dump();
    }
    ASSERT_EQ(delete_cache(env), 0);
    expect_equal(read_all(env, "slow"), m, "the core after delete");
}

INSTANTIATE_TEST_SUITE_P(AllModes, CacheModes,
                         ::testing::Values("wt", "wb", "wa", "pt", "wi", "wo"));

TEST(Cache, AStopKeepsDirtyLinesAndCreateReattachesThemWithoutFormatting) {
    ModEnv env(2);
    make_malloc(env, "fast", kCacheBlocks);
    make_malloc(env, "slow", kCoreBlocks);
    ASSERT_EQ(create_cache(env, "wb", "fast", "slow", 8), 0);
    set_cleaning(env, "nop");  // the dirty lines stay until asked
    Model m(kCoreBlocks, 7);
    {
        TestDesc d(env, "c0");
        random_io(d, m, 1500);
    }
    uint64_t dirty = 0;
    env.run(env.ctl(), [&] {
        nlohmann::json st;
        ASSERT_EQ(cache_flush_status("c0", &st), 0);
        dirty = st["dirty_lines"];
    });
    ASSERT_GT(dirty, 0u);
    stop_cache(env);
    // The core alone lacks the dirty lines.
    const std::vector<uint8_t> core = read_all(env, "slow");
    EXPECT_NE(std::memcmp(core.data(), m.data.data(), core.size()), 0);
    // Another core may not take this cache device without format: true.
    make_malloc(env, "other", kCoreBlocks);
    std::string why;
    EXPECT_EQ(create_cache(env, "wb", "fast", "other", 4, &why), -EEXIST);
    EXPECT_NE(why.find("holds the cache of core 'slow'"), std::string::npos) << why;
    // The same core: re-attached (the line size given is ignored: the device's wins), every
    // dirty line there.
    ASSERT_EQ(create_cache(env, "wt", "fast", "slow", 4, &why), 0) << why;
    expect_equal(read_all(env, "c0"), m, "re-attached");
    env.run(env.ctl(), [&] {
        nlohmann::json st;
        ASSERT_EQ(cache_flush_status("c0", &st), 0);
        EXPECT_EQ(st["dirty_lines"].get<uint64_t>(), dirty);
        const nlohmann::json list = cache_get_bdevs("slow");
        ASSERT_EQ(list.size(), 1u);
        EXPECT_EQ(list[0]["cache"]["mode"], "wt");
        EXPECT_EQ(list[0]["cache"]["cache_line_size"], 8);
    });
    // bdev_ocf_flush_start writes them back; the core alone is then complete.
    env.run(env.ctl(), [&] {
        std::string err;
        ASSERT_EQ(cache_flush_start("c0", &err), 0) << err;
    });
    ASSERT_TRUE(wait_until([&] {
        nlohmann::json st;
        env.run(env.ctl(), [&] { cache_flush_status("c0", &st); });
        return st["in_progress"] == false && st["dirty_lines"] == 0;
    }));
    expect_equal(read_all(env, "slow"), m, "the core after a flush");
    ASSERT_EQ(delete_cache(env), 0);
    // delete erased the superblock: the device formats without complaint now.
    EXPECT_EQ(create_cache(env, "wb", "fast", "other", 4, &why), 0) << why;
}

TEST(Cache, ExamineReattachesTheCacheWhenBothBdevsComeBackInAnyOrder) {
    ModEnv env(1);
    make_malloc(env, "fast_disk", kCacheBlocks);
    make_malloc(env, "slow_disk", kCoreBlocks);
    auto plug = [&](const std::string& disk, const std::string& name) {
        env.run(env.ctl(), [&] {
            std::string err;
            ASSERT_EQ(passthru_bdev_create({disk, name, ""}, &err), 0) << err;
        });
    };
    auto unplug = [&](const std::string& name) {
        env.run_async(env.ctl(),
                      [&](auto done) { passthru_bdev_delete(name, [done](int) { done(); }); });
    };
    auto settle = [&] { env.run_async(env.ctl(), [](auto done) { bdev_wait_for_examine(done); }); };
    plug("fast_disk", "fast");
    plug("slow_disk", "slow");
    ASSERT_EQ(create_cache(env, "wb", "fast", "slow"), 0);
    set_cleaning(env, "nop");
    Model m(kCoreBlocks, 11);
    {
        TestDesc d(env, "c0");
        random_io(d, m, 800);
    }
    // The core disappears: the cache goes with it; its device keeps the lines.
    unplug("slow");
    ASSERT_TRUE(wait_until([&] { return bdev_get_by_name("c0") == nullptr; }));
    unplug("fast");
    // Cache device first, then the core.
    plug("fast_disk", "fast");
    settle();
    EXPECT_EQ(bdev_get_by_name("c0"), nullptr);
    plug("slow_disk", "slow");
    settle();
    ASSERT_TRUE(wait_until([&] { return bdev_get_by_name("c0") != nullptr; }));
    expect_equal(read_all(env, "c0"), m, "after examine (cache first)");
    // Now the other order.
    stop_cache(env);
    unplug("fast");
    unplug("slow");
    plug("slow_disk", "slow");
    settle();
    plug("fast_disk", "fast");
    settle();
    ASSERT_TRUE(wait_until([&] { return bdev_get_by_name("c0") != nullptr; }));
    expect_equal(read_all(env, "c0"), m, "after examine (core first)");
    // A configuration replayed at start-up still calls create: the re-attached cache is kept
    // (same devices), a different cache device for the same name is refused.
    std::string why;
    EXPECT_EQ(create_cache(env, "wt", "fast", "slow", 4, &why), 0) << why;
    EXPECT_EQ(create_cache(env, "wb", "slow", "fast", 4, &why), -EEXIST) << why;
    env.run_async(env.ctl(), [&](auto done) {
        cache_set_mode("c0", "wb", [done](int, std::string) { done(); });
    });
    expect_equal(read_all(env, "c0"), m, "after create on the re-attached cache");
    ASSERT_EQ(delete_cache(env), 0);
    expect_equal(read_all(env, "slow"), m, "the core after delete");
}

TEST(Cache, TheBackgroundCleanerWritesBackStaleLinesAndDrainsATooDirtySet) {
    ModEnv env(2);
    make_malloc(env, "fast", kCacheBlocks);
    make_malloc(env, "slow", kCoreBlocks);
    ASSERT_EQ(create_cache(env, "wb", "fast", "slow"), 0);
    set_cleaning(env, "nop");
    Model m(kCoreBlocks, 3);
    {
        TestDesc d(env, "c0");
        random_io(d, m, 2000);
    }
    const uint64_t dirty = dirty_lines(env);
    ASSERT_GT(dirty, 0u);
    // A set above 10% dirty is drained to 5% whatever the age of its lines.
    set_cleaning(env, "alru", 3'600'000, 10, 5);
    ASSERT_TRUE(wait_until([&] { return dirty_lines(env) < dirty; }, 10000));
    // Lines unused for 20 ms are all written back.
    set_cleaning(env, "alru", 20);
    ASSERT_TRUE(wait_until([&] { return dirty_lines(env) == 0; }, 10000));
    nlohmann::json s = stats(env);
    EXPECT_GT(s["lines"]["cleaned"].get<uint64_t>(), 0u);
    stop_cache(env);
    expect_equal(read_all(env, "slow"), m, "the core after background cleaning");
}

TEST(Cache, SequentialStreamsGoAroundTheCacheWithCutOffAlways) {
    ModEnv env(1);
    make_malloc(env, "fast", kCacheBlocks);
    make_malloc(env, "slow", kCoreBlocks);
    ASSERT_EQ(create_cache(env, "wb", "fast", "slow"), 0);
    env.run_async(env.ctl(), [&](auto done) {
        cache_set_seqcutoff("c0", "always", 64, 1, [done](int rc, std::string err) {
            EXPECT_EQ(rc, 0) << err;
            done();
        });
    });
    Model m(kCoreBlocks, 5);
    {
        TestDesc d(env, "c0");
        AlignedBuf buf(256 * kBs);
        for (uint64_t off = 0; off < 4096; off += 256) {  // 2 MiB in 128 KiB writes
            fill_pattern(buf.p, buf.size, off + 1);
            ASSERT_TRUE(d.write(buf.p, off, 256).ok);
            std::memcpy(m.data.data() + off * kBs, buf.p, buf.size);
        }
        random_io(d, m, 500);  // random I/O is still cached
    }
    nlohmann::json s = stats(env);
    EXPECT_GT(s["requests"]["wr_pt"]["count"].get<uint64_t>(), 400u) << s.dump();
    EXPECT_GT(s["requests"]["wr_full_misses"]["count"].get<uint64_t>(), 0u) << s.dump();
    expect_equal(read_all(env, "c0"), m, "through the cache");
    nlohmann::json list;
    env.run(env.ctl(), [&] { list = cache_get_bdevs("c0"); });
    EXPECT_EQ(list[0]["cache"]["seqcutoff"]["policy"], "always");
    EXPECT_EQ(list[0]["cache"]["seqcutoff"]["threshold_kb"], 64);
    ASSERT_EQ(delete_cache(env), 0);
    expect_equal(read_all(env, "slow"), m, "the core after delete");
}

TEST(Cache, NhitPromotionGivesALineOnlyOnTheNthMiss) {
    ModEnv env(1);
    make_malloc(env, "fast", kCacheBlocks);
    make_malloc(env, "slow", kCoreBlocks);
    ASSERT_EQ(create_cache(env, "wt", "fast", "slow"), 0);
    env.run_async(env.ctl(), [&](auto done) {
        cache_set_promotion("c0", "nhit", 3, [done](int rc, std::string err) {
            EXPECT_EQ(rc, 0) << err;
            done();
        });
    });
    // Examine of the new bdev (other modules read its first blocks) may have filled lines.
    env.run_async(env.ctl(), [](auto done) { bdev_wait_for_examine(done); });
    const uint64_t base = stats(env)["usage"]["occupancy"]["count"].get<uint64_t>();
    auto occupancy = [&] {
        return stats(env)["usage"]["occupancy"]["count"].get<uint64_t>() - base;
    };
    TestDesc d(env, "c0");
    AlignedBuf buf(8 * kBs);
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(d.read(buf.p, 800, 8).ok);
    EXPECT_EQ(occupancy(), 0u);  // two misses: not yet
    ASSERT_TRUE(d.read(buf.p, 800, 8).ok);
    EXPECT_EQ(occupancy(), 1u);  // the third gets the line
    ASSERT_TRUE(d.read(buf.p, 800, 8).ok);
    EXPECT_GT(stats(env)["requests"]["rd_hits"]["count"].get<uint64_t>(), 0u);
    // Writes in wt mode follow the same rule (the first two go to the core only).
    Model m(kCoreBlocks, 9);
    fill_pattern(buf.p, buf.size, 77);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(d.write(buf.p, 1600, 8).ok);
    EXPECT_EQ(occupancy(), 2u);
    AlignedBuf back(8 * kBs);
    ASSERT_TRUE(d.read(back.p, 1600, 8).ok);
    EXPECT_EQ(std::memcmp(back.p, buf.p, buf.size), 0);
    nlohmann::json list;
    env.run(env.ctl(), [&] { list = cache_get_bdevs("c0"); });
    EXPECT_EQ(list[0]["cache"]["promotion"]["policy"], "nhit");
    EXPECT_EQ(list[0]["cache"]["promotion"]["hits"], 3);
}

void inject(ModEnv& env, const std::string& io_type, uint32_t num) {
    env.run(env.ctl(), [&] {
        ErrorInjectOptions o;
        o.name = "EE_fast";
        o.io_type = io_type;
        o.error_type = "failure";
        o.num = num;
        std::string err;
        ASSERT_EQ(error_bdev_inject(o, &err), 0) << err;
    });
}

struct FailingCache {
    ModEnv env{2};
    Model m{kCoreBlocks, 21};
    FailingCache() {
        make_malloc(env, "fast", kCacheBlocks);
        make_malloc(env, "slow", kCoreBlocks);
        env.run(env.ctl(), [&] {
            std::string err;
            ASSERT_EQ(error_bdev_create({"fast", ""}, &err), 0) << err;
        });
        EXPECT_EQ(create_cache(env, "wb", "EE_fast", "slow"), 0);
        set_cleaning(env, "nop");
    }
    nlohmann::json lines() { return stats(env)["lines"]; }
};

// One cache write fails (a write-back write into a fresh line): the write goes to the core
// instead and succeeds, the cache turns pass-through for good, writes its dirty lines back, and
// from then on serves only dirty blocks (clean copies come from the core).
TEST(Cache, AFailedCacheWriteTurnsTheCachePassThroughWithoutLosingAWrite) {
    FailingCache f;
    TestDesc d(f.env, "c0");
    // Dirty lines in the first half of the core, and most lines still free.
    Model half(kCoreBlocks / 2, 21);
    random_io(d, half, 60);
    std::copy(half.data.begin(), half.data.end(), f.m.data.begin());
    ASSERT_GT(dirty_lines(f.env), 0u);
    inject(f.env, "write", 1);
    AlignedBuf buf(8 * kBs);
    fill_pattern(buf.p, buf.size, 999);
    const uint64_t fresh = kCoreBlocks / 2 + 64;  // a line nothing touched: a free line for it
    ASSERT_TRUE(d.write(buf.p, fresh, 8).ok);
    std::memcpy(f.m.data.data() + fresh * kBs, buf.p, buf.size);
    EXPECT_EQ(f.lines()["cache_device_failed"], true);
    random_io(d, f.m, 1000);
    expect_equal(read_all(f.env, "c0"), f.m, "through the failed cache");
    ASSERT_TRUE(wait_until([&] { return dirty_lines(f.env) == 0; }, 20000));
    EXPECT_EQ(f.lines()["lost_dirty"], 0);
    d.close();
    expect_equal(read_all(f.env, "slow"), f.m, "the core after the write-back");
    // A restart trusts only dirty blocks (there are none left) and runs normally again.
    stop_cache(f.env);
    std::string why;
    ASSERT_EQ(create_cache(f.env, "wb", "EE_fast", "slow", 4, &why), 0) << why;
    EXPECT_EQ(f.lines()["cache_device_failed"], false);
    expect_equal(read_all(f.env, "c0"), f.m, "re-attached");
}

// The cache device stops reading: dirty data that only it holds is reported lost and reads of
// it fail; nothing stale is ever returned, and clean data comes from the core.
TEST(Cache, ACacheDeviceThatNoLongerReadsFailsItsDirtyBlocksAndServesNothingStale) {
    FailingCache f;
    TestDesc d(f.env, "c0");
    random_io(d, f.m, 800);
    const uint64_t dirty = dirty_lines(f.env);
    ASSERT_GT(dirty, 0u);
    inject(f.env, "read", 1000000);
    AlignedBuf buf(kBs);
    uint64_t ok = 0, failed = 0;
    for (uint64_t lba = 0; lba < kCoreBlocks; lba += 7) {
        const IoResult r = d.read(buf.p, lba, 1);
        if (!r.ok) {
            ++failed;
            continue;
        }
        ++ok;
        ASSERT_EQ(std::memcmp(buf.p, f.m.data.data() + lba * kBs, kBs), 0) << "block " << lba;
    }
    EXPECT_GT(ok, 0u);
    EXPECT_GT(failed, 0u);  // dirty blocks whose only copy does not read
    EXPECT_EQ(f.lines()["cache_device_failed"], true);
    ASSERT_TRUE(wait_until([&] { return f.lines()["lost_dirty"].get<uint64_t>() > 0; }, 20000));
    EXPECT_LE(f.lines()["lost_dirty"].get<uint64_t>(), dirty);
}

TEST(Cache, UnmapIsPassedToTheCore) {
    ModEnv env(2);
    make_malloc(env, "fast", kCacheBlocks);
    make_malloc(env, "slow", kCoreBlocks);
    ASSERT_EQ(create_cache(env, "wt", "fast", "slow"), 0);
    const uint64_t first = 800, n = 96;  // 12 lines of 4 KiB, not line-aligned at the ends
    AlignedBuf data(n * 512);
    fill_pattern(data.p, data.size, 5);
    {
        TestDesc d(env, "c0");
        ASSERT_TRUE(d.bdev()->io_type_supported(IoType::Unmap));
        ASSERT_TRUE(d.write(data.p, first, n).ok);
        const IoResult u = d.io(IoType::Unmap, nullptr, 0, first, n);
        ASSERT_TRUE(u.ok) << io_status_name(u.status);
    }
    ASSERT_EQ(delete_cache(env), 0);
    const std::vector<uint8_t> core = read_all(env, "slow");
    EXPECT_EQ(std::vector<uint8_t>(core.begin() + first * 512, core.begin() + (first + n) * 512),
              std::vector<uint8_t>(n * 512, 0));
}

TEST(Cache, RefusesWhatCannotWork) {
    ModEnv env(1);
    make_malloc(env, "fast", kCacheBlocks);
    make_malloc(env, "slow", kCoreBlocks);
    make_malloc(env, "tiny", 2048);
    make_malloc(env, "big_blocks", 2048, 4096);
    std::string why;
    EXPECT_EQ(create_cache(env, "fast", "fast", "slow", 4, &why), -EINVAL);  // mode
    EXPECT_EQ(create_cache(env, "wb", "nope", "slow", 4, &why), -ENODEV);
    EXPECT_EQ(create_cache(env, "wb", "fast", "nope", 4, &why), -ENODEV);
    EXPECT_EQ(create_cache(env, "wb", "fast", "fast", 4, &why), -EINVAL);
    EXPECT_EQ(create_cache(env, "wb", "tiny", "slow", 4, &why), -EINVAL);
    EXPECT_NE(why.find("too small"), std::string::npos) << why;
    EXPECT_EQ(create_cache(env, "wb", "big_blocks", "slow", 4, &why), -EINVAL);
    EXPECT_NE(why.find("block sizes differ"), std::string::npos) << why;
    ASSERT_EQ(create_cache(env, "wb", "fast", "slow", 4, &why), 0) << why;
    make_malloc(env, "fast2", kCacheBlocks);
    EXPECT_EQ(create_cache(env, "wb", "fast2", "slow", 4, &why), -EEXIST);  // name taken
    env.run_async(env.ctl(), [&](auto done) {
        CacheCreateOptions o{"c1", "wb", 4, "fast2", "slow", false};
        cache_create(o, [&, done](int rc, std::string err) {
            EXPECT_EQ(rc, -EPERM) << err;  // the core is claimed by c0
            done();
        });
    });
    EXPECT_EQ(delete_cache(env, "nope"), -ENODEV);
}
