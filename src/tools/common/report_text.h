// Text pieces shared by the offline tools' human and JSON reports (nocstor-raid,
// nocstor-lvs-check).
#pragma once

#include <cstdint>
#include <string>

namespace nocstor::tools {

// "512 B", "8 KiB", "1.50 MiB".
std::string human_bytes(uint64_t bytes);

// The name of superblock copy i (both tools keep two): "A" or "B".
inline const char* copy_name(int i) {
    return i == 0 ? "A" : "B";
}

}  // namespace nocstor::tools
