// The nocstor initiator authenticating with DH-HMAC-CHAP against the nocstor target, both real,
// over TCP on 127.0.0.1 (one daemon is target and initiator): bdev_nvme_attach_controller
// {dhchap_key, dhchap_ctrlr_key} with every hash and the NULL and ffdhe2048 groups, chosen by
// the target's nvmf_set_config; wrong host or controller keys and a missing key are refused with
// a clear error; save_config keeps key names, never secrets; nocstor-perf runs I/O on
// authenticated queues.
#include <sys/stat.h>

#include <fstream>

#include "daemon_env.h"
#include "interop_util.h"
#include "security/dhchap.h"

using namespace nocstor::testing;
using nlohmann::json;

namespace {

const char* kSubNqn = "nqn.2016-06.io.nocstor:auth-host";
const char* kHostNqn = "nqn.2014-08.org.nvmexpress:uuid:0b4e2c3a-1d2e-4f50-8a6b-7c8d9e0f1a2b";
const char* kOpenHostNqn = "nqn.2014-08.org.nvmexpress:uuid:9f9f9f9f-1d2e-4f50-8a6b-7c8d9e0f1a2b";

std::string make_secret(uint8_t fill, nocstor::security::HashId transform) {
    nocstor::security::DhchapSecret s;
    s.transform = transform;
    s.key.assign(32, fill);
    return nocstor::security::format_dhchap_secret(s);
}

std::string write_key(const std::string& dir, const std::string& name, const std::string& text) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << text << "\n";
    ::chmod(path.c_str(), 0600);
    return path;
}

struct AuthSetup {
    Daemon d{{"--empty"}};
    int port = free_tcp_port();
    std::string host_secret = make_secret(0x31, nocstor::security::HashId::None);
    std::string ctrl_secret = make_secret(0x42, nocstor::security::HashId::Sha256);

    AuthSetup() {
        const std::string keys = temp_dir();
        d.ok("keyring_file_add_key",
             {{"name", "host"}, {"path", write_key(keys, "h", host_secret)}});
        d.ok("keyring_file_add_key",
             {{"name", "ctrl"}, {"path", write_key(keys, "c", ctrl_secret)}});
        d.ok("keyring_file_add_key",
             {{"name", "wrong"},
              {"path", write_key(keys, "w", make_secret(0x53, nocstor::security::HashId::None))}});
        d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
        d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 4096}, {"block_size", 512}});
        d.ok("nvmf_create_subsystem", {{"nqn", kSubNqn}, {"allow_any_host", false}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kSubNqn}, {"namespace", {{"bdev_name", "M0"}}}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kSubNqn},
              {"listen_address",
               {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
        d.ok("nvmf_subsystem_add_host", {{"nqn", kSubNqn},
                                         {"host", kHostNqn},
                                         {"dhchap_key", "host"},
                                         {"dhchap_ctrlr_key", "ctrl"}});
        d.ok("nvmf_subsystem_add_host", {{"nqn", kSubNqn}, {"host", kOpenHostNqn}});
    }

    json attach_params(const char* hostnqn = kHostNqn) const {
        return {{"name", "A"},           {"trtype", "tcp"},
                {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)},
                {"subnqn", kSubNqn},     {"hostnqn", hostnqn}};
    }
};

TEST(NvmeHostAuth, EveryHashWithTheNullGroupAndFfdhe2048Bidirectionally) {
    AuthSetup s;
    for (const char* digest : {"sha256", "sha384", "sha512"}) {
        for (const char* group : {"null", "ffdhe2048"}) {
            s.d.ok("nvmf_set_config", {{"dhchap_digests", {digest}}, {"dhchap_dhgroups", {group}}});
            json p = s.attach_params();
            p["dhchap_key"] = "host";
            p["dhchap_ctrlr_key"] = "ctrl";
            const auto r = s.d.call("bdev_nvme_attach_controller", p);
            ASSERT_TRUE(r.ok()) << digest << "/" << group << ": " << r.message;
            EXPECT_EQ(r.result, json::array({"An1"}));
            const std::string want = fmt::format(
                "host authenticated (DH-HMAC-CHAP, hmac({}), DH group {}, controller "
                "authenticated too)",
                digest, group);
            EXPECT_NE(s.d.log().find(want), std::string::npos) << want;
            const json c = s.d.ok("bdev_nvme_get_controllers", {{"name", "A"}});
            EXPECT_EQ(c[0]["ctrlrs"][0]["dhchap"], true);
            s.d.ok("bdev_nvme_detach_controller", {{"name", "A"}});
        }
    }
}

