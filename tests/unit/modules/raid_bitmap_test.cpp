// RAID metadata that protects against crashes: the write-intent bitmap (bits on disk before the
// writes they cover, cleared when idle, a crash resyncs only dirty regions, a member that comes
// back gets only what it missed) and member failures recorded before the writes that skipped the
// member complete.
#include "mod_test_env.h"
#include "modules/error.h"
#include "modules/passthru.h"
#include "modules/raid/raid.h"
#include "modules/raid/raid_internal.h"
#include "modules/raid/raid_superblock.h"
#include "raid_test_util.h"
#include "raid_verify.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <thread>

using namespace nocstor;
using namespace nocstor::raid;
using namespace nocstor::test;

namespace {

constexpr uint64_t kMemberBlocks = 6144;  // 1 MiB metadata + 2 MiB data, 512 B blocks
constexpr uint32_t kRegionKb = 64;        // 128 member blocks: 32 regions
constexpr uint64_t kRegionRows = 128;
constexpr uint64_t kStripRows = 16;          // 8 KiB strips: a region is 8 stripes
constexpr uint64_t kMirrorRegionRows = 256;  // raid1: at least one lock unit (128 KiB)

// The first array block of region r for a striped array with k data members.
uint64_t region_lba(uint64_t r, uint32_t k) {
    return r * (kRegionRows / kStripRows) * kStripRows * k;
}

std::vector<uint8_t> bitmap_on(ModEnv& env, const std::string& disk) {
    TestDesc d(env, disk, false);
    AlignedBuf b(512);
    EXPECT_TRUE(d.read(b.p, kBitmapOffset / 512, 1).ok);
    return std::vector<uint8_t>(b.p, b.p + 4);
}

nlohmann::json entry_of(ModEnv& env) {
    nlohmann::json e;
    env.run(env.ctl(), [&] { e = raid_list("all").at(0); });
    return e;
}

void never_clear_by_timer(ModEnv& env) {
    env.run(env.ctl(), [] { raid_set_process_options(1024, 0, 3'600'000); });
}

// Two passes: the first sees the regions written since the last one, the second clears them.
void clear_idle_bits(ModEnv& env, int wait_ms = 10000) {
    for (int pass = 0; pass < 2; ++pass)
        env.run(env.ctl(), [] { raid::detail::find_raid("r")->bitmap()->clear_pass(); });
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (entry_of(env)["write_intent_bitmap"]["dirty_regions"] != 0 &&
           std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

void write_at(ModEnv& env, uint64_t lba, uint64_t blocks, uint64_t seed,
              std::vector<uint8_t>* shadow = nullptr) {
    TestDesc d(env, "r");
    AlignedBuf b(blocks * 512);
    fill_pattern(b.p, b.size, seed);
    ASSERT_TRUE(d.write(b.p, lba, blocks).ok);
    if (shadow) std::memcpy(shadow->data() + lba * 512, b.p, b.size);
}

void fail(ModEnv& env, const char* member) {
    env.run(env.ctl(), [&] {
        std::string err;
        EXPECT_EQ(raid_fail_member("r", member, &err), 0) << err;
    });
}

TEST(RaidBitmap, BitsReachEveryMemberBeforeTheWritesAndAreClearedWhenIdle) {
    ModEnv env(2);
    // Before the array exists: a timer pass between the writes and the test's own passes (a
    // slow, sanitized build) would see the writes first.
    never_clear_by_timer(env);
    SbArray a(env, 4, kMemberBlocks);
    ASSERT_EQ(a.create(Level::Raid5, 8, kRegionKb), 0);
    wait_idle(env, "r");
    nlohmann::json bm = entry_of(env)["write_intent_bitmap"];
    EXPECT_EQ(bm["region_kb"], kRegionKb) << bm.dump();
    EXPECT_EQ(bm["regions"], 32);
    EXPECT_EQ(bm["dirty_regions"], 0) << "the initial resync writes no bits";

    write_at(env, region_lba(0, 3), 8, 1);
    write_at(env, region_lba(5, 3) + 40, 8, 2);
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(bitmap_on(env, "disk" + std::to_string(i)), (std::vector<uint8_t>{0x21, 0, 0, 0}))
            << "disk" << i;
    EXPECT_EQ(entry_of(env)["write_intent_bitmap"]["dirty_regions"], 2);

    bool cleared = true;
    env.run(env.ctl(), [&] { cleared = raid::detail::find_raid("r")->bitmap()->clear_pass(); });
    EXPECT_FALSE(cleared) << "written since the last pass: not idle yet";
    clear_idle_bits(env);
    EXPECT_EQ(entry_of(env)["write_intent_bitmap"]["dirty_regions"], 0);
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(bitmap_on(env, "disk" + std::to_string(i)), (std::vector<uint8_t>{0, 0, 0, 0}));

    write_at(env, region_lba(31, 3), 8, 3);
    EXPECT_EQ(bitmap_on(env, "disk2"), (std::vector<uint8_t>{0, 0, 0, 0x80}));
}

TEST(RaidBitmap, NothingIsClearedWhileAMemberIsAway) {
    ModEnv env(1);
    SbArray a(env, 3, kMemberBlocks);
    ASSERT_EQ(a.create(Level::Raid1, 0, kRegionKb), 0);
    wait_idle(env, "r");
    never_clear_by_timer(env);
    write_at(env, 0, 8, 1);
    a.unplug(1);
    clear_idle_bits(env, 200);
    EXPECT_EQ(entry_of(env)["write_intent_bitmap"]["dirty_regions"], 1);
    EXPECT_EQ(bitmap_on(env, "disk0")[0], 1);
}

// A crash between the data and the parity write of a stripe: after the restart only the regions
// whose bit is set are resynced (a scrub still sees the damage planted in a clean region).
TEST(RaidBitmap, ACrashResyncsOnlyTheDirtyRegions) {
    ModEnv env(2);
    SbArray a(env, 4, kMemberBlocks);
    ASSERT_EQ(a.create(Level::Raid5, 8, kRegionKb), 0);
    wait_idle(env, "r");
    never_clear_by_timer(env);
    write_at(env, region_lba(2, 3), 8, 7);
    env.run(env.ctl(), [] { raid::detail::find_raid("r")->crash_on_delete = true; });
    a.remove();
    for (int i = 0; i < 4; ++i) a.unplug(i);
    // Stripes 16 (region 2) and 56 (region 7) keep their parity on member 3: spoil both, as a
    // crash between data and parity writes would (in region 2, which was being written).
    {
        TestDesc d3(env, "disk3");
        AlignedBuf junk(512);
        fill_pattern(junk.p, 512, 99);
        ASSERT_TRUE(d3.write(junk.p, 2048 + 16 * kStripRows, 1).ok);
        ASSERT_TRUE(d3.write(junk.p, 2048 + 56 * kStripRows, 1).ok);
    }
    for (int i = 0; i < 4; ++i) a.plug(i);
    a.settle();
    ASSERT_NE(bdev_get_by_name("r"), nullptr);
    nlohmann::json e = wait_idle(env, "r");
    ASSERT_TRUE(e.contains("last_process")) << e.dump();
    EXPECT_EQ(e["last_process"]["type"], "resync");
    EXPECT_EQ(e["last_process"]["blocks_processed"], kRegionRows) << "one region, not 32";
    env.run(env.ctl(), [] {
        std::string err;
        EXPECT_EQ(raid_start_scrub("r", false, &err), 0) << err;
    });
    e = wait_idle(env, "r");
    EXPECT_EQ(e["last_scrub_mismatches"], 1) << "region 7 was clean: not resynced";
    TestDesc d(env, "r");
    AlignedBuf got(8 * 512), want(8 * 512);
    fill_pattern(want.p, want.size, 7);
    ASSERT_TRUE(d.read(got.p, region_lba(2, 3), 8).ok);
    EXPECT_EQ(std::memcmp(got.p, want.p, want.size), 0);
}

// A clean stop in the middle of the crash resync does not forget it: the next start resyncs
// those regions again. A clean stop of a whole, synced array leaves no bit set.
TEST(RaidBitmap, ACleanStopDuringTheCrashResyncKeepsItDue) {
    ModEnv env(1);
    SbArray a(env, 4, kMemberBlocks);
    ASSERT_EQ(a.create(Level::Raid5, 8, kRegionKb), 0);
    wait_idle(env, "r");
    never_clear_by_timer(env);
    for (uint64_t r : {2, 9, 20}) write_at(env, region_lba(r, 3), 8, r);
    env.run(env.ctl(), [] { raid::detail::find_raid("r")->crash_on_delete = true; });
    a.remove();
    for (int i = 0; i < 4; ++i) a.unplug(i);
    {
        // The crash hit region 20 between its data and parity writes (stripe 160, P on disk3).
        TestDesc d3(env, "disk3");
        AlignedBuf junk(512);
        fill_pattern(junk.p, 512, 5);
        ASSERT_TRUE(d3.write(junk.p, 2048 + 160 * kStripRows, 1).ok);
    }
    env.run(env.ctl(), [] { raid_set_process_options(64, 1, 3'600'000); });  // slow resync
    for (int i = 0; i < 4; ++i) a.plug(i);
    a.settle();
    ASSERT_TRUE(entry_of(env).contains("process"));
    a.remove();  // clean stop, resync at region 2 or 9
    for (int i = 0; i < 4; ++i) a.unplug(i);
    env.run(env.ctl(), [] { raid_set_process_options(1024, 0, 3'600'000); });
    for (int i = 0; i < 4; ++i) a.plug(i);
    a.settle();
    nlohmann::json e = wait_idle(env, "r");
    EXPECT_EQ(e["last_process"]["type"], "resync") << e.dump();
    env.run(env.ctl(), [] {
        std::string err;
        EXPECT_EQ(raid_start_scrub("r", false, &err), 0) << err;
    });
    e = wait_idle(env, "r");
    EXPECT_EQ(e["last_scrub_mismatches"], 0) << "region 20 was resynced after all";
    a.remove();
    EXPECT_EQ(bitmap_on(env, "disk0"), (std::vector<uint8_t>{0, 0, 0, 0}))
        << "a clean stop of a whole array clears its bits";
}

TEST(RaidBitmap, AScrubNeedsEveryMember) {
    ModEnv env(1);
    SbArray a(env, 3, kMemberBlocks);
    ASSERT_EQ(a.create(Level::Raid5, 8, kRegionKb), 0);
    wait_idle(env, "r");
    a.unplug(1);
    env.run(env.ctl(), [] {
        std::string err;
        EXPECT_EQ(raid_start_scrub("r", false, &err), -EBUSY);
        EXPECT_NE(err.find("degraded"), std::string::npos) << err;
    });
}

// A member that goes away while the array runs and comes back gets only the regions written
// in between; everything else it already holds.
TEST(RaidBitmap, AMemberThatComesBackGetsOnlyWhatItMissed) {
    ModEnv env(1);
    SbArray a(env, 5, kMemberBlocks);
    ASSERT_EQ(a.create(Level::Raid6, 8, kRegionKb), 0);
    wait_idle(env, "r");
    never_clear_by_timer(env);
    std::vector<uint8_t> shadow = read_all(env, "r");
    write_at(env, region_lba(1, 3), 16, 1, &shadow);  // before it goes: it has these
    clear_idle_bits(env);
    a.unplug(2);
    write_at(env, region_lba(4, 3) + 20, 30, 2, &shadow);
    write_at(env, region_lba(6, 3), 8, 3, &shadow);
    a.plug(2);
    a.settle();
    nlohmann::json e = wait_idle(env, "r");
    EXPECT_EQ(e["state"], "online") << e.dump();
    EXPECT_EQ(e["last_process"]["type"], "rebuild");
    EXPECT_EQ(e["last_process"]["blocks_processed"], 2 * kRegionRows) << e.dump();
    fail(env, "p0");
    fail(env, "p1");
    EXPECT_EQ(read_all(env, "r"), shadow) << "p2 holds old and new data";
}

// The same when the member is out of date at assembly (it failed, the array was stopped).
TEST(RaidBitmap, AStaleMemberAtAssemblyGetsOnlyWhatItMissed) {
    ModEnv env(1);
    SbArray a(env, 3, kMemberBlocks);
    ASSERT_EQ(a.create(Level::Raid1, 0, kRegionKb), 0);
    wait_idle(env, "r");
    never_clear_by_timer(env);
    std::vector<uint8_t> shadow = read_all(env, "r");
    fail(env, "p1");
    write_at(env, 3 * kMirrorRegionRows + 5, 8, 4, &shadow);
    a.remove();
    for (int i = 0; i < 3; ++i) a.unplug(i);
    for (int i = 0; i < 3; ++i) a.plug(i);
    a.settle();
    ASSERT_NE(bdev_get_by_name("r"), nullptr);
    nlohmann::json e = wait_idle(env, "r");
    EXPECT_EQ(e["state"], "online") << e.dump();
    EXPECT_EQ(e["last_process"]["type"], "rebuild");
    EXPECT_EQ(e["last_process"]["blocks_processed"], kMirrorRegionRows) << e.dump();
    fail(env, "p0");
    fail(env, "p2");
    EXPECT_EQ(read_all(env, "r"), shadow);
}

// The initial resync of a new array (its members hold old data) is recorded in the superblocks:
// stopped half-way, it goes on from there at the next start, and the parity ends up right.
TEST(RaidBitmap, AnUnfinishedInitialResyncGoesOnAfterAStop) {
    ModEnv env(1);
    SbArray a(env, 4, kMemberBlocks);
    for (int i = 0; i < 4; ++i) {
        // Old contents: nothing matches.
        TestDesc d(env, "p" + std::to_string(i));
        AlignedBuf junk(kMemberBlocks * 512);
        fill_pattern(junk.p, junk.size, 100 + uint64_t(i));
        ASSERT_TRUE(d.write(junk.p, 0, kMemberBlocks).ok);
    }
    env.run(env.ctl(), [] { raid_set_process_options(64, 1, 3'600'000); });  // 1 MB/s
    ASSERT_EQ(a.create(Level::Raid5, 8, kRegionKb), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    nlohmann::json e = entry_of(env);
    ASSERT_TRUE(e.contains("process")) << e.dump();
    EXPECT_EQ(e["process"]["type"], "resync");
    a.remove();
    for (int i = 0; i < 4; ++i) a.unplug(i);
    env.run(env.ctl(), [] { raid_set_process_options(1024, 0, 3'600'000); });
    for (int i = 0; i < 4; ++i) a.plug(i);
    a.settle();
    ASSERT_NE(bdev_get_by_name("r"), nullptr);
    e = wait_idle(env, "r");
    EXPECT_EQ(e["last_process"]["type"], "resync") << e.dump();
    EXPECT_GT(e["last_process"]["blocks_processed"], 0);
    EXPECT_LT(e["last_process"]["blocks_processed"], 4096) << "went on, did not start over";
    env.run(env.ctl(), [] {
        std::string err;
        EXPECT_EQ(raid_start_scrub("r", false, &err), 0) << err;
    });
    e = wait_idle(env, "r");
    EXPECT_EQ(e["last_scrub_mismatches"], 0) << e.dump();
}

// A write that a member failed completes only once the other members' superblocks say the
// member is failed: a crash right after the acknowledgement must not bring the member back as
// if it held the write.
TEST(RaidSuperblock, AWriteAMemberMissedCompletesOnceItsFailureIsOnDisk) {
    ModEnv env(1);
    for (int i = 0; i < 3; ++i) make_malloc(env, "disk" + std::to_string(i), kMemberBlocks);
    env.run(env.ctl(), [] {
        std::string err;
        ASSERT_EQ(error_bdev_create({"disk1", ""}, &err), 0) << err;
    });
    int rc = -1;
    env.run_async(env.ctl(), [&](auto done) {
        RaidCreateOptions o;
        o.name = "r";
        o.level = Level::Raid5;
        o.base_bdevs = {"disk0", "EE_disk1", "disk2"};
        o.strip_size_kb = 8;
        o.superblock = true;
        raid_create_async(o, [&, done](int r, std::string) {
            rc = r;
            done();
        });
    });
    ASSERT_EQ(rc, 0);
    wait_idle(env, "r");
    env.run(env.ctl(), [] {
        ErrorInjectOptions e;
        e.name = "EE_disk1";
        e.io_type = "write";
        e.error_type = "failure";
        std::string err;
        ASSERT_EQ(error_bdev_inject(e, &err), 0) << err;
    });
    write_at(env, kStripRows, 8, 5);  // stripe 0, data strip 1: member 1
    TestDesc d0(env, "disk0", false);
    AlignedBuf sbs(8192);
    ASSERT_TRUE(d0.read(sbs.p, 0, 16).ok);
    Superblock best;
    for (uint64_t off : kSbCopyOffset) {
        Superblock sb;
        std::string why;
        if (sb_decode(sbs.p + off, &sb, &why) && sb.seq > best.seq) best = sb;
    }
    ASSERT_EQ(best.members.size(), 3u);
    EXPECT_EQ(best.members[1].state, SbMemberState::Failed);
}

}  // namespace
