// The initiator's DH-HMAC-CHAP (HostAuth) against the target's (nvmf::QueueAuth): both ends of
// the real protocol logic exchange their messages in memory, for every hash and several DH
// groups, one- and bidirectionally, and with wrong keys on either side.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "nvme_host/host_auth.h"
#include "nvmf/auth.h"
#include "nvmf/auth_messages.h"
#include "security/dhchap_names.h"

namespace nocstor::nvme_host {
namespace {

using security::DhchapSecret;
using security::HashId;

constexpr const char* kHostNqn = "nqn.2014-08.org.nvmexpress:uuid:host-under-test";
constexpr const char* kSubNqn = "nqn.2016-06.io.nocstor:auth";

DhchapSecret secret(uint8_t fill, HashId transform = HashId::None, size_t len = 32) {
    DhchapSecret s;
    s.transform = transform;
    s.key.assign(len, fill);
    return s;
}

struct Outcome {
    bool host_ok = false;    // the host considers itself authenticated
    bool target_ok = false;  // the target lets the queue through
    std::string host_error;
};

// Runs the exchange the way a qpair does: AUTH_Send / AUTH_Receive until the host is done.
Outcome run_exchange(std::shared_ptr<const HostAuthConfig> host_cfg,
                     std::shared_ptr<const nvmf::HostKeys> target_keys,
                     nvmf::AuthPolicy policy = {}) {
    HostAuth host(host_cfg, kHostNqn, kSubNqn, 7);
    nvmf::QueueAuth target(target_keys, kHostNqn, kSubNqn, policy);
    std::vector<uint8_t> out = host.negotiate();
    target.on_send(out.data(), out.size());
    for (int round = 0; round < 6; ++round) {
        std::vector<uint8_t> msg(HostAuth::kReceiveLength);
        EXPECT_EQ(target.on_receive(msg.data(), msg.size()), 0);
        const HostAuth::Next next = host.on_message(msg, &out);
        if (next == HostAuth::Next::kSend || next == HostAuth::Next::kSendEnd)
            target.on_send(out.data(), out.size());
        if (next == HostAuth::Next::kSend) continue;
        break;
    }
    return {host.authenticated(), target.authenticated() && !target.failed(), host.error()};
}

std::shared_ptr<nvmf::HostKeys> target_keys(const DhchapSecret& host,
                                            std::optional<DhchapSecret> ctrl = {}) {
    auto k = std::make_shared<nvmf::HostKeys>();
    k->host = host;
    k->ctrl = ctrl;
    return k;
}

std::shared_ptr<HostAuthConfig> host_config(const DhchapSecret& host,
                                            std::optional<DhchapSecret> ctrl = {}) {
    auto c = std::make_shared<HostAuthConfig>();
    c->host = host;
    c->ctrl = ctrl;
    return c;
}

TEST(HostAuth, EveryHashWithTheNullGroupAndFfdhe2048Bidirectionally) {
    for (HashId h : {HashId::Sha256, HashId::Sha384, HashId::Sha512}) {
        for (uint8_t group : {uint8_t(0), uint8_t(1)}) {
            const DhchapSecret hk = secret(0x11, h, security::hash_length(h));
            const DhchapSecret ck = secret(0x22, HashId::Sha256);
            auto cfg = host_config(hk, ck);
            cfg->digests = {h};
            cfg->dhgroups = {group};
            const Outcome o = run_exchange(cfg, target_keys(hk, ck));
            EXPECT_TRUE(o.host_ok)
                << security::hash_name(h) << " group " << int(group) << ": " << o.host_error;
            EXPECT_TRUE(o.target_ok) << security::hash_name(h) << " group " << int(group);
        }
    }
}

TEST(HostAuth, BigGroupsOneWay) {
    for (uint8_t group : {uint8_t(3), uint8_t(5)}) {
        const DhchapSecret hk = secret(0x33);
        auto cfg = host_config(hk);
        cfg->dhgroups = {group};
        const Outcome o = run_exchange(cfg, target_keys(hk));
        EXPECT_TRUE(o.host_ok) << int(group) << ": " << o.host_error;
        EXPECT_TRUE(o.target_ok) << int(group);
    }
}

TEST(HostAuth, AWrongHostKeyIsRefusedByTheController) {
    const Outcome o = run_exchange(host_config(secret(0x44)), target_keys(secret(0x45)));
    EXPECT_FALSE(o.host_ok);
    EXPECT_FALSE(o.target_ok);
    EXPECT_NE(o.host_error.find("refused the host"), std::string::npos) << o.host_error;
}

TEST(HostAuth, AControllerWithTheWrongControllerKeyIsRejectedByTheHost) {
    const DhchapSecret hk = secret(0x55);
    const Outcome o = run_exchange(host_config(hk, secret(0x66)), target_keys(hk, secret(0x67)));
    EXPECT_FALSE(o.host_ok);
    EXPECT_FALSE(o.target_ok);  // Failure2 ends the target's exchange too
    EXPECT_NE(o.host_error.find("controller key"), std::string::npos) << o.host_error;
}

TEST(HostAuth, ABidirectionalHostAndAControllerWithoutAControllerKeyFail) {
    const DhchapSecret hk = secret(0x77);
    const Outcome o = run_exchange(host_config(hk, secret(0x78)), target_keys(hk));
    EXPECT_FALSE(o.host_ok);
    EXPECT_FALSE(o.target_ok);
}

TEST(HostAuth, NothingInCommonWithTheControllersPolicy) {
    const DhchapSecret hk = secret(0x79);
    auto cfg = host_config(hk);
    cfg->digests = {HashId::Sha512};
    nvmf::AuthPolicy policy;
    policy.digests = {HashId::Sha256};
    Outcome o = run_exchange(cfg, target_keys(hk), policy);
    EXPECT_FALSE(o.host_ok);
    EXPECT_NE(o.host_error.find("no hash function in common"), std::string::npos) << o.host_error;
    cfg->digests = {HashId::Sha256};
    cfg->dhgroups = {0};
    policy.dhgroups = {2, 3};
    o = run_exchange(cfg, target_keys(hk), policy);
    EXPECT_FALSE(o.host_ok);
    EXPECT_NE(o.host_error.find("no DH group in common"), std::string::npos) << o.host_error;
}

TEST(HostAuth, TheControllerPicksFromItsPolicyInTheHostsList) {
    const DhchapSecret hk = secret(0x7A);
    auto cfg = host_config(hk);
    nvmf::AuthPolicy policy;
    policy.digests = {HashId::Sha384};
    policy.dhgroups = {2};
    HostAuth host(cfg, kHostNqn, kSubNqn, 1);
    nvmf::QueueAuth target(target_keys(hk), kHostNqn, kSubNqn, policy);
    std::vector<uint8_t> out = host.negotiate();
    target.on_send(out.data(), out.size());
    std::vector<uint8_t> msg(HostAuth::kReceiveLength);
    ASSERT_EQ(target.on_receive(msg.data(), msg.size()), 0);
    ASSERT_EQ(host.on_message(msg, &out), HostAuth::Next::kSend) << host.error();
    EXPECT_EQ(host.hash(), HashId::Sha384);
    EXPECT_EQ(host.dh_group(), 2);
}

// Deferred DH (what the qpair does): the challenge asks for the work, which runs elsewhere.
TEST(HostAuth, DeferredDiffieHellmanGivesTheSameExchange) {
    const DhchapSecret hk = secret(0x7C);
    const DhchapSecret ck = secret(0x7D, HashId::Sha384);
    auto cfg = host_config(hk, ck);
    cfg->dhgroups = {2};
    HostAuth host(cfg, kHostNqn, kSubNqn, 9);
    host.set_deferred_dh(true);
    nvmf::QueueAuth target(target_keys(hk, ck), kHostNqn, kSubNqn);
    std::vector<uint8_t> out = host.negotiate();
    target.on_send(out.data(), out.size());
    std::vector<uint8_t> msg(HostAuth::kReceiveLength);
    ASSERT_EQ(target.on_receive(msg.data(), msg.size()), 0);
    ASSERT_EQ(host.on_message(msg, &out), HostAuth::Next::kNeedDh);
    HostAuth::DhWork w = host.dh_work();
    EXPECT_EQ(w.group, 2);
    w.run();  // on "another thread"
    ASSERT_EQ(host.finish_dh(std::move(w), &out), HostAuth::Next::kSend) << host.error();
    target.on_send(out.data(), out.size());
    ASSERT_EQ(target.on_receive(msg.data(), msg.size()), 0);
    EXPECT_EQ(host.on_message(msg, &out), HostAuth::Next::kSendEnd) << host.error();
    target.on_send(out.data(), out.size());
    EXPECT_TRUE(host.authenticated());
    EXPECT_TRUE(target.authenticated());
}

TEST(HostAuth, MalformedControllerMessagesEndTheExchange) {
    auto cfg = host_config(secret(0x7B));
    HostAuth host(cfg, kHostNqn, kSubNqn, 3);
    (void)host.negotiate();
    std::vector<uint8_t> out;
    const uint8_t tiny[2] = {1, 1};
    EXPECT_EQ(host.on_message(tiny, &out), HostAuth::Next::kFailed);
    HostAuth h2(cfg, kHostNqn, kSubNqn, 3);
    (void)h2.negotiate();
    nvmf::auth::Challenge c{};
    c.h = {nvmf::auth::kDhchapMessages, nvmf::auth::kChallenge, 0, 3};
    c.hl = 32;
    c.hashid = 1;
    c.dhgid = 1;
    c.dhvlen = 256;  // promises a DH value that is not there
    std::vector<uint8_t> msg(sizeof(c) + 32);
    std::memcpy(msg.data(), &c, sizeof(c));
    EXPECT_EQ(h2.on_message(msg, &out), HostAuth::Next::kSendEnd);  // Failure2
    EXPECT_FALSE(h2.authenticated());
    ASSERT_GE(out.size(), sizeof(nvmf::auth::Failure));
    EXPECT_EQ(out[1], nvmf::auth::kFailure2);
}

TEST(HostAuth, SpdkNamesOfDigestsAndGroups) {
    using namespace security;
    std::vector<HashId> d;
    std::vector<uint8_t> g;
    std::string err;
    EXPECT_TRUE(parse_digest_names({"sha384", "sha256"}, &d, &err));
    EXPECT_EQ(d, (std::vector<HashId>{HashId::Sha384, HashId::Sha256}));
    EXPECT_TRUE(parse_dhgroup_names({"null", "ffdhe8192"}, &g, &err));
    EXPECT_EQ(g, (std::vector<uint8_t>{0, 5}));
    EXPECT_FALSE(parse_digest_names({"md5"}, &d, &err));
    EXPECT_NE(err.find("md5"), std::string::npos);
    EXPECT_FALSE(parse_dhgroup_names({}, &g, &err));
    EXPECT_EQ(dhgroup_names({0, 1}), (std::vector<std::string>{"null", "ffdhe2048"}));
}

}  // namespace
}  // namespace nocstor::nvme_host
