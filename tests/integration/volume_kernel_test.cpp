// The Linux kernel NVMe/TCP initiator (../shared/interop harness in a VM) on a distributed
// volume: three data clusters, a thin lvol on each of clusters 2 and 3, remote bdevs towards
// them and a RAID0 on cluster 1, exported by nocstor_volume_create; fio randwrite+verify over it.
// Skips cleanly without the harness or QEMU.
#include "daemon_env.h"
#include "interop_util.h"

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string harness() {
    return std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
}

TEST(VolumeKernelInterop, FioVerifiesOnAVolumeStripedAcrossClusters) {
    if (access(harness().c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness();
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const std::string nqn = "nqn.2024-01.io.nocstor:volume";
    Daemon d({"--empty", "--clusters", kThreeClusterPlan});
    ASSERT_TRUE(d.alive()) << d.log();
    for (int c : {2, 3}) {
        const std::string n = "M" + std::to_string(c);
        d.ok("bdev_malloc_create",
             {{"name", n}, {"num_blocks", 16384}, {"block_size", 4096}, {"cluster", c}});
        d.ok("bdev_lvol_create_lvstore",
             {{"bdev_name", n}, {"lvs_name", "lvs" + std::to_string(c)}, {"cluster_sz", 1 << 20}});
    }
    const uint16_t port = free_tcp_port();
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}, {"allow_any_host", true}});
    json v = d.ok("nocstor_volume_create", {{"name", "vol"},
                                            {"size_in_mib", 48},
                                            {"clusters", {2, 3}},
                                            {"front_cluster", 1},
                                            {"stripe_kb", 64},
                                            {"thin_provision", true},
                                            {"nqn", nqn}});
    ASSERT_TRUE(v.is_object()) << d.log();
    listen_with_discovery(d, port, nqn);
    int rc = 0;
    const std::string out =
        run_command(harness() + " -q --fio-size 40M --no-discard --timeout 500 " +
                        std::to_string(port) + " " + nqn + " 2>&1",
                    &rc);
    std::cout << "[ harness ] " << out.substr(out.rfind('\n', out.size() - 2) + 1);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;
    // Both data clusters hold part of the data; it crossed the NoC in place, never timing out.
    for (int i = 0; i < 2; ++i) {
        const std::string remote = "vol_m" + std::to_string(i) + "_remote";
        auto r = d.ok("bdev_get_bdevs", {{"name", remote}})[0]["driver_specific"]["remote"];
        EXPECT_GT(r["zero_copy_ios"].get<uint64_t>(), 1000u) << remote;
        EXPECT_EQ(r["timeouts"], 0) << remote;
        const std::string lvs = "lvs" + std::to_string(2 + i);
        for (const auto& l : d.ok("bdev_lvol_get_lvols", {{"lvs_name", lvs}}))
            EXPECT_GT(l["num_allocated_clusters"].get<int>(), 0) << lvs;
    }
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
