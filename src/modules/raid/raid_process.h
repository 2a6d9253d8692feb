// Background processes of an array, driven from the control thread: resync (initial, and after
// an unclean stop), rebuild onto a new or returning member, scrub. The work goes window by window
// (process_window_size_kb of each member) to the owner thread of each lock unit, where it takes
// the unit's lock like user I/O does; a bandwidth cap (process_max_bandwidth_mb_sec) spaces the
// windows out. Progress is the member offset below which the work is done.
#pragma once

#include "modules/raid/raid_stripe.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace nocstor::raid {

struct ProcessOptions {
    uint32_t window_size_kb = 1024;
    uint32_t max_bandwidth_mb_sec = 0;  // 0: no cap
    // How often idle regions' write-intent bits are cleared (a region is cleared after one to
    // two intervals without writes).
    uint32_t bitmap_clear_interval_ms = 5000;
};
ProcessOptions& process_options();  // bdev_raid_set_options (control thread)

class RaidProcess {
  public:
    // done(status, mismatches) on the control thread when the pass ends (or is stopped).
    RaidProcess(RaidBdev* raid, OpKind kind, uint32_t target, bool repair, uint64_t start,
                std::function<void(IoStatus, uint64_t)> done);
    ~RaidProcess();
    void start();
    // Stops after the windows in flight; then runs then().
    void stop(std::function<void()> then);

    OpKind kind() const { return kind_; }
    uint32_t target() const { return target_; }
    uint64_t position() const { return done_pos_; }
    uint64_t total() const { return total_; }
    uint64_t mismatches() const { return mismatches_; }
    bool repair() const { return repair_; }
    nlohmann::json to_json() const;
    // What the finished pass did: type, result, blocks gone through, seconds.
    nlohmann::json summary(IoStatus status) const;

  private:
    struct Window {
        RaidProcess* self = nullptr;
        ProcessRequest req;
        uint64_t pos = 0, rows = 0;
        bool busy = false, done = false;
        IoStatus status = IoStatus::Success;
    };
    static void window_done(void* arg, IoStatus status, uint64_t mismatches);
    void pump();
    void pump_later(uint64_t us);
    void complete_in_order();
    void finish(IoStatus status);

    static constexpr int kInFlight = 4;
    RaidBdev* raid_;
    OpKind kind_;
    uint32_t target_;
    bool repair_;
    uint64_t total_;
    uint64_t next_pos_;  // next window to issue
    uint64_t done_pos_;  // every window below this is done
    uint64_t mismatches_ = 0;
    uint64_t started_ns_ = 0;
    uint64_t bytes_ = 0;
    Window windows_[kInFlight];
    uint32_t head_ = 0;  // oldest window in flight
    uint32_t count_ = 0;
    bool stopping_ = false;
    bool retry_ = false;
    bool finished_ = false;
    Poller* delay_ = nullptr;
    std::function<void(IoStatus, uint64_t)> done_;
    std::function<void()> stopped_;
};

const char* process_type_name(OpKind kind);  // "rebuild", "resync", "scrub"

}  // namespace nocstor::raid
