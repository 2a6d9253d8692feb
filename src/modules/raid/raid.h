// RAID vbdevs (SPDK's bdev_raid_*): raid0, raid1 (N-way mirror), raid5, raid6 and concat over any
// bdevs, with degraded I/O. Control-thread API; the data path is in raid_io.cpp and
// raid_stripe.cpp. The on-disk format and the layout are in docs/raid.md.
#pragma once

#include "bdev/bdev_module.h"
#include "modules/raid/raid_layout.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nocstor::raid {

struct RaidCreateOptions {
    std::string name;
    Level level = Level::Raid0;
    std::vector<std::string> base_bdevs;
    uint32_t strip_size_kb = 0;  // raid1: 0; others: a power of two, at least 4
    std::string uuid;            // optional
    bool superblock = false;     // metadata on every member; the array assembles by itself
    // Redundant levels with a superblock keep a write-intent bitmap; its region size in KiB
    // (a power of two; 0: chosen from the member size, docs/raid.md).
    uint32_t bitmap_region_kb = 0;
};

// Without a superblock: synchronous (0 or -errno with *err).
int raid_create(const RaidCreateOptions& opts, std::string* err);
// Any array; with a superblock the members' metadata is written first. done on this thread.
void raid_create_async(const RaidCreateOptions& opts, std::function<void(int, std::string)> done);
// Deletes the array (its members stay; with clear_sb their superblocks are erased, else the
// array assembles again when they next appear). done(0) or -ENODEV.
void raid_delete(const std::string& name, bool clear_sb, std::function<void(int)> done);

// bdev_raid_get_bdevs: category "all", "online", "configuring" or "offline".
nlohmann::json raid_list(const std::string& category);

// Fails a member out of an array, as an I/O error would (tests, administrators).
int raid_fail_member(const std::string& raid, const std::string& member, std::string* err);
// bdev_raid_remove_base_bdev: the array lets the member go (degraded, or offline past its
// tolerance); done runs once the member bdev is closed. -ENODEV (done not called) if no array
// has it.
int raid_remove_member(const std::string& member, std::function<void()> done, std::string* err);

// bdev_raid_add_base_bdev: `base` takes an empty (missing or failed) slot of `raid` and is
// rebuilt in the background.
// started (if given) runs on this thread once the rebuild runs; not on an error return.
int raid_add_member(const std::string& raid, const std::string& base, std::string* err,
                    std::function<void()> started = nullptr);
// Scrub (nocstor): reads everything, counts block rows whose redundancy does not match, and with
// repair rewrites it. Progress and the result show in raid_list().
int raid_start_scrub(const std::string& raid, bool repair, std::string* err);
// bdev_raid_set_options (bitmap_clear_interval_ms: nocstor's, how often idle write-intent bits
// are cleared).
void raid_set_process_options(uint32_t window_size_kb, uint32_t max_bandwidth_mb_sec,
                              uint32_t bitmap_clear_interval_ms = 5000);
nlohmann::json raid_process_options_json();

// Prometheus families of every array (state, degraded, process progress, scrub mismatches).
void raid_metrics(std::string& out);

BdevModule* raid_bdev_module();

}  // namespace nocstor::raid
