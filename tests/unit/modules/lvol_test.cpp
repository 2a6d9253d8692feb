// Lvstores and lvols on real bdevs in process: creation, the data path (thick, thin, parent
// chains), snapshots, clones, inflate, decouple, resize, delete/merge, a full store, and a store
// closed and opened again through examine.
#include "lvol_env_util.h"
#include "mod_test_env.h"
#include "raid_test_util.h"
#include "raid_verify.h"

#include "modules/lvol/lvol.h"

#include <gtest/gtest.h>

#include <cstring>

namespace nocstor::test {
namespace {

using namespace nocstor::lvol;

TEST(Lvol, ThickAndThinLvolsReadAndWrite) {
    ModEnv env(1);
    make_malloc(env, "m0", 64 * 256, 4096);  // 64 MiB
    Answer s = make_store(env, "m0", "lvs");
    ASSERT_EQ(s.rc, 0) << s.msg;
    EXPECT_EQ(s.msg.size(), 36u) << "the store's UUID";
    auto st = stores(env);
    ASSERT_EQ(st.size(), 1u);
    const uint64_t total = st[0]["total_data_clusters"];
    EXPECT_GT(total, 40u);
    EXPECT_EQ(st[0]["free_clusters"], total);
    EXPECT_EQ(st[0]["cluster_size"], kMiB);

    Answer thick = make_lvol(env, "lvs", "thick", 8 * kMiB, false);
    ASSERT_EQ(thick.rc, 0) << thick.msg;
    Answer thin = make_lvol(env, "lvs", "thin", 16 * kMiB, true);
    ASSERT_EQ(thin.rc, 0) << thin.msg;
    EXPECT_EQ(stores(env)[0]["free_clusters"], total - 8);
    EXPECT_EQ(lvol_entry(env, "thick")["num_allocated_clusters"], 8);
    EXPECT_EQ(lvol_entry(env, "thin")["num_allocated_clusters"], 0);
    EXPECT_EQ(lvol_entry(env, "thin")["is_thin_provisioned"], true);
    // Named by UUID and by alias.
    ASSERT_NE(bdev_get_by_name(thick.msg), nullptr);
    ASSERT_EQ(bdev_get_by_name("lvs/thick"), bdev_get_by_name(thick.msg));
    EXPECT_EQ(bdev_get_by_name("lvs/thin")->num_blocks, 16u * 256);

    // Thick: zeroes at first, then what was written.
    EXPECT_TRUE(holds(env, "lvs/thick", 0, 8, 0));
    write_pattern(env, "lvs/thick", 250, 12, 7);  // crosses a cluster boundary (256 blocks)
    EXPECT_TRUE(holds(env, "lvs/thick", 250, 12, 7));
    // Thin: unallocated reads zeroes; a write allocates its cluster(s) only.
    EXPECT_TRUE(holds(env, "lvs/thin", 1000, 16, 0));
    write_pattern(env, "lvs/thin", 1020, 8, 9);  // clusters 3 and 4
    EXPECT_TRUE(holds(env, "lvs/thin", 1020, 8, 9));
    EXPECT_TRUE(holds(env, "lvs/thin", 1000, 20, 0));
    EXPECT_TRUE(holds(env, "lvs/thin", 1028, 100, 0)) << "the rest of the new cluster is zeroes";
    EXPECT_EQ(lvol_entry(env, "thin")["num_allocated_clusters"], 2);
    EXPECT_EQ(stores(env)[0]["free_clusters"], total - 10);
    // A write of a whole cluster needs no fill; one in the middle fills both sides.
    write_pattern(env, "lvs/thin", 5 * 256, 256, 11);
    EXPECT_TRUE(holds(env, "lvs/thin", 5 * 256, 256, 11));
    write_pattern(env, "lvs/thin", 6 * 256 + 100, 3, 12);
    EXPECT_TRUE(holds(env, "lvs/thin", 6 * 256, 100, 0));
    EXPECT_TRUE(holds(env, "lvs/thin", 6 * 256 + 100, 3, 12));
    EXPECT_TRUE(holds(env, "lvs/thin", 6 * 256 + 103, 153, 0));
    EXPECT_EQ(lvol_entry(env, "thin")["num_allocated_clusters"], 4);

    // Bad input: a clear error, nothing created.
    EXPECT_EQ(make_lvol(env, "lvs", "thin", kMiB, true).rc, -EEXIST);
    EXPECT_EQ(make_lvol(env, "nope", "x", kMiB, true).rc, -ENODEV);
    EXPECT_EQ(make_lvol(env, "lvs", "a/b", kMiB, true).rc, -EINVAL);
    EXPECT_EQ(make_lvol(env, "lvs", "huge", total * kMiB * 2, false).rc, -ENOSPC);
    EXPECT_EQ(make_store(env, "m0", "again").rc, -EPERM) << "the bdev is claimed by the store";
    EXPECT_EQ(lvols(env).size(), 2u);
}

TEST(Lvol, SnapshotsClonesInflateDecoupleAndMerge) {
    ModEnv env(1);
    make_malloc(env, "m0", 64 * 256, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "vol", 8 * kMiB, true).rc, 0);
    write_pattern(env, "lvs/vol", 0, 512, 1);  // clusters 0-1

