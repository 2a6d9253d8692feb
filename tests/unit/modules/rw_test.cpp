// Write / read / verify on every module with random sizes and iovec shapes, and splitting.
#include "mod_test_env.h"
#include "modules/delay.h"
#include "modules/error.h"
#include "modules/malloc.h"
#include "modules/null.h"
#include "modules/passthru.h"
#include "modules/uring.h"

#include <cstring>
#include <random>

using namespace nocstor;
using namespace nocstor::test;

namespace {

// Cuts [buf, buf+len) into 1..6 iovecs. aligned: cut points on multiples of `granule`.
std::vector<iovec> make_iovs(unsigned char* buf, size_t len, size_t granule, std::mt19937_64& rng) {
    std::vector<size_t> cuts;
    size_t pieces = 1 + rng() % 6;
    for (size_t i = 1; i < pieces; ++i) {
        size_t c = (rng() % len) / granule * granule;
        if (c > 0 && c < len) cuts.push_back(c);
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::vector<iovec> v;
    size_t prev = 0;
    for (size_t c : cuts) {
        v.push_back({buf + prev, c - prev});
        prev = c;
    }
    v.push_back({buf + prev, len - prev});
    return v;
}

// Random writes, each read back with a different iovec shape. granule 1 = unaligned iovecs.
void random_rw(TestDesc& d, uint64_t seed, int iterations, size_t granule, bool reads_zero) {
    ASSERT_EQ(d.open_rc(), 0);
    Bdev* b = d.bdev();
    const uint32_t bs = b->block_size;
    const uint64_t max_blocks = std::min<uint64_t>(64, b->num_blocks);
    AlignedBuf w(max_blocks * bs), r(max_blocks * bs);
    std::mt19937_64 rng(seed);
    for (int i = 0; i < iterations; ++i) {
        uint64_t n = 1 + rng() % max_blocks;
        uint64_t off = rng() % (b->num_blocks - n + 1);
        size_t len = n * bs;
        fill_pattern(w.p, len, seed * 1000 + i);
        auto wv = make_iovs(w.p, len, granule, rng);
        IoResult wr = d.io(IoType::Write, wv.data(), int(wv.size()), off, n);
        ASSERT_EQ(wr.rc, 0);
        ASSERT_TRUE(wr.ok) << io_status_name(wr.status) << " write " << off << "+" << n;
        std::memset(r.p, 0xa5, len);
        auto rv = make_iovs(r.p, len, granule, rng);
        IoResult rr = d.io(IoType::Read, rv.data(), int(rv.size()), off, n);
        ASSERT_EQ(rr.rc, 0);
        ASSERT_TRUE(rr.ok) << io_status_name(rr.status);
        if (reads_zero) {
            AlignedBuf z(len);
            ASSERT_EQ(std::memcmp(r.p, z.p, len), 0) << "null bdev read not zeroed";
        } else {
            ASSERT_EQ(std::memcmp(r.p, w.p, len), 0) << "data mismatch at " << off << "+" << n;
        }
    }
}

int create_malloc(const std::string& name, uint64_t blocks, uint32_t bs, uint32_t boundary = 0,
                  uint32_t max_xfer = 0) {
    MallocBdevOptions o;
    o.name = name;
    o.num_blocks = blocks;
    o.block_size = bs;
    o.optimal_io_boundary = boundary;
    o.max_transfer_blocks = max_xfer;
    std::string err;
    int rc = malloc_bdev_create(o, &err);
    EXPECT_EQ(rc, 0) << err;
    return rc;
}

}  // namespace

TEST(ModulesRw, MallocBothBlockSizes) {
    ModEnv env;
    env.run(env.ctl(), [] {
        create_malloc("m512", 2048, 512);
        create_malloc("m4k", 256, 4096);
    });
    TestDesc a(env, "m512"), b(env, "m4k");
    random_rw(a, 1, 40, 1, false);
    random_rw(b, 2, 40, 1, false);
}

TEST(ModulesRw, NullReadsZeroes) {
    ModEnv env;
    env.run(env.ctl(), [] {
        NullBdevOptions o{"n0", 1 << 20, 4096, "", true};
        std::string err;
        EXPECT_EQ(null_bdev_create(o, &err), 0) << err;
    });
    TestDesc d(env, "n0");
    random_rw(d, 3, 20, 1, true);
}

TEST(ModulesRw, VbdevStacksOverMalloc) {
    ModEnv env;
    env.run(env.ctl(), [] {
        create_malloc("m0", 1024, 512);
        create_malloc("m1", 1024, 512);
        create_malloc("m2", 1024, 512);
        std::string err;
        EXPECT_EQ(passthru_bdev_create({"m0", "pt0", ""}, &err), 0) << err;
        DelayBdevOptions d;
        d.base_bdev_name = "m1";
        d.name = "dly0";
        d.avg_read_latency = 0;
        d.p99_read_latency = 200;
        d.avg_write_latency = 0;
        d.p99_write_latency = 200;
        EXPECT_EQ(delay_bdev_create(d, &err), 0) << err;
        EXPECT_EQ(error_bdev_create({"m2", ""}, &err), 0) << err;
        // A passthru on top of a passthru: stacks of vbdevs.
        EXPECT_EQ(passthru_bdev_create({"pt0", "pt1", ""}, &err), 0) << err;
    });
    {
        TestDesc p(env, "pt1"), d(env, "dly0"), e(env, "EE_m2");
        random_rw(p, 4, 25, 1, false);
        random_rw(d, 5, 25, 1, false);
        random_rw(e, 6, 25, 1, false);
    }
    // What went through pt1 landed on m0.
    TestDesc base(env, "m0", false);
    EXPECT_EQ(base.open_rc(), 0);
}

TEST(ModulesRw, SplitOnBoundaryAndMaxTransferLandsInPlace) {
    ModEnv env;
    env.run(env.ctl(), [] { create_malloc("ms", 512, 512, /*boundary*/ 8, /*max xfer*/ 3); });
    TestDesc d(env, "ms");
    ASSERT_EQ(d.open_rc(), 0);
    std::mt19937_64 rng(7);
    const uint64_t n = 61, off = 5;
    AlignedBuf w(n * 512);
    // Each block stamped with its LBA so that a misplaced child shows.
    for (uint64_t i = 0; i < n; ++i) {
        fill_pattern(w.p + i * 512, 512, 100 + i);
        std::memcpy(w.p + i * 512, &i, sizeof(i));
    }
    auto wv = make_iovs(w.p, n * 512, 1, rng);
    IoResult wr = d.io(IoType::Write, wv.data(), int(wv.size()), off, n);
    ASSERT_TRUE(wr.ok);
    // Read back block by block (a one-block I/O is never split).
    AlignedBuf r(512);
    for (uint64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(d.read(r.p, off + i, 1).ok);
        ASSERT_EQ(std::memcmp(r.p, w.p + i * 512, 512), 0) << "block " << off + i;
    }
    // And as one split read with a different shape.
    AlignedBuf r2(n * 512);
    auto rv = make_iovs(r2.p, n * 512, 1, rng);
    ASSERT_TRUE(d.io(IoType::Read, rv.data(), int(rv.size()), off, n).ok);
    EXPECT_EQ(std::memcmp(r2.p, w.p, n * 512), 0);
    // The neighbours were not touched.
    AlignedBuf z(512);
    ASSERT_TRUE(d.read(r.p, off - 1, 1).ok);
    EXPECT_EQ(std::memcmp(r.p, z.p, 512), 0);
    ASSERT_TRUE(d.read(r.p, off + n, 1).ok);
    EXPECT_EQ(std::memcmp(r.p, z.p, 512), 0);
    random_rw(d, 8, 20, 1, false);
}

TEST(ModulesRw, UringDirectOnDiskFile) {
    TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    std::string f = dir.make_file("disk", 8 << 20);
    ModEnv env;
    env.run(env.ctl(), [&] {
        std::string err;
        EXPECT_EQ(uring_bdev_create({"u0", f, 4096, ""}, &err), 0) << err;
    });
    EXPECT_TRUE(uring_bdev_is_direct("u0"));
    TestDesc d(env, "u0");
    ASSERT_EQ(d.open_rc(), 0);
    EXPECT_EQ(d.bdev()->num_blocks, (8u << 20) / 4096);
    EXPECT_EQ(d.bdev()->required_alignment % 4096, 0u);
    random_rw(d, 9, 30, 4096, false);
}

TEST(ModulesRw, UringBufferedFallbackAllowsUnalignedIovecs) {
    TempDir dir;
    std::string f = dir.make_file("disk", 4 << 20);
    ModEnv env;
    uring_set_refuse_direct_for_test(true);
    env.run(env.ctl(), [&] {
        std::string err;
        EXPECT_EQ(uring_bdev_create({"ub", f, 0, ""}, &err), 0) << err;
    });
    uring_set_refuse_direct_for_test(false);
    EXPECT_FALSE(uring_bdev_is_direct("ub"));
    TestDesc d(env, "ub");
    ASSERT_EQ(d.open_rc(), 0);
    EXPECT_EQ(d.bdev()->block_size, 512u);
    EXPECT_EQ(d.bdev()->required_alignment, 0u);
    random_rw(d, 10, 30, 1, false);
}
