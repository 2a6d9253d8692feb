// nocstorctl's text output: sizes both ways, tables, and safe field access in JSON results.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nocstor::ctl {

// "4096", "512K", "1G", "1GiB", "2T" -> bytes. nullopt on a malformed size or overflow.
std::optional<std::uint64_t> parse_size(std::string text);
std::string human_size(std::uint64_t bytes);
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);
// obj[key] as text ("-" or fallback when absent).
std::string str(const nlohmann::json& obj, const char* key, const char* fallback = "-");
std::uint64_t u64(const nlohmann::json& obj, const char* key);
// [#####.....]  42.0%: a progress bar of `width` cells.
std::string progress_bar(double percent, int width = 30);

}  // namespace nocstor::ctl
