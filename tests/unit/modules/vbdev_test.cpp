// NoMemory retry, reset and hot-remove with I/O in flight, error injection.
#include "burst.h"
#include "modules/delay.h"
#include "modules/error.h"
#include "modules/malloc.h"
#include "modules/passthru.h"

#include <cstring>
#include <thread>

using namespace nocstor;
using namespace nocstor::test;
using namespace std::chrono_literals;

namespace {

void make_malloc(const std::string& name, uint64_t blocks, uint32_t boundary = 0) {
    MallocBdevOptions o;
    o.name = name;
    o.num_blocks = blocks;
    o.block_size = 512;
    o.optimal_io_boundary = boundary;
    std::string err;
    ASSERT_EQ(malloc_bdev_create(o, &err), 0) << err;
}

void make_delay(const std::string& base, const std::string& name, uint64_t us) {
    DelayBdevOptions o;
    o.base_bdev_name = base;
    o.name = name;
    o.avg_read_latency = o.p99_read_latency = o.avg_write_latency = o.p99_write_latency = us;
    std::string err;
    ASSERT_EQ(delay_bdev_create(o, &err), 0) << err;
}

int inject(const std::string& name, const std::string& io_type, const std::string& kind,
           uint32_t num, uint8_t sct = 0, uint8_t sc = 0, uint32_t percent = 100) {
    ErrorInjectOptions o;
    o.name = name;
    o.io_type = io_type;
    o.error_type = kind;
    o.num = num;
    o.sct = sct;
    o.sc = sc;
    o.percent = percent;
    std::string err;
    int rc = error_bdev_inject(o, &err);
    EXPECT_EQ(rc, 0) << err;
    return rc;
}

// Restores the default bdev_io pool size even when the test fails.
struct PoolSize {
    explicit PoolSize(uint32_t n) : old(bdev_io_pool_size()) { bdev_set_io_pool_size(n); }
    ~PoolSize() { bdev_set_io_pool_size(old); }
    uint32_t old;
};

}  // namespace

TEST(ModulesNoMem, TinyPoolQueuesAndRetries) {
    PoolSize pool(4);
    ModEnv env;
    env.run(env.ctl(), [] { make_malloc("m0", 4096, /*boundary*/ 16); });
    TestDesc d(env, "m0");
    ASSERT_EQ(d.open_rc(), 0);
    // 32 writes at once through a pool of 4: most wait for a bdev_io and go later.
    Burst w(d.desc(), d.ch(), IoType::Write, 32, 8);
    env.run(env.data(), [&] { w.start(); });
    ASSERT_TRUE(wait_until([&] { return w.all_done(); }));
    EXPECT_EQ(w.ok(), 32);
    EXPECT_GT(w.enomem(), 0);
    // One I/O split into 16 children (boundary 16, 256 blocks) with 3 bdev_ios to spare.
    AlignedBuf r(32 * 8 * 512), big(256 * 512);
    ASSERT_TRUE(d.read(r.p, 0, 256).ok);
    EXPECT_EQ(std::memcmp(r.p, w.data(), r.size), 0);
    fill_pattern(big.p, big.size, 9);
    ASSERT_TRUE(d.write(big.p, 1000, 256).ok);
    AlignedBuf r2(256 * 512);
    ASSERT_TRUE(d.read(r2.p, 1000, 256).ok);
    EXPECT_EQ(std::memcmp(r2.p, big.p, big.size), 0);
}

TEST(ModulesNoMem, ModuleNoMemoryIsRetriedByTheLayer) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        std::string err;
        ASSERT_EQ(error_bdev_create({"m0", ""}, &err), 0) << err;
        inject("EE_m0", "write", "nomem", 3);
    });
    TestDesc d(env, "EE_m0");
    AlignedBuf w(4096), r(4096);
    fill_pattern(w.p, w.size, 1);
    IoResult res = d.write(w.p, 10, 8);
    EXPECT_TRUE(res.ok);
    ASSERT_TRUE(d.read(r.p, 10, 8).ok);
    EXPECT_EQ(std::memcmp(r.p, w.p, w.size), 0);
    BdevStats st = get_stats(env, d.bdev());
    EXPECT_GE(st.nomem_retries, 3u);
    EXPECT_EQ(st.by_type[size_t(IoType::Write)].ops, 1u);
}

TEST(ModulesDelay, ResetAbortsHeldIoAndCompletes) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        make_delay("m0", "d0", 5'000'000);  // 5 s: only an abort ends these in time
    });
    TestDesc d(env, "d0");
    Burst b(d.desc(), d.ch(), IoType::Read, 8, 4);
    auto t0 = std::chrono::steady_clock::now();
    env.run(env.data(), [&] { b.start(); });
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(b.done(), 0);
    IoResult reset = d.io(IoType::Reset, nullptr, 0, 0, 0);
    EXPECT_EQ(reset.rc, 0);
    EXPECT_TRUE(reset.ok);
    ASSERT_TRUE(wait_until([&] { return b.all_done(); }, 2000));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    for (IoStatus s : b.statuses()) EXPECT_EQ(s, IoStatus::Aborted);
}

