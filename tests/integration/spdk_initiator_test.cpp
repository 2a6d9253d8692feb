// SPDK's NVMe/TCP initiator against the real daemon, on both socket drivers: spdk_nvme_identify
// (I/O subsystem and discovery) and spdk_nvme_perf with header and data digests, with SPDK's
// defaults (an empty host NQN included). SPDK is not part of the project: set NOCSTOR_SPDK_DIR
// to a built SPDK tree (docs/benchmarks.md says how it was built); skips cleanly otherwise, and
// when SPDK cannot initialise its environment (no huge pages).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include <tuple>

#include "daemon_env.h"
#include "interop_util.h"

using namespace nocstor::testing;

namespace {

std::string spdk_dir() {
    const char* d = std::getenv("NOCSTOR_SPDK_DIR");
    return d ? d : "";
}

std::string spdk_cmd(const std::string& tool, const std::string& args) {
    const std::string dir = spdk_dir();
    return "LD_LIBRARY_PATH=" + dir + "/build/lib timeout 60 " + dir + "/build/bin/" + tool + " " +
           args + " 2>&1";
}

}  // namespace

class SpdkInitiator : public ::testing::TestWithParam<const char*> {};

TEST_P(SpdkInitiator, IdentifyDiscoverAndPerfWithDigests) {
    if (spdk_dir().empty()) GTEST_SKIP() << "set NOCSTOR_SPDK_DIR to a built SPDK tree";
    if (access((spdk_dir() + "/build/bin/spdk_nvme_perf").c_str(), X_OK) != 0)
        GTEST_SKIP() << "no spdk_nvme_perf in " << spdk_dir() << "/build/bin";
    const std::string nqn = "nqn.2024-01.io.nocstor:spdk";
    Daemon d({"--empty", "--sock-impl", GetParam()});
    ASSERT_TRUE(d.alive()) << d.log();
    const uint16_t port = free_tcp_port();
    serve_volume(d, port, nqn);
    const std::string trid =
        "'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:" + std::to_string(port) + " subnqn:";

    int rc = 0;
    std::string out = run_command(spdk_cmd("spdk_nvme_identify", "-r " + trid + nqn + "'"), &rc);
    if (out.find("Unable to initialize SPDK env") != std::string::npos ||
        out.find("EAL: FATAL") != std::string::npos)
        GTEST_SKIP() << "SPDK cannot start its environment here (huge pages?):\n" << out;
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("nocstor"), std::string::npos) << out;
    EXPECT_NE(out.find("Max Data Transfer Size"), std::string::npos) << out;

    out = run_command(
        spdk_cmd("spdk_nvme_identify", "-r " + trid + "nqn.2014-08.org.nvmexpress.discovery'"),
        &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(nqn), std::string::npos) << "the discovery log lacks the subsystem\n" << out;

    out = run_command(spdk_cmd("spdk_nvme_perf",
                               "-q 16 -o 4096 -w randrw -M 50 -t 2 -H -I -r " + trid + nqn + "'"),
                      &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out.find("ERROR"), std::string::npos) << out;
    const size_t total = out.find("Total");
    ASSERT_NE(total, std::string::npos) << "spdk_nvme_perf ran no I/O:\n" << out;
    EXPECT_TRUE(d.alive()) << d.log();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

INSTANTIATE_TEST_SUITE_P(SockImpl, SpdkInitiator, ::testing::Values("posix", "uring"));

