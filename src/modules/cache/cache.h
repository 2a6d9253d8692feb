// The cache vbdev (SPDK's bdev_ocf_* methods, our own engine): a fast cache bdev in front of a
// slow core bdev in write-through (wt), write-back (wb), write-around (wa), pass-through (pt),
// write-invalidate (wi) or write-only (wo) mode, with its line table on the cache device so that
// a restart re-attaches the cache to its core with every dirty line (docs/cache.md).
// Control-thread API.
#pragma once

#include "bdev/bdev_module.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace nocstor::cache {

struct CacheCreateOptions {
    std::string name;
    std::string mode;              // wt, wb, wa, pt, wi, wo
    uint32_t cache_line_size = 4;  // KiB: 4, 8, 16, 32 or 64
    std::string cache_bdev_name;
    std::string core_bdev_name;
    // A cache device that holds another core's cache is refused unless this is set (its dirty
    // data would be lost). One that holds this core's cache is re-attached, never formatted.
    bool format = false;
};

// done(0, "") or (-errno, why) on the calling thread.
using Done = std::function<void(int, std::string)>;

void cache_create(const CacheCreateOptions& opts, Done done);
// Writes every dirty line back to the core, erases the cache's superblock and removes the
// vbdev (both bdevs stay). A failed write-back leaves the cache as it was.
void cache_delete(const std::string& name, Done done);

// bdev_ocf_get_bdevs: every cache, or those whose vbdev, cache or core bdev is `name`.
nlohmann::json cache_get_bdevs(const std::string& name);
// bdev_ocf_get_stats, in SPDK's layout. -ENODEV when there is no such cache.
int cache_get_stats(const std::string& name, nlohmann::json* out);
int cache_reset_stats(const std::string& name);
// Switching to pt, wi or wa does not clean the dirty lines (reads of them are still served
// from the cache); done after the superblock has the new mode.
void cache_set_mode(const std::string& name, const std::string& mode, Done done);
// Starts writing every dirty line back; bdev_ocf_flush_status follows it.
int cache_flush_start(const std::string& name, std::string* err);
// bdev_ocf_set_seqcutoff: policy always, full (only once 95% of the lines hold data) or never;
// a stream of at least threshold_kb KiB and promotion_count requests goes around the cache (as
// in pt mode). 0 keeps the current value.
void cache_set_seqcutoff(const std::string& name, const std::string& policy, uint32_t threshold_kb,
                         uint32_t promotion_count, Done done);
// Background cleaning (nocstor's bdev_ocf_set_cleaning): policy alru or nop; 0 keeps the
// current value of the others.
struct CleaningOptions {
    std::string policy;  // "" keeps it
    uint32_t stale_ms = 0;
    uint32_t dirty_high_pct = 0, dirty_low_pct = 0;
    int64_t max_lines_per_sec = -1;  // -1 keeps it, 0: no cap
};
void cache_set_cleaning(const std::string& name, const CleaningOptions& opts, Done done);
// Promotion (nocstor's bdev_ocf_set_promotion): policy always (a line on the first miss) or
// nhit (on the hits-th miss of a core line, 2-1000).
void cache_set_promotion(const std::string& name, const std::string& policy, uint32_t hits,
                         Done done);
int cache_flush_status(const std::string& name, nlohmann::json* out);

BdevModule* cache_bdev_module();

}  // namespace nocstor::cache
