// nocstor-raid (the offline RAID tool) on arrays the daemon wrote: raid1, raid5 and raid6 with
// superblocks on four files, data written over NVMe/TCP, the daemon stopped cleanly. Then dump
// and check agree with what the daemon did; a flipped data byte is found in its row; a damaged
// superblock copy shows as such with the other copy still read; a member left out is reported;
// a write-intent bitmap (written here in the documented format) sorts mismatches into dirty
// regions and clean ones.
#include "common/tool_run.h"
#include "daemon_env.h"
#include "modules/raid/raid_layout.h"
#include "modules/raid/raid_superblock.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <fcntl.h>

#include <functional>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:raidtool";
constexpr uint64_t kMemberBytes = 2 << 20;  // 1 MiB of metadata, 1 MiB of data
constexpr uint64_t kDataOffset = 1 << 20;
constexpr uint64_t kMemberRows = (kMemberBytes - kDataOffset) / 512;

// The tool sits next to this test binary (both in the build's bin/).
ToolRun run_tool(const std::vector<std::string>& args, const std::string& dir) {
    const std::string tool =
        tool_beside_test("nocstor-raid", std::string(NOCSTOR_BIN_DIR) + "/nocstor-raid");
    return nocstor::testing::run_tool(tool, args, dir);
}

std::vector<std::string> with(std::vector<std::string> head, const std::vector<std::string>& t) {
    head.insert(head.end(), t.begin(), t.end());
    return head;
}

void flip_byte(const std::string& path, uint64_t off) {
    const int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << path;
    uint8_t b = 0;
    ASSERT_EQ(pread(fd, &b, 1, off_t(off)), 1);
    b ^= 0x5A;
    ASSERT_EQ(pwrite(fd, &b, 1, off_t(off)), 1);
    close(fd);
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed * 7 + i * 13 + (i >> 9));
    return v;
}

