// nocstor-lvs-check's report of an Inspection: text (a summary, --verbose adds every lvol) or
// JSON (everything).
#pragma once

#include "tools/common/report_text.h"
#include "tools/nocstor_lvs_check/inspect.h"

#include <nlohmann/json.hpp>

#include <string>

namespace nocstor::lvs_tool {

using tools::human_bytes;

nlohmann::json report_json(const Inspection& in);
void print_text(const Inspection& in, bool verbose);

}  // namespace nocstor::lvs_tool
