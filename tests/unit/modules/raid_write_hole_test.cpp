// raid6 and the write hole while a member is being rebuilt. A crash in the middle of a write
// leaves the members of a row old or new; the resync after it makes the parity match the data.
// If a member is being rebuilt at the same time, rebuilding it from P alone would turn a
// half-done write on another member into wrong data on the member being rebuilt (data that had
// been written and flushed long before). With one member left to rebuild raid6 still locates the
// single wrong member of a row, so the member's own rows are kept unless P and Q both point at
// them. And a write into a part of the array the rebuild has not reached puts the rebuilt rows
// on the new member before it writes the others, so that a crash never leaves two wrong members
// in a row.
#include "mod_test_env.h"
#include "modules/raid/raid.h"
#include "modules/raid/raid_superblock.h"
#include "raid_test_util.h"
#include "raid_verify.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace nocstor;
using namespace nocstor::raid;
using namespace nocstor::test;

namespace {

constexpr uint32_t kBlock = 512;
constexpr uint32_t kMembers = 5;
constexpr uint32_t kStripKb = 8;
constexpr uint64_t kStripBlocks = kStripKb * 1024 / kBlock;

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937_64 g(seed);
    for (auto& x : v) x = uint8_t(g());
    return v;
}

void write_raw(ModEnv& env, const std::string& disk, uint64_t block,
               const std::vector<uint8_t>& v) {
    TestDesc d(env, disk, true);
    AlignedBuf b(v.size());
    memcpy(b.p, v.data(), v.size());
    ASSERT_TRUE(d.write(b.p, block, v.size() / kBlock).ok);
}

std::vector<uint8_t> read_raw(ModEnv& env, const std::string& disk, uint64_t block, uint64_t n) {
    TestDesc d(env, disk, false);
    AlignedBuf b(n * kBlock);
    EXPECT_TRUE(d.read(b.p, block, n).ok);
    return std::vector<uint8_t>(b.p, b.p + n * kBlock);
}

// The first stripe at or after `from` whose data index `d` lives on member `m`.
uint64_t stripe_with(const Geometry& g, uint32_t m, uint32_t d, uint64_t from) {
    for (uint64_t s = from;; ++s)
        if (g.data_member(s, d) == m) return s;
}

// The array's bytes of data strip d of stripe s.
size_t strip_offset(const Geometry& g, uint64_t s, uint32_t d) {
    return size_t((s * g.stripe_data_blocks() + d * g.strip_blocks) * g.block_size);
}

