// NVMe/TCP TLS 1.3 pre-shared keys (NVMe/TCP transport spec, TP 8011 and TP 8018):
//  - the "NVMeTLSkey-1:hh:<base64 of key || crc32>:" interchange form that nvme-cli's
//    gen-tls-key writes (hh: 00 the key is used as configured, 01 SHA-256 / 32 bytes,
//    02 SHA-384 / 48 bytes);
//  - the PSK identity "NVMe0R0c <hostnqn> <subnqn>" (c: 1 for TLS_AES_128_GCM_SHA256, 2 for
//    TLS_AES_256_GCM_SHA384);
//  - the derivation configured PSK -> retained PSK (HKDF with the label "tls13 HostNQN" and the
//    host NQN, skipped for hh 00) -> TLS PSK (HKDF with "tls13 nvme-tls-psk" and the identity),
//    as SPDK and libnvme compute them, so that either end can be one of theirs.
// HKDF from OpenSSL.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "security/dhchap.h"

namespace nocstor::security {

struct TlsPsk {
    HashId hash = HashId::None;  // None, Sha256 or Sha384
    std::vector<uint8_t> key;    // 32 or 48 bytes
};

enum class TlsCipher : uint8_t { Aes128GcmSha256 = 1, Aes256GcmSha384 = 2 };

// False with *err saying what is wrong (never quoting the key).
bool parse_tls_psk(std::string_view text, TlsPsk* out, std::string* err);
std::string format_tls_psk(const TlsPsk& psk);
// A new random key of hash's length (Sha256: 32 bytes, Sha384: 48); empty without randomness.
TlsPsk generate_tls_psk(HashId hash);

// The cipher suite a key is used with: AES-256/SHA-384 for an 02 key, else AES-128/SHA-256.
TlsCipher cipher_for(const TlsPsk& psk);
const char* cipher_name(TlsCipher c);  // "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"

std::string psk_identity(TlsCipher c, std::string_view hostnqn, std::string_view subnqn);
// Splits "NVMe0R0c <hostnqn> <subnqn>"; false for anything else.
bool parse_psk_identity(std::string_view id, TlsCipher* c, std::string* hostnqn,
                        std::string* subnqn);

// Retained PSK: the configured key for hh 00, else HKDF(hash, key, "tls13 HostNQN", hostnqn).
std::vector<uint8_t> retained_psk(const TlsPsk& psk, std::string_view hostnqn);
// The PSK TLS uses: HKDF(cipher's hash, retained, "tls13 nvme-tls-psk", identity).
std::vector<uint8_t> derive_tls_psk(std::span<const uint8_t> retained, TlsCipher c,
                                    std::string_view identity);
// Both steps for one connection: what the host and the controller hand to TLS.
std::vector<uint8_t> connection_psk(const TlsPsk& psk, std::string_view hostnqn,
                                    std::string_view subnqn);

}  // namespace nocstor::security
