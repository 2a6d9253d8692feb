// Helpers shared by the RAID unit tests: members, arrays with superblocks over passthru disks
// that can be unplugged and plugged again, waiting for background processes.
#pragma once

#include "mod_test_env.h"
#include "modules/raid/raid.h"
#include "modules/raid/raid_superblock.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace nocstor::test {

void make_malloc(ModEnv& env, const std::string& name, uint64_t blocks, uint32_t bs = 512);

// Waits until the array runs no background process and no member is on its way in (attached
// but not rebuilding yet); returns its raid_list entry.
nlohmann::json wait_idle(ModEnv& env, const std::string& name, int timeout_ms = 30000);

// The whole bdev, read through a descriptor.
std::vector<uint8_t> read_all(ModEnv& env, const std::string& name);

// The newest valid superblock copy on a disk (its bdev unplugged: nothing claims it); false if
// neither copy is valid.
bool read_newest_sb(ModEnv& env, const std::string& disk, raid::Superblock* sb);
// Writes sb as the disk's only valid copy (in the slot its seq goes to; the other zeroed).
void write_only_sb_copy(ModEnv& env, const std::string& disk, const raid::Superblock& sb);

// Array "r" over passthru bdevs p<i> on malloc disks disk<i>, so that members can disappear and
// come back (as disks do).
struct SbArray {
    ModEnv& env;
    std::vector<std::string> members;
    uint64_t blocks;

    SbArray(ModEnv& e, int n, uint64_t member_blocks);
    void plug(int i);
    void unplug(int i);
    int create(raid::Level level, uint32_t strip_kb, uint32_t bitmap_region_kb = 0);
    void remove(bool clear_sb = false);
    // Waits until every examine is done.
    void settle();
};

}  // namespace nocstor::test
