// DH-HMAC-CHAP on one queue of the target (NVMe base spec 2.0, 8.13.5), as the controller: the
// host negotiates (AUTH_Send), fetches a challenge (AUTH_Receive), answers it (AUTH_Send),
// fetches the verdict (AUTH_Receive: Success1, with the controller's own answer when the host
// asked to authenticate the controller too, or Failure1) and, bidirectionally, confirms
// (Success2) or rejects (Failure2) the controller. Until then the queue takes no other command.
// Pure protocol logic over byte buffers, no I/O: the fabrics command handlers feed it.
// DH groups: ffdhe2048-8192 (the challenges augmented with a hash of the Diffie-Hellman session
// key) and the NULL group (no DH part); hashes: SHA-256/384/512.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "security/dh_group.h"
#include "security/dhchap.h"
#include "security/tls_psk.h"

namespace nocstor::nvmf {

// The keys of one allowed host, immutable once published in a subsystem snapshot.
struct HostKeys {
    std::string key_name;  // keyring names, for save_config; empty: no DH-HMAC-CHAP
    std::string ctrlr_key_name;
    security::DhchapSecret host;                 // authenticates the host
    std::optional<security::DhchapSecret> ctrl;  // lets the host authenticate the controller
    // nvmf_subsystem_add_host {psk}: the host comes over a TLS secure channel with this key,
    // never in the clear.
    std::string psk_name;
    std::optional<security::TlsPsk> psk;

    bool dhchap() const { return !key_name.empty(); }
};

// What the target accepts (nvmf_set_config {dhchap_digests, dhchap_dhgroups}), in the order it
// prefers them among those the host offers. By default a Diffie-Hellman exchange of moderate
// cost, then the NULL group, then the big groups (a 6144- or 8192-bit exponentiation takes tens
// of milliseconds of the poll group's thread).
struct AuthPolicy {
    std::vector<security::HashId> digests = {security::HashId::Sha256, security::HashId::Sha384,
                                             security::HashId::Sha512};
    std::vector<uint8_t> dhgroups = {1, 2, 3, 0, 4, 5};
};

// The target's policy (nvmf_set_config): set on the control thread, read at Connect on any.
std::shared_ptr<const AuthPolicy> target_auth_policy();
void set_target_auth_policy(AuthPolicy p);

class QueueAuth {
  public:
    QueueAuth(std::shared_ptr<const HostKeys> keys, std::string hostnqn, std::string subnqn,
              AuthPolicy policy = {});

    // AUTH_Send's payload. Protocol errors are not command errors: they show up as the Failure1
    // message of the next AUTH_Receive (or end the exchange after Failure2).
    void on_send(const uint8_t* data, size_t len);
    // AUTH_Receive: the next message, zero-padded to `al` bytes. 0, or -EINVAL when `al` is
    // too small for it (the command then fails).
    int on_receive(uint8_t* out, size_t al);

    // Diffie-Hellman work off the caller's thread (the poll group's: an ffdhe8192
    // exponentiation takes tens of milliseconds). With set_deferred_dh(true), a Negotiate that
    // picked a DH group leaves needs_key_pair() set: generate one elsewhere and hand it over
    // before answering AUTH_Receive; a Reply leaves needs_session_key() set: derive
    // dh()->shared_secret(peer_value()) elsewhere and hand it to finish_reply(). Without it,
    // both happen inline.
    void set_deferred_dh(bool on) { deferred_dh_ = on; }
    bool needs_key_pair() const {
        return step_ == Step::Challenge && dhgid_ != 0 && dhgid_ != 0xFF && !dh_;
    }
    void set_key_pair(std::shared_ptr<security::DhKeyPair> kp, const std::string& err);
    bool needs_session_key() const { return step_ == Step::ReplyKey; }
    std::shared_ptr<const security::DhKeyPair> dh() const { return dh_; }
    const std::vector<uint8_t>& peer_value() const { return peer_value_; }
    void finish_reply(std::vector<uint8_t> session_key, const std::string& err);

    bool authenticated() const { return authenticated_; }
    // The exchange failed for good (Failure1 sent, or the host sent Failure2).
    bool failed() const { return failed_; }
    const std::string& last_error() const { return last_error_; }
    security::HashId hash() const { return hash_; }
    uint8_t dh_group() const { return dhgid_; }
    bool bidirectional() const { return !c2_.empty(); }

  private:
    enum class Step { Negotiate, Challenge, Reply, ReplyKey, Success1, Success2, Failure1, Done };
    void negotiate(const uint8_t* data, size_t len);
    void reply(const uint8_t* data, size_t len);
    void check_reply();
    void fail(uint8_t explanation, std::string why);
    // The challenge as the responses use it: as sent (NULL group), or augmented with the DH
    // session key: HMAC(hash, H(session key), challenge).
    std::vector<uint8_t> augmented(const std::vector<uint8_t>& challenge) const;
    std::vector<uint8_t> response(const security::DhchapSecret& secret, const std::string& key_nqn,
                                  const std::vector<uint8_t>& challenge, uint32_t seqnum,
                                  const char* role, const std::string& first_nqn,
                                  const std::string& second_nqn) const;

    std::shared_ptr<const HostKeys> keys_;
    std::string hostnqn_, subnqn_;
    AuthPolicy policy_;
    Step step_ = Step::Negotiate;
    uint16_t tid_ = 0;
    security::HashId hash_ = security::HashId::None;
    uint8_t dhgid_ = 0;
    std::shared_ptr<security::DhKeyPair> dh_;
    bool deferred_dh_ = false;
    // A Reply waiting for its session key (deferred DH): what the check needs afterwards.
    std::vector<uint8_t> peer_value_, reply_rval_, reply_c2_;
    bool reply_cvalid_ = false;
    uint32_t reply_seqnum_ = 0;
    std::vector<uint8_t> session_key_;  // the DH shared secret of this exchange
    std::vector<uint8_t> c1_, c2_;
    uint32_t s1_ = 0, s2_ = 0;
    uint8_t failure_ = 0;
    bool authenticated_ = false;
    bool failed_ = false;
    std::string last_error_;
};

}  // namespace nocstor::nvmf
