#include "modules/iscsi/iscsi_target_spec.h"

#include <arpa/inet.h>
#include <iscsi/iscsi.h>
#include <netdb.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace nocstor::iscsi {

namespace {

bool all_hex(const std::string& s) {
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

// A host name in the portal becomes an address here, on the control thread: libiscsi would
// resolve it with a blocking getaddrinfo on the session's data thread at every (re)connect.
bool resolve_portal(std::string* portal, std::string* err) {
    const std::string& p = *portal;
    if (p.empty() || p[0] == '[') return true;  // [IPv6]:port
    const size_t colons = size_t(std::count(p.begin(), p.end(), ':'));
    if (colons > 1) return true;  // a bare IPv6 address
    const std::string host = colons ? p.substr(0, p.find(':')) : p;
    const std::string port = colons ? p.substr(p.find(':')) : "";
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return true;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0 || !res) {
        *err = "cannot resolve host '" + host + "': " + gai_strerror(rc);
        return false;
    }
    char buf[INET6_ADDRSTRLEN] = {};
    std::string addr;
    if (res->ai_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, buf,
                  sizeof buf);
        addr = buf;
    } else {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, buf,
                  sizeof buf);
        addr = std::string("[") + buf + "]";
    }
    freeaddrinfo(res);
    *portal = addr + port;
    return true;
}

}  // namespace

bool valid_iscsi_name(const std::string& name) {
    if (name.size() > 223) return false;  // RFC 3720: at most 223 bytes
    if (name.rfind("iqn.", 0) == 0) {
        // iqn.yyyy-mm.<reversed domain>[:<anything>]
        if (name.size() < 12 || name[8] != '-' || name[11] != '.') return false;
        for (int i : {4, 5, 6, 7, 9, 10})
            if (!std::isdigit(static_cast<unsigned char>(name[size_t(i)]))) return false;
        for (char c : name)
            if (std::isspace(static_cast<unsigned char>(c)) ||
                std::iscntrl(static_cast<unsigned char>(c)))
                return false;
        return name.size() > 12;
    }
    if (name.rfind("eui.", 0) == 0) return name.size() == 20 && all_hex(name.substr(4));
    if (name.rfind("naa.", 0) == 0)
        return (name.size() == 20 || name.size() == 36) && all_hex(name.substr(4));
    return false;
}

bool parse_target_spec(const std::string& url, const std::string& initiator_iqn,
                       IscsiTargetSpec* out, std::string* err) {
    if (!valid_iscsi_name(initiator_iqn)) {
        *err = "initiator_iqn '" + initiator_iqn +
               "' is not an iSCSI name (iqn.yyyy-mm.domain[:id], eui.<16 hex> or naa.<hex>)";
        return false;
    }
    if (url.rfind("iscsi://", 0) != 0) {
        *err = "url must be iscsi://[user[%password]@]host[:port]/target-iqn/lun";
        return false;
    }
    std::unique_ptr<iscsi_context, int (*)(iscsi_context*)> ctx(
        iscsi_create_context(initiator_iqn.c_str()), iscsi_destroy_context);
    if (!ctx) {
        *err = "libiscsi could not create a context";
        return false;
    }
    iscsi_url* u = iscsi_parse_full_url(ctx.get(), url.c_str());
    if (!u) {
        *err = std::string("bad url: ") + iscsi_get_error(ctx.get());
        return false;
    }
    out->url = url;
    out->initiator_iqn = initiator_iqn;
    out->portal = u->portal;
    out->target_iqn = u->target;
    out->lun = u->lun;
    out->user = u->user;
    out->password = u->passwd;
    out->target_user = u->target_user;
    out->target_password = u->target_passwd;
    iscsi_destroy_url(u);
    if (out->lun < 0 || out->lun > 16383) {
        *err = "bad url: LUN " + std::to_string(out->lun) + " out of range (0-16383)";
        return false;
    }
    if (out->target_iqn.empty()) {
        *err = "bad url: no target IQN";
        return false;
    }
    if (!out->target_user.empty() && out->user.empty()) {
        *err = "bad url: mutual CHAP (target_user) needs the initiator's CHAP user too";
        return false;
    }
    if (url.find("header_digest=crc32c") != std::string::npos) out->header_digest = true;
    return resolve_portal(&out->portal, err);
}

std::string redact_url(const std::string& url) {
    std::string s = url;
    // user%password@host
    const size_t scheme = s.find("://");
    const size_t at = s.find('@', scheme == std::string::npos ? 0 : scheme + 3);
    if (scheme != std::string::npos && at != std::string::npos) {
        const size_t pct = s.find('%', scheme + 3);
        if (pct != std::string::npos && pct < at) s.replace(pct + 1, at - pct - 1, "***");
    }
    // ?...target_password=secret&...
    const std::string key = "target_password=";
    for (size_t p = s.find(key); p != std::string::npos; p = s.find(key, p + key.size())) {
        size_t end = s.find('&', p);
        if (end == std::string::npos) end = s.size();
        s.replace(p + key.size(), end - p - key.size(), "***");
    }
    return s;
}

}  // namespace nocstor::iscsi