// A crash cut three writes while member 3 was being rebuilt (the superblocks say so, and that
// the parity is to be resynced):
//   stripe a: a write reached data member A only (P and Q old), member 3 holds data there;
//   stripe b: a write spanning two data strips reached both of them but neither parity;
//   stripe c: nothing was being written, but member 3's strip there was never rebuilt (zeros).
// After the assembly every flushed block reads back, the torn writes read back as written (old
// or new is what the resync may choose; here the data members hold the new data), and the
// parity on the members is right.
// away: the crash also cut the superblock update that made member 3 the slot's new member
// before it reached member 3 itself: the array comes up without it (the resync waits), and
// the administrator adds it again.
void crash_during_rebuild(bool away) {
    ModEnv env(1);
    SbArray a(env, kMembers, 4096);
    ASSERT_EQ(a.create(Level::Raid6, kStripKb), 0);
    wait_idle(env, "r");
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow = random_bytes(r->num_blocks * r->block_size, 7);
    {
        TestDesc d(env, "r", true);
        for (uint64_t off = 0; off < r->num_blocks; off += 256) {
            AlignedBuf b(256 * kBlock);
            memcpy(b.p, shadow.data() + off * kBlock, 256 * kBlock);
            ASSERT_TRUE(d.write(b.p, off, 256).ok);
        }
    }
    a.remove();
    for (uint32_t i = 0; i < kMembers; ++i) a.unplug(int(i));

    Superblock sb;
    ASSERT_TRUE(read_newest_sb(env, "disk0", &sb));
    Geometry g;
    g.level = Level::Raid6;
    g.members = kMembers;
    g.block_size = kBlock;
    g.strip_blocks = kStripBlocks;
    g.data_offset = sb.data_offset;
    g.member_blocks = sb.member_blocks;
    constexpr uint32_t kM = 3;  // the member being rebuilt
    const size_t strip_bytes = kStripBlocks * kBlock;

    // Stripe a: member 3 is data index 1, member A data index 0.
    const uint64_t sa = stripe_with(g, kM, 1, 4);
    const std::vector<uint8_t> new_a = random_bytes(strip_bytes, 100);
    write_raw(env, "disk" + std::to_string(g.data_member(sa, 0)), strip_block(g, sa, 0), new_a);
    memcpy(shadow.data() + strip_offset(g, sa, 0), new_a.data(), strip_bytes);
    // Stripe b: member 3 is data index 2; data indices 0 and 1 were both written.
    const uint64_t sbb = stripe_with(g, kM, 2, sa + 1);
    for (uint32_t d = 0; d < 2; ++d) {
        const std::vector<uint8_t> v = random_bytes(strip_bytes, 200 + d);
        write_raw(env, "disk" + std::to_string(g.data_member(sbb, d)), strip_block(g, sbb, 0), v);
        memcpy(shadow.data() + strip_offset(g, sbb, d), v.data(), strip_bytes);
    }
    // Stripe c: member 3's strip never rebuilt.
    const uint64_t sc = stripe_with(g, kM, 0, sbb + 1);
    write_raw(env, "disk" + std::to_string(kM), strip_block(g, sc, 0),
              std::vector<uint8_t>(strip_bytes, 0));

    // The superblocks as a crash during the rebuild of member 3 leaves them.
    sb.seq += 1;
    sb.clean = false;
    sb.resync_pending = true;  // every region counts as written (the write-intent bitmap's role)
    sb.resync_offset = 0;
    sb.members[kM].state = SbMemberState::Rebuilding;
    sb.members[kM].rebuild_offset = 0;
    sb.members[kM].partial_rebuild = false;
    if (away) sb.members[kM].uuid[0] ^= 0xFF;  // the slot's new identity
    for (uint32_t i = 0; i < kMembers; ++i) {
        if (away && i == kM) continue;  // it keeps its old superblock
        Superblock s = sb;
        s.slot = i;
        write_only_sb_copy(env, "disk" + std::to_string(i), s);
    }

    for (uint32_t i = 0; i < kMembers; ++i) a.plug(int(i));
    a.settle();
    ASSERT_NE(bdev_get_by_name("r"), nullptr);
    nlohmann::json e = wait_idle(env, "r");
    if (away) {
        EXPECT_EQ(e["state"], "degraded") << e.dump();
        EXPECT_FALSE(e.contains("last_process")) << "no resync while degraded: " << e.dump();
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_add_member("r", "p3", &err), 0) << err;
        });
        e = wait_idle(env, "r");
    }
    EXPECT_EQ(e["state"], "online") << e.dump();
    const std::vector<uint8_t> now = read_all(env, "r");
    for (uint64_t s : {sa, sbb, sc}) {
        for (uint32_t d = 0; d < g.data_members(); ++d) {
            const size_t off = strip_offset(g, s, d);
            EXPECT_EQ(memcmp(now.data() + off, shadow.data() + off, strip_bytes), 0)
                << "stripe " << s << " data index " << d << " on member " << g.data_member(s, d);
        }
    }
    EXPECT_TRUE(now == shadow);
    EXPECT_EQ(check_parity_on_members(env, a.members, 2, kStripBlocks, g.data_offset,
                                      g.member_blocks, kBlock),
              0u);
}

TEST(RaidWriteHole, ACrashDuringARebuildKeepsTheRebuiltMembersData) {
    crash_during_rebuild(false);
}