    Answer snap = call(env, [&](Result r) { lvol_snapshot("lvs/vol", "snap", std::move(r)); });
    ASSERT_EQ(snap.rc, 0) << snap.msg;
    auto v = lvol_entry(env, "vol");
    EXPECT_EQ(v["is_clone"], true);
    EXPECT_EQ(v["num_allocated_clusters"], 0) << "the snapshot took the clusters";
    EXPECT_EQ(lvol_entry(env, "snap")["is_snapshot"], true);
    EXPECT_EQ(lvol_entry(env, "snap")["num_allocated_clusters"], 2);
    // Writes go to the origin; the snapshot keeps the old data.
    write_pattern(env, "lvs/vol", 10, 4, 2);
    EXPECT_TRUE(holds(env, "lvs/vol", 0, 10, 1)) << "copied from the snapshot on first write";
    EXPECT_TRUE(holds(env, "lvs/vol", 10, 4, 2));
    EXPECT_TRUE(holds(env, "lvs/snap", 0, 512, 1));
    // The snapshot is read-only.
    {
        TestDesc d(env, "lvs/snap");
        AlignedBuf b(4096);
        IoResult r = d.write(b.p, 0, 1);
        EXPECT_FALSE(r.ok);
        EXPECT_EQ(r.sc, 0x20) << "Namespace Is Write Protected";
    }

    // Two clones of the snapshot; a snapshot with two clones cannot be deleted.
    Answer c = call(env, [&](Result r) { lvol_clone("lvs/snap", "clone", std::move(r)); });
    ASSERT_EQ(c.rc, 0) << c.msg;
    EXPECT_EQ(call(env, [&](Result r) { lvol_clone("lvs/vol", "x", std::move(r)); }).rc, -EINVAL)
        << "only read-only lvols can be cloned";
    EXPECT_TRUE(holds(env, "lvs/clone", 0, 512, 1));
    write_pattern(env, "lvs/clone", 300, 2, 3);
    EXPECT_TRUE(holds(env, "lvs/clone", 300, 2, 3));
    EXPECT_TRUE(holds(env, "lvs/snap", 300, 2, 1, 0));
    EXPECT_EQ(call(env, [&](Result r) { lvol_delete("lvs/snap", std::move(r)); }).rc, -EBUSY);

    // Inflate: the clone owns every cluster, has no parent, same data.
    Answer inf = call(env, [&](Result r) { lvol_inflate("lvs/clone", std::move(r)); });
    ASSERT_EQ(inf.rc, 0) << inf.msg;
    auto ce = lvol_entry(env, "clone");
    EXPECT_EQ(ce["is_clone"], false);
    EXPECT_EQ(ce["num_allocated_clusters"], 8);
    EXPECT_TRUE(holds(env, "lvs/clone", 0, 300, 1));
    EXPECT_TRUE(holds(env, "lvs/clone", 300, 2, 3));
    EXPECT_TRUE(holds(env, "lvs/clone", 302, 210, 1, 0));
    EXPECT_TRUE(holds(env, "lvs/clone", 512, 1536, 0));

