// NVMe/TCP TLS 1.3 secure channels with PSKs, both ends real over TCP on 127.0.0.1 (one daemon
// is target and initiator): nvmf_subsystem_add_listener {secure_channel} and
// nvmf_subsystem_add_host {psk}, bdev_nvme_attach_controller {psk} with a SHA-256 and a
// SHA-384 key (the two cipher suites), nocstor-perf --psk verifying data; wrong keys, plain
// hosts on a secure listener and PSK hosts on a plain listener are refused clearly; OpenSSL's
// own s_client, with the PSK derived as NVMe prescribes, gets an ICResp through the channel;
// save_config keeps key names, never keys.
#include <sys/stat.h>

#include <fstream>

#include "daemon_env.h"
#include "interop_util.h"
#include "security/tls_psk.h"

using namespace nocstor::testing;
using nlohmann::json;
namespace sec = nocstor::security;

namespace {

const char* kSubNqn = "nqn.2016-06.io.nocstor:tls";
const char* kHost1 = "nqn.2014-08.org.nvmexpress:uuid:1b4e2c3a-1d2e-4f50-8a6b-7c8d9e0f1a2b";
const char* kHost2 = "nqn.2014-08.org.nvmexpress:uuid:2b4e2c3a-1d2e-4f50-8a6b-7c8d9e0f1a2b";
const char* kOpenHost = "nqn.2014-08.org.nvmexpress:uuid:3b4e2c3a-1d2e-4f50-8a6b-7c8d9e0f1a2b";

std::string make_psk(sec::HashId h, uint8_t fill) {
    return sec::format_tls_psk({h, std::vector<uint8_t>(sec::hash_length(h), fill)});
}

std::string write_key(const std::string& dir, const std::string& name, const std::string& text) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << text << "\n";
    ::chmod(path.c_str(), 0600);
    return path;
}

json listen_address(int port) {
    return {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}};
}

struct TlsSetup {
    Daemon d{{"--empty"}};
    int secure_port = free_tcp_port();
    int plain_port = free_tcp_port();
    std::string keys = temp_dir();
    std::string psk1 = make_psk(sec::HashId::Sha256, 0x11);
    std::string psk2 = make_psk(sec::HashId::Sha384, 0x22);
    std::string psk1_file = write_key(keys, "k1", psk1);

    TlsSetup() {
        d.ok("keyring_file_add_key", {{"name", "k1"}, {"path", psk1_file}});
        d.ok("keyring_file_add_key", {{"name", "k2"}, {"path", write_key(keys, "k2", psk2)}});
        d.ok("keyring_file_add_key",
             {{"name", "wrong"},
              {"path", write_key(keys, "w", make_psk(sec::HashId::Sha256, 0x33))}});
        d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
        d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 8192}, {"block_size", 512}});
        d.ok("nvmf_create_subsystem", {{"nqn", kSubNqn}, {"allow_any_host", false}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kSubNqn}, {"namespace", {{"bdev_name", "M0"}}}});
        d.ok("nvmf_subsystem_add_listener", {{"nqn", kSubNqn},
                                             {"secure_channel", true},
                                             {"listen_address", listen_address(secure_port)}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kSubNqn}, {"listen_address", listen_address(plain_port)}});
        d.ok("nvmf_subsystem_add_host", {{"nqn", kSubNqn}, {"host", kHost1}, {"psk", "k1"}});
        d.ok("nvmf_subsystem_add_host", {{"nqn", kSubNqn}, {"host", kHost2}, {"psk", "k2"}});
        d.ok("nvmf_subsystem_add_host", {{"nqn", kSubNqn}, {"host", kOpenHost}});
    }

    json attach(const char* host, int port) const {
        return {{"name", "T"},
                {"trtype", "tcp"},
                {"traddr", "127.0.0.1"},
                {"trsvcid", std::to_string(port)},
                {"subnqn", kSubNqn},
                {"hostnqn", host},
                {"ctrlr_loss_timeout_sec", 0}};
    }

    uint64_t stat(const char* name) {
        uint64_t n = 0;
        const json st = d.ok("nvmf_get_stats");
        for (const auto& g : st["poll_groups"]) n += g.value(name, uint64_t{0});
        if (n == 0) std::cout << st.dump() << std::endl;
        return n;
    }
};

}  // namespace

