// The write-intent bitmap of a redundant array with a superblock (docs/raid.md): one bit per
// region of member data, identical on every member. A region's bit is on disk before the first
// write to it; it is cleared again once the region has been idle for a clear interval and the
// members have been flushed, and never while a member is missing, failed or being rebuilt. So
// after a crash only the regions whose bit is set need a resync, and a member that comes back
// only needs the regions written while it was away.
//
// Threads: the owner threads enter a region before writing to it and leave it afterwards (two
// atomics; no message unless the region is clean). The control thread does the bitmap I/O, one
// write at a time, and wakes the owners whose operations wait for a bit (wake_parked_ops).
#pragma once

#include "modules/raid/raid_region_set.h"
#include "runtime/thread.h"

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace nocstor::raid {

class RaidBdev;

class WriteIntentBitmap {
  public:
    WriteIntentBitmap(RaidBdev* raid, uint64_t region_blocks, uint64_t regions);
    ~WriteIntentBitmap();

    uint64_t region_blocks() const { return region_blocks_; }
    uint64_t regions() const { return regions_; }
    // The region of a member data block (counted from data_offset).
    uint64_t region_of(uint64_t member_block) const { return member_block / region_blocks_; }

    // --- owner threads ---
    // Enters region r for a write. True: its bit is on disk, go ahead. False: the bit is being
    // set; wait for the wake-up and ask ready() again (the region counts as entered).
    bool enter(uint64_t r);
    bool ready(uint64_t r) const { return state_[r].load() == kDirty; }
    void leave(uint64_t r) { inflight_[r].fetch_sub(1); }

    // --- control thread ---
    // The bits read from a member at assembly (bitmap_bytes(regions, 1) bytes): those regions
    // start dirty (their bits stay until they are cleared like any other).
    void load(const uint8_t* bits);
    // An owner asks for region r's bit (message from enter()).
    void request_set(uint64_t r);
    // Writes the whole bitmap again (a new member gets the others' bits).
    void refresh() {
        rewrite_ = true;
        kick();
    }
    // Regions whose bit is set or being set.
    void dirty(RegionSet* out) const;
    uint64_t dirty_count() const;
    // Clears the bits of regions idle since the last pass, if the array allows it now (timed
    // poller; tests call it). True if a clear started.
    bool clear_pass();
    // A clean stop of a whole array: flushes the members, then clears every bit; then runs then.
    // No write may be in flight.
    void clear_all(std::function<void()> then);
    // Starts the clearing poller; stop() ends it (the array is being deleted).
    void start(uint32_t clear_interval_ms);
    void stop();
    // Runs then once no bitmap I/O is in flight.
    void when_idle(std::function<void()> then);
    nlohmann::json to_json() const;

  private:
    enum : uint8_t { kClean, kRequested, kDirty, kClearing };
    bool can_clear() const;
    void kick();  // starts the next bitmap write unless one runs
    void write_image(bool fua, std::function<void()> then);

    RaidBdev* raid_;
    uint64_t region_blocks_, regions_;
    std::unique_ptr<std::atomic<uint8_t>[]> state_;
    std::unique_ptr<std::atomic<uint32_t>[]> inflight_;  // writes entered and not left
    std::unique_ptr<std::atomic<uint8_t>[]> touched_;    // written since the last clear pass
    // Control thread only.
    std::vector<uint8_t> image_;  // what the members hold (or are being given)
    std::vector<uint64_t> to_set_;
    bool busy_ = false;     // a bitmap write or a clear pass is in flight
    bool rewrite_ = false;  // refresh() asked for a write
    Poller* poller_ = nullptr;
    uint64_t sets_ = 0, clears_ = 0;  // bits set and cleared (get_bdevs)
    std::vector<std::function<void()>> idle_waiters_;
};

}  // namespace nocstor::raid
