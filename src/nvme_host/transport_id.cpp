#include "nvme_host/transport_id.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <random>
#include <sstream>

#include "nvmf/spec.h"

namespace nocstor::nvme_host {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool parse_u32(const std::string& s, uint32_t* out) {
    const char* end = s.data() + s.size();
    auto [p, ec] = std::from_chars(s.data(), end, *out);
    return ec == std::errc() && p == end;
}

std::string uuid_string(const uint8_t u[16]) {
    return fmt::format(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}"
        "{:02x}{:02x}",
        u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
        u[14], u[15]);
}

void random_uuid(uint8_t u[16]) {
    std::random_device rd;
    for (int i = 0; i < 16; i += 4) {
        uint32_t v = rd();
        std::memcpy(u + i, &v, 4);
    }
    u[6] = uint8_t((u[6] & 0x0F) | 0x40);  // version 4
    u[8] = uint8_t((u[8] & 0x3F) | 0x80);  // RFC 4122 variant
}

bool parse_uuid(const std::string& s, uint8_t u[16]) {
    if (s.size() != 36) return false;
    int n = 0;
    for (size_t i = 0; i < s.size();) {
        if (s[i] == '-') {
            if (i != 8 && i != 13 && i != 18 && i != 23) return false;
            ++i;
            continue;
        }
        if (n == 16 || i + 1 >= s.size()) return false;
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
        if (ec != std::errc() || p != s.data() + i + 2) return false;
        u[n++] = uint8_t(v);
        i += 2;
    }
    return n == 16;
}

}  // namespace

bool parse_adrfam(const std::string& text, AddressFamily* out) {
    const std::string l = lower(text);
    if (l == "ipv4") {
        *out = AddressFamily::kIpv4;
        return true;
    }
    if (l == "ipv6") {
        *out = AddressFamily::kIpv6;
        return true;
    }
    return false;
}

const char* adrfam_name(AddressFamily f) {
    return f == AddressFamily::kIpv6 ? "IPv6" : "IPv4";
}

bool valid_nqn(const std::string& nqn, std::string* err) {
    if (nqn.empty() || nqn.size() > nvme::kNqnMaxLength) {
        *err = fmt::format("NQN '{}' must be 1 to {} bytes long", nqn, nvme::kNqnMaxLength);
        return false;
    }
    if (nqn.rfind("nqn.", 0) != 0) {
        *err = fmt::format("NQN '{}' must start with 'nqn.'", nqn);
        return false;
    }
    return true;
}

bool parse_transport_id(const std::string& text, TransportId* out, std::string* err) {
    TransportId t;
    bool have_traddr = false;
    std::istringstream in(text);
    std::string tok;
    while (in >> tok) {
        const size_t sep = tok.find_first_of(":=");
        if (sep == std::string::npos || sep == 0 || sep + 1 == tok.size()) {
            *err = fmt::format("'{}' is not key:value", tok);
            return false;
        }
        const std::string key = lower(tok.substr(0, sep));
        const std::string val = tok.substr(sep + 1);
        if (key == "trtype") {
            if (lower(val) != "tcp") {
                *err = fmt::format("trtype '{}' is not supported (only TCP)", val);
                return false;
            }
            t.trtype = "TCP";
        } else if (key == "adrfam") {
            if (!parse_adrfam(val, &t.adrfam)) {
                *err = fmt::format("adrfam '{}' must be IPv4 or IPv6", val);
                return false;
            }
        } else if (key == "traddr") {
            t.traddr = val;
            have_traddr = true;
        } else if (key == "trsvcid") {
            uint32_t port = 0;
            if (!parse_u32(val, &port) || port == 0 || port > 65535) {
                *err = fmt::format("trsvcid '{}' must be a port number 1-65535", val);
                return false;
            }
            t.trsvcid = val;
        } else if (key == "subnqn") {
            if (!valid_nqn(val, err)) return false;
            t.subnqn = val;
        } else if (key == "hostnqn") {
            if (!valid_nqn(val, err)) return false;
            t.hostnqn = val;
        } else if (key == "ns") {
            uint32_t ns = 0;
            if (!parse_u32(val, &ns) || ns == 0 || ns == 0xFFFFFFFF) {
                *err = fmt::format("ns '{}' must be a namespace ID", val);
                return false;
            }
            t.nsids.push_back(ns);
        } else if (key == "priority" || key == "alt_traddr") {
            // accepted for compatibility, unused
        } else {
            *err = fmt::format("unknown transport ID key '{}'", key);
            return false;
        }
    }
    if (!have_traddr) {
        *err = "traddr is required";
        return false;
    }
    // An IPv6 literal implies adrfam IPv6 even if it was left out.
    if (t.traddr.find(':') != std::string::npos) t.adrfam = AddressFamily::kIpv6;
    *out = std::move(t);
    return true;
}

std::string format_transport_id(const TransportId& t) {
    std::string s = fmt::format("trtype:{} adrfam:{} traddr:{} trsvcid:{}", t.trtype,
                                adrfam_name(t.adrfam), t.traddr, t.trsvcid);
    if (!t.subnqn.empty()) s += " subnqn:" + t.subnqn;
    return s;
}

std::string generate_host_nqn(uint8_t hostid_out[16]) {
    random_uuid(hostid_out);
    return "nqn.2014-08.org.nvmexpress:uuid:" + uuid_string(hostid_out);
}

void hostid_for_nqn(const std::string& hostnqn, uint8_t hostid_out[16]) {
    static const std::string kPrefix = "nqn.2014-08.org.nvmexpress:uuid:";
    if (hostnqn.rfind(kPrefix, 0) == 0 && parse_uuid(hostnqn.substr(kPrefix.size()), hostid_out))
        return;
    random_uuid(hostid_out);
}

}  // namespace nocstor::nvme_host
