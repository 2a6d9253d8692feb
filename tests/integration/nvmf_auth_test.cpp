// NVMe in-band authentication (DH-HMAC-CHAP) on the real target over TCP, driven by a
// hand-made host (nvmf_host.h) that computes its answers with the same primitives the
// specification defines: a host with keys must authenticate every queue before any other
// command, wrong answers get Failure1, the controller answers the host's challenge when asked
// (bidirectional), malformed messages are refused without harm. Linux's host against this
// target is in nvmf_auth_kernel_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "nvmf/auth_messages.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"
#include "nvmf_test_env.h"
#include "security/dhchap.h"

using namespace nocstor;
using namespace nocstor::nvmf;
using namespace nocstor::nvmf::testing;
using security::HashId;

namespace {

const char* kHostKey = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
const char* kCtrlKey = "DHHC-1:01:WulleCBkG4oCs0iIC3Cit9gBDCLWiZ9PNXuhqytWkBIZkvGy:";

std::shared_ptr<const HostKeys> keys(bool with_ctrl) {
    auto k = std::make_shared<HostKeys>();
    std::string err;
    EXPECT_TRUE(security::parse_dhchap_secret(kHostKey, &k->host, &err)) << err;
    k->key_name = "host";
    if (with_ctrl) {
        k->ctrl.emplace();
        EXPECT_TRUE(security::parse_dhchap_secret(kCtrlKey, &*k->ctrl, &err)) << err;
        k->ctrlr_key_name = "ctrl";
    }
    return k;
}

struct Target {
    TargetEnv env;
    explicit Target(bool with_ctrl, uint32_t connect_timeout_ms = 10'000)
        : env(TargetEnvOptions{.allow_any_host = false, .connect_timeout_ms = connect_timeout_ms}) {
        EXPECT_EQ(env.call([&](DoneFn d) {
            env.target().add_host(kTestNqn, kTestHostNqn, keys(with_ctrl), d);
        }),
                  0);
    }
};

nvme::SubmissionQueueEntry auth_sqe(uint8_t fctype, uint16_t cid, uint32_t len) {
    nvme::SubmissionQueueEntry s = sqe(nvme::admin_opc::kFabrics, cid);
    auto* b = reinterpret_cast<uint8_t*>(&s);
    b[4] = fctype;
    auth::CommandFields f{0, auth::kSpsp, auth::kSpsp, auth::kSecpDhchap, len};
    std::memcpy(b + 40, &f, sizeof(f));
    return s;
}

std::optional<nvme::CompletionQueueEntry> auth_send(TestHost& h, const std::vector<uint8_t>& m,
                                                    uint16_t cid = 0x300) {
    auto s = auth_sqe(nvme::fctype::kAuthSend, cid, uint32_t(m.size()));
    set_incapsule(s, uint32_t(m.size()));
    h.send_cmd(s, m.data(), uint32_t(m.size()));
    return h.wait_resp(cid);
}

std::vector<uint8_t> auth_recv(TestHost& h, uint16_t cid = 0x301, uint32_t al = 4096) {
    auto s = auth_sqe(nvme::fctype::kAuthReceive, cid, al);
    set_transport(s, al);
    std::vector<uint8_t> out;
    h.send_cmd(s);
    auto r = h.wait_resp(cid, &out);
    EXPECT_TRUE(r && r->status.ok());
    return out;
}

template <class T>
void append(std::vector<uint8_t>& v, const T& x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    v.insert(v.end(), p, p + sizeof(T));
}

// A Negotiate offering SHA-256/384/512 and the DH groups `dh` (default: NULL only).
std::vector<uint8_t> negotiate(uint16_t tid, std::vector<uint8_t> dh = {0}, uint8_t sc_c = 0) {
    auth::Negotiate n{};
    n.h = {auth::kCommonMessages, auth::kNegotiate, 0, tid};
    n.sc_c = sc_c;
    n.napd = 1;
    auto& p = n.protocols[0];
    p.authid = auth::kDhchapAuthId;
    p.halen = 3;
    p.idlist[0] = 1;
    p.idlist[1] = 2;
    p.idlist[2] = 3;
    p.dhlen = uint8_t(dh.size());
    for (size_t i = 0; i < dh.size(); ++i) p.idlist[30 + i] = dh[i];
    std::vector<uint8_t> v;
    append(v, n);
    return v;
}

// HMAC(hash, transformed key, challenge || le32(seq) || le16(tid) || 0 || role || a || 0 || b),
// the challenge augmented with the DH session key when there is one:
// HMAC(hash, H(session key), challenge).
std::vector<uint8_t> answer(const char* secret, const std::string& key_nqn,
                            const std::vector<uint8_t>& challenge, uint32_t seq, uint16_t tid,
                            const std::string& role, const std::string& a, const std::string& b,
                            const std::vector<uint8_t>& session_key = {}) {
    security::DhchapSecret s;
    std::string err;
    EXPECT_TRUE(security::parse_dhchap_secret(secret, &s, &err));
    std::vector<uint8_t> msg =
        session_key.empty()
            ? challenge
            : security::hmac(HashId::Sha256, security::digest(HashId::Sha256, session_key),
                             challenge);
    for (int i = 0; i < 4; ++i) msg.push_back(uint8_t(seq >> (8 * i)));
    msg.push_back(uint8_t(tid));
    msg.push_back(uint8_t(tid >> 8));
    msg.push_back(0);
    msg.insert(msg.end(), role.begin(), role.end());
    msg.insert(msg.end(), a.begin(), a.end());
    msg.push_back(0);
    msg.insert(msg.end(), b.begin(), b.end());
    return security::hmac(HashId::Sha256, security::transform_key(s, key_nqn), msg);
}

struct ChallengeMsg {
    auth::Challenge c;
    std::vector<uint8_t> value;
    std::vector<uint8_t> dh;  // the controller's public DH value
};

ChallengeMsg parse_challenge(const std::vector<uint8_t>& m) {
    ChallengeMsg out{};
    EXPECT_GE(m.size(), sizeof(auth::Challenge) + 32);
    std::memcpy(&out.c, m.data(), sizeof(out.c));
    out.value.assign(m.begin() + sizeof(out.c), m.begin() + sizeof(out.c) + out.c.hl);
    const auto dh = m.begin() + sizeof(out.c) + out.c.hl;
    if (m.end() - dh >= out.c.dhvlen) out.dh.assign(dh, dh + out.c.dhvlen);
    return out;
}

std::vector<uint8_t> reply(uint16_t tid, const std::vector<uint8_t>& rval,
                           const std::vector<uint8_t>* c2 = nullptr, uint32_t s2 = 0,
                           const std::vector<uint8_t>& dh = {}) {
    auth::Reply r{};
    r.h = {auth::kDhchapMessages, auth::kReply, 0, tid};
    r.hl = uint8_t(rval.size());
    r.cvalid = c2 ? 1 : 0;
    r.seqnum = s2;
    r.dhvlen = uint16_t(dh.size());
    std::vector<uint8_t> v;
    append(v, r);
    v.insert(v.end(), rval.begin(), rval.end());
    if (c2)
        v.insert(v.end(), c2->begin(), c2->end());
    else if (!dh.empty())
        v.insert(v.end(), rval.size(), 0);  // the unused challenge field before the DH value
    v.insert(v.end(), dh.begin(), dh.end());
    return v;
}

uint16_t connect_admin(TestHost& h, bool* atr) {
    if (!h.ok() || !h.ic()) return 0;
    auto c = connect(h, 0, 0xFFFF);
    if (!c || !c->status.ok()) return 0;
    *atr = c->dw0 & auth::kConnectAuthreqAtr;
    return uint16_t(c->dw0);
}

bool is_auth_required(const std::optional<nvme::CompletionQueueEntry>& r) {
    return r && r->status.sct() == nvme::sct::kCommandSpecific &&
           r->status.sc() == nvme::sc_cmd::kAuthenticationRequired;
}

}  // namespace

TEST(NvmfAuth, HostMustAuthenticateBeforeAnyOtherCommand) {
    Target t(false);
    TestHost h(t.env.port());
    bool atr = false;
    ASSERT_NE(connect_admin(h, &atr), 0);
    EXPECT_TRUE(atr) << "the Connect response must ask for authentication";
    std::vector<uint8_t> page;
    EXPECT_TRUE(is_auth_required(prop_set_cc(h, kCcEnable)));
    EXPECT_TRUE(is_auth_required(identify(h, 1, 0, &page)));

    ASSERT_TRUE(auth_send(h, negotiate(7)).value().status.ok());
    const ChallengeMsg ch = parse_challenge(auth_recv(h));
    EXPECT_EQ(ch.c.h.auth_id, auth::kChallenge);
    EXPECT_EQ(ch.c.h.t_id, 7);
    EXPECT_EQ(ch.c.hashid, 1);  // SHA-256, the first the host offered
    EXPECT_EQ(ch.c.dhgid, auth::kDhNull);
    EXPECT_EQ(ch.c.hl, 32);
    EXPECT_NE(ch.c.seqnum, 0u);
    const auto rval = answer(kHostKey, kTestHostNqn, ch.value, ch.c.seqnum, 7, "HostHost",
                             kTestHostNqn, kTestNqn);
    ASSERT_TRUE(auth_send(h, reply(7, rval)).value().status.ok());
    const std::vector<uint8_t> s1 = auth_recv(h);
    ASSERT_GE(s1.size(), sizeof(auth::Success1));
    auth::Success1 s{};
    std::memcpy(&s, s1.data(), sizeof(s));
    EXPECT_EQ(s.h.auth_id, auth::kSuccess1);
    EXPECT_EQ(s.rvalid, 0);
    // Authenticated: the controller now works.
    auto en = prop_set_cc(h, kCcEnable);
    ASSERT_TRUE(en && en->status.ok());
    auto id = identify(h, 1, 0, &page);
    EXPECT_TRUE(id && id->status.ok());
}

// A host that connects and never finishes authenticating holds a queue that can do nothing:
// it is closed at the Connect deadline, counted in auth_timeouts.
TEST(NvmfAuth, AnExchangeLeftHalfDoneIsClosedAtTheDeadline) {
    Target t(false, 400);
    TestHost h(t.env.port());
    bool atr = false;
    ASSERT_NE(connect_admin(h, &atr), 0);
    ASSERT_TRUE(atr);
    ASSERT_TRUE(auth_send(h, negotiate(3)).value().status.ok());  // then silence
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(h.wait_closed(3000));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
    uint64_t timeouts = 0;
    for (const auto& g : t.env.stats().poll_groups) timeouts += g.auth_timeouts;
    EXPECT_EQ(timeouts, 1u);
}

TEST(NvmfAuth, WrongAnswerGetsFailure1AndTheQueueStaysClosed) {
    Target t(false);
    TestHost h(t.env.port());
    bool atr = false;
    ASSERT_NE(connect_admin(h, &atr), 0);
    ASSERT_TRUE(auth_send(h, negotiate(3)).value().status.ok());
    const ChallengeMsg ch = parse_challenge(auth_recv(h));
    auto rval = answer(kHostKey, kTestHostNqn, ch.value, ch.c.seqnum, 3, "HostHost", kTestHostNqn,
                       kTestNqn);
    rval[0] ^= 1;
    ASSERT_TRUE(auth_send(h, reply(3, rval)).value().status.ok());
    const std::vector<uint8_t> f = auth_recv(h);
    auth::Failure fm{};
    std::memcpy(&fm, f.data(), sizeof(fm));
    EXPECT_EQ(fm.h.auth_type, auth::kCommonMessages);
    EXPECT_EQ(fm.h.auth_id, auth::kFailure1);
    EXPECT_EQ(fm.rescode, auth::kReasonFailed);
    EXPECT_EQ(fm.rescode_exp, auth::kFailed);
    EXPECT_TRUE(is_auth_required(prop_set_cc(h, kCcEnable)));
}

TEST(NvmfAuth, ControllerAnswersTheHostsChallengeWhenAsked) {
    Target t(true);
    TestHost h(t.env.port());
    bool atr = false;
    ASSERT_NE(connect_admin(h, &atr), 0);
    ASSERT_TRUE(auth_send(h, negotiate(9)).value().status.ok());
    const ChallengeMsg ch = parse_challenge(auth_recv(h));
    const auto rval = answer(kHostKey, kTestHostNqn, ch.value, ch.c.seqnum, 9, "HostHost",
                             kTestHostNqn, kTestNqn);
    const std::vector<uint8_t> c2(32, 0x5a);
    const uint32_t s2 = 0x01020304;
    ASSERT_TRUE(auth_send(h, reply(9, rval, &c2, s2)).value().status.ok());
    const std::vector<uint8_t> m = auth_recv(h);
    auth::Success1 s{};
    std::memcpy(&s, m.data(), sizeof(s));
    ASSERT_EQ(s.rvalid, 1);
    const std::vector<uint8_t> got(m.begin() + sizeof(s), m.begin() + sizeof(s) + 32);
    EXPECT_EQ(got, answer(kCtrlKey, kTestNqn, c2, s2, 9, "Controller", kTestNqn, kTestHostNqn));
    // Still waiting for the host's verdict.
    EXPECT_TRUE(is_auth_required(prop_set_cc(h, kCcEnable)));
    auth::Success2 ok{};
    ok.h = {auth::kDhchapMessages, auth::kSuccess2, 0, 9};
    std::vector<uint8_t> v;
    append(v, ok);
    ASSERT_TRUE(auth_send(h, v).value().status.ok());
    auto en = prop_set_cc(h, kCcEnable);
    EXPECT_TRUE(en && en->status.ok());
}

// ffdhe2048 (preferred over NULL when the host offers both): the controller's public value
// comes with the challenge, the host's with the reply, and both answers use the challenges
// augmented with the session key. A public value outside the group is refused.
TEST(NvmfAuth, DiffieHellmanGroupAugmentsTheChallenges) {
    Target t(true);
    TestHost h(t.env.port());
    bool atr = false;
    ASSERT_NE(connect_admin(h, &atr), 0);
    ASSERT_TRUE(auth_send(h, negotiate(5, {0, 1})).value().status.ok());
    const ChallengeMsg ch = parse_challenge(auth_recv(h));
    ASSERT_EQ(ch.c.dhgid, 1);  // ffdhe2048
    ASSERT_EQ(ch.c.dhvlen, 256);
    ASSERT_EQ(ch.dh.size(), 256u);
    std::string err;
    auto mine = security::DhKeyPair::generate(1, &err);
    ASSERT_TRUE(mine) << err;
    const std::vector<uint8_t> skey = mine->shared_secret(ch.dh, &err);
    ASSERT_EQ(skey.size(), 256u) << err;
    const auto rval = answer(kHostKey, kTestHostNqn, ch.value, ch.c.seqnum, 5, "HostHost",
                             kTestHostNqn, kTestNqn, skey);
    const std::vector<uint8_t> c2(32, 0x33);
    ASSERT_TRUE(auth_send(h, reply(5, rval, &c2, 77, mine->public_value())).value().status.ok());
    const std::vector<uint8_t> m = auth_recv(h);
    auth::Success1 s{};
    std::memcpy(&s, m.data(), sizeof(s));
    ASSERT_EQ(s.h.auth_id, auth::kSuccess1);
    ASSERT_EQ(s.rvalid, 1);
    const std::vector<uint8_t> got(m.begin() + sizeof(s), m.begin() + sizeof(s) + 32);
    EXPECT_EQ(got,
              answer(kCtrlKey, kTestNqn, c2, 77, 5, "Controller", kTestNqn, kTestHostNqn, skey));

    // A host whose "public value" is 1 (not in the group's range) gets Failure1.
    TestHost h2(t.env.port());
    ASSERT_NE(connect_admin(h2, &atr), 0);
    ASSERT_TRUE(auth_send(h2, negotiate(6, {1})).value().status.ok());
    const ChallengeMsg ch2 = parse_challenge(auth_recv(h2));
    std::vector<uint8_t> one(256, 0);
    one.back() = 1;
    ASSERT_TRUE(
        auth_send(h2, reply(6, std::vector<uint8_t>(32, 0), nullptr, 0, one)).value().status.ok());
    const std::vector<uint8_t> f = auth_recv(h2);
    auth::Failure fm{};
    std::memcpy(&fm, f.data(), sizeof(fm));
    EXPECT_EQ(fm.h.auth_id, auth::kFailure1);
    EXPECT_EQ(fm.rescode_exp, auth::kDhgroupUnusable);
}

TEST(NvmfAuth, MalformedOrUnusableNegotiationsFailCleanly) {
    Target t(false);
    struct Case {
        std::vector<uint8_t> msg;
        uint8_t explanation;
    } cases[] = {
        {negotiate(1, {0}, 1), auth::kConcatMismatch},  // secure channel concatenation
        {negotiate(1, {9}), auth::kDhgroupUnusable},    // no DH group in common
        {std::vector<uint8_t>(5, 0), auth::kIncorrectPayload},
        {std::vector<uint8_t>(300, 0xff), auth::kIncorrectMessage},
    };
    for (const auto& c : cases) {
        TestHost h(t.env.port());
        bool atr = false;
        ASSERT_NE(connect_admin(h, &atr), 0);
        ASSERT_TRUE(auth_send(h, c.msg).value().status.ok());
        const std::vector<uint8_t> f = auth_recv(h);
        auth::Failure fm{};
        std::memcpy(&fm, f.data(), sizeof(fm));
        EXPECT_EQ(fm.h.auth_id, auth::kFailure1);
        EXPECT_EQ(fm.rescode_exp, c.explanation);
        EXPECT_TRUE(is_auth_required(prop_set_cc(h, kCcEnable)));
    }
    // Bad SECP / SPSP / zero length: refused as invalid fields.
    TestHost h(t.env.port());
    bool atr = false;
    ASSERT_NE(connect_admin(h, &atr), 0);
    auto s = auth_sqe(nvme::fctype::kAuthSend, 0x310, 8);
    reinterpret_cast<uint8_t*>(&s)[43] = 0xEA;
    std::vector<uint8_t> junk(8, 0);
    set_incapsule(s, 8);
    h.send_cmd(s, junk.data(), 8);
    auto r = h.wait_resp(0x310);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status.sc(), nvme::sc::kInvalidField);
}

