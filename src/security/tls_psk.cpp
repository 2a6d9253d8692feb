#include "security/tls_psk.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <fmt/format.h>

#include "security/key_text.h"

namespace nocstor::security {

namespace {

constexpr std::string_view kPrefix = "NVMeTLSkey-1:";
constexpr std::string_view kIdentityPrefix = "NVMe0R0";

// HKDF (extract with an empty salt, then expand) with the info NVMe builds like TLS 1.3's
// HkdfLabel: be16(length) || u8 len || label || u8 len || context. As in SPDK the length field
// carries the input key's length.
std::vector<uint8_t> hkdf(HashId h, std::span<const uint8_t> key, std::string_view label,
                          std::string_view context) {
    if (label.size() > 255 || context.size() > 255) return {};
    std::vector<uint8_t> info;
    info.push_back(uint8_t(key.size() >> 8));
    info.push_back(uint8_t(key.size()));
    info.push_back(uint8_t(label.size()));
    info.insert(info.end(), label.begin(), label.end());
    info.push_back(uint8_t(context.size()));
    info.insert(info.end(), context.begin(), context.end());

    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (!kdf) return {};
    EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (!ctx) return {};
    char md[16];
    snprintf(md, sizeof md, "%s", h == HashId::Sha384 ? "SHA384" : "SHA256");
    unsigned char empty_salt = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, md, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key.data()),
                                          key.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, &empty_salt, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
        OSSL_PARAM_construct_end()};
    std::vector<uint8_t> out(hash_length(h));
    const int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
    EVP_KDF_CTX_free(ctx);
    if (ok != 1) return {};
    return out;
}

}  // namespace

bool parse_tls_psk(std::string_view text, TlsPsk* out, std::string* err) {
    std::string_view hh, b64;
    if (!split_key_text(text, kPrefix, "TLS PSK", &hh, &b64, err)) return false;
    if (hh != "00" && hh != "01" && hh != "02") {
        *err = "TLS PSK: unknown hash " + std::string(hh) + " (00, 01 or 02)";
        return false;
    }
    const auto hash = static_cast<HashId>(hh[1] - '0');
    std::vector<uint8_t> key;
    std::string why;
    if (!decode_key_with_crc(b64, &key, &why)) {
        *err = "TLS PSK: " + why;
        return false;
    }
    const bool size_ok = hash == HashId::None ? (key.size() == 32 || key.size() == 48)
                                              : key.size() == hash_length(hash);
    if (!size_ok) {
        *err = fmt::format(
            "TLS PSK: {} key bytes do not go with hash {} (01: 32, 02: 48, "
            "00: either)",
            key.size(), hh);
        wipe(key);
        return false;
    }
    out->hash = hash;
    out->key = std::move(key);
    return true;
}

std::string format_tls_psk(const TlsPsk& psk) {
    return fmt::format("NVMeTLSkey-1:0{}:{}:", int(psk.hash), encode_key_with_crc(psk.key));
}

TlsPsk generate_tls_psk(HashId hash) {
    TlsPsk p;
    p.hash = hash == HashId::Sha384 ? HashId::Sha384 : HashId::Sha256;
    p.key.resize(hash_length(p.hash));
    if (!random_bytes(p.key)) p.key.clear();
    return p;
}

TlsCipher cipher_for(const TlsPsk& psk) {
    return psk.hash == HashId::Sha384 ? TlsCipher::Aes256GcmSha384 : TlsCipher::Aes128GcmSha256;
}

const char* cipher_name(TlsCipher c) {
    return c == TlsCipher::Aes256GcmSha384 ? "TLS_AES_256_GCM_SHA384" : "TLS_AES_128_GCM_SHA256";
}

std::string psk_identity(TlsCipher c, std::string_view hostnqn, std::string_view subnqn) {
    return fmt::format("{}{} {} {}", kIdentityPrefix, int(c), hostnqn, subnqn);
}

bool parse_psk_identity(std::string_view id, TlsCipher* c, std::string* hostnqn,
                        std::string* subnqn) {
    if (id.size() < kIdentityPrefix.size() + 5 ||
        id.substr(0, kIdentityPrefix.size()) != kIdentityPrefix)
        return false;
    const char d = id[kIdentityPrefix.size()];
    if ((d != '1' && d != '2') || id[kIdentityPrefix.size() + 1] != ' ') return false;
    id.remove_prefix(kIdentityPrefix.size() + 2);
    const size_t sp = id.find(' ');
    if (sp == 0 || sp == std::string_view::npos || sp + 1 >= id.size()) return false;
    const std::string_view sub = id.substr(sp + 1);
    if (sub.find(' ') != std::string_view::npos) return false;
    *c = d == '2' ? TlsCipher::Aes256GcmSha384 : TlsCipher::Aes128GcmSha256;
    *hostnqn = std::string(id.substr(0, sp));
    *subnqn = std::string(sub);
    return true;
}

std::vector<uint8_t> retained_psk(const TlsPsk& psk, std::string_view hostnqn) {
    if (psk.hash == HashId::None) return psk.key;
    return hkdf(psk.hash, psk.key, "tls13 HostNQN", hostnqn);
}

std::vector<uint8_t> derive_tls_psk(std::span<const uint8_t> retained, TlsCipher c,
                                    std::string_view identity) {
    return hkdf(c == TlsCipher::Aes256GcmSha384 ? HashId::Sha384 : HashId::Sha256, retained,
                "tls13 nvme-tls-psk", identity);
}

std::vector<uint8_t> connection_psk(const TlsPsk& psk, std::string_view hostnqn,
                                    std::string_view subnqn) {
    std::vector<uint8_t> retained = retained_psk(psk, hostnqn);
    if (retained.empty()) return {};
    const TlsCipher c = cipher_for(psk);
    std::vector<uint8_t> out = derive_tls_psk(retained, c, psk_identity(c, hostnqn, subnqn));
    wipe(retained);
    return out;
}

}  // namespace nocstor::security
