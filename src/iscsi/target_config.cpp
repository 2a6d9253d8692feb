#include "iscsi/target_config.h"

#include <arpa/inet.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace nocstor::iscsi_tgt {

std::string Portal::to_string() const {
    if (host.find(':') != std::string::npos && host.front() != '[')
        return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

const scsi::Lun* TargetNode::find_lun(uint32_t id) const {
    for (const auto& l : luns)
        if (l->id == id) return l.get();
    return nullptr;
}

const TargetNode* IscsiSnapshot::find_target(std::string_view name) const {
    for (const auto& t : targets)
        if (strcasecmp(t->name.c_str(), std::string(name).c_str()) == 0) return t.get();
    return nullptr;
}

const ListenerRef* IscsiSnapshot::listener(uint32_t id) const {
    for (const auto& l : listeners)
        if (l.id == id) return &l;
    return nullptr;
}

namespace {

bool initiator_matches(const InitiatorGroup& ig, std::string_view initiator) {
    bool allowed = false;
    for (const auto& n : ig.initiators) {
        if (!n.empty() && n[0] == '!') {
            std::string_view deny(n);
            deny.remove_prefix(1);
            if (strcasecmp(std::string(deny).c_str(), std::string(initiator).c_str()) == 0 ||
                strcasecmp(std::string(deny).c_str(), "ANY") == 0)
                return false;
            continue;
        }
        if (strcasecmp(n.c_str(), "ANY") == 0 || strcasecmp(n.c_str(), "ALL") == 0 ||
            strcasecmp(n.c_str(), std::string(initiator).c_str()) == 0)
            allowed = true;
    }
    return allowed;
}

bool address_matches(const InitiatorGroup& ig, std::string_view addr) {
    for (const auto& m : ig.netmasks)
        if (netmask_matches(m, addr)) return true;
    return false;
}

std::string strip_brackets(std::string_view s) {
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    return std::string(s);
}

}  // namespace

bool IscsiSnapshot::allowed(const TargetNode& t, int pg_tag, std::string_view initiator,
                            std::string_view addr) const {
    for (const auto& [pg, ig] : t.pg_ig_maps) {
        if (pg != pg_tag) continue;
        auto it = initiator_groups.find(ig);
        if (it == initiator_groups.end()) continue;
        if (initiator_matches(it->second, initiator) && address_matches(it->second, addr))
            return true;
    }
    return false;
}

bool IscsiSnapshot::visible(const TargetNode& t, std::string_view initiator,
                            std::string_view addr) const {
    for (const auto& [pg, ig] : t.pg_ig_maps)
        if (allowed(t, pg, initiator, addr)) return true;
    return false;
}

const ChapSecret* IscsiSnapshot::find_secret(int group, std::string_view user) const {
    auto it = auth_groups.find(group);
    if (it == auth_groups.end()) return nullptr;
    for (const auto& s : it->second.secrets)
        if (s.user == user) return &s;
    return nullptr;
}

TargetOffer IscsiSnapshot::offer_for(const TargetNode* t) const {
    TargetOffer o;
    o.max_recv_data_segment_length = options.max_recv_data_segment_length;
    o.max_burst_length = options.max_burst_length;
    o.first_burst_length = std::min(options.first_burst_length, options.max_burst_length);
    o.immediate_data = options.immediate_data;
    o.initial_r2t = true;
    o.max_connections = options.max_connections_per_session;
    o.default_time2wait = options.default_time2wait;
    o.default_time2retain = options.default_time2retain;
    o.error_recovery_level = 0;
    o.max_outstanding_r2t = 1;
    if (t) {
        o.header_digest = t->header_digest ? DigestPolicy::Required : DigestPolicy::Optional;
        o.data_digest = t->data_digest ? DigestPolicy::Required : DigestPolicy::Optional;
    }
    return o;
}

std::string full_target_name(const std::string& node_base, const std::string& name) {
    if (name.find(':') != std::string::npos) return name;
    return node_base + ":" + name;
}

bool valid_iscsi_name(std::string_view name) {
    if (name.empty() || name.size() > 223) return false;
    const bool iqn = name.size() > 4 && strncasecmp(name.data(), "iqn.", 4) == 0;
    const bool eui = name.size() == 20 && strncasecmp(name.data(), "eui.", 4) == 0;
    const bool naa = name.size() > 4 && strncasecmp(name.data(), "naa.", 4) == 0;
    if (!iqn && !eui && !naa) return false;
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (!(std::isalnum(u) || c == '.' || c == '-' || c == ':')) return false;
    }
    return true;
}

namespace {

bool parse_addr(std::string_view s, int* family, uint8_t* bytes) {
    const std::string a = strip_brackets(s);
    if (inet_pton(AF_INET, a.c_str(), bytes) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, a.c_str(), bytes) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

bool split_mask(std::string_view m, std::string_view* addr, int* prefix) {
    const size_t slash = m.rfind('/');
    *prefix = -1;
    *addr = m;
    if (slash == std::string_view::npos) return true;
    *addr = m.substr(0, slash);
    std::string_view p = m.substr(slash + 1);
    int v = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || ptr != p.data() + p.size() || v < 0 || v > 128) return false;
    *prefix = v;
    return true;
}

}  // namespace

bool valid_netmask(std::string_view m) {
    if (strcasecmp(std::string(m).c_str(), "ANY") == 0) return true;
    std::string_view a;
    int prefix;
    if (!split_mask(m, &a, &prefix)) return false;
    int family;
    uint8_t bytes[16];
    if (!parse_addr(a, &family, bytes)) return false;
    return prefix <= (family == AF_INET ? 32 : 128);
}

bool netmask_matches(std::string_view m, std::string_view addr) {
    if (strcasecmp(std::string(m).c_str(), "ANY") == 0) return true;
    std::string_view ma;
    int prefix;
    if (!split_mask(m, &ma, &prefix)) return false;
    int f1, f2;
    uint8_t b1[16] = {}, b2[16] = {};
    if (!parse_addr(ma, &f1, b1) || !parse_addr(addr, &f2, b2)) return false;
    if (f1 != f2) {
        // An IPv4-mapped IPv6 peer against an IPv4 mask.
        if (f1 == AF_INET && f2 == AF_INET6 &&
            std::all_of(b2, b2 + 10, [](uint8_t b) { return b == 0; }) && b2[10] == 0xff &&
            b2[11] == 0xff) {
            std::memmove(b2, b2 + 12, 4);
            f2 = AF_INET;
        } else {
            return false;
        }
    }
    const int bits = f1 == AF_INET ? 32 : 128;
    if (prefix < 0) prefix = bits;
    for (int i = 0; i < prefix; ++i) {
        const uint8_t bit = uint8_t(0x80 >> (i % 8));
        if ((b1[i / 8] & bit) != (b2[i / 8] & bit)) return false;
    }
    return true;
}

}  // namespace nocstor::iscsi_tgt