TEST(ModulesDelay, LatencyIsAppliedAndUpdatable) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        make_delay("m0", "d0", 20'000);
    });
    TestDesc d(env, "d0");
    AlignedBuf buf(512);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(d.read(buf.p, 0, 1).ok);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    std::string err;
    EXPECT_EQ(delay_bdev_update_latency("d0", "avg_read", 0, &err), 0) << err;
    EXPECT_EQ(delay_bdev_update_latency("d0", "p99_read", 0, &err), 0) << err;
    EXPECT_EQ(delay_bdev_update_latency("d0", "bogus", 0, &err), -EINVAL);
    EXPECT_EQ(delay_bdev_update_latency("nope", "avg_read", 0, &err), -ENODEV);
    t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(d.read(buf.p, 0, 1).ok);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 15ms);
}

namespace {
// A descriptor holder on the data thread that closes itself on BdevEvent::Remove once its I/O
// has drained, as every real user must.
struct Holder {
    BdevDesc* desc = nullptr;
    IoChannel* ch = nullptr;
    std::unique_ptr<Burst> burst;
    std::atomic<bool> removed{false}, closed{false};
    std::atomic<int> submit_after_remove_rc{1};
    Poller* poller = nullptr;

    void on_remove() {
        removed = true;
        iovec v{burst->data(), 512};
        submit_after_remove_rc = bdev_readv(desc, ch, &v, 1, 0, 1, nullptr, nullptr);
        // Close once the I/O in flight has completed.
        poller = Thread::current()->register_poller(
            "holder",
            [this] {
                if (!burst->all_done()) return 0;
                bdev_put_io_channel(ch);
                bdev_close(desc);
                closed = true;
                Thread::current()->unregister_poller(poller);
                return 1;
            },
            1000);
    }
};
}  // namespace

TEST(ModulesHotRemove, BaseRemovedWhileDelayHoldsIo) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        make_delay("m0", "d0", 200'000);
    });
    Holder h;
    env.run(env.data(), [&] {
        ASSERT_EQ(bdev_open(
                      "d0", true,
                      [&h](BdevEvent ev, Bdev*) {
                          if (ev == BdevEvent::Remove) h.on_remove();
                      },
                      &h.desc),
                  0);
        h.ch = bdev_get_io_channel(h.desc);
        h.burst = std::make_unique<Burst>(h.desc, h.ch, IoType::Write, 8, 2);
        h.burst->start();
    });
    std::this_thread::sleep_for(20ms);
    std::atomic<int> unregister_rc{1};
    env.run(env.ctl(),
            [&] { bdev_unregister(bdev_get_by_name("m0"), [&](int rc) { unregister_rc = rc; }); });
    ASSERT_TRUE(wait_until([&] { return unregister_rc.load() != 1; }, 5000));
    EXPECT_EQ(unregister_rc.load(), 0);
    EXPECT_TRUE(h.removed.load());
    EXPECT_TRUE(h.closed.load());
    EXPECT_EQ(h.submit_after_remove_rc.load(), -ENODEV);
    EXPECT_TRUE(h.burst->all_done());
    EXPECT_EQ(h.burst->ok(), 8);  // the writes reached m0 before it went away
    EXPECT_TRUE(bdev_list().empty());
}

TEST(ModulesError, NvmeStatusReachesCallerThroughAStack) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        std::string err;
        ASSERT_EQ(error_bdev_create({"m0", ""}, &err), 0) << err;
        ASSERT_EQ(passthru_bdev_create({"EE_m0", "pt", ""}, &err), 0) << err;
        inject("EE_m0", "read", "failure", 2, /*sct*/ 2, /*sc*/ 0x81);
    });
    TestDesc d(env, "pt");
    AlignedBuf buf(4096);
    for (int i = 0; i < 2; ++i) {
        IoResult r = d.read(buf.p, 0, 8);
        EXPECT_FALSE(r.ok);
        EXPECT_EQ(r.status, IoStatus::NvmeError);
        EXPECT_EQ(r.sct, 2);
        EXPECT_EQ(r.sc, 0x81);
    }
    EXPECT_TRUE(d.read(buf.p, 0, 8).ok);   // only 2 were injected
    EXPECT_TRUE(d.write(buf.p, 0, 8).ok);  // and only on reads
    inject("EE_m0", "all", "failure", 1);
    IoResult w = d.write(buf.p, 0, 8);
    EXPECT_FALSE(w.ok);
    EXPECT_EQ(w.status, IoStatus::Failed);
    BdevStats st = get_stats(env, d.bdev());
    EXPECT_EQ(st.by_type[size_t(IoType::Read)].errors, 2u);
    EXPECT_EQ(st.by_type[size_t(IoType::Write)].errors, 1u);
}