TEST(RaidWriteHole, ADegradedArrayResyncsOnceTheMemberIsBackAndKeepsItsData) {
    crash_during_rebuild(true);
}

// A write into a stripe the rebuild has not reached: the new member holds its rows of that
// stripe (rebuilt, with the new data where the write covers them) once the write completes.
TEST(RaidWriteHole, AWriteAheadOfTheRebuildPutsTheNewMembersRowsFirst) {
    ModEnv env(1);
    std::vector<std::string> bases;
    for (uint32_t i = 0; i < kMembers; ++i) {
        bases.push_back("h" + std::to_string(i));
        make_malloc(env, bases.back(), 16384);
    }
    make_malloc(env, "spare", 16384);
    env.run(env.ctl(), [&] {
        RaidCreateOptions o;
        o.name = "r";
        o.level = Level::Raid6;
        o.base_bdevs = bases;
        o.strip_size_kb = kStripKb;
        std::string err;
        ASSERT_EQ(raid_create(o, &err), 0) << err;
    });
    wait_idle(env, "r");
    Bdev* r = bdev_get_by_name("r");
    const std::vector<uint8_t> shadow = random_bytes(r->num_blocks * r->block_size, 9);
    {
        TestDesc d(env, "r", true);
        for (uint64_t off = 0; off < r->num_blocks; off += 256) {
            AlignedBuf b(256 * kBlock);
            memcpy(b.p, shadow.data() + off * kBlock, 256 * kBlock);
            ASSERT_TRUE(d.write(b.p, off, 256).ok);
        }
    }
    constexpr uint32_t kM = 3;
    env.run(env.ctl(), [&] {
        std::string err;
        EXPECT_EQ(raid_fail_member("r", bases[kM], &err), 0) << err;
    });
    Geometry g;
    g.level = Level::Raid6;
    g.members = kMembers;
    g.block_size = kBlock;
    g.strip_blocks = kStripBlocks;
    g.data_offset = 0;
    g.member_blocks = r->num_blocks / g.data_members();
    raid_set_process_options(16, 1, 5000);  // 1 MB/s: the end of the member comes last
    env.run(env.ctl(), [&] {
        std::string err;
        EXPECT_EQ(raid_add_member("r", "spare", &err), 0) << err;
    });
    // The last stripe where the spare holds data index 1; 4 KiB into data index 0.
    const uint64_t stripes = g.member_blocks / kStripBlocks;
    uint64_t s = stripes - 1;
    while (g.data_member(s, 1) != kM) --s;
    std::vector<uint8_t> expect = shadow;
    const std::vector<uint8_t> w = random_bytes(4096, 11);
    {
        TestDesc d(env, "r", true);
        AlignedBuf b(4096);
        memcpy(b.p, w.data(), 4096);
        const uint64_t lba = s * g.stripe_data_blocks();
        ASSERT_TRUE(d.write(b.p, lba, 8).ok);
        memcpy(expect.data() + lba * kBlock, w.data(), 4096);
    }
    nlohmann::json e;
    env.run(env.ctl(), [&] {
        for (const auto& x : raid_list("all"))
            if (x["name"] == "r") e = x;
    });
    ASSERT_TRUE(e.contains("process")) << "the rebuild is still running: " << e.dump();
    const uint64_t done = e["process"]["progress"]["blocks"];
    EXPECT_LT(done, s * kStripBlocks) << "the rebuild has not reached the stripe";
    // The spare's rows the write touched (rows 0..7 of its strip) are the array's data there.
    const std::vector<uint8_t> rows = read_raw(env, "spare", strip_block(g, s, 0), 8);
    EXPECT_EQ(memcmp(rows.data(), expect.data() + strip_offset(g, s, 1), rows.size()), 0);
    raid_set_process_options(1024, 0, 5000);
    e = wait_idle(env, "r");
    EXPECT_EQ(e["state"], "online") << e.dump();
    EXPECT_TRUE(read_all(env, "r") == expect);
}

}  // namespace
