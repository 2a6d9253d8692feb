#include "security/dhchap.h"

#include <isa-l/crc.h>
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
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.remove_suffix(1);
    if (text.substr(0, kPrefix.size()) != kPrefix) {
        *err = "not a DH-HMAC-CHAP secret: it must start with DHHC-1:";
        return false;
    }
    text.remove_prefix(kPrefix.size());
    if (text.size() < 4 || text[2] != ':' || text.back() != ':') {
        *err = "malformed DH-HMAC-CHAP secret: want DHHC-1:hh:<base64>:";
        return false;
    }
    const std::string_view hh = text.substr(0, 2);
    if (hh != "00" && hh != "01" && hh != "02" && hh != "03") {
        *err = "DH-HMAC-CHAP secret: unknown transform " + std::string(hh) + " (00 to 03)";
        return false;
    }
    const auto transform = static_cast<HashId>(hh[1] - '0');
    const std::string_view b64 = text.substr(3, text.size() - 4);
    if (b64.empty() || b64.size() % 4 || b64.size() > 128) {
        *err = "DH-HMAC-CHAP secret: the base64 part has a wrong length";
        return false;
    }
    std::vector<uint8_t> raw(b64.size() / 4 * 3);
    const int n = EVP_DecodeBlock(raw.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                                  int(b64.size()));
    if (n < 0) {
        *err = "DH-HMAC-CHAP secret: the base64 part does not decode";
        return false;
    }
    size_t len = size_t(n);
    // EVP_DecodeBlock counts the padding bytes; drop them.
    if (b64.size() >= 1 && b64[b64.size() - 1] == '=') --len;
    if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --len;
    raw.resize(len);
    if (len != 36 && len != 52 && len != 68) {
        wipe(raw);
        *err = fmt::format("DH-HMAC-CHAP secret: {} key bytes (32, 48 or 64 wanted)",
                           len >= 4 ? len - 4 : 0);
        return false;
    }
    const size_t klen = len - 4;
    const uint32_t want = uint32_t(raw[klen]) | uint32_t(raw[klen + 1]) << 8 |
                          uint32_t(raw[klen + 2]) << 16 | uint32_t(raw[klen + 3]) << 24;
    if (crc32_gzip_refl(0, raw.data(), klen) != want) {
        wipe(raw);
        *err = "DH-HMAC-CHAP secret: CRC mismatch (mistyped or truncated)";
        return false;
    }
    // Any of the three lengths goes with any transform (as nvme-cli and the kernel accept).
    out->transform = transform;
    out->key.assign(raw.begin(), raw.begin() + long(klen));
    wipe(raw);
    return true;
}

std::string format_dhchap_secret(const DhchapSecret& s) {
    std::vector<uint8_t> raw(s.key);
    const uint32_t crc = crc32_gzip_refl(0, raw.data(), raw.size());
    for (int i = 0; i < 4; ++i) raw.push_back(uint8_t(crc >> (8 * i)));
    std::string b64(4 * ((raw.size() + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(), int(raw.size()));
    b64.resize(size_t(n));
    wipe(raw);
    return fmt::format("DHHC-1:0{}:{}:", int(s.transform), b64);
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
