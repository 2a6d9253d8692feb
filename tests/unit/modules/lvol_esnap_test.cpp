// Clones of external bdevs (esnap: bdev_lvol_clone_bdev) and re-parenting (bdev_lvol_set_parent,
// bdev_lvol_set_parent_bdev) on real bdevs in process: reads through the external bdev, copy on
// first write, zeros past its end, degraded clones (a store loaded without the bdev, the bdev
// hot-removed) that heal when it appears, inflate, decouple and snapshot of an esnap clone, and
// the refusals.
#include "lvol_env_util.h"
#include "mod_test_env.h"
#include "raid_test_util.h"

#include "modules/lvol/lvol.h"
#include "modules/malloc.h"

#include <gtest/gtest.h>

#include <cstring>

namespace nocstor::test {
namespace {

using namespace nocstor::lvol;

constexpr uint64_t kCb = 256;  // blocks of 4 KiB per 1 MiB cluster

Answer clone_bdev(ModEnv& env, const std::string& bdev, const std::string& name,
                  const std::string& lvs = "lvs") {
    return call(env, [&](Result r) { lvol_clone_bdev(bdev, lvs, name, std::move(r)); });
}

Answer set_parent(ModEnv& env, const std::string& lvol, const std::string& parent) {
    return call(env, [&](Result r) { lvol_set_parent(lvol, parent, std::move(r)); });
}

Answer set_parent_bdev(ModEnv& env, const std::string& lvol, const std::string& bdev) {
    return call(env, [&](Result r) { lvol_set_parent_bdev(lvol, bdev, std::move(r)); });
}

bool read_fails(ModEnv& env, const std::string& name, uint64_t at, uint64_t blocks) {
    TestDesc d(env, name, false);
    EXPECT_EQ(d.open_rc(), 0) << name;
    AlignedBuf b(blocks * 4096);
    return !d.read(b.p, at, blocks).ok;
}

bool write_fails(ModEnv& env, const std::string& name, uint64_t at) {
    TestDesc d(env, name);
    EXPECT_EQ(d.open_rc(), 0) << name;
    AlignedBuf b(4096);
    return !d.write(b.p, at, 1).ok;
}

bool claimed(ModEnv& env, const std::string& name) {
    bool c = false;
    env.run(env.ctl(), [&] {
        Bdev* b = bdev_get_by_name(name);
        c = b && b->claimed_by();
    });
    return c;
}

std::string uuid_of(ModEnv& env, const std::string& name) {
    std::string u;
    env.run(env.ctl(), [&] { u = uuid_to_string(bdev_get_by_name(name)->uuid); });
    return u;
}

TEST(LvolEsnap, CloneReadsTheBdevCopiesOnFirstWriteAndRefusesBadInput) {
    ModEnv env(1);
    make_malloc(env, "m0", 64 * 256, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    make_malloc(env, "ext", 640, 4096);  // 2.5 MiB: three clusters, the last one half external
    write_pattern(env, "ext", 0, 640, 5);
    const std::string ext_uuid = uuid_of(env, "ext");

    Answer c = clone_bdev(env, "ext", "ec");
    ASSERT_EQ(c.rc, 0) << c.msg;
    EXPECT_EQ(c.msg.size(), 36u) << "the clone's UUID";
    auto e = lvol_entry(env, "ec");
    EXPECT_EQ(e["is_esnap_clone"], true);
    EXPECT_EQ(e["is_degraded"], false);
    EXPECT_EQ(e["is_thin_provisioned"], true);
    EXPECT_EQ(e["is_clone"], false);
    EXPECT_EQ(e["external_snapshot_name"], ext_uuid) << "recorded by UUID";
    EXPECT_EQ(e["num_clusters"], 3);
    EXPECT_EQ(e["num_allocated_clusters"], 0);
    EXPECT_EQ(bdev_get_by_name("lvs/ec")->num_blocks, 3 * kCb);
    EXPECT_TRUE(claimed(env, "ext"));
    {
        TestDesc w(env, "ext");
        EXPECT_NE(w.open_rc(), 0) << "nobody writes the external bdev while clones need it";
    }

    // Unwritten clusters read the external bdev; past its end, zeros; a read across its end
    // gets both.
    EXPECT_TRUE(holds(env, "lvs/ec", 0, 640, 5));
    EXPECT_TRUE(holds(env, "lvs/ec", 640, 128, 0));
    {
        TestDesc d(env, "lvs/ec", false);
        AlignedBuf b(80 * 4096);
        std::memset(b.p, 0xA5, b.size);
        ASSERT_TRUE(d.read(b.p, 600, 80).ok);
        EXPECT_EQ(std::memcmp(b.p, expected(600, 40, 5, 0).data(), 40 * 4096), 0);
        EXPECT_EQ(std::memcmp(b.p + 40 * 4096, expected(0, 40, 0, 0).data(), 40 * 4096), 0);
        // Split iovecs, cut inside one of them by the end of the external bdev.
        iovec iov[3] = {{b.p, 6 * 4096}, {b.p + 6 * 4096, 3 * 4096}, {b.p + 9 * 4096, 3 * 4096}};
        std::memset(b.p, 0xA5, b.size);
        ASSERT_TRUE(d.io(IoType::Read, iov, 3, 632, 12).ok);
        EXPECT_EQ(std::memcmp(b.p, expected(632, 8, 5, 0).data(), 8 * 4096), 0);
        EXPECT_EQ(std::memcmp(b.p + 8 * 4096, expected(0, 4, 0, 0).data(), 4 * 4096), 0);
        EXPECT_EQ(iov[1].iov_len, 3u * 4096) << "the caller's iovecs are given back as they were";
    }

    // A partial first write keeps the rest of the cluster's external data.
    write_pattern(env, "lvs/ec", 300, 4, 9);
    EXPECT_TRUE(holds(env, "lvs/ec", 300, 4, 9));
    EXPECT_TRUE(holds(env, "lvs/ec", 256, 44, 5, 0));
    EXPECT_TRUE(holds(env, "lvs/ec", 304, 208, 5, 0));
    EXPECT_TRUE(holds(env, "ext", 300, 4, 5, 0)) << "the external bdev is not written";
    // The half-external cluster: its external part, then zeros.
    write_pattern(env, "lvs/ec", 700, 2, 10);
    EXPECT_TRUE(holds(env, "lvs/ec", 512, 128, 5, 0));
    EXPECT_TRUE(holds(env, "lvs/ec", 640, 60, 0));
    EXPECT_TRUE(holds(env, "lvs/ec", 700, 2, 10));
    EXPECT_TRUE(holds(env, "lvs/ec", 702, 66, 0));
    EXPECT_EQ(lvol_entry(env, "ec")["num_allocated_clusters"], 2);

    // More clones of it share the open; by UUID too.
    ASSERT_EQ(clone_bdev(env, ext_uuid, "ec2").rc, 0);
    EXPECT_TRUE(holds(env, "lvs/ec2", 256, 256, 5, 0));

    // Refusals.
    make_malloc(env, "e512", 2048, 512);
    Answer r = clone_bdev(env, "e512", "bad");
    EXPECT_EQ(r.rc, -EINVAL);
    EXPECT_NE(r.msg.find("block size"), std::string::npos) << r.msg;
    EXPECT_FALSE(claimed(env, "e512"));
    EXPECT_EQ(clone_bdev(env, "nope", "bad").rc, -ENODEV);
    EXPECT_EQ(clone_bdev(env, "ext", "ec").rc, -EEXIST);
    EXPECT_EQ(clone_bdev(env, "ext", "bad", "nostore").rc, -ENODEV);
    EXPECT_EQ(clone_bdev(env, "ext", "a/b").rc, -EINVAL);
    r = clone_bdev(env, "m0", "bad");
    EXPECT_NE(r.rc, 0) << "the store's own base";
    EXPECT_EQ(lvol_entry(env, "bad"), nlohmann::json());

    // The last clone gone, the external bdev is free again.
    ASSERT_EQ(call(env, [&](Result r) { lvol_delete("lvs/ec2", std::move(r)); }).rc, 0);
    EXPECT_TRUE(claimed(env, "ext"));
    ASSERT_EQ(call(env, [&](Result r) { lvol_delete("lvs/ec", std::move(r)); }).rc, 0);
    EXPECT_FALSE(claimed(env, "ext"));
}

// The external bdev grows (a resize event on the store's open): the clones read it up to its new
// end at once, as they would after a restart; an open external bdev cannot shrink.
TEST(LvolEsnap, AGrownExternalParentIsReadUpToItsNewEnd) {
    ModEnv env(1);
    make_malloc(env, "m0", 64 * 256, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    make_malloc(env, "ext", 768, 4096);  // memory for three clusters, presented as 2.5 at first
    write_pattern(env, "ext", 0, 768, 5);
    auto set_size = [&](uint64_t blocks) {
        int rc = 1;
        env.run(env.ctl(),
                [&] { rc = bdev_notify_blockcnt_change(bdev_get_by_name("ext"), blocks); });
        env.run(env.ctl(), [] {});  // the descriptors' events, queued behind
        return rc;
    };
    ASSERT_EQ(set_size(640), 0);
    ASSERT_EQ(clone_bdev(env, "ext", "ec").rc, 0);
    EXPECT_EQ(lvol_entry(env, "ec")["num_clusters"], 3);
    EXPECT_TRUE(holds(env, "lvs/ec", 640, 128, 0)) << "past its end: zeros";
    EXPECT_EQ(set_size(512), -EBUSY) << "the clones have it open";
    {
        TestDesc d(env, "lvs/ec", false);  // a channel that has read the external bdev
        ASSERT_EQ(d.open_rc(), 0);
        EXPECT_TRUE(holds(d, 600, 40, 5, 0));
        EXPECT_TRUE(holds(d, 640, 128, 0));
        ASSERT_EQ(set_size(768), 0);
        EXPECT_TRUE(holds(d, 600, 168, 5, 0)) << "read up to the new end";
    }
    // A first write past the old end fills the rest of the cluster from the grown part.
    write_pattern(env, "lvs/ec", 700, 2, 9);
    EXPECT_TRUE(holds(env, "lvs/ec", 512, 188, 5, 0));
    EXPECT_TRUE(holds(env, "lvs/ec", 700, 2, 9));
    EXPECT_TRUE(holds(env, "lvs/ec", 702, 66, 5, 0));
    EXPECT_TRUE(holds(env, "ext", 700, 2, 5, 0)) << "the external bdev is not written";
}

TEST(LvolEsnap, DegradedWithoutTheBdevHealsWhenItAppearsAndSurvivesHotRemove) {
    ModEnv env(1);
    const std::string uuid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    make_malloc(env, "m0", 64 * 256, 4096);
    passthru(env, "m0", "p0");
    ASSERT_EQ(make_store(env, "p0", "lvs").rc, 0);
    make_malloc(env, "mext", 1024, 4096);  // 4 MiB
    write_pattern(env, "mext", 0, 1024, 7);
    passthru(env, "mext", "pext", uuid);
    ASSERT_EQ(clone_bdev(env, "pext", "ec").rc, 0);
    EXPECT_EQ(lvol_entry(env, "ec")["external_snapshot_name"], uuid);
    write_pattern(env, "lvs/ec", 10, 4, 8);  // cluster 0 is the clone's own

    // The store closes, the external bdev goes, the store comes back without it: degraded.
    passthru_delete(env, "p0");
    EXPECT_FALSE(claimed(env, "pext")) << "the closed store let go of it";
    passthru_delete(env, "pext");
    passthru(env, "m0", "p0");
    wait_examine(env);
    auto e = lvol_entry(env, "ec");
    ASSERT_FALSE(e.is_null()) << "registered and listed although degraded";
    EXPECT_EQ(e["is_degraded"], true);
    EXPECT_EQ(e["is_esnap_clone"], true);
    ASSERT_NE(bdev_get_by_name("lvs/ec"), nullptr);
    EXPECT_TRUE(read_fails(env, "lvs/ec", 300, 8)) << "never zeros instead of the missing data";
    EXPECT_TRUE(read_fails(env, "lvs/ec", 250, 8)) << "a read across into a missing cluster";
    EXPECT_TRUE(holds(env, "lvs/ec", 10, 4, 8)) << "its own clusters work";
    EXPECT_TRUE(holds(env, "lvs/ec", 0, 10, 7)) << "filled from the external bdev back then";
    EXPECT_TRUE(write_fails(env, "lvs/ec", 600)) << "a first write needs the missing data";
    EXPECT_EQ(lvol_entry(env, "ec")["num_allocated_clusters"], 1);
    Answer inf = call(env, [&](Result r) { lvol_inflate("lvs/ec", std::move(r)); });
    EXPECT_EQ(inf.rc, -EIO) << inf.msg;
    EXPECT_NE(inf.msg.find("degraded"), std::string::npos) << inf.msg;
    write_pattern(env, "lvs/ec", 12, 1, 11);  // allocated: writes work
    EXPECT_TRUE(holds(env, "lvs/ec", 12, 1, 11));

    // It appears: healthy without a restart.
    passthru(env, "mext", "pext", uuid);
    EXPECT_EQ(lvol_entry(env, "ec")["is_degraded"], false);
    EXPECT_TRUE(claimed(env, "pext"));
    EXPECT_TRUE(holds(env, "lvs/ec", 300, 8, 7, 0));
    write_pattern(env, "lvs/ec", 600, 2, 12);
    EXPECT_TRUE(holds(env, "lvs/ec", 512, 88, 7, 0));
    EXPECT_TRUE(holds(env, "lvs/ec", 600, 2, 12));

    // Hot-remove while a reader holds a channel that has read it: degraded again, no crash;
    // the same channel then fails those reads and still reads the clone's own clusters.
    {
        TestDesc d(env, "lvs/ec", false);
        ASSERT_EQ(d.open_rc(), 0);
        EXPECT_TRUE(holds(d, 800, 8, 7, 0));
        passthru_delete(env, "pext");
        EXPECT_EQ(bdev_get_by_name("pext"), nullptr);
        EXPECT_EQ(lvol_entry(env, "ec")["is_degraded"], true);
        AlignedBuf b(8 * 4096);
        EXPECT_FALSE(d.read(b.p, 800, 8).ok);
        EXPECT_TRUE(holds(d, 600, 2, 12));
        // And back once more, the channel picks up the new open.
        passthru(env, "mext", "pext", uuid);
        EXPECT_TRUE(holds(d, 800, 8, 7, 0));
    }
    EXPECT_EQ(lvol_entry(env, "ec")["is_degraded"], false);
}

TEST(LvolEsnap, SetParentAndSetParentBdev) {
    ModEnv env(1);
    make_malloc(env, "m0", 64 * 256, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "vol", 4 * kMiB, true).rc, 0);
    write_pattern(env, "lvs/vol", 0, 4 * kCb, 1);
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "snap", std::move(r)); }).rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "t", 4 * kMiB, true).rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "thick", 4 * kMiB, false).rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "small", 2 * kMiB, true).rc, 0);
    write_pattern(env, "lvs/t", 5, 1, 2);
    EXPECT_TRUE(holds(env, "lvs/t", 300, 10, 0));

    // A snapshot becomes t's parent: t's unwritten clusters read it, its own stay.
    Answer a = set_parent(env, "lvs/t", "lvs/snap");
    ASSERT_EQ(a.rc, 0) << a.msg;
    EXPECT_EQ(lvol_entry(env, "t")["parent"], "snap");
    EXPECT_EQ(lvol_entry(env, "t")["is_clone"], true);
    EXPECT_TRUE(holds(env, "lvs/t", 300, 10, 1, 0));
    EXPECT_TRUE(holds(env, "lvs/t", 5, 1, 2));
    EXPECT_TRUE(holds(env, "lvs/t", 0, 5, 0)) << "cluster 0 is t's own (zero-filled back then)";

    // Refusals (nothing changes).
    EXPECT_EQ(set_parent(env, "lvs/t", "lvs/vol").rc, -EINVAL) << "not a snapshot";
    EXPECT_EQ(set_parent(env, "lvs/thick", "lvs/snap").rc, -EINVAL) << "not thin";
    EXPECT_EQ(set_parent(env, "lvs/nope", "lvs/snap").rc, -ENODEV);
    EXPECT_EQ(set_parent(env, "lvs/t", "lvs/nope").rc, -ENODEV);
    EXPECT_EQ(set_parent(env, "lvs/t", "lvs/snap").rc, -EEXIST);
    EXPECT_EQ(set_parent(env, "lvs/t", "lvs/t").rc, -EINVAL);
    EXPECT_EQ(set_parent(env, "lvs/small", "lvs/snap").rc, -EINVAL) << "parent larger";
    EXPECT_EQ(set_parent(env, "lvs/snap", "lvs/snap").rc, -EPERM) << "a snapshot stays as it is";
    EXPECT_EQ(lvol_entry(env, "small")["is_clone"], false);

    // An external bdev becomes t's parent instead.
    make_malloc(env, "ext", 2 * kCb, 4096);  // 2 MiB
    write_pattern(env, "ext", 0, 2 * kCb, 3);
    a = set_parent_bdev(env, "lvs/t", "ext");
    ASSERT_EQ(a.rc, 0) << a.msg;
    auto e = lvol_entry(env, "t");
    EXPECT_EQ(e["is_esnap_clone"], true);
    EXPECT_EQ(e["is_clone"], false);
    EXPECT_TRUE(e["parent"].is_null());
    EXPECT_EQ(e["external_snapshot_name"], uuid_of(env, "ext"));
    EXPECT_TRUE(holds(env, "lvs/t", 300, 10, 3, 0));
    EXPECT_TRUE(holds(env, "lvs/t", 5, 1, 2));
    EXPECT_TRUE(holds(env, "lvs/t", 600, 10, 0)) << "past the external bdev: zeros";
    EXPECT_TRUE(claimed(env, "ext"));

    make_malloc(env, "big", 8 * kCb, 4096);
    make_malloc(env, "e512", 2048, 512);
    EXPECT_EQ(set_parent_bdev(env, "lvs/t", "nope").rc, -ENODEV);
    EXPECT_EQ(set_parent_bdev(env, "lvs/nope", "ext").rc, -ENODEV);
    EXPECT_EQ(set_parent_bdev(env, "lvs/small", "big").rc, -EINVAL) << "larger than the lvol";
    EXPECT_EQ(set_parent_bdev(env, "lvs/thick", "ext").rc, -EINVAL) << "not thin";
    EXPECT_EQ(set_parent_bdev(env, "lvs/small", "e512").rc, -EINVAL) << "block size";
    EXPECT_EQ(set_parent_bdev(env, "lvs/t", "ext").rc, -EEXIST);
    EXPECT_EQ(set_parent_bdev(env, "lvs/snap", "ext").rc, -EPERM);
    EXPECT_FALSE(claimed(env, "big"));
    EXPECT_FALSE(claimed(env, "e512"));

    // Back to the snapshot: the external bdev is nobody's parent and is let go.
    ASSERT_EQ(set_parent(env, "lvs/t", "lvs/snap").rc, 0);
    EXPECT_TRUE(holds(env, "lvs/t", 300, 10, 1, 0));
    EXPECT_EQ(lvol_entry(env, "t")["is_esnap_clone"], false);
    EXPECT_FALSE(claimed(env, "ext"));
}

