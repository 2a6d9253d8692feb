#include "nvme_host/host_auth.h"

#include <openssl/crypto.h>

#include <cstring>

#include <fmt/format.h>

#include "nvmf/auth_messages.h"

namespace nocstor::nvme_host {

namespace auth = nvmf::auth;
using security::HashId;

namespace {

const char* failure_text(uint8_t exp) {
    switch (exp) {
        case auth::kFailed:
            return "authentication failed (wrong host key?)";
        case auth::kNotUsable:
            return "authentication protocol not usable";
        case auth::kConcatMismatch:
            return "secure channel concatenation mismatch";
        case auth::kHashUnusable:
            return "no hash function in common";
        case auth::kDhgroupUnusable:
            return "no DH group in common";
        case auth::kIncorrectPayload:
            return "incorrect payload";
        case auth::kIncorrectMessage:
            return "incorrect message";
        default:
            return "unknown reason";
    }
}

template <class T>
void append(std::vector<uint8_t>* out, const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out->insert(out->end(), p, p + sizeof(T));
}

}  // namespace

HostAuth::HostAuth(std::shared_ptr<const HostAuthConfig> cfg, std::string hostnqn,
                   std::string subnqn, uint16_t tid)
    : cfg_(std::move(cfg)), hostnqn_(std::move(hostnqn)), subnqn_(std::move(subnqn)), tid_(tid) {}

std::vector<uint8_t> HostAuth::negotiate() {
    auth::Negotiate n{};
    n.h = {auth::kCommonMessages, auth::kNegotiate, 0, tid_};
    n.sc_c = 0;
    n.napd = 1;
    auth::ProtocolDescriptor& p = n.protocols[0];
    p.authid = auth::kDhchapAuthId;
    for (HashId h : cfg_->digests)
        if (p.halen < 30) p.idlist[p.halen++] = uint8_t(h);
    for (uint8_t g : cfg_->dhgroups)
        if (p.dhlen < 30) p.idlist[30 + p.dhlen++] = g;
    std::vector<uint8_t> out;
    append(&out, n);
    step_ = Step::kChallenge;
    return out;
}

HostAuth::Next HostAuth::fail(std::string why) {
    authenticated_ = false;
    step_ = Step::kDone;
    error_ = std::move(why);
    return Next::kFailed;
}

// Tells the controller why we give up (Failure2); the exchange ends with it.
HostAuth::Next HostAuth::reject(uint8_t explanation, std::string why, std::vector<uint8_t>* out) {
    auth::Failure f{};
    f.h = {auth::kCommonMessages, auth::kFailure2, 0, tid_};
    f.rescode = auth::kReasonFailed;
    f.rescode_exp = explanation;
    out->clear();
    append(out, f);
    fail(std::move(why));
    return Next::kSendEnd;
}

HostAuth::Next HostAuth::on_message(std::span<const uint8_t> msg, std::vector<uint8_t>* out) {
    if (msg.size() < sizeof(auth::Header)) return fail("a message too short from the controller");
    auth::Header h;
    std::memcpy(&h, msg.data(), sizeof(h));
    if (h.auth_id == auth::kFailure1) {
        auth::Failure f{};
        if (msg.size() >= sizeof(f)) std::memcpy(&f, msg.data(), sizeof(f));
        return fail(
            fmt::format("the controller refused the host: {}", failure_text(f.rescode_exp)));
    }
    if (h.auth_type != auth::kDhchapMessages || h.t_id != tid_)
        return reject(auth::kIncorrectMessage, "the controller sent a message of another exchange",
                      out);
    if (step_ == Step::kChallenge && h.auth_id == auth::kChallenge) return challenge(msg, out);
    if (step_ == Step::kSuccess1 && h.auth_id == auth::kSuccess1) return success1(msg, out);
    return reject(
        auth::kIncorrectMessage,
        fmt::format("the controller sent message {:#x} out of order", unsigned(h.auth_id)), out);
}

HostAuth::Next HostAuth::challenge(std::span<const uint8_t> msg, std::vector<uint8_t>* out) {
    auth::Challenge c;
    if (msg.size() < sizeof(c)) return reject(auth::kIncorrectPayload, "a short challenge", out);
    std::memcpy(&c, msg.data(), sizeof(c));
    hash_ = HashId(c.hashid);
    const size_t hl = security::hash_length(hash_);
    bool offered = false;
    for (HashId d : cfg_->digests) offered |= d == hash_;
    if (!offered || hl == 0 || c.hl != hl)
        return reject(auth::kHashUnusable,
                      fmt::format("the controller chose hash {} (not offered)", unsigned(c.hashid)),
                      out);
    dhgid_ = c.dhgid;
    offered = false;
    for (uint8_t g : cfg_->dhgroups) offered |= g == dhgid_;
    const size_t dh_bytes = security::dh_group_bytes(dhgid_);
    if (!offered || (dhgid_ != 0 && dh_bytes == 0))
        return reject(
            auth::kDhgroupUnusable,
            fmt::format("the controller chose DH group {} (not offered)", unsigned(dhgid_)), out);
    if (c.dhvlen != dh_bytes || msg.size() < sizeof(c) + hl + dh_bytes)
        return reject(auth::kIncorrectPayload, "a challenge with a DH value of the wrong size",
                      out);
    const std::span<const uint8_t> c1 = msg.subspan(sizeof(c), hl);
    c1_.assign(c1.begin(), c1.end());
    s1_ = c.seqnum;
    if (!dh_bytes) return reply({}, out);
    const std::span<const uint8_t> cv = msg.subspan(sizeof(c) + hl, dh_bytes);
    controller_value_.assign(cv.begin(), cv.end());
    if (deferred_dh_) return Next::kNeedDh;
    DhWork w = dh_work();
    w.run();
    return finish_dh(std::move(w), out);
}

HostAuth::DhWork HostAuth::dh_work() const {
    DhWork w;
    w.group = dhgid_;
    w.controller_value = controller_value_;
    return w;
}

void HostAuth::DhWork::run() {
    auto dh = security::DhKeyPair::generate(group, &err);
    if (!dh) return;
    session_key = dh->shared_secret(controller_value, &err);
    if (!session_key.empty()) host_value = dh->public_value();
}

HostAuth::Next HostAuth::finish_dh(DhWork done, std::vector<uint8_t>* out) {
    if (step_ != Step::kChallenge || controller_value_.empty()) return fail("no DH pending");
    if (done.session_key.empty())
        return reject(auth::kDhgroupUnusable, "the controller's DH value: " + done.err, out);
    session_key_ = std::move(done.session_key);
    return reply(done.host_value, out);
}

// The Reply: our answer to the controller's challenge (augmented with the session key when
// there is one), our DH value, and our own challenge when the controller must prove itself.
HostAuth::Next HostAuth::reply(const std::vector<uint8_t>& host_pub, std::vector<uint8_t>* out) {
    const size_t hl = security::hash_length(hash_);
    const size_t dh_bytes = security::dh_group_bytes(dhgid_);
    const std::vector<uint8_t> aug = security::dhchap_augment(hash_, session_key_, c1_);
    const std::vector<uint8_t> r = security::dhchap_response(hash_, cfg_->host, hostnqn_, aug, s1_,
                                                             tid_, "HostHost", hostnqn_, subnqn_);
    if (r.size() != hl) return fail("computing the response failed (OpenSSL)");
    auth::Reply rep{};
    rep.h = {auth::kDhchapMessages, auth::kReply, 0, tid_};
    rep.hl = uint8_t(hl);
    rep.dhvlen = uint16_t(dh_bytes);
    c2_.assign(hl, 0);
    if (cfg_->ctrl) {  // our own challenge: the controller must prove it knows its key
        s2_ = security::random_seqnum();
        if (s2_ == 0 || !security::random_bytes(c2_))
            return reject(auth::kFailed, "no random bytes for the host's challenge", out);
        rep.cvalid = 1;
        rep.seqnum = s2_;
    }
    out->clear();
    append(out, rep);
    out->insert(out->end(), r.begin(), r.end());
    out->insert(out->end(), c2_.begin(), c2_.end());
    out->insert(out->end(), host_pub.begin(), host_pub.end());
    if (!cfg_->ctrl) c2_.clear();
    step_ = Step::kSuccess1;
    return Next::kSend;
}

HostAuth::Next HostAuth::success1(std::span<const uint8_t> msg, std::vector<uint8_t>* out) {
    auth::Success1 s;
    const size_t hl = security::hash_length(hash_);
    if (msg.size() < sizeof(s)) return reject(auth::kIncorrectPayload, "a short Success1", out);
    std::memcpy(&s, msg.data(), sizeof(s));
    if (c2_.empty()) {  // unidirectional: the controller's word is enough
        authenticated_ = true;
        step_ = Step::kDone;
        security::wipe(session_key_);
        return Next::kDone;
    }
    if (!s.rvalid || s.hl != hl || msg.size() < sizeof(s) + hl)
        return reject(auth::kFailed, "the controller did not answer the host's challenge", out);
    const std::vector<uint8_t> want = security::dhchap_response(
        hash_, *cfg_->ctrl, subnqn_, security::dhchap_augment(hash_, session_key_, c2_), s2_, tid_,
        "Controller", subnqn_, hostnqn_);
    security::wipe(session_key_);
    if (want.size() != hl || CRYPTO_memcmp(want.data(), msg.data() + sizeof(s), hl) != 0)
        return reject(auth::kFailed,
                      "the controller's answer does not match the controller key: not the "
                      "controller we expect (or a different dhchap_ctrlr_key)",
                      out);
    auth::Success2 ok{};
    ok.h = {auth::kDhchapMessages, auth::kSuccess2, 0, tid_};
    out->clear();
    append(out, ok);
    authenticated_ = true;
    step_ = Step::kDone;
    return Next::kSendEnd;
}

}  // namespace nocstor::nvme_host
