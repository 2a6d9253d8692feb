// CHAP for iSCSI login (RFC 7143 section 12.1.3, RFC 1994): MD5 only (CHAP_A=5), the digest
// MD5(identifier || secret || challenge) from OpenSSL, random challenges, and the checks that
// keep reflection attacks out (a mutual challenge equal to ours is refused).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nocstor::iscsi_tgt {

inline constexpr size_t kChapChallengeLen = 32;
inline constexpr size_t kChapMinChallengeLen = 8;
inline constexpr size_t kChapMaxChallengeLen = 1024;

std::vector<uint8_t> chap_response(uint8_t id, std::string_view secret,
                                   const std::vector<uint8_t>& challenge);

// A fresh identifier and challenge from OpenSSL's RNG; false if the RNG failed.
bool chap_new_challenge(uint8_t* id, std::vector<uint8_t>* challenge);

// Constant-time comparison of the expected and received responses.
bool chap_equal(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

}  // namespace nocstor::iscsi_tgt
