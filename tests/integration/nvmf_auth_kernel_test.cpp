// DH-HMAC-CHAP through the daemon: nvmf_subsystem_add_host names keys from the keyring (checked
// when the host is added, saved by name, back after a restart), and Linux's NVMe/TCP host
// (6.12 backports kernel, ../shared/interop/kernel-nvme-tcp.sh) authenticates against nocstor
// in both directions, while a wrong host key, a wrong controller key and no key at all are
// refused. The protocol details are in nvmf_auth_test.cpp.
#include "daemon_env.h"
#include "interop_util.h"

#include <openssl/rand.h>
#include <sys/stat.h>

#include <fstream>
#include <iostream>

#include "security/dhchap.h"

using namespace nocstor::testing;
using nlohmann::json;

namespace {

const char* kNqn = "nqn.2024-01.io.nocstor:auth";
const char* kHostNqn = "nqn.2014-08.org.nvmexpress:uuid:0b5b6a35-6c2f-4b7d-9a61-6a3c0f2b1c11";

// A fresh DHHC-1 secret (32-byte key, SHA-256 transform), as nvme gen-dhchap-key makes them.
std::string new_secret() {
    nocstor::security::DhchapSecret s;
    s.transform = nocstor::security::HashId::Sha256;
    s.key.resize(32);
    RAND_bytes(s.key.data(), 32);
    return nocstor::security::format_dhchap_secret(s);
}

std::string key_file(const std::string& dir, const std::string& name, const std::string& text) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << text << "\n";
    ::chmod(path.c_str(), 0600);
    return path;
}

void add_keys(Daemon& d, const std::string& host, const std::string& ctrl) {
    d.ok("keyring_file_add_key", {{"name", "host0"}, {"path", key_file(d.dir(), "h.key", host)}});
    d.ok("keyring_file_add_key", {{"name", "ctrl0"}, {"path", key_file(d.dir(), "c.key", ctrl)}});
}

}  // namespace

TEST(NvmfAuthMethods, AddHostTakesKeysFromTheKeyringAndKeepsThemByName) {
    const std::string dir = temp_dir();
    const std::string cfg = dir + "/nocstor.json";
    {
        Daemon d({"-c", cfg, "--persist"}, dir);
        add_keys(d, new_secret(), new_secret());
        d.ok("keyring_file_add_key",
             {{"name", "junk"}, {"path", key_file(d.dir(), "j.key", "not a secret")}});
        d.ok("nvmf_create_subsystem", {{"nqn", kNqn}});
        auto r = d.call("nvmf_subsystem_add_host",
                        {{"nqn", kNqn}, {"host", kHostNqn}, {"dhchap_key", "missing"}});
        EXPECT_EQ(r.code, -32602);
        EXPECT_NE(r.message.find("no key missing"), std::string::npos) << r.message;
        r = d.call("nvmf_subsystem_add_host",
                   {{"nqn", kNqn}, {"host", kHostNqn}, {"dhchap_ctrlr_key", "ctrl0"}});
        EXPECT_EQ(r.code, -32602);
        EXPECT_NE(r.message.find("needs dhchap_key"), std::string::npos) << r.message;
        r = d.call("nvmf_subsystem_add_host",
                   {{"nqn", kNqn}, {"host", kHostNqn}, {"dhchap_key", "junk"}});
        EXPECT_EQ(r.code, -32602);
        EXPECT_NE(r.message.find("DHHC-1"), std::string::npos) << r.message;
        d.ok("nvmf_subsystem_add_host", {{"nqn", kNqn},
                                         {"host", kHostNqn},
                                         {"dhchap_key", "host0"},
                                         {"dhchap_ctrlr_key", "ctrl0"}});
        const json hosts = d.ok("nvmf_get_subsystems", {{"nqn", kNqn}})[0]["hosts"];
        ASSERT_EQ(hosts.size(), 1u);
        EXPECT_EQ(hosts[0]["dhchap_key"], "host0");
        EXPECT_EQ(hosts[0]["dhchap_ctrlr_key"], "ctrl0");
        EXPECT_EQ(d.ok("save_config").dump().find("DHHC-1"), std::string::npos);
    }
    // The keyring section loads before nvmf: the host comes back with its keys.
    Daemon d({"-c", cfg}, temp_dir());
    const json hosts = d.ok("nvmf_get_subsystems", {{"nqn", kNqn}})[0]["hosts"];
    ASSERT_EQ(hosts.size(), 1u);
    EXPECT_EQ(hosts[0]["dhchap_key"], "host0");
}