// Four member files; the daemon builds `level` over them with a superblock, waits for the initial
// resync, writes 24 pieces of 4 KiB (partial stripes, some across strips) and stops cleanly.
std::vector<std::string> make_array(const std::string& dir, const std::string& level,
                                    uint32_t strip_kb) {
    std::vector<std::string> files;
    for (int i = 0; i < 4; ++i) {
        files.push_back(dir + "/m" + std::to_string(i) + ".img");
        const int fd = open(files.back().c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        EXPECT_EQ(ftruncate(fd, off_t(kMemberBytes)), 0);
        close(fd);
    }
    const uint16_t port = free_tcp_port();
    Daemon d({"--empty"}, dir);
    EXPECT_TRUE(d.alive()) << d.log();
    json bases = json::array();
    for (int i = 0; i < 4; ++i) {
        const std::string name = "U" + std::to_string(i);
        d.ok("bdev_uring_create",
             {{"name", name}, {"filename", files[size_t(i)]}, {"block_size", 512}});
        bases.push_back(name);
    }
    d.ok("bdev_raid_create", {{"name", "R"},
                              {"raid_level", level},
                              {"strip_size_kb", strip_kb},
                              {"base_bdevs", bases},
                              {"superblock", true}});
    for (int i = 0; i < 500; ++i) {  // the initial resync of 1 MiB per member: well under 5 s
        json r = d.ok("bdev_raid_get_bdevs", {{"category", "all"}});
        if (r.size() == 1 && !r[0].contains("process")) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "R"}}}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", kNqn},
          {"listen_address",
           {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
    {
        TestHost a(port);
        const uint16_t cntlid = bring_up_admin(a, false, false, 0, kNqn);
        EXPECT_NE(cntlid, 0);
        TestHost q(port);
        EXPECT_TRUE(bring_up_io(q, cntlid, 1, false, false, kNqn));
        for (uint16_t i = 0; i < 24; ++i) {
            auto w = write_incapsule(q, i, uint64_t(i) * 37, pattern(4096, uint8_t(i)));
            EXPECT_TRUE(w && w->status.ok()) << "write " << i;
        }
    }
    EXPECT_EQ(d.stop(), 0) << d.log();
    return files;
}

struct LevelCase {
    const char* level;
    uint32_t strip_kb;
};

void PrintTo(const LevelCase& c, std::ostream* os) {
    *os << c.level;
}

class RaidToolLevels : public ::testing::TestWithParam<LevelCase> {};

TEST_P(RaidToolLevels, DumpCheckAndFindCorruption) {
    const LevelCase c = GetParam();
    const std::string dir = temp_dir();
    const std::vector<std::string> files = make_array(dir, c.level, c.strip_kb);
    ASSERT_FALSE(::testing::Test::HasFailure());

    // dump: every member names the array, its slot, and that it was stopped cleanly.
    ToolRun r = run_tool(with({"dump", "--json"}, files), dir);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    json dump = r.js();
    ASSERT_EQ(dump["members"].size(), 4u) << r.out;
    for (size_t i = 0; i < 4; ++i) {
        const json& m = dump["members"][i];
        const json& sb = m["superblock"];
        EXPECT_EQ(sb["name"], "R");
        EXPECT_EQ(sb["level"], c.level);
        EXPECT_EQ(sb["slot"], i);
        EXPECT_EQ(sb["clean"], true);
        EXPECT_EQ(sb["num_members"], 4);
        EXPECT_EQ(sb["member_blocks"], kMemberRows);
        EXPECT_EQ(sb["data_offset_blocks"], kDataOffset / 512);
        EXPECT_EQ(sb["resync_pending"], false);
        EXPECT_EQ(sb["members"][i]["state"], "online");
        EXPECT_EQ(m["copies"][m["current"] == "A" ? 0 : 1]["seq"], sb["seq"]);
    }
    r = run_tool({"dump", files[1]}, dir);
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("array          R (uuid"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(std::string("level          ") + c.level), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("this member    slot 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("clean          yes"), std::string::npos) << r.out;

    // check: consistent, every row verified.
    r = run_tool(with({"check", "--json"}, files), dir);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    json a = r.js()["arrays"][0];
    EXPECT_EQ(a["consistent"], true) << r.out;
    EXPECT_EQ(a["problems"].size(), 0u) << r.out;
    EXPECT_EQ(a["data"]["rows_checked"], kMemberRows) << r.out;
    EXPECT_EQ(a["data"]["mismatches"], 0) << r.out;

    // A member left out: reported; what can still be checked is.
    r = run_tool(with({"check", "--json"}, {files[0], files[1], files[2]}), dir);
    EXPECT_EQ(r.status, 1) << r.out;
    a = r.js()["arrays"][0];
    ASSERT_EQ(a["problems"].size(), 1u) << r.out;
    EXPECT_NE(a["problems"][0].get<std::string>().find("slot 3"), std::string::npos) << r.out;
    const bool one_missing_ok = std::string(c.level) != "raid5";  // raid6: P or Q; raid1: 3 copies
    EXPECT_EQ(a["data"]["rows_checked"], one_missing_ok ? kMemberRows : 0) << r.out;
    EXPECT_EQ(a["data"]["mismatches"], 0) << r.out;

    // One flipped byte in a data strip: its row, and which redundancy disagrees.
    const std::string level = c.level;
    const uint64_t row = 700;
    const uint64_t stripe = c.strip_kb ? row / (c.strip_kb * 2) : 0;
    nocstor::raid::Geometry g;
    g.level = level == "raid6" ? nocstor::raid::Level::Raid6 : nocstor::raid::Level::Raid5;
    g.members = 4;
    // raid1: not slot 0, the copy the others are compared with.
    const uint32_t victim = level == "raid1" ? 2 : g.data_member(stripe, 0);
    const uint64_t byte = kDataOffset + row * 512 + 17;
    flip_byte(files[victim], byte);
    r = run_tool(with({"check", "--json"}, files), dir);
    EXPECT_EQ(r.status, 1) << r.out;
    a = r.js()["arrays"][0];
    EXPECT_EQ(a["consistent"], false);
    ASSERT_EQ(a["data"]["mismatches"], 1) << r.out;
    const json& mm = a["data"]["first_mismatches"][0];
    EXPECT_EQ(mm["row"], row);
    EXPECT_EQ(mm["member_byte_offset"], kDataOffset + row * 512);
    if (level == "raid1") {
        EXPECT_EQ(mm["kind"], "mirror");
        EXPECT_EQ(mm["slots"], json::array({victim}));
        EXPECT_EQ(mm["reference_slot"], 0);
    } else if (level == "raid5") {
        EXPECT_EQ(mm["kind"], "P");
        EXPECT_EQ(mm["stripe"], stripe);
        EXPECT_EQ(mm["slots"], json::array({g.p_member(stripe)}));
    } else {
        EXPECT_EQ(mm["kind"], "P+Q");
        EXPECT_EQ(mm["suspect_slot"], victim) << r.out;
    }
    r = run_tool(with({"check"}, files), dir);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("row 700 ("), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("result: INCONSISTENT"), std::string::npos) << r.out;
    flip_byte(files[victim], byte);  // back as it was

    // Superblock copy A of slot 0 damaged: dump says so and reads copy B.
    const bool a_was_newest = dump["members"][0]["current"] == "A";
    flip_byte(files[0], 48);  // in the array name: the CRC no longer matches
    r = run_tool({"dump", "--json", files[0]}, dir);
    EXPECT_EQ(r.status, 0) << r.out;
    const json m0 = r.js()["members"][0];
    EXPECT_EQ(m0["copies"][0]["valid"], false) << r.out;
    EXPECT_NE(m0["copies"][0]["error"].get<std::string>().find("checksum"), std::string::npos);
    EXPECT_EQ(m0["copies"][1]["valid"], true);
    EXPECT_EQ(m0["current"], "B");
    EXPECT_EQ(m0["superblock"]["name"], "R");
    EXPECT_EQ(m0["superblock"]["seq"], dump["members"][0]["copies"][1]["seq"]);
    r = run_tool({"dump", files[0]}, dir);
    EXPECT_NE(r.out.find("invalid: superblock checksum mismatch"), std::string::npos) << r.out;
    // If A held the newest seq, slot 0 now looks stale, as the daemon's assembly would see it.
    r = run_tool(with({"check", "--json"}, files), dir);
    EXPECT_EQ(r.status, a_was_newest ? 1 : 0) << r.out;
}

INSTANTIATE_TEST_SUITE_P(RaidTool, RaidToolLevels,
                         ::testing::Values(LevelCase{"raid1", 0}, LevelCase{"raid5", 8},
                                           LevelCase{"raid6", 16}),
                         [](const auto& info) { return std::string(info.param.level); });

// Rewrites a member's current superblock copy through `edit` (and the CRC with it).
void edit_superblock(const std::string& path,
                     const std::function<void(nocstor::raid::Superblock&)>& edit) {
    using namespace nocstor::raid;
    const int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t buf[2][kSbBytes];
    ASSERT_EQ(pread(fd, buf, sizeof(buf), 0), ssize_t(sizeof(buf)));
    Superblock sb[2];
    std::string why;
    const bool ok0 = sb_decode(buf[0], &sb[0], &why), ok1 = sb_decode(buf[1], &sb[1], &why);
    ASSERT_TRUE(ok0 || ok1);
    const int cur = ok0 && (!ok1 || sb[0].seq >= sb[1].seq) ? 0 : 1;
    edit(sb[cur]);
    sb_encode(sb[cur], buf[cur]);
    ASSERT_EQ(pwrite(fd, buf[cur], kSbBytes, off_t(kSbCopyOffset[cur])), ssize_t(kSbBytes));
    close(fd);
}

void write_at(const std::string& path, uint64_t off, const std::vector<uint8_t>& bytes) {
    const int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), off_t(off)), ssize_t(bytes.size()));
    close(fd);
}

