// Prometheus text exposition (format 0.0.4) helpers for the /metrics families, shared by the
// control plane (control/metrics.cpp and the sources it gathers) and the modules that render
// their own families (lvol).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor {

// A label value with \\, " and newlines escaped.
std::string escape_prometheus_label(const std::string& value);
// The HELP and TYPE lines of a family.
void prometheus_family(std::string& out, const char* name, const char* type, const char* help);

// A counter or gauge read from one field of a per-poll-group statistics struct.
template <class Group>
struct PollGroupFamily {
    const char* name;
    const char* type;
    const char* help;
    uint64_t Group::*field;
};

// Every family, one sample per poll group labelled poll_group="<g.index>".
template <class Group, size_t N>
void prometheus_poll_groups(std::string& out, const PollGroupFamily<Group> (&families)[N],
                            const std::vector<Group>& groups) {
    for (const auto& f : families) {
        prometheus_family(out, f.name, f.type, f.help);
        for (const Group& g : groups)
            out += fmt::format("{}{{poll_group=\"{}\"}} {}\n", f.name, g.index, g.*f.field);
    }
}

}  // namespace nocstor