// The discovery controller asks a host with keys (nvmf_subsystem_add_host on the discovery NQN)
// to authenticate, as Linux's nvmet does for hosts with a key; other hosts discover freely.
TEST(NvmfAuth, DiscoveryAsksHostsWithKeysToAuthenticate) {
    Target t(false);
    ASSERT_EQ(t.env.call([&](DoneFn d) {
        t.env.target().add_host(nvme::kDiscoveryNqn, kTestHostNqn, keys(false), d);
    }),
              0);
    TestHost h(t.env.port());
    ASSERT_TRUE(h.ok() && h.ic());
    auto c = connect(h, 0, 0xFFFF, nvme::kDiscoveryNqn, kTestHostNqn);
    ASSERT_TRUE(c && c->status.ok());
    EXPECT_TRUE(c->dw0 & auth::kConnectAuthreqAtr);
    EXPECT_TRUE(is_auth_required(prop_set_cc(h, kCcEnable)));
    ASSERT_TRUE(auth_send(h, negotiate(5)).value().status.ok());
    const ChallengeMsg ch = parse_challenge(auth_recv(h));
    const auto rval = answer(kHostKey, kTestHostNqn, ch.value, ch.c.seqnum, 5, "HostHost",
                             kTestHostNqn, nvme::kDiscoveryNqn);
    ASSERT_TRUE(auth_send(h, reply(5, rval)).value().status.ok());
    std::vector<uint8_t> s1 = auth_recv(h);
    ASSERT_GE(s1.size(), 2u);
    EXPECT_EQ(s1[1], auth::kSuccess1);
    auto en = prop_set_cc(h, kCcEnable);
    EXPECT_TRUE(en && en->status.ok());

    TestHost other(t.env.port());
    ASSERT_TRUE(other.ok() && other.ic());
    auto oc = connect(other, 0, 0xFFFF, nvme::kDiscoveryNqn,
                      "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555");
    ASSERT_TRUE(oc && oc->status.ok());
    EXPECT_FALSE(oc->dw0 & auth::kConnectAuthreqAtr) << std::hex << oc->dw0;
}
