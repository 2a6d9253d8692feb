// RAID through the daemon: SPDK's bdev_raid_* methods, an array exported over NVMe/TCP with data
// written and read back by a host (also with a member removed), and the array back after a
// restart from the persisted configuration.
#include "daemon_env.h"
#include "interop_util.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:raid";

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 13 + (i >> 7));
    return v;
}

TEST(RaidDaemon, CreateExportDegradeAndRestore) {
    const std::string dir = temp_dir();
    const std::string cfg = dir + "/nocstor.json";
    const uint16_t port = free_tcp_port();
    {
        Daemon d({"-c", cfg, "--persist", "--empty"}, dir);
        for (int i = 0; i < 4; ++i)
            d.ok("bdev_malloc_create",
                 {{"name", "M" + std::to_string(i)}, {"num_blocks", 8192}, {"block_size", 512}});
        d.ok("bdev_raid_create", {{"name", "R6"},
                                  {"raid_level", "raid6"},
                                  {"strip_size_kb", 8},
                                  {"base_bdevs", {"M0", "M1", "M2", "M3"}}});
        auto bad = d.call("bdev_raid_create", {{"name", "R7"},
                                               {"raid_level", "raid6"},
                                               {"strip_size_kb", 8},
                                               {"base_bdevs", {"M0", "M1", "M2", "M3"}}});
        EXPECT_FALSE(bad.ok());
        EXPECT_NE(bad.message.find("claimed"), std::string::npos) << bad.message;
        EXPECT_FALSE(d.call("bdev_raid_create",
                            {{"name", "R8"}, {"raid_level", "raid7"}, {"base_bdevs", {"M0"}}})
                         .ok());
        json r = d.ok("bdev_raid_get_bdevs", {{"category", "all"}});
        ASSERT_EQ(r.size(), 1u);
        EXPECT_EQ(r[0]["name"], "R6");
        EXPECT_EQ(r[0]["raid_level"], "raid6");
        EXPECT_EQ(r[0]["state"], "online");
        EXPECT_EQ(r[0]["num_base_bdevs"], 4);
        EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "R6"}})[0]["num_blocks"], 2 * 8192);

        d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "R6"}}}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kNqn},
              {"listen_address",
               {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
        TestHost a(port);
        const uint16_t cntlid = bring_up_admin(a, false, false, 0, kNqn);
        ASSERT_NE(cntlid, 0);
        TestHost q(port);
        ASSERT_TRUE(bring_up_io(q, cntlid, 1, false, false, kNqn));
        std::vector<std::vector<uint8_t>> written;
        for (uint16_t i = 0; i < 16; ++i) {
            written.push_back(pattern(4096, uint8_t(i)));
            auto w = write_incapsule(q, i, uint64_t(i) * 13, written.back());
            ASSERT_TRUE(w && w->status.ok());
        }
        // A member goes: the data still reads back (reconstructed) and writes keep working.
        d.ok("bdev_raid_remove_base_bdev", {{"name", "M1"}});
        r = d.ok("bdev_raid_get_bdevs", {{"category", "online"}});
        ASSERT_EQ(r.size(), 1u);
        EXPECT_EQ(r[0]["state"], "degraded");
        std::vector<uint8_t> data;
        for (uint16_t i = 0; i < 16; ++i) {
            auto rd = read(q, uint16_t(100 + i), uint64_t(i) * 13, 4096, &data);
            ASSERT_TRUE(rd && rd->status.ok());
            EXPECT_EQ(data, written[i]) << "block " << i * 13;
        }
        auto w = write_incapsule(q, 200, 5000, pattern(4096, 77));
        ASSERT_TRUE(w && w->status.ok());
        auto rd = read(q, 201, 5000, 4096, &data);
        ASSERT_TRUE(rd && rd->status.ok());
        EXPECT_EQ(data, pattern(4096, 77));
        // The member bdev itself is free again.
        d.ok("bdev_malloc_delete", {{"name", "M1"}});
        d.ok("bdev_malloc_create", {{"name", "M1"}, {"num_blocks", 8192}, {"block_size", 512}});
        EXPECT_EQ(d.stop(), 0) << d.log();
    }
    {
        // The persisted configuration builds the array again (over new, empty RAM bdevs here;
        // superblocks on real disks are the subject of their own tests).
        Daemon d({"-c", cfg, "--persist"}, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        json r = d.ok("bdev_raid_get_bdevs", {{"category", "all"}});
        ASSERT_EQ(r.size(), 1u);
        EXPECT_EQ(r[0]["strip_size_kb"], 8);
        d.ok("bdev_raid_delete", {{"name", "R6"}});
        EXPECT_EQ(d.ok("bdev_raid_get_bdevs", {{"category", "all"}}).size(), 0u);
        EXPECT_EQ(d.stop(), 0) << d.log();
    }
}

// nocstorctl raid: create with a superblock and wait for the resync, show, a member out and back
// with the rebuild waited for (progress lines), scrub with its result, errors as exit codes.
TEST(RaidDaemon, NocstorctlManagesArrays) {
    Daemon d({"--empty"});
    const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket();
    for (int i = 0; i < 4; ++i)
        d.ok("bdev_malloc_create",
             {{"name", "M" + std::to_string(i)}, {"num_blocks", 8192}, {"block_size", 512}});
    int rc = 0;
    std::string out = run_command(ctl +
                                      " raid create R M0 M1 M2 --level raid5 --strip 8K "
                                      "--superblock --bitmap-region 256K --wait 2>&1",
                                  &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("created R (raid5 over 3 members)"), std::string::npos) << out;
    EXPECT_NE(out.find("R: online"), std::string::npos) << out;
    out = run_command(ctl + " raid list", &rc);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("raid5"), std::string::npos) << out;
    EXPECT_NE(out.find("3/3"), std::string::npos) << out;
    out = run_command(ctl + " raid show R", &rc);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("bitmap:     12 regions of 256.00 KiB"), std::string::npos) << out;
    EXPECT_NE(out.find("last:       resync finished"), std::string::npos) << out;
    EXPECT_EQ(system((ctl + " raid remove-member M1 >/dev/null").c_str()), 0);
    out = run_command(ctl + " raid show R", &rc);
    EXPECT_NE(out.find("state:      degraded"), std::string::npos) << out;
    d.ok("bdev_raid_set_options", {{"process_max_bandwidth_mb_sec", 4}});
    out = run_command(ctl + " raid add-member R M3 --wait --wait-timeout 60 2>&1", &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("R rebuild onto M3 ["), std::string::npos) << "progress lines: " << out;
    EXPECT_NE(out.find("R: online"), std::string::npos) << out;
    out = run_command(ctl + " raid scrub R --wait 2>&1", &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("0 mismatching rows"), std::string::npos) << out;
    out = run_command(ctl + " raid show nope 2>&1", &rc);
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("no raid bdev named 'nope'"), std::string::npos) << out;
    out = run_command(ctl + " raid create X M0 --level raid7 2>&1", &rc);
    EXPECT_EQ(rc, 2) << out;
    EXPECT_EQ(system((ctl + " raid delete R --clear-sb >/dev/null").c_str()), 0);
    EXPECT_EQ(d.ok("bdev_raid_get_bdevs", {{"category", "all"}}).size(), 0u);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
