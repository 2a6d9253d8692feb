// Inflate and decouple copy a cluster at a time: a snapshot of the lvol, or a delete that merges
// its parent into it, may come in between. The data must stay what it was, and the lvol must
// not be deleted under the operation.
#include "lvol_env_util.h"
#include "mod_test_env.h"
#include "raid_test_util.h"

#include "modules/lvol/lvol.h"
#include "modules/lvol/lvstore.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>

namespace nocstor::test {
namespace {

using namespace nocstor::lvol;

constexpr uint64_t kCb = 256;  // blocks of 4 KiB per 1 MiB cluster

// An operation started on the control thread and not waited for.
struct Started {
    std::atomic<bool> done{false};
    int rc = 0;
    std::string msg;
};

void start(ModEnv& env, Started* st, std::function<void(Result)> fn) {
    ASSERT_TRUE(env.run(env.ctl(), [&] {
        fn([st](int rc, std::string msg) {
            st->rc = rc;
            st->msg = std::move(msg);
            st->done.store(true);
        });
    }));
}

bool wait_done(const Started& st) {
    for (int i = 0; i < 30000 && !st.done.load(); ++i) usleep(1000);
    return st.done.load();
}

// Polls until lvol `name` has at least `n` allocated clusters (false: the operation that
// allocates them ended first). True: the operation was under way then, so whatever the test
// starts next comes in the middle of it (which may then finish before that returns).
bool wait_allocated(ModEnv& env, const std::string& name, uint64_t n, const Started& st) {
    while (!st.done.load()) {
        if (lvol_entry(env, name)["num_allocated_clusters"].get<uint64_t>() >= n) return true;
        usleep(100);
    }
    return false;
}

std::vector<std::string> store_problems(ModEnv& env) {
    std::vector<std::string> out;
    env.run(env.ctl(), [&] { out = find_lvstore("", "lvs")->state.check(); });
    return out;
}

// Once `op` (under way on lvol vol) has given vol `n` clusters, a snapshot `snap` of vol; then
// `op` must end well.
void snapshot_midway(ModEnv& env, Started& op, uint64_t n, const std::string& snap) {
    ASSERT_TRUE(wait_allocated(env, "vol", n, op)) << "the operation ended too soon to interleave";
    Answer a = call(env, [&](Result r) { lvol_snapshot("lvs/vol", snap, std::move(r)); });
    ASSERT_EQ(a.rc, 0) << a.msg;
    ASSERT_TRUE(wait_done(op));
    ASSERT_EQ(op.rc, 0) << op.msg;
}

TEST(LvolLongOps, InflateKeepsTheDataWhenASnapshotTakesTheClustersMeanwhile) {
    ModEnv env(1);
    make_malloc(env, "m0", 320 * kCb, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    // Room for vol twice: the snapshot may take up to all of it before the inflate copies again.
    ASSERT_EQ(make_lvol(env, "lvs", "vol", 128 * kMiB, true).rc, 0);
    write_pattern(env, "lvs/vol", 0, 4 * kCb, 1);  // clusters 0-3, then the snapshot's
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "s1", std::move(r)); }).rc, 0);
    write_pattern(env, "lvs/vol", 4 * kCb, 4 * kCb, 2);  // clusters 4-7, vol's own

    Started inf;
    start(env, &inf, [](Result r) { lvol_inflate("lvs/vol", std::move(r)); });
    Answer del = call(env, [&](Result r) { lvol_delete("lvs/vol", std::move(r)); });
    EXPECT_EQ(del.rc, -EBUSY) << "not deleted under its inflate: " << del.msg;
    // Once the copies are past cluster 7, a snapshot takes everything vol has so far.
    snapshot_midway(env, inf, 16, "s2");
    if (HasFatalFailure()) return;

    auto v = lvol_entry(env, "vol");
    EXPECT_EQ(v["is_clone"], false);
    EXPECT_EQ(v["num_allocated_clusters"], 128) << "every cluster its own";
    EXPECT_TRUE(holds(env, "lvs/vol", 0, 4 * kCb, 1));
    EXPECT_TRUE(holds(env, "lvs/vol", 4 * kCb, 4 * kCb, 2));
    EXPECT_TRUE(holds(env, "lvs/vol", 8 * kCb, 8 * kCb, 0));
    EXPECT_TRUE(holds(env, "lvs/s2", 4 * kCb, 4 * kCb, 2)) << "the snapshot keeps what it took";
    EXPECT_TRUE(holds(env, "lvs/s2", 0, 4 * kCb, 1));
    EXPECT_TRUE(store_problems(env).empty()) << ::testing::PrintToString(store_problems(env));
    // Done: it can go now.
    EXPECT_EQ(call(env, [&](Result r) { lvol_delete("lvs/vol", std::move(r)); }).rc, 0);
}

