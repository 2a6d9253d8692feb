// SPDK's NVMe/TCP initiator against the real daemon, on both socket drivers: spdk_nvme_identify
// (I/O subsystem and discovery) and spdk_nvme_perf with header and data digests, with SPDK's
// defaults (an empty host NQN included). SPDK is not part of the project: set NOCSTOR_SPDK_DIR
// to a built SPDK tree (docs/benchmarks.md says how it was built); skips cleanly otherwise, and
// when SPDK cannot initialise its environment (no huge pages).
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

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
