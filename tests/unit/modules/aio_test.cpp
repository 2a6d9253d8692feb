// The aio bdev (SPDK's bdev_aio_create on the io_uring engine): read-only, fallocate, nowait,
// rescan (grow, refused shrink, removal), and size changes passed up a vbdev stack.
#include "mod_test_env.h"
#include "modules/passthru.h"
#include "modules/uring.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

using namespace nocstor;
using namespace nocstor::test;

namespace {

int make_aio(ModEnv& env, const std::string& name, const std::string& file, bool readonly,
             bool fallocate, bool nowait = false, std::string* err_out = nullptr) {
    int rc = 0;
    env.run(env.ctl(), [&] {
        UringBdevOptions o;
        o.name = name;
        o.filename = file;
        o.aio = true;
        o.readonly = readonly;
        o.fallocate = fallocate;
        o.nowait = nowait;
        std::string err;
        rc = uring_bdev_create(o, &err);
        if (err_out) *err_out = err;
    });
    return rc;
}

int rescan(ModEnv& env, const std::string& name, std::string* err = nullptr) {
    int rc = 0;
    env.run(env.ctl(), [&] {
        std::string e;
        rc = uring_bdev_rescan(name, true, &e);
        if (err) *err = e;
    });
    return rc;
}

TEST(ModulesAio, ReadOnlyFailsWritesAndKeepsTheFile) {
    TempDir dir;
    const std::string f = dir.make_file("disk", 1 << 20);
    ModEnv env;
    ASSERT_EQ(make_aio(env, "a0", f, /*readonly*/ true, false), 0);
    TestDesc d(env, "a0");
    ASSERT_EQ(d.open_rc(), 0);
    EXPECT_EQ(d.bdev()->module->name(), "aio");
    EXPECT_EQ(d.bdev()->product_name, "AIO disk");
    AlignedBuf w(4096), r(4096);
    fill_pattern(w.p, w.size, 1);
    IoResult res = d.write(w.p, 0, 8);
    EXPECT_FALSE(res.ok);
    EXPECT_EQ(res.status, IoStatus::Failed);
    ASSERT_TRUE(d.read(r.p, 0, 8).ok);
    AlignedBuf zero(4096);
    EXPECT_EQ(std::memcmp(r.p, zero.p, 4096), 0);
}

TEST(ModulesAio, FallocateGivesUnmapAndWriteZeroes) {
    TempDir dir;
    ModEnv env;
    ASSERT_EQ(make_aio(env, "plain", dir.make_file("p", 1 << 20), false, false), 0);
    ASSERT_EQ(make_aio(env, "fa", dir.make_file("f", 1 << 20), false, true), 0);
    Bdev* plain = bdev_get_by_name("plain");
    Bdev* fa = bdev_get_by_name("fa");
    EXPECT_FALSE(plain->io_type_supported(IoType::Unmap));
    EXPECT_FALSE(plain->io_type_supported(IoType::WriteZeroes));
    EXPECT_TRUE(fa->io_type_supported(IoType::Unmap));
    EXPECT_TRUE(fa->io_type_supported(IoType::WriteZeroes));
    TestDesc d(env, "fa");
    AlignedBuf w(64 * 512), r(64 * 512), zero(32 * 512);
    fill_pattern(w.p, w.size, 2);
    ASSERT_TRUE(d.write(w.p, 0, 64).ok);
    EXPECT_TRUE(d.io(IoType::WriteZeroes, nullptr, 0, 8, 16).ok);
    EXPECT_TRUE(d.io(IoType::Unmap, nullptr, 0, 32, 16).ok);
    ASSERT_TRUE(d.read(r.p, 0, 64).ok);
    EXPECT_EQ(std::memcmp(r.p, w.p, 8 * 512), 0);
    EXPECT_EQ(std::memcmp(r.p + 8 * 512, zero.p, 16 * 512), 0);
    EXPECT_EQ(std::memcmp(r.p + 24 * 512, w.p + 24 * 512, 8 * 512), 0);
    EXPECT_EQ(std::memcmp(r.p + 32 * 512, zero.p, 16 * 512), 0);
    EXPECT_EQ(std::memcmp(r.p + 48 * 512, w.p + 48 * 512, 16 * 512), 0);
}

TEST(ModulesAio, NowaitNeedsABlockDevice) {
    TempDir dir;
    ModEnv env;
    std::string err;
    EXPECT_EQ(make_aio(env, "nw", dir.make_file("n", 1 << 20), false, false, true, &err), -ENOTSUP);
    EXPECT_NE(err.find("block device"), std::string::npos) << err;
    EXPECT_EQ(bdev_get_by_name("nw"), nullptr);
}

TEST(ModulesAio, RescanGrowsRefusesShrinkingInUseAndRemovesAnEmptyFile) {
    TempDir dir;
    const std::string f = dir.make_file("disk", 1 << 20);
    ModEnv env;
    ASSERT_EQ(make_aio(env, "a0", f, false, false), 0);
    // A passthru stacked on it follows the size.
    env.run(env.ctl(), [] {
        std::string err;
        ASSERT_EQ(passthru_bdev_create({"a0", "pt0", ""}, &err), 0) << err;
    });
    Bdev* a = bdev_get_by_name("a0");
    Bdev* pt = bdev_get_by_name("pt0");
    const uint64_t blocks = a->num_blocks;
    ASSERT_EQ(truncate(f.c_str(), 2 << 20), 0);
    EXPECT_EQ(rescan(env, "a0"), 0);
    EXPECT_EQ(a->num_blocks, 2 * blocks);
    // The passthru learns it by message on the control thread.
    for (int i = 0; i < 100 && pt->num_blocks != 2 * blocks; ++i) env.run(env.ctl(), [] {});
    EXPECT_EQ(pt->num_blocks, 2 * blocks);
    {
        TestDesc d(env, "pt0");
        AlignedBuf w(512), r(512);
        fill_pattern(w.p, 512, 3);
        EXPECT_TRUE(d.write(w.p, 2 * blocks - 1, 1).ok) << "the new last block is usable";
        ASSERT_TRUE(d.read(r.p, 2 * blocks - 1, 1).ok);
        EXPECT_EQ(std::memcmp(r.p, w.p, 512), 0);
    }
    ASSERT_EQ(truncate(f.c_str(), 512 << 10), 0);
    std::string err;
    EXPECT_EQ(rescan(env, "a0", &err), -EBUSY) << "the passthru holds it open";
    EXPECT_NE(err.find("in use"), std::string::npos) << err;
    EXPECT_EQ(a->num_blocks, 2 * blocks);
    EXPECT_EQ(rescan(env, "missing", &err), -ENODEV);
    env.run_async(env.ctl(),
                  [](auto done) { passthru_bdev_delete("pt0", [done](int) { done(); }); });
    EXPECT_EQ(rescan(env, "a0"), 0);
    EXPECT_EQ(a->num_blocks, blocks / 2);
    ASSERT_EQ(truncate(f.c_str(), 0), 0);
    EXPECT_EQ(rescan(env, "a0"), 0);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i)
        env.run(env.ctl(), [&] { gone = !bdev_get_by_name("a0"); });
    EXPECT_TRUE(gone) << "an empty file removes the bdev";
}

}  // namespace