TEST(ModulesError, PercentAndClear) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        std::string err;
        ASSERT_EQ(error_bdev_create({"m0", ""}, &err), 0) << err;
        inject("EE_m0", "read", "failure", 100000, 0, 0, 30);
    });
    TestDesc d(env, "EE_m0");
    AlignedBuf buf(512);
    int failed = 0;
    for (int i = 0; i < 200; ++i) failed += d.read(buf.p, uint64_t(i), 1).ok ? 0 : 1;
    EXPECT_GT(failed, 20);
    EXPECT_LT(failed, 110);
    ErrorInjectOptions clear;
    clear.name = "EE_m0";
    clear.io_type = "clear";
    std::string err;
    ASSERT_EQ(error_bdev_inject(clear, &err), 0) << err;
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(d.read(buf.p, uint64_t(i), 1).ok);
    ErrorInjectOptions bad = clear;
    bad.io_type = "read";
    bad.error_type = "explode";
    EXPECT_EQ(error_bdev_inject(bad, &err), -EINVAL);
    bad.name = "EE_none";
    EXPECT_EQ(error_bdev_inject(bad, &err), -ENODEV);
}

TEST(ModulesError, PendingIsAbortedByReset) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        std::string err;
        ASSERT_EQ(error_bdev_create({"m0", ""}, &err), 0) << err;
        inject("EE_m0", "read", "pending", 1);
    });
    TestDesc d(env, "EE_m0");
    Burst b(d.desc(), d.ch(), IoType::Read, 1, 1);
    env.run(env.data(), [&] { b.start(); });
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(b.done(), 0);
    IoResult reset = d.io(IoType::Reset, nullptr, 0, 0, 0);
    EXPECT_TRUE(reset.ok);
    ASSERT_TRUE(wait_until([&] { return b.all_done(); }, 2000));
    EXPECT_EQ(b.statuses()[0], IoStatus::Aborted);
}

TEST(ModulesError, CorruptDataFlipsTheWrittenData) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        std::string err;
        ASSERT_EQ(error_bdev_create({"m0", ""}, &err), 0) << err;
        inject("EE_m0", "write", "corrupt_data", 1);
    });
    TestDesc d(env, "EE_m0");
    AlignedBuf w(1024), copy(1024), r(1024);
    fill_pattern(w.p, w.size, 5);
    std::memcpy(copy.p, w.p, w.size);
    ASSERT_TRUE(d.write(w.p, 0, 2).ok);
    ASSERT_TRUE(d.read(r.p, 0, 2).ok);
    EXPECT_EQ(r.p[0], uint8_t(copy.p[0] ^ 0xff));
    EXPECT_EQ(std::memcmp(r.p + 1, copy.p + 1, w.size - 1), 0);
}

// SPDK's corrupt_offset/corrupt_value: one byte at that offset of the data, XORed.
TEST(ModulesError, CorruptOffsetAndValueAsSpdk) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        std::string err;
        ASSERT_EQ(error_bdev_create({"m0", ""}, &err), 0) << err;
        ErrorInjectOptions o;
        o.name = "EE_m0";
        o.io_type = "read";
        o.error_type = "corrupt_data";
        o.corrupt_offset = 700;  // in the second block of the read
        o.corrupt_value = 0x21;
        ASSERT_EQ(error_bdev_inject(o, &err), 0) << err;
        o.corrupt_value = 0;
        EXPECT_EQ(error_bdev_inject(o, &err), -EINVAL) << "a zero value changes nothing";
    });
    TestDesc d(env, "EE_m0");
    AlignedBuf w(1024), r(1024);
    fill_pattern(w.p, w.size, 9);
    ASSERT_TRUE(d.write(w.p, 0, 2).ok);
    ASSERT_TRUE(d.read(r.p, 0, 2).ok);
    for (size_t i = 0; i < 1024; ++i)
        ASSERT_EQ(r.p[i], i == 700 ? uint8_t(w.p[i] ^ 0x21) : w.p[i]) << i;
    ASSERT_TRUE(d.read(r.p, 0, 2).ok);  // num 1: once only
    EXPECT_EQ(std::memcmp(r.p, w.p, 1024), 0);
}

TEST(ModulesError, NvmeFailureNeedsAStatusAndNumZeroInjectsNothing) {
    ModEnv env;
    env.run(env.ctl(), [] {
        make_malloc("m0", 1024);
        std::string err;
        ASSERT_EQ(error_bdev_create({"m0", ""}, &err), 0) << err;
        ErrorInjectOptions o;
        o.name = "EE_m0";
        o.io_type = "read";
        o.error_type = "nvme_failure";
        EXPECT_EQ(error_bdev_inject(o, &err), -EINVAL);
        o.error_type = "pending";
        o.sct = 0;
        o.sc = 2;
        EXPECT_EQ(error_bdev_inject(o, &err), -EINVAL) << "a status only goes with failures";
        o.error_type = "failure";
        o.sc = 0;
        o.num = 0;
        EXPECT_EQ(error_bdev_inject(o, &err), 0) << err;
    });
    TestDesc d(env, "EE_m0");
    AlignedBuf r(512);
    EXPECT_TRUE(d.read(r.p, 0, 1).ok) << "num 0 injects nothing (SPDK)";
    env.run(env.ctl(), [] { inject("EE_m0", "read", "nvme_failure", 1, /*sct*/ 0, /*sc*/ 0x81); });
    IoResult res = d.read(r.p, 0, 1);
    EXPECT_FALSE(res.ok);
    EXPECT_EQ(res.sc, 0x81);
}
