#include "nvmf/auth.h"

#include <openssl/crypto.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "nvmf/auth_messages.h"

namespace nocstor::nvmf {

using security::HashId;

namespace {
std::atomic<std::shared_ptr<const AuthPolicy>> g_policy{std::make_shared<const AuthPolicy>()};
}  // namespace

std::shared_ptr<const AuthPolicy> target_auth_policy() {
    return g_policy.load();
}

void set_target_auth_policy(AuthPolicy p) {
    g_policy.store(std::make_shared<const AuthPolicy>(std::move(p)));
}

QueueAuth::QueueAuth(std::shared_ptr<const HostKeys> keys, std::string hostnqn, std::string subnqn,
                     AuthPolicy policy)
    : keys_(std::move(keys)),
      hostnqn_(std::move(hostnqn)),
      subnqn_(std::move(subnqn)),
      policy_(std::move(policy)) {}

void QueueAuth::fail(uint8_t explanation, std::string why) {
    failure_ = explanation;
    step_ = Step::Failure1;
    authenticated_ = false;
    last_error_ = std::move(why);
}

std::vector<uint8_t> QueueAuth::response(const security::DhchapSecret& secret,
                                         const std::string& key_nqn,
                                         const std::vector<uint8_t>& challenge, uint32_t seqnum,
                                         const char* role, const std::string& first_nqn,
                                         const std::string& second_nqn) const {
    return security::dhchap_response(hash_, secret, key_nqn, challenge, seqnum, tid_, role,
                                     first_nqn, second_nqn);
}

std::vector<uint8_t> QueueAuth::augmented(const std::vector<uint8_t>& challenge) const {
    return security::dhchap_augment(hash_, session_key_, challenge);
}

void QueueAuth::on_send(const uint8_t* data, size_t len) {
    if (len < sizeof(auth::Header)) return fail(auth::kIncorrectPayload, "a message too short");
    auth::Header h;
    std::memcpy(&h, data, sizeof(h));
    if (h.auth_type == auth::kCommonMessages && h.auth_id == auth::kNegotiate)
        return negotiate(data, len);  // also a re-authentication on an authenticated queue
    if (h.auth_id == auth::kFailure2) {
        // The host rejected the controller's answer (or gave up). Failure messages are common
        // messages; tolerate the DH-HMAC-CHAP type too.
        authenticated_ = false;
        failed_ = true;
        step_ = Step::Done;
        last_error_ = "the host rejected the controller (Failure2): its controller key differs";
        return;
    }
    if (h.auth_type != auth::kDhchapMessages)
        return fail(auth::kIncorrectMessage, "a message of an unknown type");
    if (h.t_id != tid_) return fail(auth::kIncorrectPayload, "a message of another transaction");
    if (h.auth_id == auth::kReply && step_ == Step::Reply) return reply(data, len);
    if (h.auth_id == auth::kSuccess2 && step_ == Step::Success2) {
        authenticated_ = true;
        step_ = Step::Done;
        return;
    }
    fail(auth::kIncorrectMessage, fmt::format("message {:#x} out of order", unsigned(h.auth_id)));
}

void QueueAuth::negotiate(const uint8_t* data, size_t len) {
    authenticated_ = false;
    failed_ = false;
    c1_.clear();
    c2_.clear();
    dh_.reset();
    security::wipe(session_key_);
    if (len < offsetof(auth::Negotiate, protocols) + sizeof(auth::ProtocolDescriptor))
        return fail(auth::kIncorrectPayload, "a Negotiate message too short");
    auth::Negotiate n;
    std::memcpy(&n, data, sizeof(n));
    tid_ = n.h.t_id;
    if (n.sc_c != 0)
        return fail(auth::kConcatMismatch, "a secure channel concatenation was asked for");
    if (n.napd < 1 || len < offsetof(auth::Negotiate, protocols) + n.napd * 64u)
        return fail(auth::kIncorrectPayload, "no protocol descriptor");
    const auth::ProtocolDescriptor& p = n.protocols[0];
    if (p.authid != auth::kDhchapAuthId || p.halen > 30 || p.dhlen > 30)
        return fail(auth::kIncorrectPayload, "not a DH-HMAC-CHAP protocol descriptor");
    hash_ = HashId::None;
    for (HashId want : policy_.digests) {
        for (int i = 0; i < p.halen && hash_ == HashId::None; ++i)
            if (p.idlist[i] == uint8_t(want)) hash_ = want;
        if (hash_ != HashId::None) break;
    }
    if (hash_ == HashId::None) return fail(auth::kHashUnusable, "no hash in common");
    dhgid_ = 0xFF;
    for (uint8_t want : policy_.dhgroups) {
        for (int i = 0; i < p.dhlen && dhgid_ == 0xFF; ++i)
            if (p.idlist[30 + i] == want) dhgid_ = want;
        if (dhgid_ != 0xFF) break;
    }
    if (dhgid_ == 0xFF) return fail(auth::kDhgroupUnusable, "no DH group in common");
    step_ = Step::Challenge;
}

void QueueAuth::reply(const uint8_t* data, size_t len) {
    auth::Reply r;
    if (len < sizeof(r)) return fail(auth::kIncorrectPayload, "a Reply message too short");
    std::memcpy(&r, data, sizeof(r));
    const size_t hl = security::hash_length(hash_);
    if (r.hl != hl) return fail(auth::kIncorrectPayload, "a Reply with the wrong hash length");
    const size_t dh_bytes = security::dh_group_bytes(dhgid_);
    if (r.dhvlen != dh_bytes)
        return fail(auth::kIncorrectPayload,
                    fmt::format("a DH value of {} bytes in a {} exchange", unsigned(r.dhvlen),
                                security::dh_group_name(dhgid_)));
    // The host's DH value follows both hash-sized fields, whether cvalid or not.
    if (len < sizeof(r) + hl * (r.cvalid || dh_bytes ? 2 : 1) + dh_bytes)
        return fail(auth::kIncorrectPayload, "a Reply message too short");
    const uint8_t* rval = data + sizeof(r);
    reply_rval_.assign(rval, rval + hl);
    reply_cvalid_ = r.cvalid != 0;
    reply_c2_.assign(rval + hl, rval + 2 * hl);
    reply_seqnum_ = r.seqnum;
    if (!dh_bytes) return check_reply();
    if (!dh_) return fail(auth::kIncorrectMessage, "a Reply before the challenge");
    peer_value_.assign(rval + 2 * hl, rval + 2 * hl + dh_bytes);
    step_ = Step::ReplyKey;
    if (deferred_dh_) return;  // finish_reply() follows
    std::string err;
    std::vector<uint8_t> key = dh_->shared_secret(peer_value_, &err);
    finish_reply(std::move(key), err);
}

void QueueAuth::finish_reply(std::vector<uint8_t> session_key, const std::string& err) {
    if (step_ != Step::ReplyKey) return;
    if (session_key.empty()) return fail(auth::kDhgroupUnusable, "the host's " + err);
    session_key_ = std::move(session_key);
    check_reply();
}

void QueueAuth::check_reply() {
    const size_t hl = security::hash_length(hash_);
    const std::vector<uint8_t> want =
        response(keys_->host, hostnqn_, augmented(c1_), s1_, "HostHost", hostnqn_, subnqn_);
    if (want.size() != hl || CRYPTO_memcmp(want.data(), reply_rval_.data(), hl) != 0)
        return fail(auth::kFailed, "the host's response does not match its key");
    if (reply_cvalid_) {
        if (!keys_->ctrl)
            return fail(auth::kFailed,
                        "the host wants to authenticate the controller, which has no "
                        "controller key for it (dhchap_ctrlr_key)");
        c2_ = reply_c2_;
        s2_ = reply_seqnum_;
    } else {
        authenticated_ = true;
    }
    step_ = Step::Success1;
}

void QueueAuth::set_key_pair(std::shared_ptr<security::DhKeyPair> kp, const std::string& err) {
    if (!needs_key_pair()) return;
    if (!kp) return fail(auth::kDhgroupUnusable, err);
    dh_ = std::move(kp);
}

int QueueAuth::on_receive(uint8_t* out, size_t al) {
    if (al == 0) return -EINVAL;
    std::memset(out, 0, al);
    const size_t hl = security::hash_length(hash_);
    switch (step_) {
        case Step::Challenge: {
            const size_t dh_bytes = security::dh_group_bytes(dhgid_);
            if (al < sizeof(auth::Challenge) + hl + dh_bytes) return -EINVAL;
            if (dh_bytes) {
                std::string err;
                if (!dh_) dh_ = security::DhKeyPair::generate(dhgid_, &err);  // not deferred
                if (!dh_) {
                    fail(auth::kDhgroupUnusable, err);
                    return on_receive(out, al);  // Failure1 instead
                }
                std::memcpy(out + sizeof(auth::Challenge) + hl, dh_->public_value().data(),
                            dh_bytes);
            }
            c1_.resize(hl);
            s1_ = security::random_seqnum();
            // A predictable challenge could be answered by replaying an old exchange.
            if (!security::random_bytes(c1_) || s1_ == 0) {
                fail(auth::kFailed, "no random bytes for the challenge");
                return on_receive(out, al);  // Failure1 instead
            }
            auth::Challenge c{};
            c.h = {auth::kDhchapMessages, auth::kChallenge, 0, tid_};
            c.hl = uint8_t(hl);
            c.hashid = uint8_t(hash_);
            c.dhgid = dhgid_;
            c.dhvlen = uint16_t(dh_bytes);
            c.seqnum = s1_;
            std::memcpy(out, &c, sizeof(c));
            std::memcpy(out + sizeof(c), c1_.data(), hl);
            step_ = Step::Reply;
            return 0;
        }
        case Step::Success1: {
            if (al < sizeof(auth::Success1) + hl) return -EINVAL;
            auth::Success1 s{};
            s.h = {auth::kDhchapMessages, auth::kSuccess1, 0, tid_};
            s.hl = uint8_t(hl);
            if (!c2_.empty()) {
                const std::vector<uint8_t> r = response(*keys_->ctrl, subnqn_, augmented(c2_), s2_,
                                                        "Controller", subnqn_, hostnqn_);
                s.rvalid = 1;
                std::memcpy(out + sizeof(s), r.data(), hl);
                step_ = Step::Success2;
            } else {
                step_ = Step::Done;
            }
            std::memcpy(out, &s, sizeof(s));
            return 0;
        }
        default: {
            // Failure1 (also for a receive out of order).
            if (al < sizeof(auth::Failure)) return -EINVAL;
            if (step_ != Step::Failure1) fail(auth::kIncorrectMessage, "AUTH_Receive out of order");
            auth::Failure f{};
            f.h = {auth::kCommonMessages, auth::kFailure1, 0, tid_};
            f.rescode = auth::kReasonFailed;
            f.rescode_exp = failure_;
            std::memcpy(out, &f, sizeof(f));
            failed_ = true;
            step_ = Step::Done;
            return 0;
        }
    }
}

}  // namespace nocstor::nvmf