    // Now the snapshot has one clone (vol): deleting it merges into vol.
    const uint64_t free_before = stores(env)[0]["free_clusters"];
    Answer del = call(env, [&](Result r) { lvol_delete("lvs/snap", std::move(r)); });
    ASSERT_EQ(del.rc, 0) << del.msg;
    EXPECT_EQ(bdev_get_by_name("lvs/snap"), nullptr);
    v = lvol_entry(env, "vol");
    EXPECT_EQ(v["is_clone"], false);
    EXPECT_EQ(v["num_allocated_clusters"], 2) << "cluster 1 moved over, cluster 0 was vol's";
    EXPECT_EQ(stores(env)[0]["free_clusters"], free_before + 1) << "the snapshot's cluster 0";
    EXPECT_TRUE(holds(env, "lvs/vol", 0, 10, 1));
    EXPECT_TRUE(holds(env, "lvs/vol", 10, 4, 2));
    EXPECT_TRUE(holds(env, "lvs/vol", 14, 498, 1, 0));

    // Decouple: a chain snap2 <- snap3 <- vol; vol decoupled from snap3 copies what snap3 holds
    // and keeps reading the rest from snap2.
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "snap2", std::move(r)); }).rc, 0);
    write_pattern(env, "lvs/vol", 1024, 4, 4);  // cluster 4, now vol's
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "snap3", std::move(r)); }).rc, 0);
    Answer dec = call(env, [&](Result r) { lvol_decouple_parent("lvs/vol", std::move(r)); });
    ASSERT_EQ(dec.rc, 0) << dec.msg;
    EXPECT_EQ(lvol_entry(env, "vol")["num_allocated_clusters"], 1);
    EXPECT_TRUE(holds(env, "lvs/vol", 1024, 4, 4));
    EXPECT_TRUE(holds(env, "lvs/vol", 14, 498, 1, 0)) << "from snap2";
}

TEST(Lvol, ResizeRenameReadOnlyAndAFullStore) {
    ModEnv env(1);
    make_malloc(env, "m0", 32 * 256, 4096);  // 32 MiB
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    const uint64_t total = stores(env)[0]["total_data_clusters"];
    ASSERT_EQ(make_lvol(env, "lvs", "a", 2 * kMiB, false).rc, 0);
    write_pattern(env, "lvs/a", 0, 4, 5);
    ASSERT_EQ(call(env, [&](Result r) { lvol_resize("lvs/a", 4 * kMiB, std::move(r)); }).rc, 0);
    EXPECT_EQ(bdev_get_by_name("lvs/a")->num_blocks, 4u * 256);
    EXPECT_EQ(lvol_entry(env, "a")["num_allocated_clusters"], 4);
    EXPECT_TRUE(holds(env, "lvs/a", 0, 4, 5));
    EXPECT_TRUE(holds(env, "lvs/a", 512, 512, 0));
    ASSERT_EQ(call(env, [&](Result r) { lvol_resize("lvs/a", 1 * kMiB, std::move(r)); }).rc, 0);
    EXPECT_EQ(bdev_get_by_name("lvs/a")->num_blocks, 256u);
    EXPECT_EQ(stores(env)[0]["free_clusters"], total - 1);

    ASSERT_EQ(call(env, [&](Result r) { lvol_rename("lvs/a", "b", std::move(r)); }).rc, 0);
    EXPECT_EQ(bdev_get_by_name("lvs/a"), nullptr);
    ASSERT_NE(bdev_get_by_name("lvs/b"), nullptr);
    ASSERT_EQ(call(env, [&](Result r) { lvs_rename("lvs", "store", std::move(r)); }).rc, 0);
    ASSERT_NE(bdev_get_by_name("store/b"), nullptr);
    ASSERT_EQ(call(env, [&](Result r) { lvol_set_read_only("store/b", std::move(r)); }).rc, 0);
    {
        TestDesc d(env, "store/b");
        AlignedBuf buf(4096);
        EXPECT_FALSE(d.write(buf.p, 0, 1).ok);
    }
    EXPECT_EQ(call(env, [&](Result r) { lvol_resize("store/b", 8 * kMiB, std::move(r)); }).rc,
              -EPERM);

    // A thin lvol larger than the store: writes past the free space fail with Capacity Exceeded,
    // and nothing else is hurt.
    ASSERT_EQ(make_lvol(env, "store", "big", total * 2 * kMiB, true).rc, 0);
    TestDesc d(env, "store/big");
    AlignedBuf buf(4096);
    fill_pattern(buf.p, buf.size, 11);
    uint64_t written = 0;
    IoResult last;
    for (uint64_t c = 0; c < total * 2; ++c) {
        last = d.write(buf.p, c * 256, 1);
        if (!last.ok) break;
        ++written;
    }
    EXPECT_EQ(written, total - 1);
    EXPECT_FALSE(last.ok);
    EXPECT_EQ(last.sc, 0x81) << "Capacity Exceeded";
    EXPECT_EQ(stores(env)[0]["free_clusters"], 0);
    EXPECT_TRUE(holds(env, "store/b", 0, 4, 5));
}

