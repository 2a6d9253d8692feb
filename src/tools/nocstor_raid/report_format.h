// Pieces of nocstor-raid's reports shared by dump and check: superblocks, bitmaps and
// mismatches as JSON and as text.
#pragma once

#include "modules/raid/raid_superblock.h"
#include "tools/common/report_text.h"
#include "tools/nocstor_raid/intent_bitmap.h"
#include "tools/nocstor_raid/redundancy_check.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace nocstor::raid_tool {

using tools::human_bytes;

nlohmann::json superblock_json(const raid::Superblock& sb);
// region_blocks, regions, dirty_regions, dirty_ranges ([begin, end) member data blocks).
nlohmann::json bitmap_json(const IntentBitmap& b, uint64_t data_blocks, size_t max_ranges);
// "none" or "regions of 128 blocks, 16 regions, 2 dirty: [0, 256) [1024, 1152)".
std::string bitmap_text(const IntentBitmap& b, uint64_t data_blocks, size_t max_ranges);

nlohmann::json mismatch_json(const Mismatch& m, const raid::Superblock& sb);
// "row 1234 (stripe 77, byte 1680384 of each member): P (slot 2) does not match the data".
std::string mismatch_text(const Mismatch& m, const raid::Superblock& sb);

}  // namespace nocstor::raid_tool