// An unclean raid5 whose write-intent bitmap marks regions 1 and 5 (of 128 blocks) dirty, in the
// format docs/raid.md gives: mismatches there are expected, elsewhere they are damage.
TEST(RaidTool, DirtyRegionsOfTheWriteIntentBitmap) {
    const std::string dir = temp_dir();
    const std::vector<std::string> files = make_array(dir, "raid5", 8);
    ASSERT_FALSE(::testing::Test::HasFailure());
    for (const std::string& f : files) {
        edit_superblock(f, [](nocstor::raid::Superblock& sb) {
            sb.clean = false;
            sb.bitmap_region_blocks = 128;
            sb.bitmap_regions = kMemberRows / 128;
        });
        write_at(f, nocstor::raid::kBitmapOffset, {0x22, 0x00});  // bits 1 and 5
    }
    ToolRun r = run_tool({"dump", "--json", files[0]}, dir);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const json bm = r.js()["members"][0]["bitmap"];
    EXPECT_EQ(bm["region_blocks"], 128);
    EXPECT_EQ(bm["regions"], kMemberRows / 128);
    EXPECT_EQ(bm["dirty_regions"], 2);
    EXPECT_EQ(bm["dirty_ranges"], json::parse("[[128, 256], [640, 768]]")) << r.out;

    flip_byte(files[1], kDataOffset + 130 * 512);  // row 130: region 1, dirty
    r = run_tool(with({"check", "--json"}, files), dir);
    EXPECT_EQ(r.status, 1) << r.out;
    json a = r.js()["arrays"][0];
    EXPECT_EQ(a["data"]["mismatches"], 1);
    EXPECT_EQ(a["data"]["mismatches_pending_resync"], 1);
    EXPECT_EQ(a["data"]["first_mismatches"][0]["dirty"], true);
    EXPECT_EQ(a["data"]["first_mismatches"][0]["pending_resync"], true);
    r = run_tool(with({"check"}, files), dir);
    EXPECT_NE(r.out.find("expected"), std::string::npos) << r.out;
    r = run_tool(with({"check", "--json", "--skip-dirty"}, files), dir);
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.js()["arrays"][0]["data"]["rows_checked"], kMemberRows - 256) << r.out;

    flip_byte(files[3], kDataOffset + 1000 * 512);  // row 1000: region 7, not dirty
    r = run_tool(with({"check", "--json", "--dirty-only"}, files), dir);
    EXPECT_EQ(r.status, 1) << r.out;
    a = r.js()["arrays"][0];
    EXPECT_EQ(a["data"]["rows_checked"], 256);
    EXPECT_EQ(a["data"]["mismatches"], 1);
    r = run_tool(with({"check", "--json", "--skip-dirty"}, files), dir);
    EXPECT_EQ(r.status, 1) << r.out;
    a = r.js()["arrays"][0];
    ASSERT_EQ(a["data"]["mismatches"], 1);
    EXPECT_EQ(a["data"]["first_mismatches"][0]["row"], 1000);
    EXPECT_EQ(a["data"]["first_mismatches"][0]["dirty"], false);

    // An unfinished initial resync (flag + offset): rows from there on are pending as well.
    for (const std::string& f : files) {
        edit_superblock(f, [](nocstor::raid::Superblock& sb) {
            sb.resync_pending = true;
            sb.resync_offset = 1024;
        });
    }
    flip_byte(files[0], kDataOffset + 1500 * 512);
    r = run_tool(with({"check", "--json"}, files), dir);
    EXPECT_EQ(r.status, 1) << r.out;
    a = r.js()["arrays"][0];
    EXPECT_EQ(a["data"]["mismatches"], 3);
    EXPECT_EQ(a["data"]["mismatches_pending_resync"], 2) << r.out;
    r = run_tool(with({"check", "--json", "--skip-dirty"}, files), dir);
    a = r.js()["arrays"][0];
    EXPECT_EQ(a["data"]["rows_checked"], 1024 - 256) << r.out;
    EXPECT_EQ(a["data"]["mismatches"], 1);
}