// Closed (its base goes away) and opened again by examine when the base comes back: every
// lvol, snapshot and byte is there.
TEST(Lvol, AStoreComesBackWhenItsBaseReappears) {
    ModEnv env(1);
    make_malloc(env, "m0", 64 * 256, 4096);
    passthru(env, "m0", "p0");
    ASSERT_EQ(make_store(env, "p0", "lvs").rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "thin", 8 * kMiB, true).rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "thick", 4 * kMiB, false).rc, 0);
    write_pattern(env, "lvs/thin", 300, 8, 21);
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/thin", "snap", std::move(r)); }).rc, 0);
    write_pattern(env, "lvs/thin", 600, 8, 22);
    write_pattern(env, "lvs/thick", 0, 8, 23);
    const auto before = lvols(env);

    passthru_delete(env, "p0");
    EXPECT_TRUE(stores(env).empty());
    EXPECT_EQ(bdev_get_by_name("lvs/thin"), nullptr);
    passthru(env, "m0", "p0");
    wait_examine(env);
    ASSERT_EQ(stores(env).size(), 1u) << "examine opened the store";
    EXPECT_EQ(lvols(env), before);
    EXPECT_TRUE(holds(env, "lvs/thin", 300, 8, 21));
    EXPECT_TRUE(holds(env, "lvs/thin", 600, 8, 22));
    EXPECT_TRUE(holds(env, "lvs/snap", 600, 8, 0));
    EXPECT_TRUE(holds(env, "lvs/thick", 0, 8, 23));
}

// Random I/O from two threads at once on a thin lvol: concurrent first writes to a cluster
// allocate it once, and every byte verifies.
TEST(Lvol, ConcurrentThinWritesVerify) {
    ModEnv env(2);
    make_malloc(env, "m0", 64 * 256, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "t", 16 * kMiB, true).rc, 0);
    Bdev* b = bdev_get_by_name("lvs/t");
    std::vector<uint8_t> shadow(b->num_blocks * b->block_size, 0);
    RandomVerify v(env, env.data(0), "lvs/t", &shadow);
    VerifyOptions o;
    o.ops = 3000;
    o.queue_depth = 32;
    o.max_blocks = 80;
    VerifyResult r = v.run(o);
    EXPECT_EQ(r.errors, 0u);
    EXPECT_EQ(r.mismatches, 0u);
    EXPECT_EQ(v.check_all(), 0u);
    const uint64_t allocated = lvol_entry(env, "t")["num_allocated_clusters"];
    const uint64_t total = stores(env)[0]["total_data_clusters"];
    EXPECT_EQ(stores(env)[0]["free_clusters"], total - allocated) << "no cluster allocated twice";
}

}  // namespace
}  // namespace nocstor::test