TEST(NvmfTls, InitiatorAttachesOverASecureChannelWithEitherCipherSuite) {
    TlsSetup s;
    struct Case {
        const char* host;
        const char* key;
        const char* cipher;
    };
    for (const Case& c : {Case{kHost1, "k1", "TLS_AES_128_GCM_SHA256"},
                          Case{kHost2, "k2", "TLS_AES_256_GCM_SHA384"}}) {
        json p = s.attach(c.host, s.secure_port);
        p["psk"] = c.key;
        const auto r = s.d.call("bdev_nvme_attach_controller", p);
        ASSERT_TRUE(r.ok()) << c.key << ": " << r.message << "\n" << s.d.log();
        EXPECT_EQ(r.result, json::array({"Tn1"}));
        const std::string want =
            fmt::format("TLS secure channel up ({}, identity 'NVMe0R0{} {} {}')", c.cipher,
                        c.key[1], c.host, kSubNqn);
        EXPECT_NE(s.d.log().find(want), std::string::npos) << want << "\n" << s.d.log();
        const json ctrl = s.d.ok("bdev_nvme_get_controllers", {{"name", "T"}});
        EXPECT_EQ(ctrl[0]["ctrlrs"][0]["tls"], true);
        // Data through the channel: the bdev's size came from Identify over it.
        const json b = s.d.ok("bdev_get_bdevs", {{"name", "Tn1"}});
        EXPECT_EQ(b[0]["num_blocks"], 8192);
        s.d.ok("bdev_nvme_detach_controller", {{"name", "T"}});
    }
    // At least the two admin queues (an I/O queue connects in the background and may still be
    // in its handshake when the detach comes).
    EXPECT_GE(s.stat("tls_established"), 2u) << s.d.log();
    EXPECT_EQ(s.stat("tls_failures"), 0u);
}

TEST(NvmfTls, NocstorPerfVerifiesDataOverTls) {
    TlsSetup s;
    const std::string perf = std::string(NOCSTOR_BIN_DIR) + "/nocstor-perf";
    const std::string trid =
        fmt::format("'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{} hostnqn:{}'",
                    s.secure_port, kSubNqn, kHost1);
    const std::string base = perf + " -r " + trid + " -q 16 -t 1 --no-pin --json";
    int rc = 0;
    // 4 KiB and 128 KiB: records and R2T/H2CData across record boundaries.
    for (const char* size : {"4096", "131072"}) {
        const std::string out =
            run_command(base + " -o " + size + " --verify --psk " + s.psk1_file + " 2>&1", &rc);
        EXPECT_EQ(rc, 0) << out;
        EXPECT_NE(out.find("\"iops\""), std::string::npos) << out;
        EXPECT_NE(out.find("\"miscompares\": 0"), std::string::npos) << out;
    }
    // The key inline works too; a wrong one does not.
    std::string out = run_command(base + " -o 4096 -w randread --psk " + s.psk1 + " 2>&1", &rc);
    EXPECT_EQ(rc, 0) << out;
    out = run_command(
        base + " -o 4096 -w randread --psk " + make_psk(sec::HashId::Sha256, 0x44) + " 2>&1", &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("TLS handshake"), std::string::npos) << out;
    out = run_command(base + " -o 4096 -w randread --psk NVMeTLSkey-1:01:nonsense: 2>&1", &rc);
    EXPECT_EQ(rc, 2) << out;
    EXPECT_NE(out.find("--psk"), std::string::npos) << out;
}