// A member that came back is rebuilt only in the regions written while it was away: its data
// counts everywhere else (partial rebuild), not only below its rebuild offset.
TEST(RaidTool, APartialRebuildIsReadOutsideTheDirtyRegions) {
    const std::string dir = temp_dir();
    const std::vector<std::string> files = make_array(dir, "raid5", 8);
    ASSERT_FALSE(::testing::Test::HasFailure());
    auto rebuilding = [&](bool partial) {
        for (const std::string& f : files) {
            edit_superblock(f, [partial](nocstor::raid::Superblock& sb) {
                sb.bitmap_region_blocks = 128;
                sb.bitmap_regions = kMemberRows / 128;
                sb.members[2].state = nocstor::raid::SbMemberState::Rebuilding;
                sb.members[2].rebuild_offset = 0;
                sb.members[2].partial_rebuild = partial;
            });
            write_at(f, nocstor::raid::kBitmapOffset, {0x02, 0x00});  // region 1 dirty
        }
    };
    rebuilding(true);
    flip_byte(files[2], kDataOffset + 150 * 512);  // region 1: not rebuilt yet, not read
    flip_byte(files[2], kDataOffset + 600 * 512);  // region 4: the member's own data
    ToolRun r = run_tool(with({"check", "--json"}, files), dir);
    EXPECT_EQ(r.status, 1) << r.out;
    json a = r.js()["arrays"][0];
    EXPECT_EQ(a["data"]["rows_checked"], kMemberRows - 128) << r.out;
    EXPECT_EQ(a["data"]["rows_unchecked"], 128);
    ASSERT_EQ(a["data"]["mismatches"], 1);
    EXPECT_EQ(a["data"]["first_mismatches"][0]["row"], 600);
    r = run_tool({"dump", files[1]}, dir);
    EXPECT_NE(r.out.find("rebuilding"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(where it missed writes)"), std::string::npos) << r.out;

    rebuilding(false);  // a whole rebuild from block 0: nothing of slot 2 counts
    r = run_tool(with({"check", "--json"}, files), dir);
    EXPECT_EQ(r.status, 0) << r.out;
    a = r.js()["arrays"][0];
    EXPECT_EQ(a["data"]["rows_checked"], 0) << r.out;
    EXPECT_EQ(a["data"]["rows_unchecked"], kMemberRows);
}

TEST(RaidTool, ClearErrorsForFilesThatAreNotMembers) {
    const std::string dir = temp_dir();
    const std::string tiny = dir + "/tiny.img", blank = dir + "/blank.img";
    {
        const int fd = open(tiny.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        ASSERT_EQ(ftruncate(fd, 100), 0);
        close(fd);
        const int fd2 = open(blank.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        ASSERT_EQ(ftruncate(fd2, off_t(kMemberBytes)), 0);
        close(fd2);
    }
    ToolRun r = run_tool({"dump", tiny}, dir);
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.out.find("too small to be a raid member (100 bytes"), std::string::npos) << r.out;
    r = run_tool({"check", blank}, dir);
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("no nocstor raid superblock"), std::string::npos) << r.err;
    r = run_tool({"check", dir + "/nonexistent.img"}, dir);
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("cannot open: No such file or directory"), std::string::npos) << r.err;
    r = run_tool({}, dir);
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    r = run_tool({"check", "--dirty-only", "--skip-dirty", blank}, dir);
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    r = run_tool({"--help"}, dir);
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("Exit status"), std::string::npos) << r.out;
    r = run_tool({"check", "--help"}, dir);
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("--skip-dirty"), std::string::npos) << r.out;
}

}  // namespace