TEST(LvolLongOps, DecoupleKeepsTheGrandparentWhenItsParentIsMergedMeanwhile) {
    ModEnv env(1);
    make_malloc(env, "m0", 320 * kCb, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "vol", 160 * kMiB, true).rc, 0);
    write_pattern(env, "lvs/vol", 150 * kCb, 2 * kCb, 1);  // clusters 150-151: s0's
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "s0", std::move(r)); }).rc, 0);
    write_pattern(env, "lvs/vol", 0, 96 * kCb, 2);  // clusters 0-95: s1's
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "s1", std::move(r)); }).rc, 0);
    write_pattern(env, "lvs/vol", 10, 1, 3);  // vol's own cluster 0

    // vol copies what s1 holds; meanwhile s1 (one clone: vol) is deleted, merging into vol.
    Started dec;
    start(env, &dec, [](Result r) { lvol_decouple_parent("lvs/vol", std::move(r)); });
    ASSERT_TRUE(wait_allocated(env, "vol", 8, dec)) << "the decouple ended too soon";
    Answer del = call(env, [&](Result r) { lvol_delete("lvs/s1", std::move(r)); });
    ASSERT_EQ(del.rc, 0) << del.msg;
    ASSERT_TRUE(wait_done(dec));
    ASSERT_EQ(dec.rc, 0) << dec.msg;

    EXPECT_TRUE(holds(env, "lvs/vol", 0, 10, 2, 0));
    EXPECT_TRUE(holds(env, "lvs/vol", 10, 1, 3));
    EXPECT_TRUE(holds(env, "lvs/vol", 11, 96 * kCb - 11, 2, 0));
    EXPECT_TRUE(holds(env, "lvs/vol", 150 * kCb, 2 * kCb, 1)) << "the grandparent's data";
    EXPECT_TRUE(holds(env, "lvs/vol", 96 * kCb, 54 * kCb, 0));
    EXPECT_TRUE(holds(env, "lvs/s0", 150 * kCb, 2 * kCb, 1));
    EXPECT_TRUE(store_problems(env).empty()) << ::testing::PrintToString(store_problems(env));
}

TEST(LvolLongOps, DecoupleAfterASnapshotMeanwhileDecouplesFromTheNewSnapshot) {
    ModEnv env(1);
    make_malloc(env, "m0", 320 * kCb, 4096);
    ASSERT_EQ(make_store(env, "m0", "lvs").rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "vol", 160 * kMiB, true).rc, 0);
    // Clusters 0-63: s1's. Room for them three times: vol's copies, the snapshot of them, the
    // copies again.
    write_pattern(env, "lvs/vol", 0, 64 * kCb, 1);
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "s1", std::move(r)); }).rc, 0);
    write_pattern(env, "lvs/vol", 140 * kCb, kCb, 2);  // vol's own cluster 140

    Started dec;
    start(env, &dec, [](Result r) { lvol_decouple_parent("lvs/vol", std::move(r)); });
    snapshot_midway(env, dec, 8, "s2");
    if (HasFatalFailure()) return;

    // As if asked after the snapshot: vol copied what s2 holds and is s1's clone again.
    auto v = lvol_entry(env, "vol");
    EXPECT_EQ(v["is_clone"], true);
    EXPECT_EQ(v["parent"], "s1") << v.dump();
    EXPECT_TRUE(holds(env, "lvs/vol", 0, 64 * kCb, 1, 0));
    EXPECT_TRUE(holds(env, "lvs/vol", 140 * kCb, kCb, 2));
    EXPECT_TRUE(holds(env, "lvs/s2", 140 * kCb, kCb, 2));
    EXPECT_TRUE(store_problems(env).empty()) << ::testing::PrintToString(store_problems(env));
}

// The store's base goes away (hot-remove) while an inflate runs: the store waits for the inflate,
// which ends at its next allocation (refused), then closes; back, it opens with every byte.
TEST(LvolLongOps, ABaseHotRemovedDuringAnInflateClosesTheStoreCleanly) {
    ModEnv env(1);
    make_malloc(env, "m0", 320 * kCb, 4096);
    passthru(env, "m0", "p0");
    ASSERT_EQ(make_store(env, "p0", "lvs").rc, 0);
    ASSERT_EQ(make_lvol(env, "lvs", "vol", 256 * kMiB, true).rc, 0);
    write_pattern(env, "lvs/vol", 0, 4 * kCb, 1);
    ASSERT_EQ(call(env, [&](Result r) { lvol_snapshot("lvs/vol", "s1", std::move(r)); }).rc, 0);

    Started inf;
    start(env, &inf, [](Result r) { lvol_inflate("lvs/vol", std::move(r)); });
    ASSERT_TRUE(wait_allocated(env, "vol", 8, inf)) << "the inflate ended too soon";
    passthru_delete(env, "p0");
    ASSERT_TRUE(wait_done(inf));
    // Mostly cut short by the store closing (its next allocation refused); it may also have
    // got to its end before the remove event reached the store. Either way: no crash, and the
    // data below.
    EXPECT_TRUE(stores(env).empty());
    EXPECT_EQ(bdev_get_by_name("lvs/vol"), nullptr);

    passthru(env, "m0", "p0");
    wait_examine(env);
    ASSERT_EQ(stores(env).size(), 1u);
    EXPECT_TRUE(holds(env, "lvs/vol", 0, 4 * kCb, 1));
    EXPECT_TRUE(holds(env, "lvs/vol", 4 * kCb, 8 * kCb, 0));
    EXPECT_TRUE(store_problems(env).empty()) << ::testing::PrintToString(store_problems(env));
}

}  // namespace
}  // namespace nocstor::test