TEST(LvolEsnap, InflateDecoupleAndSnapshotOfEsnapClones) {
    ModEnv env(1);
    make_malloc(env, "m0", 64 * 256, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    make_malloc(env, "ext", 3 * kCb, 4096);
    write_pattern(env, "ext", 0, 3 * kCb, 4);
    for (const char* n : {"a", "b", "c"}) ASSERT_EQ(clone_bdev(env, "ext", n).rc, 0) << n;
    write_pattern(env, "lvs/a", 10, 1, 5);

    // A snapshot of an esnap clone takes the external link; the clone reads through it.
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/c", "csnap", std::move(r)); }).rc, 0);
    auto s = lvol_entry(env, "csnap");
    EXPECT_EQ(s["is_esnap_clone"], true);
    EXPECT_EQ(s["is_snapshot"], true);
    auto c = lvol_entry(env, "c");
    EXPECT_EQ(c["is_esnap_clone"], false);
    EXPECT_EQ(c["parent"], "csnap");
    EXPECT_TRUE(holds(env, "lvs/c", 0, 3 * kCb, 4));
    write_pattern(env, "lvs/c", 300, 2, 6);
    EXPECT_TRUE(holds(env, "lvs/c", 256, 44, 4, 0));
    EXPECT_TRUE(holds(env, "lvs/c", 300, 2, 6));
    EXPECT_TRUE(holds(env, "lvs/csnap", 300, 2, 4, 0));

    // Inflate: every cluster copied, no external parent.
    Answer r = call(env, [&](Result r) { lvol_inflate("lvs/a", std::move(r)); });
    ASSERT_EQ(r.rc, 0) << r.msg;
    auto a = lvol_entry(env, "a");
    EXPECT_EQ(a["is_esnap_clone"], false);
    EXPECT_EQ(a["num_allocated_clusters"], 3);
    // Decouple of an esnap clone copies what the external bdev provides (SPDK).
    r = call(env, [&](Result r) { lvol_decouple_parent("lvs/b", std::move(r)); });
    ASSERT_EQ(r.rc, 0) << r.msg;
    EXPECT_EQ(lvol_entry(env, "b")["is_esnap_clone"], false);
    EXPECT_EQ(lvol_entry(env, "b")["num_allocated_clusters"], 3);
    // c decoupled from csnap reads the external bdev directly; decoupled again, it is free.
    r = call(env, [&](Result r) { lvol_decouple_parent("lvs/c", std::move(r)); });
    ASSERT_EQ(r.rc, 0) << r.msg;
    c = lvol_entry(env, "c");
    EXPECT_EQ(c["is_esnap_clone"], true);
    EXPECT_TRUE(c["parent"].is_null());
    EXPECT_TRUE(holds(env, "lvs/c", 0, 300, 4));
    r = call(env, [&](Result r) { lvol_decouple_parent("lvs/c", std::move(r)); });
    ASSERT_EQ(r.rc, 0) << r.msg;
    EXPECT_EQ(lvol_entry(env, "c")["is_esnap_clone"], false);
    EXPECT_EQ(call(env, [&](Result r) { lvol_decouple_parent("lvs/c", std::move(r)); }).rc, -EINVAL)
        << "no parent left";
    EXPECT_TRUE(claimed(env, "ext")) << "csnap still reads it";
    ASSERT_EQ(call(env, [&](Result r) { lvol_delete("lvs/csnap", std::move(r)); }).rc, 0);
    EXPECT_FALSE(claimed(env, "ext"));

    // The external bdev can go: the data stays.
    ASSERT_TRUE(env.run_async(env.ctl(), [](std::function<void()> done) {
        malloc_bdev_delete("ext", [done](int) { done(); });
    }));
    ASSERT_EQ(bdev_get_by_name("ext"), nullptr);
    EXPECT_TRUE(holds(env, "lvs/a", 0, 10, 4));
    EXPECT_TRUE(holds(env, "lvs/a", 10, 1, 5));
    EXPECT_TRUE(holds(env, "lvs/a", 11, 3 * kCb - 11, 4, 0));
    EXPECT_TRUE(holds(env, "lvs/b", 0, 3 * kCb, 4));
    EXPECT_TRUE(holds(env, "lvs/c", 0, 300, 4));
    EXPECT_TRUE(holds(env, "lvs/c", 300, 2, 6));
    EXPECT_TRUE(holds(env, "lvs/c", 302, 3 * kCb - 302, 4, 0));
    for (const char* n : {"a", "b", "c"}) EXPECT_EQ(lvol_entry(env, n)["is_degraded"], false);
}

}  // namespace
}  // namespace nocstor::test
