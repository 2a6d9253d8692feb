// Prometheus text exposition (format 0.0.4) helpers for the /metrics families, shared by the
// control plane (control/metrics.cpp and the sources it gathers) and the modules that render
// their own families (lvol).
#pragma once

#include <string>

namespace nocstor {

// A label value with \\, " and newlines escaped.
std::string escape_prometheus_label(const std::string& value);
// The HELP and TYPE lines of a family.
void prometheus_family(std::string& out, const char* name, const char* type, const char* help);

}  // namespace nocstor
