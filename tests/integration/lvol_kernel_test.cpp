// The Linux kernel NVMe/TCP initiator (../shared/interop harness in a VM) on lvols: fio
// randwrite+verify on a thin lvol (every first write allocates a cluster) and, in the same
// session, on a clone of a snapshot (every first write copies the snapshot's cluster). Skips
// cleanly without the harness or QEMU.
#include "daemon_env.h"
#include "interop_util.h"

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string harness() {
    return std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
}

json lvol(Daemon& d, const std::string& name) {
    for (const auto& l : d.ok("bdev_lvol_get_lvols", json::object()))
        if (l["name"] == name) return l;
    return {};
}

TEST(LvolKernelInterop, FioVerifiesOnAThinLvolAndOnAClone) {
    if (access(harness().c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness();
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const std::string nqn = "nqn.2024-01.io.nocstor:lvol";
    Daemon d({"--empty"});
    ASSERT_TRUE(d.alive()) << d.log();
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 65536}, {"block_size", 4096}});
    d.ok("bdev_lvol_create_lvstore",
         {{"bdev_name", "M0"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
    d.ok(
        "bdev_lvol_create",
        {{"lvs_name", "lvs"}, {"lvol_name", "vol"}, {"size_in_mib", 48}, {"thin_provision", true}});
    // The clone's parent holds data everywhere: a thick lvol, snapshotted.
    d.ok("bdev_lvol_create", {{"lvs_name", "lvs"}, {"lvol_name", "base"}, {"size_in_mib", 48}});
    d.ok("bdev_lvol_snapshot", {{"lvol_name", "lvs/base"}, {"snapshot_name", "snap"}});
    d.ok("bdev_lvol_clone", {{"snapshot_name", "lvs/snap"}, {"clone_name", "clone"}});
    const uint16_t port = free_tcp_port();
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns",
         {{"nqn", nqn}, {"namespace", {{"bdev_name", "lvs/vol"}, {"nsid", 1}}}});
    d.ok("nvmf_subsystem_add_ns",
         {{"nqn", nqn}, {"namespace", {{"bdev_name", "lvs/clone"}, {"nsid", 2}}}});
    listen_with_discovery(d, port, nqn);
    // Namespace 2 (the clone) gets its own randwrite+verify while connected.
    const std::string clone_fio =
        "fio --name=clone --filename=${DEV%n1}n2 --ioengine=libaio --direct=1 --rw=randwrite "
        "--bs=4k --iodepth=16 --size=24M --verify=crc32c --do_verify=1 --verify_fatal=1 "
        "--verify_state_save=0 --randrepeat=1 --randseed=77 --thread --exitall_on_error";
    int rc = 0;
    const std::string out =
        run_command(harness() + " -q --fio-size 24M --no-discard --timeout 500 --extra '" +
                        clone_fio + "' " + std::to_string(port) + " " + nqn + " 2>&1",
                    &rc);
    std::cout << "[ harness ] " << out.substr(out.rfind('\n', out.size() - 2) + 1);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;
    EXPECT_GT(lvol(d, "vol")["num_allocated_clusters"].get<int>(), 0);
    EXPECT_GT(lvol(d, "clone")["num_allocated_clusters"].get<int>(), 0);
    EXPECT_EQ(lvol(d, "snap")["num_allocated_clusters"], 48) << "the snapshot kept its clusters";
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
