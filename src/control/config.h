// Configuration in SPDK's JSON layout:
//   {"subsystems": [{"subsystem": "bdev", "config": [{"method": "...", "params": {...}}, ...]},
//                   {"subsystem": "nvmf", "config": [...]}]}
// Loading replays the methods through the RpcRegistry (bdev before nvmf, as SPDK does);
// saving asks every section for the calls that recreate the live state.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace nocstor::control {

// A section's writer returns the JSON array of {"method","params"} that recreates its state.
// An `optional` section is left out (of save_config and framework_get_subsystems) while it has
// nothing to write, so that configurations without nocstor's own objects stay SPDK's.
void register_config_section(std::string subsystem, std::function<nlohmann::json()> writer,
                             bool optional = false);
nlohmann::json build_config();
// Section names in load order, and one section's calls (SPDK's framework_get_subsystems/_config).
std::vector<std::string> config_section_names();
bool section_config(const std::string& name, nlohmann::json* out);

// Validates the layout and replays it on the control thread; done(ok, error) after the last
// call. Unknown methods stop the load with an error naming them; SPDK tuning methods that have
// no meaning here are skipped with a warning so that SPDK configs load unchanged.
void load_config(const nlohmann::json& config, std::function<void(bool, std::string)> done);

// Parses a config file; false with a message (file, line/column for syntax errors).
bool read_config_file(const std::string& path, nlohmann::json* out, std::string* err);
// Writes atomically: temporary file in the same directory, fsync, rename, fsync the directory.
bool write_file_atomically(const std::string& path, const std::string& text, std::string* err);
// Removes what a write_file_atomically(path) cut short by a crash left behind: "PATH.tmp.PID"
// files whose process is gone (or is not a nocstor). Returns how many were removed.
int remove_stale_temporaries(const std::string& path);

// The configuration used when none is given: a 256 MiB RAM namespace on 127.0.0.1:4420.
nlohmann::json default_config();

}  // namespace nocstor::control
