// Two real daemons: B attaches A's namespace as an nvme bdev and re-exports it. A is killed
// (SIGKILL, no goodbye) and restarted from its persisted config on the same port and file: B's
// controller must go to "resetting", reconnect on its own, and keep its bdev.
#include "daemon_env.h"

#include <fstream>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

constexpr char kNqnA[] = "nqn.2024-01.io.nocstor:backend";

json controller(Daemon& b) {
    // SPDK's layout: [{"name": ..., "ctrlrs": [{"state": ..., "resets": ...}]}]
    json cs = b.ok("bdev_nvme_get_controllers", {{"name", "Remote"}});
    if (!cs.is_array() || cs.empty() || !cs[0].contains("ctrlrs") || cs[0]["ctrlrs"].empty())
        return json::object();
    return cs[0]["ctrlrs"][0];
}

}  // namespace

TEST(NvmeReconnect, ControllerReconnectsAfterTheTargetIsKilledAndRestarted) {
    std::string dir_a = temp_dir();
    std::string file = dir_a + "/backend.img";
    { std::ofstream(file).close(); }
    std::filesystem::resize_file(file, 16 << 20);
    std::string cfg = dir_a + "/a.json";
    uint16_t port = free_tcp_port();

    auto a = std::make_unique<Daemon>(std::vector<std::string>{"-c", cfg, "--persist", "--empty"},
                                      dir_a);
    ASSERT_TRUE(a->alive()) << a->log();
    a->ok("bdev_uring_create", {{"name", "Disk"}, {"filename", file}, {"block_size", 512}});
    a->ok("nvmf_create_transport", {{"trtype", "TCP"}});
    a->ok("nvmf_create_subsystem", {{"nqn", kNqnA}, {"allow_any_host", true}});
    a->ok("nvmf_subsystem_add_ns", {{"nqn", kNqnA}, {"namespace", {{"bdev_name", "Disk"}}}});
    a->ok("nvmf_subsystem_add_listener",
          {{"nqn", kNqnA},
           {"listen_address",
            {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});

    Daemon b({"--empty"});
    json names = b.ok("bdev_nvme_attach_controller", {{"name", "Remote"},
                                                      {"trtype", "TCP"},
                                                      {"adrfam", "IPv4"},
                                                      {"traddr", "127.0.0.1"},
                                                      {"trsvcid", std::to_string(port)},
                                                      {"subnqn", kNqnA},
                                                      {"reconnect_delay_sec", 1},
                                                      {"ctrlr_loss_timeout_sec", 60},
                                                      {"fast_io_fail_timeout_sec", 0}});
    ASSERT_EQ(names.size(), 1u) << names.dump();
    EXPECT_EQ(names[0], "Remoten1");
    EXPECT_EQ(controller(b).value("state", ""), "enabled") << controller(b).dump();

    // The target dies without closing anything.
    pid_t pid = a->pid();
    kill(pid, SIGKILL);
    a->stop();
    a.reset();
    EXPECT_TRUE(wait_until([&] { return controller(b).value("state", "") == "resetting"; }, 20))
        << "B never noticed the outage: " << controller(b).dump();
    // The bdev stays while the controller retries (ctrlr_loss_timeout_sec not reached).
    EXPECT_EQ(b.ok("bdev_get_bdevs", {{"name", "Remoten1"}}).size(), 1u);

    // The target comes back from its persisted configuration, on the same port and file.
    Daemon a2({"-c", cfg, "--persist"}, dir_a);
    ASSERT_TRUE(a2.alive()) << a2.log();
    EXPECT_TRUE(wait_until([&] { return controller(b).value("state", "") == "enabled"; }, 30))
        << "B did not reconnect: " << controller(b).dump() << "\n"
        << b.log();
    EXPECT_GE(controller(b).value("resets", 0), 1) << controller(b).dump();
    EXPECT_EQ(b.ok("bdev_get_bdevs", {{"name", "Remoten1"}}).size(), 1u);
    b.ok("bdev_nvme_detach_controller", {{"name", "Remote"}});
    EXPECT_EQ(b.call("bdev_get_bdevs", {{"name", "Remoten1"}}).ok(), false);
    EXPECT_EQ(b.stop(), 0) << b.log();
    EXPECT_EQ(a2.stop(), 0) << a2.log();
}
