// NVMe Qualified Names (NVMe base spec 4.5): "nqn.YYYY-MM.reverse-domain:anything" or
// "nqn.2014-08.org.nvmexpress:uuid:<36-char uuid>", at most 223 bytes of UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace nocstor::nvmf {

// True when `nqn` is well formed; otherwise false and a reason in *err (if given).
bool nqn_valid(std::string_view nqn, std::string* err = nullptr);

// A fixed-size, NUL-padded NQN field from the wire as a string (stops at the first NUL).
std::string nqn_from_field(const char* field, size_t size);

}  // namespace nocstor::nvmf
