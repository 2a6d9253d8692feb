// Assembly from superblocks when a member's copy is older than the others': md's events-within-
// one rule. A member exactly one update behind that was online before and after that update
// (a crash cut the last superblock write to it) is current; two updates behind, or marked failed
// by the newer superblocks, it is stale and rebuilt. The superblocks are forged on the disks
// with the module's own encoder while the array is down.
#include "mod_test_env.h"
#include "modules/raid/raid.h"
#include "modules/raid/raid_superblock.h"
#include "raid_test_util.h"
#include "raid_verify.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>
#include <vector>

using namespace nocstor;
using namespace nocstor::raid;
using namespace nocstor::test;

namespace {

enum class Forge {
    OneBehind,              // the member missed the last update only
    TwoBehind,              // it missed two
    OneBehindFailedInNewer  // one behind, but the newer superblocks say it failed
};

// raid6 over 5 members; member 1's superblock is forged per `how`. Returns the assembled
// array's raid_list entry once it is idle; *shadow_ok: the data reads back.
nlohmann::json assemble_with(Forge how, bool* shadow_ok) {
    ModEnv env(1);
    SbArray a(env, 5, 4096);
    EXPECT_EQ(a.create(Level::Raid6, 8), 0);
    wait_idle(env, "r");
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    {
        RandomVerify v(env, env.data(0), "r", &shadow);
        VerifyOptions o;
        o.ops = 200;
        EXPECT_EQ(v.run(o).mismatches, 0u);
    }
    shadow = read_all(env, "r");
    a.remove();  // a clean stop: every member gets the last superblock
    for (int i = 0; i < 5; ++i) a.unplug(i);

    constexpr uint32_t kX = 1;
    std::vector<Superblock> sbs(5);
    for (int i = 0; i < 5; ++i)
        EXPECT_TRUE(read_newest_sb(env, "disk" + std::to_string(i), &sbs[i])) << i;
    const uint64_t seq = sbs[0].seq;
    EXPECT_GE(seq, 3u);
    for (const auto& s : sbs) EXPECT_EQ(s.seq, seq) << "every member has the last update";
    Superblock x = sbs[kX];
    EXPECT_EQ(x.members[kX].state, SbMemberState::Online);
    x.seq = how == Forge::TwoBehind ? seq - 2 : seq - 1;
    write_only_sb_copy(env, "disk" + std::to_string(kX), x);
    if (how == Forge::OneBehindFailedInNewer) {
        // The update the member missed was the one recording its failure.
        for (uint32_t i = 0; i < 5; ++i) {
            if (i == kX) continue;
            Superblock s = sbs[i];
            s.members[kX].state = SbMemberState::Failed;
            write_only_sb_copy(env, "disk" + std::to_string(i), s);
        }
    }

    for (int i = 0; i < 5; ++i) a.plug(i);
    a.settle();
    EXPECT_NE(bdev_get_by_name("r"), nullptr);
    if (!bdev_get_by_name("r")) return {};
    nlohmann::json e = wait_idle(env, "r");
    *shadow_ok = read_all(env, "r") == shadow;
    return e;
}

TEST(RaidAssemble, AMemberOneUpdateBehindIsCurrent) {
    bool data_ok = false;
    nlohmann::json e = assemble_with(Forge::OneBehind, &data_ok);
    EXPECT_EQ(e["state"], "online") << e.dump();
    EXPECT_EQ(e["base_bdevs_list"][1]["name"], "p1") << e.dump();
    EXPECT_EQ(e["base_bdevs_list"][1]["state"], "online") << e.dump();
    EXPECT_FALSE(e.contains("last_process")) << "nothing rebuilt: " << e.dump();
    EXPECT_TRUE(data_ok);
}

TEST(RaidAssemble, AMemberTwoUpdatesBehindIsRebuilt) {
    bool data_ok = false;
    nlohmann::json e = assemble_with(Forge::TwoBehind, &data_ok);
    EXPECT_EQ(e["state"], "online") << e.dump();
    ASSERT_TRUE(e.contains("last_process")) << e.dump();
    EXPECT_EQ(e["last_process"]["type"], "rebuild") << e.dump();
    EXPECT_EQ(e["last_process"]["target_slot"], 1) << e.dump();
    EXPECT_EQ(e["last_process"]["result"], "finished") << e.dump();
    EXPECT_TRUE(data_ok);
}

TEST(RaidAssemble, AMemberTheNewerSuperblocksMarkFailedIsRebuilt) {
    bool data_ok = false;
    nlohmann::json e = assemble_with(Forge::OneBehindFailedInNewer, &data_ok);
    EXPECT_EQ(e["state"], "online") << e.dump();
    ASSERT_TRUE(e.contains("last_process")) << e.dump();
    EXPECT_EQ(e["last_process"]["type"], "rebuild") << e.dump();
    EXPECT_EQ(e["last_process"]["target_slot"], 1) << e.dump();
    EXPECT_TRUE(data_ok);
}

}  // namespace
