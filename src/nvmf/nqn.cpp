#include "nvmf/nqn.h"

#include <cctype>
#include <cstring>

#include "nvmf/spec.h"

namespace nocstor::nvmf {
namespace {

bool fail(std::string* err, const char* why) {
    if (err) *err = why;
    return false;
}

bool is_hex(char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

bool uuid_form_ok(std::string_view u) {
    if (u.size() != 36) return false;
    for (size_t i = 0; i < u.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u[i] != '-' : !is_hex(u[i])) return false;
    }
    return true;
}

}  // namespace

bool nqn_valid(std::string_view nqn, std::string* err) {
    if (nqn.size() > nvme::kNqnMaxLength) return fail(err, "NQN longer than 223 bytes");
    if (nqn == nvme::kDiscoveryNqn) return true;
    constexpr std::string_view kUuidPrefix = "nqn.2014-08.org.nvmexpress:uuid:";
    if (nqn.starts_with(kUuidPrefix)) {
        if (!uuid_form_ok(nqn.substr(kUuidPrefix.size()))) return fail(err, "bad UUID in NQN");
        return true;
    }
    // nqn.YYYY-MM.<reverse domain>:<user string>
    if (!nqn.starts_with("nqn.") || nqn.size() < 12)
        return fail(err, "NQN must start nqn.YYYY-MM.");
    for (size_t i : {4, 5, 6, 7, 9, 10}) {
        if (!std::isdigit(static_cast<unsigned char>(nqn[i]))) return fail(err, "bad date in NQN");
    }
    if (nqn[8] != '-' || nqn[11] != '.') return fail(err, "bad date in NQN");
    const int month = (nqn[9] - '0') * 10 + (nqn[10] - '0');
    if (month < 1 || month > 12) return fail(err, "bad month in NQN");
    const std::string_view rest = nqn.substr(12);
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        return fail(err, "NQN needs a reverse domain followed by ':'");
    }
    const std::string_view domain = rest.substr(0, colon);
    if (domain.front() == '.' || domain.back() == '.') return fail(err, "bad domain in NQN");
    for (char c : domain) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
            return fail(err, "bad character in NQN domain");
        }
    }
    if (colon + 1 >= rest.size()) return fail(err, "empty user string in NQN");
    for (char c : nqn) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return fail(err, "control character in NQN");
        }
    }
    return true;
}

std::string nqn_from_field(const char* field, size_t size) {
    return std::string(field, strnlen(field, size));
}

}  // namespace nocstor::nvmf
