// The Linux kernel NVMe/TCP initiator (../shared/interop harness in a VM) on a raid6 namespace
// while the array loses a member and rebuilds onto a new one: fio's verify must pass throughout,
// and afterwards the array is whole and a scrub finds its parity right. Skips cleanly without the
// harness or QEMU.
#include "daemon_env.h"
#include "interop_util.h"

#include <atomic>
#include <thread>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string harness() {
    return std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
}

json raid_entry(Daemon& d) {
    auto r = d.call("bdev_raid_get_bdevs", {{"category", "all"}});
    return r.ok() && r.result.size() == 1 ? r.result[0] : json::object();
}

TEST(RaidKernelInterop, Raid6LosesAndRebuildsAMemberUnderFioVerify) {
    if (access(harness().c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness();
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const std::string nqn = "nqn.2024-01.io.nocstor:raid6";
    Daemon d({"--empty"});
    ASSERT_TRUE(d.alive()) << d.log();
    for (int i = 0; i < 6; ++i)
        d.ok("bdev_malloc_create",
             {{"name", "M" + std::to_string(i)}, {"num_blocks", 16384}, {"block_size", 4096}});
    d.ok("bdev_raid_create", {{"name", "R"},
                              {"raid_level", "raid6"},
                              {"strip_size_kb", 64},
                              {"base_bdevs", {"M0", "M1", "M2", "M3", "M4"}}});
    d.ok("bdev_raid_set_options", {{"process_max_bandwidth_mb_sec", 16}});
    const uint16_t port = free_tcp_port();
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", {{"bdev_name", "R"}}}});
    listen_with_discovery(d, port, nqn);

    // While the guest writes and verifies: a member goes, then a new disk takes its place.
    std::atomic<bool> done{false};
    std::thread events([&] {
        auto wait = [&](int seconds) {
            for (int i = 0; i < seconds * 10 && !done; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
        };
        wait(12);
        if (done) return;
        d.ok("bdev_raid_remove_base_bdev", {{"name", "M1"}});
        wait(6);
        if (done) return;
        d.ok("bdev_raid_add_base_bdev", {{"raid_bdev", "R"}, {"base_bdev", "M5"}});
    });
    int rc = 0;
    const std::string out = run_command(harness() + " -q --fio-size 32M --timeout 500 " +
                                            std::to_string(port) + " " + nqn + " 2>&1",
                                        &rc);
    done = true;
    events.join();
    std::cout << "[ harness ] " << out.substr(out.rfind('\n', out.size() - 2) + 1);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;

    // The rebuild finishes; the array is whole and consistent.
    d.ok("bdev_raid_set_options", {{"process_max_bandwidth_mb_sec", 0}});
    json e;
    for (int i = 0; i < 600; ++i) {
        e = raid_entry(d);
        if (e.value("state", "") == "online" && !e.contains("process")) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(e["state"], "online") << e.dump();
    d.ok("bdev_raid_start_scrub", {{"name", "R"}});
    for (int i = 0; i < 600 && raid_entry(d).contains("process"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(raid_entry(d)["last_scrub_mismatches"], 0) << raid_entry(d).dump();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