TEST(NvmfTls, WrongKeysPlainHostsAndPskHostsInTheClearAreRefused) {
    TlsSetup s;
    // A wrong key: the handshake fails, on both sides, with a clear message.
    json p = s.attach(kHost1, s.secure_port);
    p["psk"] = "wrong";
    auto r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("TLS handshake"), std::string::npos) << r.message;
    EXPECT_GE(s.stat("tls_failures"), 1u);
    // The target's log names the host whose key did not match.
    EXPECT_NE(
        s.d.log().find("TLS with host " + std::string(kHost1) + " for " + kSubNqn + " failed"),
        std::string::npos)
        << s.d.log();
    // A host without a PSK on the target, over TLS with some key: no PSK for its identity.
    p = s.attach(kOpenHost, s.secure_port);
    p["psk"] = "k1";
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(s.d.log().find("no PSK for identity 'NVMe0R01 " + std::string(kOpenHost)),
              std::string::npos)
        << s.d.log();
    // Plain NVMe/TCP on the secure listener: the ICReq is no ClientHello.
    r = s.d.call("bdev_nvme_attach_controller", s.attach(kOpenHost, s.secure_port));
    EXPECT_FALSE(r.ok());
    // A host that has a PSK may not come in the clear, even where the listener allows it.
    r = s.d.call("bdev_nvme_attach_controller", s.attach(kHost1, s.plain_port));
    EXPECT_FALSE(r.ok());
    EXPECT_NE(s.d.log().find("must use a secure channel"), std::string::npos) << s.d.log();
    // The open host still gets in over the plain listener.
    s.d.ok("bdev_nvme_attach_controller", s.attach(kOpenHost, s.plain_port));
    s.d.ok("bdev_nvme_detach_controller", {{"name", "T"}});
    // TLS over the plain listener fails: the target answers a ClientHello as NVMe/TCP.
    p = s.attach(kHost1, s.plain_port);
    p["psk"] = "k1";
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_FALSE(r.ok());
}

TEST(NvmfTls, BadParametersGetClearErrors) {
    TlsSetup s;
    // One address is secure for every subsystem or for none.
    s.d.ok("nvmf_create_subsystem", {{"nqn", "nqn.2016-06.io.nocstor:other"}});
    auto r = s.d.call("nvmf_subsystem_add_listener",
                      {{"nqn", "nqn.2016-06.io.nocstor:other"},
                       {"listen_address", listen_address(s.secure_port)}});
    EXPECT_EQ(r.code, -32602) << r.message;
    EXPECT_NE(r.message.find("secure channel"), std::string::npos) << r.message;
    s.d.ok("nvmf_subsystem_add_listener", {{"nqn", "nqn.2016-06.io.nocstor:other"},
                                           {"secure_channel", true},
                                           {"listen_address", listen_address(s.secure_port)}});
    // A PSK must be a TLS key of the keyring.
    s.d.ok("keyring_file_add_key",
           {{"name", "dh"},
            {"path", write_key(s.keys, "dh",
                               "DHHC-1:00:MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTGxWMnb:")}});
    r = s.d.call("nvmf_subsystem_add_host", {{"nqn", kSubNqn}, {"host", kOpenHost}, {"psk", "dh"}});
    EXPECT_EQ(r.code, -32602);
    EXPECT_NE(r.message.find("not a TLS PSK"), std::string::npos) << r.message;
    r = s.d.call("nvmf_subsystem_add_host",
                 {{"nqn", kSubNqn}, {"host", kOpenHost}, {"psk", "nosuchkey"}});
    EXPECT_NE(r.message.find("no key nosuchkey"), std::string::npos) << r.message;
    json p = s.attach(kHost1, s.secure_port);
    p["psk"] = "dh";
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_EQ(r.code, -32602);
    r = s.d.call(
        "nvmf_subsystem_add_host",
        {{"nqn", "nqn.2014-08.org.nvmexpress.discovery"}, {"host", kOpenHost}, {"psk", "k1"}});
    EXPECT_FALSE(r.ok());
}

