// nocstor-perf (the host library) against the Linux kernel's own NVMe/TCP target (nvmet) in the
// interop VM, reached through host loopback. Skipped when the harness, qemu or /dev/kvm is
// missing. Bounded: the VM has a wall-clock limit and every perf run a -t and a timeout.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace {

const char* kHarness = "/work/shared/interop/kernel-nvme-tcp.sh";
const char* kNqn = "nqn.2024-01.io.nocstor:interop-selftest";

int sh(const std::string& cmd) {
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

TEST(NvmeHostKernelTarget, PerfVerifyWithAndWithoutDigests) {
    if (!std::filesystem::exists(kHarness) || !std::filesystem::exists("/dev/kvm") ||
        sh("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "interop harness, qemu or /dev/kvm missing";
    const int port = 20000 + int(getpid() % 20000);
    // The guest serves nvmet through QEMU's hostfwd and then idles (guest-time sleep).
    pid_t vm = fork();
    ASSERT_GE(vm, 0);
    if (vm == 0) {
        setpgid(0, 0);
        const std::string p = std::to_string(port);
        execl("/bin/bash", "bash", kHarness, "-q", "--smp", "1", "--mem", "768",
              "--self-test-via-host", p.c_str(), "--no-fio", "--no-reconnect", "--no-discard",
              "--extra", "sleep 3000", "--timeout", "420", "--step-timeout", "3100",
              static_cast<char*>(nullptr));
        _exit(127);
    }
    const std::string perf = std::string(NOCSTOR_BIN_DIR) + "/nocstor-perf";
    const std::string trid =
        "'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:" + std::to_string(port) +
        " subnqn:" + kNqn + "'";
    // Wait (bounded) until the kernel target answers a short read run.
    bool up = false;
    for (int i = 0; i < 60 && !up; ++i) {
        up = sh("timeout 30 " + perf + " --no-pin -c 0 -t 0.5 -q 1 -r " + trid +
                " >/dev/null 2>&1") == 0;
        if (!up) std::this_thread::sleep_for(std::chrono::seconds(5));
    }
    if (up) {
        // 4 KiB: in-capsule writes; 128 KiB: R2T -> H2CData. Reads via C2HData.
        EXPECT_EQ(sh("timeout 90 " + perf + " --no-pin -c 0 -t 2 -q 4 -o 4096 --verify -r " + trid),
                  0);
        EXPECT_EQ(sh("timeout 90 " + perf +
                     " --no-pin -c 0 -t 2 -q 4 -o 131072 --verify -H -I -r " + trid),
                  0);
        EXPECT_EQ(sh("timeout 90 " + perf +
                     " --no-pin -c 0 -t 2 -q 8 -o 65536 -w randrw -M 50 -r " + trid),
                  0);
    }
    kill(-vm, SIGTERM);
    int st = 0;
    waitpid(vm, &st, 0);
    ASSERT_TRUE(up) << "the kernel target never answered on port " << port;
}
