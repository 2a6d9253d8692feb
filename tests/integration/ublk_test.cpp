// ublk: the methods on a host without the ublk driver (clear errors, SPDK's parameters), and the
// real thing in a QEMU guest with Debian's 6.12 backports kernel, which has ublk_drv
// (../shared/interop's kernel-nvme-tcp.sh --kernel backports --guest-bin/--guest-script runs
// our nocstor and nocstorctl inside it; tests/interop/ublk-guest.sh has the steps: fio verify
// on /dev/ublkb0, SIGKILL + restart mid-I/O twice, recovered by ublk_recover_disk and by the
// persisted configuration, then stop). Skipped cleanly without the harness or QEMU.
#include "daemon_env.h"
#include "interop_util.h"

#include <unistd.h>

#include <iostream>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

bool host_has_ublk() {
    return access("/dev/ublk-control", F_OK) == 0;
}

}  // namespace

TEST(UblkTarget, MethodsAnswerClearlyWithoutTheTarget) {
    Daemon d({"--empty"});
    EXPECT_EQ(d.ok("ublk_get_disks"), json::array());
    auto r = d.call("ublk_start_disk", {{"bdev_name", "Disk0"}, {"ublk_id", 1}});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message.find("ublk_create_target"), std::string::npos) << r.message;
    r = d.call("ublk_stop_disk", {{"ublk_id", 1}});
    EXPECT_FALSE(r.ok());
    r = d.call("ublk_recover_disk", {{"bdev_name", "Disk0"}, {"ublk_id", 1}});
    EXPECT_FALSE(r.ok());
    r = d.call("ublk_destroy_target");
    EXPECT_FALSE(r.ok());
    // Parameters are checked before anything else.
    r = d.call("ublk_start_disk", {{"bdev_name", "Disk0"}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code, -32602);
    EXPECT_NE(r.message.find("ublk_id"), std::string::npos) << r.message;
    r = d.call("ublk_start_disk", {{"bdev_name", "Disk0"}, {"ublk_id", 1}, {"queue_depth", 0}});
    EXPECT_EQ(r.code, -32602);
    r = d.call("ublk_start_disk", {{"bdev_name", "Disk0"}, {"ublk_id", 1}, {"num_queues", 65}});
    EXPECT_EQ(r.code, -32602);
    r = d.call("ublk_create_target", {{"cpumask", "zz"}});
    EXPECT_FALSE(r.ok());
    // No target: nothing in the saved configuration.
    const json cfg = d.ok("save_config");
    EXPECT_EQ(cfg.dump().find("ublk_"), std::string::npos);
}

TEST(UblkTarget, CreateTargetWithoutTheDriverSaysWhatIsMissing) {
    if (host_has_ublk()) GTEST_SKIP() << "this host has /dev/ublk-control";
    Daemon d({"--empty"});
    auto r = d.call("ublk_create_target", json::object());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message.find("ublk_drv"), std::string::npos) << r.message;
    EXPECT_EQ(d.ok("ublk_get_disks"), json::array());
}

TEST(UblkTarget, NocstorctlListsAndExplainsAMissingDriver) {
    Daemon d({"--empty"});
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 2048}, {"block_size", 4096}});
    const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket();
    int rc = 0;
    std::string out = run_command(ctl + " ublk list 2>&1", &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("DEVICE"), std::string::npos) << out;
    if (host_has_ublk()) return;
    out = run_command(ctl + " ublk start M0 3 --queues 2 2>&1", &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("ublk_drv"), std::string::npos) << out;
    out = run_command(ctl + " ublk stop 3 2>&1", &rc);
    EXPECT_NE(rc, 0) << out;
}

TEST(UblkKernelInterop, DiskServesFioAndSurvivesKillMinusNine) {
    const std::string harness =
        std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
    if (access(harness.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness;
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const std::string bin = NOCSTOR_BIN_DIR;
    const std::string cmd = harness + " -q --kernel backports --timeout 900 --step-timeout 240" +
                            " --guest-bin " + bin + "/nocstor --guest-bin " + bin +
                            "/nocstorctl --guest-script " + NOCSTOR_SOURCE_DIR +
                            "/tests/interop/ublk-guest.sh 2>&1";
    // Debian's 6.12 kernel can oops in io_uring's exit path when the ublk server is SIGKILLed
    // while a request is being dispatched to it (a ublk race fixed in 6.15, docs/ublk.md). The
    // guest script times its kills so that none is (writes held 3 s in a delay vbdev); should
    // the oops come anyway, the guest marks that run and it is rerun, at most twice. Any other
    // failure fails the test.
    int rc = 0;
    std::string out;
    for (int attempt = 1; attempt <= 3; ++attempt) {
        out = run_command(cmd, &rc);
        if (out.find("io_fallback_tw") == std::string::npos) break;
        std::cout << "attempt " << attempt << ": the guest kernel oopsed in io_fallback_tw after "
                  << "the SIGKILL (known 6.12 bug)" << (attempt < 3 ? ", rerunning" : "")
                  << std::endl;
    }
    std::cout << out.substr(out.size() > 8000 ? out.size() - 8000 : 0) << std::endl;
    if (out.find("bookworm-backports") != std::string::npos &&
        out.find("PASS: kernel-modules") == std::string::npos)
        GTEST_SKIP() << "the backports kernel could not be fetched";
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find(" 0 failed"), std::string::npos);
    for (const char* step :
         {"PASS: ublk-start-disk", "PASS: ublk-fio-verify-4k", "PASS: ublk-fio-verify-128k",
          "PASS: ublk-kill9-recover-disk", "PASS: ublk-stop-start-disk",
          "PASS: ublk-kill9-restart-persisted", "PASS: ublk-stop-disk"})
        EXPECT_NE(out.find(step), std::string::npos) << step;
}