// SPDK's initiator over a TLS secure channel (its "ssl" socket): spdk_nvme_perf with the host
// NQN in -r and the interchange key in a file, the command line docs/security.md gives.
TEST(SpdkInitiatorTls, PerfOverASecureChannel) {
    if (spdk_dir().empty()) GTEST_SKIP() << "set NOCSTOR_SPDK_DIR to a built SPDK tree";
    if (access((spdk_dir() + "/build/bin/spdk_nvme_perf").c_str(), X_OK) != 0)
        GTEST_SKIP() << "no spdk_nvme_perf in " << spdk_dir() << "/build/bin";
    const std::string nqn = "nqn.2024-01.io.nocstor:spdk-tls";
    const std::string host = "nqn.2014-08.org.nvmexpress:uuid:5b4e2c3a-1d2e-4f50-8a6b-7c8d9e0f1a2b";
    const std::string key_file = temp_dir() + "/psk";
    {
        std::ofstream(key_file)
            << "NVMeTLSkey-1:01:MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmZwJEiQ:\n";
    }
    ::chmod(key_file.c_str(), 0600);
    Daemon d({"--empty"});
    ASSERT_TRUE(d.alive()) << d.log();
    const uint16_t port = free_tcp_port();
    d.ok("keyring_file_add_key", {{"name", "k"}, {"path", key_file}});
    d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 8192}, {"block_size", 512}});
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", {{"bdev_name", "M0"}}}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", nqn},
          {"secure_channel", true},
          {"listen_address",
           {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
    d.ok("nvmf_subsystem_add_host", {{"nqn", nqn}, {"host", host}, {"psk", "k"}});
    const std::string trid =
        "'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:" + std::to_string(port) +
        " subnqn:" + nqn + " hostnqn:" + host + "'";
    int rc = 0;
    const std::string out = run_command(
        spdk_cmd("spdk_nvme_perf", "-q 16 -o 4096 -w randrw -M 50 -t 2 -S ssl --psk-path " +
                                       key_file + " -r " + trid),
        &rc);
    if (out.find("Unable to initialize SPDK env") != std::string::npos ||
        out.find("EAL: FATAL") != std::string::npos)
        GTEST_SKIP() << "SPDK cannot start its environment here (huge pages?):\n" << out;
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("Total"), std::string::npos) << "spdk_nvme_perf ran no I/O:\n" << out;
    EXPECT_NE(d.log().find("TLS secure channel up"), std::string::npos) << d.log();
}

