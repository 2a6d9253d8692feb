// The real Linux kernel NVMe/TCP initiator (in a small QEMU VM, ../shared/interop) against the
// real daemon: discover, connect with and without digests, fio verify, flush, reconnect, discard.
// While it runs, tshark (when installed) captures the loopback port and must find no malformed
// NVMe/TCP PDU. Skips cleanly when the harness, QEMU or tshark are not there.
#include "daemon_env.h"
#include "interop_util.h"

#include <cstdlib>
#include <fstream>
#include <tuple>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string harness() {
    return std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
}

}  // namespace

class KernelInterop : public ::testing::TestWithParam<std::tuple<bool, const char*>> {};

TEST_P(KernelInterop, LinuxInitiatorPassesTheHarness) {
    if (access(harness().c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness();
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const bool digests = std::get<0>(GetParam());
    const std::string sock_impl = std::get<1>(GetParam());
    const std::string nqn = "nqn.2024-01.io.nocstor:interop";
    Daemon d({"--empty", "--sock-impl", sock_impl});
    ASSERT_TRUE(d.alive()) << d.log();
    uint16_t port = free_tcp_port();
    serve_volume(d, port, nqn);

    std::string pcap = d.dir() + "/capture.pcapng";
    pid_t tshark = -1;
    if (have_tool("tshark") && getuid() == 0) {
        tshark = fork();
        if (tshark == 0) {
            FILE* f = freopen("/dev/null", "w", stderr);
            (void)f;
            std::string filter = "tcp port " + std::to_string(port);
            execlp("tshark", "tshark", "-q", "-i", "lo", "-f", filter.c_str(), "-w", pcap.c_str(),
                   nullptr);
            _exit(127);
        }
        std::this_thread::sleep_for(std::chrono::seconds(2));
    }
    int rc = 0;
    std::string cmd = harness() + " -q --fio-size 16M --timeout 500 " +
                      (digests ? "--hdr-digest --data-digest " : "") + std::to_string(port) + " " +
                      nqn + " 2>&1";
    std::string out = run_command(cmd, &rc);
    std::string last = out.substr(out.rfind('\n', out.size() - 2) + 1);
    std::cout << "[ harness ] " << last;
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;
    EXPECT_TRUE(d.alive()) << d.log();

    if (tshark > 0) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        kill(tshark, SIGINT);
        waitpid(tshark, nullptr, 0);
        std::string decode = " -d tcp.port==" + std::to_string(port) + ",nvme-tcp";
        int trc = 0;
        std::string frames =
            run_command("tshark -r " + pcap + decode + " -Y nvme-tcp 2>/dev/null | wc -l", &trc);
        std::string bad =
            run_command("tshark -r " + pcap + decode +
                            " -Y '_ws.malformed || _ws.expert.severity >= error' 2>/dev/null",
                        &trc);
        EXPECT_GT(std::stol(frames), 100) << "the capture saw no NVMe/TCP traffic";
        EXPECT_TRUE(bad.empty()) << "tshark flags malformed NVMe/TCP PDUs:\n"
                                 << bad.substr(0, 4000);
    }
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// Both socket drivers; the io_uring one with digests (the harder path for its receive split).
INSTANTIATE_TEST_SUITE_P(
    Digests, KernelInterop,
    ::testing::Values(std::make_tuple(false, "posix"), std::make_tuple(true, "posix"),
                      std::make_tuple(true, "uring")),
    [](const auto& info) {
        return std::string(std::get<0>(info.param) ? "WithDigests" : "NoDigests") +
               (std::string(std::get<1>(info.param)) == "uring" ? "Uring" : "");
    });
