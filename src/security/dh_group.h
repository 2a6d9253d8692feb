// The finite-field Diffie-Hellman groups of DH-HMAC-CHAP (RFC 7919's ffdhe2048 ... ffdhe8192,
// NVMe DH group identifiers 1-5), from OpenSSL: a fresh key pair per exchange, public values
// as big-endian numbers of the group's size, the shared secret padded to that size (what
// Linux's "dh" kpp produces, so both ends hash the same bytes). The peer's public value is
// validated (range and subgroup) before use.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace nocstor::security {

// NVMe DH group identifier -> the group's size in bytes (0: not an ffdhe group).
size_t dh_group_bytes(uint8_t id);
const char* dh_group_name(uint8_t id);  // "null", "ffdhe2048", ...

class DhKeyPair {
  public:
    // A new private key in group `id` (1-5); nullptr with *err on failure.
    static std::unique_ptr<DhKeyPair> generate(uint8_t id, std::string* err);
    ~DhKeyPair();
    DhKeyPair(const DhKeyPair&) = delete;
    DhKeyPair& operator=(const DhKeyPair&) = delete;

    uint8_t group() const { return id_; }
    // Our public value, dh_group_bytes(group()) bytes.
    const std::vector<uint8_t>& public_value() const { return pub_; }
    // The shared secret with the peer's public value; empty (with *err) when the value is
    // not a valid public key of the group.
    std::vector<uint8_t> shared_secret(std::span<const uint8_t> peer, std::string* err) const;

  private:
    DhKeyPair() = default;
    uint8_t id_ = 0;
    void* pkey_ = nullptr;  // EVP_PKEY
    std::vector<uint8_t> pub_;
};

}  // namespace nocstor::security