TEST(NvmfAuthKernelInterop, LinuxHostAuthenticatesBothWaysAndWrongKeysAreRefused) {
    const std::string harness =
        std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
    if (access(harness.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness;
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const std::string host = new_secret(), ctrl = new_secret(), bad = new_secret();
    Daemon d({"--empty"});
    add_keys(d, host, ctrl);
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 65536}, {"block_size", 512}});
    const uint16_t port = free_tcp_port();
    d.ok("nvmf_create_subsystem", {{"nqn", kNqn}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "M0"}}}});
    const json addr = {
        {"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}};
    d.ok("nvmf_subsystem_add_listener", {{"nqn", kNqn}, {"listen_address", addr}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", "nqn.2014-08.org.nvmexpress.discovery"}, {"listen_address", addr}});
    d.ok("nvmf_subsystem_add_host", {{"nqn", kNqn},
                                     {"host", kHostNqn},
                                     {"dhchap_key", "host0"},
                                     {"dhchap_ctrlr_key", "ctrl0"}});
    // Refused connects first (the guest script runs before the harness's own steps), using the
    // harness's fn_connect_refused (no controller may be left behind).
    const std::string script = d.dir() + "/auth-guest.sh";
    std::ofstream(script)
        << "step dhchap-wrong-host-key-refused fn_connect_refused '" << bad << "' '" << ctrl
        << "'\n"
        << "step dhchap-wrong-ctrl-key-refused fn_connect_refused '" << host << "' '" << bad
        << "'\n"
        << "step dhchap-no-key-refused sh -c 'if nvme connect -t tcp -a 10.0.2.2 -s " << port
        << " -n " << kNqn << " --hostnqn=" << kHostNqn << "; then nvme disconnect -n " << kNqn
        << "; exit 1; fi; echo refused as expected'\n";
    const std::string cmd = harness + " -q --kernel backports --no-reconnect --fio-size 16M" +
                            " --hostnqn " + kHostNqn + " --connect-opts '--dhchap-secret=" + host +
                            " --dhchap-ctrl-secret=" + ctrl + "' --guest-script " + script + " " +
                            std::to_string(port) + " " + kNqn + " 2>&1";
    int rc = 0;
    const std::string out = run_command(cmd, &rc);
    std::cout << out.substr(out.size() > 6000 ? out.size() - 6000 : 0) << std::endl;
    if (out.find("bookworm-backports") != std::string::npos &&
        out.find("PASS: kernel-modules") == std::string::npos)
        GTEST_SKIP() << "the backports kernel could not be fetched";
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find(" 0 failed"), std::string::npos);
    for (const char* step : {"PASS: dhchap-wrong-host-key-refused",
                             "PASS: dhchap-wrong-ctrl-key-refused", "PASS: dhchap-no-key-refused",
                             "PASS: nvme-connect", "PASS: fio-randwrite-verify-4k-libaio"})
        EXPECT_NE(out.find(step), std::string::npos) << step;
    const std::string log = d.log();
    // Linux's host offers every DH group: nocstor picks ffdhe2048.
    EXPECT_NE(log.find("host authenticated (DH-HMAC-CHAP, hmac(sha256), DH group ffdhe2048, "
                       "controller authenticated too)"),
              std::string::npos);
    EXPECT_NE(log.find("the host's response does not match its key"), std::string::npos);
    EXPECT_NE(log.find("the host rejected the controller"), std::string::npos);
}