TEST(NvmeHostAuth, WrongOrMissingKeysAreRefusedClearly) {
    AuthSetup s;
    json p = s.attach_params();
    p["dhchap_key"] = "wrong";
    auto r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("refused the host"), std::string::npos) << r.message;

    p["dhchap_key"] = "host";
    p["dhchap_ctrlr_key"] = "wrong";  // not the controller we expect
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("controller key"), std::string::npos) << r.message;

    r = s.d.call("bdev_nvme_attach_controller", s.attach_params());
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("requires DH-HMAC-CHAP"), std::string::npos) << r.message;

    // A host the target lets in without keys cannot have the controller prove itself.
    p = s.attach_params(kOpenHostNqn);
    p["dhchap_key"] = "host";
    p["dhchap_ctrlr_key"] = "ctrl";
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("did not ask"), std::string::npos) << r.message;

    p = s.attach_params();
    p["dhchap_key"] = "nosuchkey";
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_EQ(r.code, -32602);
    EXPECT_NE(r.message.find("no key nosuchkey"), std::string::npos) << r.message;
    p.erase("dhchap_key");
    p["dhchap_ctrlr_key"] = "ctrl";
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_EQ(r.code, -32602);

    r = s.d.call("nvmf_set_config", {{"dhchap_digests", {"md5"}}});
    EXPECT_EQ(r.code, -32602);
    r = s.d.call("bdev_nvme_set_options", {{"dhchap_dhgroups", {"ffdhe1024"}}});
    EXPECT_EQ(r.code, -32602);
    // An empty list is SPDK's "no restriction".
    s.d.ok("bdev_nvme_set_options", {{"dhchap_dhgroups", json::array()}});
    // Nothing in common: the host offers only sha512, the target takes only sha256.
    s.d.ok("nvmf_set_config", {{"dhchap_digests", {"sha256"}}});
    s.d.ok("bdev_nvme_set_options", {{"dhchap_digests", {"sha512"}}, {"timeout_us", 0}});
    p = s.attach_params();
    p["dhchap_key"] = "host";
    r = s.d.call("bdev_nvme_attach_controller", p);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("no hash function in common"), std::string::npos) << r.message;
    EXPECT_EQ(s.d.call("bdev_get_bdevs", {{"name", "An1"}}).ok(), false);
}

TEST(NvmeHostAuth, SaveConfigKeepsKeyNamesAndListsNotSecrets) {
    AuthSetup s;
    s.d.ok("nvmf_set_config",
           {{"dhchap_digests", {"sha384", "sha256"}}, {"dhchap_dhgroups", {"ffdhe3072", "null"}}});
    s.d.ok("bdev_nvme_set_options",
           {{"dhchap_digests", {"sha384"}}, {"action_on_timeout", "none"}});
    json p = s.attach_params();
    p["dhchap_key"] = "host";
    s.d.ok("bdev_nvme_attach_controller", p);
    EXPECT_NE(s.d.log().find("hmac(sha384), DH group ffdhe3072"), std::string::npos);
    // Hosts of the discovery controller: only with a key.
    const char* kDisc = "nqn.2014-08.org.nvmexpress.discovery";
    s.d.ok("nvmf_subsystem_add_host", {{"nqn", kDisc}, {"host", kHostNqn}, {"dhchap_key", "host"}});
    const auto r = s.d.call("nvmf_subsystem_add_host", {{"nqn", kDisc}, {"host", kOpenHostNqn}});
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("needs a dhchap_key"), std::string::npos) << r.message;
    const std::string saved = s.d.ok("save_config").dump();
    EXPECT_NE(saved.find(R"("dhchap_key":"host")"), std::string::npos) << saved;
    EXPECT_NE(saved.find(R"("dhchap_digests":["sha384","sha256"])"), std::string::npos) << saved;
    EXPECT_NE(saved.find(R"("dhchap_dhgroups":["ffdhe3072","null"])"), std::string::npos);
    EXPECT_NE(saved.find("bdev_nvme_set_options"), std::string::npos);
    EXPECT_NE(saved.find(R"({"dhchap_key":"host","host":")" + std::string(kHostNqn) +
                         R"(","nqn":"nqn.2014-08.org.nvmexpress.discovery"})"),
              std::string::npos)
        << saved;
    for (const std::string& secret : {s.host_secret, s.ctrl_secret})
        EXPECT_EQ(saved.find(secret.substr(10, 20)), std::string::npos) << "a secret leaked";
    s.d.ok("bdev_nvme_detach_controller", {{"name", "A"}});
}

TEST(NvmeHostAuth, NocstorPerfRunsIoOnAuthenticatedQueues) {
    AuthSetup s;
    const std::string keys = temp_dir();
    const std::string host_file = write_key(keys, "host.secret", s.host_secret);
    const std::string perf = std::string(NOCSTOR_BIN_DIR) + "/nocstor-perf";
    const std::string trid =
        fmt::format("'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{} hostnqn:{}'",
                    s.port, kSubNqn, kHostNqn);
    const std::string base = perf + " -r " + trid + " -q 8 -o 4096 -t 1 --no-pin --json";
    int rc = 0;
    std::string out = run_command(base + " -w randwrite --dhchap-secret " + host_file +
                                      " --dhchap-ctrl-secret " + s.ctrl_secret + " 2>&1",
                                  &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("\"iops\""), std::string::npos) << out;
    // The I/O queue authenticated too (queue 0 is the admin queue).
    EXPECT_NE(s.d.log().find("queue 1: host authenticated"), std::string::npos) << s.d.log();
    out = run_command(base + " -w randread 2>&1", &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("requires DH-HMAC-CHAP"), std::string::npos) << out;
    out = run_command(base + " -w randread --dhchap-secret " +
                          make_secret(0x77, nocstor::security::HashId::None) + " 2>&1",
                      &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("refused the host"), std::string::npos) << out;
}

}  // namespace
