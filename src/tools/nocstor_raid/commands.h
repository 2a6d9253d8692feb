// The subcommands of nocstor-raid; each prints its report and returns the exit status.
#pragma once

#include "tools/nocstor_raid/redundancy_check.h"

#include <cstddef>
#include <string>
#include <vector>

namespace nocstor::raid_tool {

inline constexpr int kExitOk = 0;        // consistent / every superblock read
inline constexpr int kExitProblems = 1;  // mismatches, inconsistent or damaged metadata
inline constexpr int kExitError = 2;     // usage, I/O error, a file that is not a member

struct DumpOptions {
    bool json = false;
    size_t max_ranges = 8;  // dirty bitmap ranges listed per member
};
int run_dump(const std::vector<std::string>& paths, const DumpOptions& opts);

struct CheckCommandOptions {
    bool json = false;
    CheckOptions data;
};
int run_check(const std::vector<std::string>& paths, const CheckCommandOptions& opts);

}  // namespace nocstor::raid_tool
