// SPDK's CPU mask notation: a hexadecimal mask ("0x3", "3") or a bracketed list of cores and
// ranges ("[0,2-3]"). Used by the methods that place work on cores (vhost, ublk).
#pragma once

#include <set>
#include <string>

namespace nocstor {

// The cores named by `mask`; false and *err when it is malformed or names no core.
bool parse_cpumask(const std::string& mask, std::set<int>* cores, std::string* err);

}  // namespace nocstor
