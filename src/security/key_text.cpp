#include "security/key_text.h"

#include <isa-l/crc.h>
#include <openssl/evp.h>

#include <fmt/format.h>

#include "security/dhchap.h"

namespace nocstor::security {

bool split_key_text(std::string_view text, std::string_view prefix, std::string_view what,
                    std::string_view* hh, std::string_view* b64, std::string* why) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.remove_suffix(1);
    if (text.substr(0, prefix.size()) != prefix) {
        *why = fmt::format("not a {}: it must start with {}", what, prefix);
        return false;
    }
    text.remove_prefix(prefix.size());
    if (text.size() < 4 || text[2] != ':' || text.back() != ':') {
        *why = fmt::format("malformed {}: want {}hh:<base64>:", what, prefix);
        return false;
    }
    *hh = text.substr(0, 2);
    *b64 = text.substr(3, text.size() - 4);
    return true;
}

bool decode_key_with_crc(std::string_view b64, std::vector<uint8_t>* key, std::string* why) {
    key->clear();
    if (b64.empty() || b64.size() % 4 || b64.size() > 128) {
        *why = "the base64 part has a wrong length";
        return false;
    }
    std::vector<uint8_t> raw(b64.size() / 4 * 3);
    const int n = EVP_DecodeBlock(raw.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                                  int(b64.size()));
    if (n < 0) {
        *why = "the base64 part does not decode";
        return false;
    }
    size_t len = size_t(n);
    // EVP_DecodeBlock counts the padding bytes; drop them.
    if (b64[b64.size() - 1] == '=') --len;
    if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --len;
    raw.resize(len);
    if (len < 5) {
        wipe(raw);
        *why = "the key is too short";
        return false;
    }
    const size_t klen = len - 4;
    const uint32_t want = uint32_t(raw[klen]) | uint32_t(raw[klen + 1]) << 8 |
                          uint32_t(raw[klen + 2]) << 16 | uint32_t(raw[klen + 3]) << 24;
    if (crc32_gzip_refl(0, raw.data(), klen) != want) {
        wipe(raw);
        *why = "CRC mismatch (mistyped or truncated)";
        return false;
    }
    key->assign(raw.begin(), raw.begin() + long(klen));
    wipe(raw);
    return true;
}

std::string encode_key_with_crc(std::span<const uint8_t> key) {
    std::vector<uint8_t> raw(key.begin(), key.end());
    const uint32_t crc = crc32_gzip_refl(0, raw.data(), raw.size());
    for (int i = 0; i < 4; ++i) raw.push_back(uint8_t(crc >> (8 * i)));
    std::string b64(4 * ((raw.size() + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(), int(raw.size()));
    b64.resize(size_t(n));
    wipe(raw);
    return b64;
}

}  // namespace nocstor::security
