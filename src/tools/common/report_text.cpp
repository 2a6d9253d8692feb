#include "tools/common/report_text.h"

#include <fmt/format.h>

namespace nocstor::tools {

std::string human_bytes(uint64_t bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int unit = 0;
    uint64_t whole = bytes;
    while (whole >= 1024 && whole % 1024 == 0 && unit < 5) {
        whole /= 1024;
        ++unit;
    }
    if (whole < 1024 || unit == 5) return fmt::format("{} {}", whole, units[unit]);
    double v = double(bytes);
    unit = 0;
    while (v >= 1024 && unit < 5) {
        v /= 1024;
        ++unit;
    }
    return fmt::format("{:.2f} {}", v, units[unit]);
}

}  // namespace nocstor::tools