TEST(NvmfTls, OpenSslClientGetsAnICRespThroughTheChannel) {
    if (!have_tool("openssl")) GTEST_SKIP() << "openssl is not installed";
    TlsSetup s;
    // The TLS PSK as NVMe derives it (configured -> retained -> TLS), as an external PSK.
    sec::TlsPsk key;
    std::string err;
    ASSERT_TRUE(sec::parse_tls_psk(s.psk1, &key, &err)) << err;
    std::string hex;
    for (uint8_t b : sec::connection_psk(key, kHost1, kSubNqn)) hex += fmt::format("{:02x}", b);
    // An ICReq: type 0, HLEN 128, PLEN 128, PFV 0, MAXR2T 0.
    const std::string icreq = s.keys + "/icreq";
    {
        std::string pdu(128, '\0');
        pdu[2] = char(128);
        pdu[4] = char(128);
        std::ofstream(icreq, std::ios::binary) << pdu;
    }
    const std::string out = s.keys + "/out";
    const std::string cmd = fmt::format(
        "(cat {}; sleep 1) | timeout 20 openssl s_client -quiet -no_ign_eof -connect 127.0.0.1:{} "
        "-tls1_3 "
        "-ciphersuites TLS_AES_128_GCM_SHA256 -psk {} -psk_identity 'NVMe0R01 {} {}' > {} "
        "2>&1",
        icreq, s.secure_port, hex, kHost1, kSubNqn, out);
    int rc = 0;
    run_command(cmd, &rc);
    std::ifstream f(out, std::ios::binary);
    const std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t at = got.find(std::string("\x01\x00\x80\x00\x80\x00\x00\x00", 8));
    EXPECT_NE(at, std::string::npos) << "no ICResp from the target: " << got.size() << " bytes\n"
                                     << s.d.log();
    EXPECT_NE(s.d.log().find("TLS secure channel up (TLS_AES_128_GCM_SHA256"), std::string::npos);
    // The same client with another PSK gets nothing.
    const std::string bad = fmt::format(
        "(cat {}; sleep 1) | timeout 20 openssl s_client -quiet -no_ign_eof -connect 127.0.0.1:{} "
        "-tls1_3 "
        "-psk {} -psk_identity 'NVMe0R01 {} {}' > {} 2>&1",
        icreq, s.secure_port, std::string(64, 'a'), kHost1, kSubNqn, out);
    run_command(bad, &rc);
    std::ifstream f2(out, std::ios::binary);
    const std::string got2((std::istreambuf_iterator<char>(f2)), std::istreambuf_iterator<char>());
    EXPECT_EQ(got2.find(std::string("\x01\x00\x80\x00", 4)), std::string::npos);
}

TEST(NvmfTls, SaveConfigKeepsSecureListenersAndKeyNamesNotKeys) {
    TlsSetup s;
    json p = s.attach(kHost1, s.secure_port);
    p["psk"] = "k1";
    s.d.ok("bdev_nvme_attach_controller", p);
    const std::string saved = s.d.ok("save_config").dump();
    EXPECT_NE(saved.find(R"("secure_channel":true)"), std::string::npos) << saved;
    EXPECT_NE(saved.find(R"({"host":")" + std::string(kHost1) + R"(","nqn":")" + kSubNqn +
                         R"(","psk":"k1"})"),
              std::string::npos)
        << saved;
    EXPECT_NE(saved.find(R"("psk":"k1")"), std::string::npos);
    for (const std::string& k : {s.psk1, s.psk2})
        EXPECT_EQ(saved.find(k.substr(16, 20)), std::string::npos) << "a key leaked";
    const json l = s.d.ok("nvmf_subsystem_get_listeners", {{"nqn", kSubNqn}});
    int secure = 0;
    for (const auto& e : l) secure += e.value("secure_channel", false) ? 1 : 0;
    EXPECT_EQ(secure, 1) << l.dump();
    s.d.ok("bdev_nvme_detach_controller", {{"name", "T"}});
}
