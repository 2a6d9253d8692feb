#include "iscsi/text_params.h"

#include <openssl/evp.h>

#include <cctype>
#include <charconv>

namespace nocstor::iscsi_tgt {

namespace {
constexpr size_t kMaxKeyLen = 63;
constexpr size_t kMaxValueLen = 8192;
}  // namespace

bool TextParams::parse(const uint8_t* data, size_t len, std::string* err) {
    pairs_.clear();
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && data[end] != 0) ++end;
        if (end == i) {  // NUL padding
            ++i;
            continue;
        }
        std::string_view kv(reinterpret_cast<const char*>(data + i), end - i);
        const size_t eq = kv.find('=');
        if (eq == std::string_view::npos) {
            *err = "text key without '='";
            return false;
        }
        std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
        if (key.empty() || key.size() > kMaxKeyLen) {
            *err = "empty or over-long text key";
            return false;
        }
        if (value.size() > kMaxValueLen) {
            *err = "text value of " + std::string(key) + " over 8192 bytes";
            return false;
        }
        for (char c : key) {
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
                  c == '@' || c == '_')) {
                *err = "invalid character in a text key";
                return false;
            }
        }
        if (get(key)) {
            *err = "text key " + std::string(key) + " sent twice";
            return false;
        }
        pairs_.emplace_back(std::string(key), std::string(value));
        i = end + 1;
    }
    return true;
}

std::optional<std::string_view> TextParams::get(std::string_view key) const {
    for (const auto& [k, v] : pairs_)
        if (k == key) return std::string_view(v);
    return std::nullopt;
}

std::string TextParams::serialize() const {
    std::string out;
    for (const auto& [k, v] : pairs_) {
        out += k;
        out += '=';
        out += v;
        out += '\0';
    }
    return out;
}

bool parse_number(std::string_view s, uint64_t lo, uint64_t hi, uint64_t* out) {
    if (s.empty()) return false;
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool decode_binary(std::string_view s, std::vector<uint8_t>* out) {
    out->clear();
    if (s.size() < 3 || s[0] != '0') return false;
    const char kind = char(std::tolower(static_cast<unsigned char>(s[1])));
    s.remove_prefix(2);
    if (kind == 'x') {
        if (s.size() % 2) return false;
        for (size_t i = 0; i < s.size(); i += 2) {
            uint8_t b = 0;
            auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, b, 16);
            if (ec != std::errc() || p != s.data() + i + 2) return false;
            out->push_back(b);
        }
        return true;
    }
    if (kind == 'b') {
        if (s.size() % 4 || s.size() > 16384) return false;
        out->resize(s.size() / 4 * 3);
        const int n = EVP_DecodeBlock(out->data(), reinterpret_cast<const unsigned char*>(s.data()),
                                      int(s.size()));
        if (n < 0) return false;
        size_t pad = 0;
        if (s.back() == '=') ++pad;
        if (s.size() >= 2 && s[s.size() - 2] == '=') ++pad;
        out->resize(size_t(n) - pad);
        return true;
    }
    return false;
}

std::string encode_hex(const uint8_t* data, size_t len) {
    static const char* kHex = "0123456789abcdef";
    std::string s = "0x";
    for (size_t i = 0; i < len; ++i) {
        s += kHex[data[i] >> 4];
        s += kHex[data[i] & 15];
    }
    return s;
}

}  // namespace nocstor::iscsi_tgt