namespace {

// SPDK's spdk_tgt started from a JSON config (keys, a RAM bdev, subsystems), for the tests
// where SPDK is the target or the initiator that authenticates. Key files get no trailing
// newline: SPDK's keyring reads them whole and its parsers refuse one.
struct SpdkTarget {
    std::string dir = temp_dir();
    pid_t pid = -1;
    std::string log() const {
        std::ifstream f(dir + "/spdk.log");
        return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    }
    std::string key(const std::string& name, const std::string& text) const {
        const std::string path = dir + "/" + name;
        std::ofstream(path) << text;
        ::chmod(path.c_str(), 0600);
        return path;
    }
    // Starts it on core 1 with `config`; false (with the reason in log()) if it did not come up.
    bool start(const std::string& config, uint16_t port) {
        std::ofstream(dir + "/tgt.json") << config;
        const std::string cmd = "LD_LIBRARY_PATH=" + spdk_dir() + "/build/lib exec " + spdk_dir() +
                                "/build/bin/spdk_tgt -m 0x2 --no-pci --json " + dir +
                                "/tgt.json -r " + dir + "/spdk.sock > " + dir + "/spdk.log 2>&1";
        pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
            _exit(127);
        }
        // Up: listening on `port` (its last listener), or its RPC socket there (port 0).
        const std::string listening = "port " + std::to_string(port) + " ***";
        for (int i = 0; i < 100; ++i) {
            if (port == 0 ? access((dir + "/spdk.sock").c_str(), F_OK) == 0
                          : log().find(listening) != std::string::npos)
                return true;
            if (waitpid(pid, nullptr, WNOHANG) == pid) {
                pid = -1;
                return false;
            }
            usleep(100000);
        }
        return false;
    }
    ~SpdkTarget() {
        if (pid > 0) {
            kill(pid, SIGINT);
            for (int i = 0; i < 50 && waitpid(pid, nullptr, WNOHANG) == 0; ++i) usleep(100000);
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
};

const char* kSpdkHost = "nqn.2014-08.org.nvmexpress:uuid:6b4e2c3a-1d2e-4f50-8a6b-7c8d9e0f1a2b";
const char* kTlsKey = "NVMeTLSkey-1:01:MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmZwJEiQ:";
const char* kHostSecret = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
const char* kCtrlSecret = "DHHC-1:01:WulleCBkG4oCs0iIC3Cit9gBDCLWiZ9PNXuhqytWkBIZkvGy:";
// 32 bytes of 0x31: a well-formed secret that is nobody's key.
const char* kWrongSecret = "DHHC-1:00:MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTGxWMnb:";

}  // namespace

// nocstor's initiator against SPDK's target: TLS with a PSK, and DH-HMAC-CHAP both ways, with
// nocstor-perf verifying data; a wrong host key and a wrong controller key are refused.
TEST(SpdkTargetInterop, NocstorInitiatorOverTlsAndWithDhHmacChap) {
    if (spdk_dir().empty()) GTEST_SKIP() << "set NOCSTOR_SPDK_DIR to a built SPDK tree";
    if (access((spdk_dir() + "/build/bin/spdk_tgt").c_str(), X_OK) != 0)
        GTEST_SKIP() << "no spdk_tgt in " << spdk_dir() << "/build/bin";
    SpdkTarget t;
    const uint16_t tls_port = free_tcp_port(), auth_port = free_tcp_port();
    const std::string psk = t.key("psk", kTlsKey), h = t.key("h", kHostSecret),
                      c = t.key("c", kCtrlSecret);
    const std::string config = fmt::format(R"({{"subsystems": [
 {{"subsystem": "keyring", "config": [
   {{"method": "keyring_file_add_key", "params": {{"name": "psk", "path": "{}"}}}},
   {{"method": "keyring_file_add_key", "params": {{"name": "h", "path": "{}"}}}},
   {{"method": "keyring_file_add_key", "params": {{"name": "c", "path": "{}"}}}}]}},
 {{"subsystem": "bdev", "config": [
   {{"method": "bdev_malloc_create", "params": {{"name": "M0", "num_blocks": 8192, "block_size": 4096}}}},
   {{"method": "bdev_malloc_create", "params": {{"name": "M1", "num_blocks": 8192, "block_size": 4096}}}}]}},
 {{"subsystem": "nvmf", "config": [
   {{"method": "nvmf_create_transport", "params": {{"trtype": "TCP"}}}},
   {{"method": "nvmf_create_subsystem", "params": {{"nqn": "nqn.2016-06.io.spdk:tls"}}}},
   {{"method": "nvmf_subsystem_add_ns", "params": {{"nqn": "nqn.2016-06.io.spdk:tls", "namespace": {{"bdev_name": "M0"}}}}}},
   {{"method": "nvmf_subsystem_add_listener", "params": {{"nqn": "nqn.2016-06.io.spdk:tls", "secure_channel": true,
     "listen_address": {{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "{}"}}}}}},
   {{"method": "nvmf_subsystem_add_host", "params": {{"nqn": "nqn.2016-06.io.spdk:tls", "host": "{}", "psk": "psk"}}}},
   {{"method": "nvmf_create_subsystem", "params": {{"nqn": "nqn.2016-06.io.spdk:auth"}}}},
   {{"method": "nvmf_subsystem_add_ns", "params": {{"nqn": "nqn.2016-06.io.spdk:auth", "namespace": {{"bdev_name": "M1"}}}}}},
   {{"method": "nvmf_subsystem_add_listener", "params": {{"nqn": "nqn.2016-06.io.spdk:auth",
     "listen_address": {{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "{}"}}}}}},
   {{"method": "nvmf_subsystem_add_host", "params": {{"nqn": "nqn.2016-06.io.spdk:auth", "host": "{}",
     "dhchap_key": "h", "dhchap_ctrlr_key": "c"}}}}]}}
]}})",
                                           psk, h, c, tls_port, kSpdkHost, auth_port, kSpdkHost);
    if (!t.start(config, auth_port)) {
        const std::string l = t.log();
        if (l.find("Unable to initialize SPDK env") != std::string::npos ||
            l.find("EAL: FATAL") != std::string::npos)
            GTEST_SKIP() << "SPDK cannot start its environment here (huge pages?):\n" << l;
        FAIL() << "spdk_tgt did not come up:\n" << l;
    }
    const std::string perf = std::string(NOCSTOR_BIN_DIR) + "/nocstor-perf --no-pin -q 16 -t 1 ";
    auto trid = [](uint16_t port, const char* sub) {
        return fmt::format(
            "-r 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{} "
            "hostnqn:{}' ",
            port, sub, kSpdkHost);
    };
    int rc = 0;
    std::string out = run_command(perf + trid(tls_port, "nqn.2016-06.io.spdk:tls") +
                                      "-o 4096 --verify --psk " + psk + " 2>&1",
                                  &rc);
    EXPECT_EQ(rc, 0) << out << "\n" << t.log();
    EXPECT_NE(out.find("Total"), std::string::npos) << out;
    out = run_command(perf + trid(auth_port, "nqn.2016-06.io.spdk:auth") +
                          "-o 4096 --verify --dhchap-secret " + h + " --dhchap-ctrl-secret " + c +
                          " 2>&1",
                      &rc);
    EXPECT_EQ(rc, 0) << out << "\n" << t.log();
    out = run_command(perf + trid(auth_port, "nqn.2016-06.io.spdk:auth") + "--dhchap-secret " +
                          kWrongSecret + " 2>&1",
                      &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("refused the host"), std::string::npos) << out;
    out = run_command(perf + trid(auth_port, "nqn.2016-06.io.spdk:auth") + "--dhchap-secret " + h +
                          " --dhchap-ctrl-secret " + kWrongSecret + " 2>&1",
                      &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("controller key"), std::string::npos) << out;
}

