#include "security/dhchap.h"

#include "security/key_text.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <fmt/format.h>

namespace nocstor::security {

namespace {

const EVP_MD* md_of(HashId h) {
    switch (h) {
        case HashId::Sha256:
            return EVP_sha256();
        case HashId::Sha384:
            return EVP_sha384();
        case HashId::Sha512:
            return EVP_sha512();
        default:
            return nullptr;
    }
}

constexpr std::string_view kPrefix = "DHHC-1:";
constexpr std::string_view kTransformSuffix = "NVMe-over-Fabrics";

}  // namespace

size_t hash_length(HashId h) {
    switch (h) {
        case HashId::Sha256:
            return 32;
        case HashId::Sha384:
            return 48;
        case HashId::Sha512:
            return 64;
        default:
            return 0;
    }
}

const char* hash_name(HashId h) {
    switch (h) {
        case HashId::Sha256:
            return "sha256";
        case HashId::Sha384:
            return "sha384";
        case HashId::Sha512:
            return "sha512";
        default:
            return "none";
    }
}

bool parse_dhchap_secret(std::string_view text, DhchapSecret* out, std::string* err) {
    std::string_view hh, b64;
    if (!split_key_text(text, kPrefix, "DH-HMAC-CHAP secret", &hh, &b64, err)) return false;
    if (hh != "00" && hh != "01" && hh != "02" && hh != "03") {
        *err = "DH-HMAC-CHAP secret: unknown transform " + std::string(hh) + " (00 to 03)";
        return false;
    }
    const auto transform = static_cast<HashId>(hh[1] - '0');
    std::vector<uint8_t> key;
    std::string why;
    if (!decode_key_with_crc(b64, &key, &why)) {
        *err = "DH-HMAC-CHAP secret: " + why;
        return false;
    }
    if (key.size() != 32 && key.size() != 48 && key.size() != 64) {
        *err = fmt::format("DH-HMAC-CHAP secret: {} key bytes (32, 48 or 64 wanted)", key.size());
        wipe(key);
        return false;
    }
    // Any of the three lengths goes with any transform (as nvme-cli and the kernel accept).
    out->transform = transform;
    out->key = std::move(key);
    return true;
}

std::string format_dhchap_secret(const DhchapSecret& s) {
    return fmt::format("DHHC-1:0{}:{}:", int(s.transform), encode_key_with_crc(s.key));
}

std::vector<uint8_t> hmac(HashId h, std::span<const uint8_t> key, std::span<const uint8_t> data) {
    const EVP_MD* md = md_of(h);
    if (!md) return {};
    std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
    unsigned int len = 0;
    if (!HMAC(md, key.data(), int(key.size()), data.data(), data.size(), out.data(), &len))
        return {};
    out.resize(len);
    return out;
}

std::vector<uint8_t> digest(HashId h, std::span<const uint8_t> data) {
    const EVP_MD* md = md_of(h);
    if (!md) return {};
    std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
    unsigned int len = 0;
    if (!EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr)) return {};
    out.resize(len);
    return out;
}

std::vector<uint8_t> transform_key(const DhchapSecret& s, std::string_view nqn) {
    if (s.transform == HashId::None) return s.key;
    std::vector<uint8_t> msg(nqn.begin(), nqn.end());
    msg.insert(msg.end(), kTransformSuffix.begin(), kTransformSuffix.end());
    return hmac(s.transform, s.key, msg);
}

std::vector<uint8_t> dhchap_augment(HashId h, std::span<const uint8_t> session_key,
                                    std::span<const uint8_t> challenge) {
    if (session_key.empty()) return {challenge.begin(), challenge.end()};
    std::vector<uint8_t> hashed = digest(h, session_key);
    std::vector<uint8_t> out = hmac(h, hashed, challenge);
    wipe(hashed);
    return out;
}

std::vector<uint8_t> dhchap_response(HashId h, const DhchapSecret& secret, std::string_view key_nqn,
                                     std::span<const uint8_t> challenge, uint32_t seqnum,
                                     uint16_t tid, std::string_view role, std::string_view nqn1,
                                     std::string_view nqn2) {
    std::vector<uint8_t> key = transform_key(secret, key_nqn);
    std::vector<uint8_t> msg(challenge.begin(), challenge.end());
    for (int i = 0; i < 4; ++i) msg.push_back(uint8_t(seqnum >> (8 * i)));
    msg.push_back(uint8_t(tid));
    msg.push_back(uint8_t(tid >> 8));
    msg.push_back(0);
    msg.insert(msg.end(), role.begin(), role.end());
    msg.insert(msg.end(), nqn1.begin(), nqn1.end());
    msg.push_back(0);
    msg.insert(msg.end(), nqn2.begin(), nqn2.end());
    std::vector<uint8_t> out = hmac(h, key, msg);
    wipe(key);
    return out;
}

bool random_bytes(std::span<uint8_t> out) {
    return out.empty() || RAND_bytes(out.data(), int(out.size())) == 1;
}

uint32_t random_seqnum() {
    for (int i = 0; i < 4; ++i) {
        uint32_t s = 0;
        if (!random_bytes({reinterpret_cast<uint8_t*>(&s), sizeof(s)})) return 0;
        if (s) return s;
    }
    return 0;
}

void wipe(std::vector<uint8_t>& v) {
    if (!v.empty()) OPENSSL_cleanse(v.data(), v.size());
    v.clear();
}

void wipe(std::string& s) {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

}  // namespace nocstor::security
