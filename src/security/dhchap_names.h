// SPDK's names of the DH-HMAC-CHAP digests ("sha256", "sha384", "sha512") and DH groups ("null",
// "ffdhe2048" ... "ffdhe8192"), as nvmf_set_config and bdev_nvme_set_options take them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "security/dhchap.h"

namespace nocstor::security {

// Parse a non-empty list of names; false with *err naming the unknown one.
bool parse_digest_names(const std::vector<std::string>& names, std::vector<HashId>* out,
                        std::string* err);
bool parse_dhgroup_names(const std::vector<std::string>& names, std::vector<uint8_t>* out,
                         std::string* err);
// A method's optional list: given, it replaces *out; empty (SPDK's "no restriction"), *out
// becomes `all`; absent, *out stays. False with *err for an unknown name.
bool apply_digest_names(const std::optional<std::vector<std::string>>& names,
                        const std::vector<HashId>& all, std::vector<HashId>* out, std::string* err);
bool apply_dhgroup_names(const std::optional<std::vector<std::string>>& names,
                         const std::vector<uint8_t>& all, std::vector<uint8_t>* out,
                         std::string* err);
std::vector<std::string> digest_names(const std::vector<HashId>& v);
std::vector<std::string> dhgroup_names(const std::vector<uint8_t>& v);

}  // namespace nocstor::security