// SPDK's initiator (its bdev_nvme, in spdk_tgt) authenticating to nocstor's target with
// DH-HMAC-CHAP both ways.
TEST(SpdkInitiatorAuth, BdevNvmeAuthenticatesBothWays) {
    if (spdk_dir().empty()) GTEST_SKIP() << "set NOCSTOR_SPDK_DIR to a built SPDK tree";
    if (access((spdk_dir() + "/build/bin/spdk_tgt").c_str(), X_OK) != 0)
        GTEST_SKIP() << "no spdk_tgt in " << spdk_dir() << "/build/bin";
    const std::string nqn = "nqn.2024-01.io.nocstor:spdk-auth";
    SpdkTarget t;
    const std::string h = t.key("h", kHostSecret), c = t.key("c", kCtrlSecret);
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    d.ok("keyring_file_add_key", {{"name", "h"}, {"path", h}});
    d.ok("keyring_file_add_key", {{"name", "c"}, {"path", c}});
    d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 8192}, {"block_size", 512}});
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", {{"bdev_name", "M0"}}}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", nqn},
          {"listen_address",
           {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
    d.ok("nvmf_subsystem_add_host",
         {{"nqn", nqn}, {"host", kSpdkHost}, {"dhchap_key", "h"}, {"dhchap_ctrlr_key", "c"}});
    const std::string config = fmt::format(R"({{"subsystems": [
 {{"subsystem": "keyring", "config": [
   {{"method": "keyring_file_add_key", "params": {{"name": "h", "path": "{}"}}}},
   {{"method": "keyring_file_add_key", "params": {{"name": "c", "path": "{}"}}}}]}},
 {{"subsystem": "bdev", "config": [
   {{"method": "bdev_nvme_attach_controller", "params": {{"name": "N0", "trtype": "tcp",
     "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "{}", "subnqn": "{}", "hostnqn": "{}",
     "dhchap_key": "h", "dhchap_ctrlr_key": "c"}}}}]}}
]}})",
                                           h, c, port, nqn, kSpdkHost);
    if (!t.start(config, 0)) {
        const std::string l = t.log();
        if (l.find("Unable to initialize SPDK env") != std::string::npos ||
            l.find("EAL: FATAL") != std::string::npos)
            GTEST_SKIP() << "SPDK cannot start its environment here (huge pages?):\n" << l;
        FAIL() << "spdk_tgt did not come up:\n" << l;
    }
    // The attach runs while SPDK loads its config: wait for both queues to authenticate.
    bool io_queue = false;
    for (int i = 0; i < 100 && !io_queue; ++i) {
        io_queue = d.log().find("queue 1: host authenticated") != std::string::npos;
        if (!io_queue) usleep(100000);
    }
    EXPECT_NE(d.log().find("queue 0: host authenticated (DH-HMAC-CHAP"), std::string::npos)
        << d.log() << "\n"
        << t.log();
    EXPECT_TRUE(io_queue) << d.log();
    EXPECT_NE(d.log().find("controller authenticated too"), std::string::npos);
    EXPECT_EQ(t.log().find("ERROR"), std::string::npos) << t.log();
}
