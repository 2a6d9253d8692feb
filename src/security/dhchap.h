// DH-HMAC-CHAP secrets (NVMe base spec 2.0, 8.13.5) in the "DHHC-1:hh:<base64>:" form that
// nvme-cli's gen-dhchap-key writes, and the HMAC building blocks of the protocol. The secret's
// base64 holds the key (32, 48 or 64 bytes) followed by its CRC-32 (little-endian); hh names
// the hash that transforms the key before use (00: none, 01: SHA-256, 02: SHA-384, 03:
// SHA-512). Crypto from OpenSSL, CRC-32 from ISA-L.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nocstor::security {

// The NVMe hash identifiers (also the DHHC-1 transform field).
enum class HashId : uint8_t { None = 0, Sha256 = 1, Sha384 = 2, Sha512 = 3 };

size_t hash_length(HashId h);     // 32, 48, 64; 0 for None
const char* hash_name(HashId h);  // "none", "sha256", "sha384", "sha512"

struct DhchapSecret {
    HashId transform = HashId::None;
    std::vector<uint8_t> key;
};

// Parses "DHHC-1:hh:<base64 of key || crc32>:". False with *err saying what is wrong (never
// quoting the secret).
bool parse_dhchap_secret(std::string_view text, DhchapSecret* out, std::string* err);
std::string format_dhchap_secret(const DhchapSecret& s);

std::vector<uint8_t> hmac(HashId h, std::span<const uint8_t> key, std::span<const uint8_t> data);
std::vector<uint8_t> digest(HashId h, std::span<const uint8_t> data);

// The key the protocol uses: the secret's key as is (transform None), else
// HMAC(transform hash, key, nqn || "NVMe-over-Fabrics").
std::vector<uint8_t> transform_key(const DhchapSecret& s, std::string_view nqn);

// The challenge as DH-HMAC-CHAP responses use it: as sent when there is no Diffie-Hellman
// session key (NULL group), else HMAC(hash, H(session key), challenge).
std::vector<uint8_t> dhchap_augment(HashId h, std::span<const uint8_t> session_key,
                                    std::span<const uint8_t> challenge);
// A DH-HMAC-CHAP response (NVMe base spec 2.0, 8.13.5.5): HMAC(h, transform_key(secret,
// key_nqn), challenge || le32(seqnum) || le16(tid) || 0 || role || nqn1 || 0 || nqn2). The host
// answers with role "HostHost" (its key, nqn1 = host NQN), the controller with "Controller"
// (the controller key, nqn1 = subsystem NQN).
std::vector<uint8_t> dhchap_response(HashId h, const DhchapSecret& secret, std::string_view key_nqn,
                                     std::span<const uint8_t> challenge, uint32_t seqnum,
                                     uint16_t tid, std::string_view role, std::string_view nqn1,
                                     std::string_view nqn2);
// A random sequence number (0 is reserved: "not used"); 0 when there is no randomness.
uint32_t random_seqnum();
// Fills `out` with random bytes; false when OpenSSL has no randomness.
bool random_bytes(std::span<uint8_t> out);

// Overwrites a buffer that held key material.
void wipe(std::vector<uint8_t>& v);
void wipe(std::string& s);

}  // namespace nocstor::security
