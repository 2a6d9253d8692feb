// DH-HMAC-CHAP on one queue of the initiator (NVMe base spec 2.0, 8.13.5), as the host: after a
// Connect whose response asks for authentication, the qpair sends Negotiate (AUTH_Send), fetches
// the controller's challenge (AUTH_Receive), answers it with the host key (and, with a controller
// key, a challenge of its own), fetches the verdict and, bidirectionally, checks the
// controller's answer and confirms (Success2) or rejects it (Failure2).
// Pure protocol logic over byte buffers; the qpair moves the messages.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "security/dh_group.h"
#include "security/dhchap.h"
#include "security/tls_psk.h"

namespace nocstor::nvme_host {

// What a controller (bdev_nvme_attach_controller, nocstor-perf) authenticates with.
struct HostAuthConfig {
    std::string key_name;  // keyring names, for save_config ("" when given inline)
    std::string ctrlr_key_name;
    security::DhchapSecret host;                 // the host's secret
    std::optional<security::DhchapSecret> ctrl;  // set: the controller must prove itself too
    // Offered to the controller, which picks one of each (bdev_nvme_set_options).
    std::vector<security::HashId> digests = {security::HashId::Sha256, security::HashId::Sha384,
                                             security::HashId::Sha512};
    std::vector<uint8_t> dhgroups = {0, 1, 2, 3, 4, 5};  // null, ffdhe2048 ... ffdhe8192
};

// bdev_nvme_attach_controller {psk}, nocstor-perf --psk: every queue is a TLS 1.3 secure
// channel with the PSK derived from this key for the host and subsystem NQNs.
struct HostTlsConfig {
    std::string psk_name;  // keyring name, for save_config ("" when given inline)
    security::TlsPsk psk;
};

class HostAuth {
  public:
    // The largest message the controller sends: a challenge with an ffdhe8192 value.
    static constexpr size_t kReceiveLength = 4096;

    HostAuth(std::shared_ptr<const HostAuthConfig> cfg, std::string hostnqn, std::string subnqn,
             uint16_t tid);

    // The first AUTH_Send payload.
    std::vector<uint8_t> negotiate();
    enum class Next {
        kSend,     // send *out with AUTH_Send, then AUTH_Receive
        kSendEnd,  // send *out with AUTH_Send; the exchange ends with it (Success2, Failure2)
        kReceive,  // AUTH_Receive the next message
        kDone,     // authenticated
        kFailed,   // error() says why
        kNeedDh,   // deferred DH: compute dh_work() elsewhere, then finish_dh()
    };
    // With set_deferred_dh(true) a challenge with a DH group returns kNeedDh instead of doing
    // the key generation and shared-secret derivation inline (tens of milliseconds for the big
    // groups on the queue's thread): run dh_work() anywhere, then finish_dh() here.
    void set_deferred_dh(bool on) { deferred_dh_ = on; }
    struct DhWork {
        uint8_t group = 0;
        std::vector<uint8_t> controller_value;
        // Results: the host's public value and the session key, or err.
        std::vector<uint8_t> host_value, session_key;
        std::string err;
        void run();  // any thread
    };
    DhWork dh_work() const;
    Next finish_dh(DhWork done, std::vector<uint8_t>* out);
    // An AUTH_Receive payload (the controller's message). Returns what to do next.
    Next on_message(std::span<const uint8_t> msg, std::vector<uint8_t>* out);

    bool authenticated() const { return authenticated_; }
    const std::string& error() const { return error_; }
    security::HashId hash() const { return hash_; }
    uint8_t dh_group() const { return dhgid_; }

  private:
    Next challenge(std::span<const uint8_t> msg, std::vector<uint8_t>* out);
    Next reply(const std::vector<uint8_t>& host_pub, std::vector<uint8_t>* out);
    Next success1(std::span<const uint8_t> msg, std::vector<uint8_t>* out);
    Next fail(std::string why);
    Next reject(uint8_t explanation, std::string why, std::vector<uint8_t>* out);

    std::shared_ptr<const HostAuthConfig> cfg_;
    std::string hostnqn_, subnqn_;
    uint16_t tid_;
    enum class Step { kNegotiate, kChallenge, kSuccess1, kDone } step_ = Step::kNegotiate;
    security::HashId hash_ = security::HashId::None;
    uint8_t dhgid_ = 0;
    std::vector<uint8_t> session_key_;
    bool deferred_dh_ = false;
    std::vector<uint8_t> c1_, controller_value_;  // the challenge, kept while DH is computed
    uint32_t s1_ = 0;
    std::vector<uint8_t> c2_;
    uint32_t s2_ = 0;
    bool authenticated_ = false;
    std::string error_;
};

}  // namespace nocstor::nvme_host
