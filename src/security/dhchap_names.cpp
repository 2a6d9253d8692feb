#include "security/dhchap_names.h"

#include <fmt/format.h>

#include "security/dh_group.h"

namespace nocstor::security {

bool parse_digest_names(const std::vector<std::string>& names, std::vector<HashId>* out,
                        std::string* err) {
    std::vector<HashId> v;
    for (const std::string& n : names) {
        HashId h = HashId::None;
        for (HashId c : {HashId::Sha256, HashId::Sha384, HashId::Sha512})
            if (n == security::hash_name(c)) h = c;
        if (h == HashId::None) {
            *err = fmt::format("unknown DH-HMAC-CHAP digest '{}' (sha256, sha384, sha512)", n);
            return false;
        }
        v.push_back(h);
    }
    if (v.empty()) {
        *err = "the list of DH-HMAC-CHAP digests must not be empty";
        return false;
    }
    *out = std::move(v);
    return true;
}

bool parse_dhgroup_names(const std::vector<std::string>& names, std::vector<uint8_t>* out,
                         std::string* err) {
    std::vector<uint8_t> v;
    for (const std::string& n : names) {
        int id = -1;
        for (uint8_t g = 0; g <= 5; ++g)
            if (n == security::dh_group_name(g)) id = g;
        if (id < 0) {
            *err = fmt::format(
                "unknown DH-HMAC-CHAP DH group '{}' (null, ffdhe2048, ffdhe3072, ffdhe4096, "
                "ffdhe6144, ffdhe8192)",
                n);
            return false;
        }
        v.push_back(uint8_t(id));
    }
    if (v.empty()) {
        *err = "the list of DH-HMAC-CHAP DH groups must not be empty";
        return false;
    }
    *out = std::move(v);
    return true;
}

std::vector<std::string> digest_names(const std::vector<HashId>& v) {
    std::vector<std::string> out;
    for (HashId h : v) out.emplace_back(security::hash_name(h));
    return out;
}

std::vector<std::string> dhgroup_names(const std::vector<uint8_t>& v) {
    std::vector<std::string> out;
    for (uint8_t g : v) out.emplace_back(security::dh_group_name(g));
    return out;
}

bool apply_digest_names(const std::optional<std::vector<std::string>>& names,
                        const std::vector<HashId>& all, std::vector<HashId>* out,
                        std::string* err) {
    if (!names) return true;
    if (names->empty()) {
        *out = all;
        return true;
    }
    return parse_digest_names(*names, out, err);
}

bool apply_dhgroup_names(const std::optional<std::vector<std::string>>& names,
                         const std::vector<uint8_t>& all, std::vector<uint8_t>* out,
                         std::string* err) {
    if (!names) return true;
    if (names->empty()) {
        *out = all;
        return true;
    }
    return parse_dhgroup_names(*names, out, err);
}

}  // namespace nocstor::security
