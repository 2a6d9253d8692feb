// What a session connects to, parsed from SPDK's iSCSI URL by libiscsi's own parser so that the
// accepted forms (and their error messages) are libiscsi's.
#pragma once

#include <string>

namespace nocstor::iscsi {

struct IscsiTargetSpec {
    std::string url;  // as given (with the password: save_config recreates the bdev from it)
    std::string initiator_iqn;
    std::string portal;  // address:port (a host name is resolved when the URL is parsed)
    std::string target_iqn;
    int lun = 0;
    std::string user, password;                // one-way CHAP
    std::string target_user, target_password;  // mutual CHAP
    bool header_digest = false;
};

// Fills *out from url; false with *err ("bad URL: ...", "initiator IQN ...") otherwise.
bool parse_target_spec(const std::string& url, const std::string& initiator_iqn,
                       IscsiTargetSpec* out, std::string* err);
// The URL with its passwords replaced by "***", for logs and bdev_get_bdevs.
std::string redact_url(const std::string& url);
// An iSCSI name as RFC 3720 section 3.2.6 writes it: iqn.yyyy-mm.reverse.domain[:...],
// eui.<16 hex>, or naa.<16 or 32 hex>.
bool valid_iscsi_name(const std::string& name);

}  // namespace nocstor::iscsi
