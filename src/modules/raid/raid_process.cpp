#include "modules/raid/raid_process.h"

#include "util/log.h"
#include "util/tick.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace nocstor::raid {

ProcessOptions& process_options() {
    static ProcessOptions o;
    return o;
}

const char* process_type_name(OpKind kind) {
    switch (kind) {
        case OpKind::Rebuild:
            return "rebuild";
        case OpKind::Resync:
            return "resync";
        case OpKind::Scrub:
            return "scrub";
        default:
            return "?";
    }
}

RaidProcess::RaidProcess(RaidBdev* raid, OpKind kind, uint32_t target, bool repair, uint64_t start,
                         std::function<void(IoStatus, uint64_t)> done)
    : raid_(raid),
      kind_(kind),
      target_(target),
      repair_(repair),
      total_(raid->geometry().level == Level::Concat ? 0 : raid->geometry().member_blocks),
      next_pos_(start),
      done_pos_(start),
      done_(std::move(done)) {}

RaidProcess::~RaidProcess() {
    if (delay_) Thread::current()->unregister_poller(delay_);
}

void RaidProcess::start() {
    started_ns_ = now_ns();
    NOC_INFO("bdev", "raid {}: {} started{}{}", raid_->name, process_type_name(kind_),
             target_ < kMaxMembers ? " onto member " + raid_->member(target_).name : "",
             done_pos_ ? " at block " + std::to_string(done_pos_) : "");
    pump();
}

void RaidProcess::stop(std::function<void()> then) {
    stopping_ = true;
    stopped_ = std::move(then);
    if (count_ == 0) finish(IoStatus::Aborted);
}

// Issues windows while there is room, the cap allows, and work is left.
void RaidProcess::pump() {
    if (finished_ || delay_) return;
    const ProcessOptions& opt = process_options();
    const uint64_t unit_rows = raid_->unit_blocks();
    const uint64_t bs = raid_->geometry().block_size;
    const uint64_t window_rows = std::max<uint64_t>(1, uint64_t(opt.window_size_kb) * 1024 / bs);
    while (!stopping_ && count_ < kInFlight) {
        // Regions with nothing to do (a bitmap-driven resync or rebuild) are skipped.
        next_pos_ = std::min(raid_->process_next(kind_, next_pos_), total_);
        if (count_ == 0) done_pos_ = next_pos_;
        if (next_pos_ >= total_) break;
        if (opt.max_bandwidth_mb_sec) {
            // Spread the windows: wait until the average rate is back under the cap.
            const double elapsed = double(now_ns() - started_ns_) / 1e9;
            const double allowed = double(opt.max_bandwidth_mb_sec) * 1024 * 1024 * elapsed;
            if (double(bytes_) > allowed) {
                const double rate = double(opt.max_bandwidth_mb_sec) * 1024 * 1024;
                return pump_later(uint64_t((double(bytes_) - allowed) / rate * 1e6));
            }
        }
        Window& w = windows_[(head_ + count_) % kInFlight];
        const uint64_t unit = next_pos_ / unit_rows;
        const uint64_t row = next_pos_ % unit_rows;
        w.self = this;
        w.pos = next_pos_;
        w.rows = std::min({window_rows, unit_rows - row, total_ - next_pos_});
        w.busy = true;
        w.done = false;
        w.req.kind = kind_;
        w.req.unit = unit;
        w.req.row0 = row;
        w.req.row1 = row + w.rows;
        w.req.target = target_;
        w.req.repair = repair_;
        w.req.done = &RaidProcess::window_done;
        w.req.arg = &w;
        next_pos_ += w.rows;
        ++count_;
        bytes_ += w.rows * bs;
        submit_process(raid_, &w.req);
    }
    if (count_ == 0 && (next_pos_ >= total_ || stopping_))
        finish(stopping_ ? IoStatus::Aborted : IoStatus::Success);
}

void RaidProcess::pump_later(uint64_t us) {
    if (delay_ || finished_) return;
    delay_ = Thread::current()->register_poller(
        "raid_process_delay",
        [this] {
            Thread::current()->unregister_poller(delay_);
            delay_ = nullptr;
            pump();
            return 1;
        },
        std::max<uint64_t>(us, 1000));
}

void RaidProcess::window_done(void* arg, IoStatus status, uint64_t mismatches) {
    auto* w = static_cast<Window*>(arg);
    RaidProcess* p = w->self;
    w->done = true;
    w->status = status;
    p->mismatches_ += mismatches;
    p->complete_in_order();
}

// Advances the checkpoint over the windows that are done, oldest first.
void RaidProcess::complete_in_order() {
    while (count_ > 0 && windows_[head_].done) {
        Window& w = windows_[head_];
        w.busy = false;
        head_ = (head_ + 1) % kInFlight;
        --count_;
        if (w.status == IoStatus::NoMemory || retry_) {
            // Resources ran out on an owner: once the windows in flight are back, go on from the
            // first one that did not finish (later ones are simply done again).
            retry_ = true;
            if (count_ == 0) {
                retry_ = false;
                next_pos_ = done_pos_;
                return pump_later(1000);
            }
            continue;
        }
        if (w.status != IoStatus::Success) {
            stopping_ = true;
            if (count_ == 0) return finish(w.status);
            continue;
        }
        done_pos_ = w.pos + w.rows;
        if (kind_ == OpKind::Rebuild) raid_->rebuild_pos_.store(done_pos_);
        if (kind_ == OpKind::Resync) raid_->resync_pos_.store(done_pos_);
        if (kind_ != OpKind::Scrub) raid_->process_progress();
    }
    pump();
}

void RaidProcess::finish(IoStatus status) {
    if (finished_) return;
    finished_ = true;
    const double secs = double(now_ns() - started_ns_) / 1e9;
    NOC_INFO("bdev", "raid {}: {} {} at block {}, {} blocks processed in {:.1f} s{}", raid_->name,
             process_type_name(kind_),
             status == IoStatus::Success   ? "finished"
             : status == IoStatus::Aborted ? "stopped"
                                           : "failed",
             done_pos_, bytes_ / raid_->geometry().block_size, secs,
             kind_ == OpKind::Scrub ? ", " + std::to_string(mismatches_) + " mismatches" : "");
    auto done = std::move(done_);
    auto stopped = std::move(stopped_);
    if (done) done(status, mismatches_);  // may destroy this object
    if (stopped) stopped();
}

nlohmann::json RaidProcess::summary(IoStatus status) const {
    nlohmann::json j = {{"type", process_type_name(kind_)},
                        {"result", status == IoStatus::Success   ? "finished"
                                   : status == IoStatus::Aborted ? "stopped"
                                                                 : "failed"},
                        {"blocks_processed", bytes_ / raid_->geometry().block_size},
                        {"seconds", double(now_ns() - started_ns_) / 1e9}};
    if (target_ < kMaxMembers) j["target_slot"] = target_;
    if (kind_ == OpKind::Scrub) j["mismatches"] = mismatches_;
    return j;
}

nlohmann::json RaidProcess::to_json() const {
    nlohmann::json j = {
        {"type", process_type_name(kind_)},
        {"progress",
         {{"blocks", done_pos_},
          {"percent", total_ ? double(done_pos_) * 100.0 / double(total_) : 100.0}}}};
    if (target_ < kMaxMembers) {
        j["target"] = raid_->member(target_).name;
        j["target_slot"] = target_;
    }
    if (kind_ == OpKind::Scrub) {
        j["mismatches"] = mismatches_;
        j["repair"] = repair_;
    }
    const double secs = double(now_ns() - started_ns_) / 1e9;
    if (secs > 0)
        j["rate_mb_sec"] = double(done_pos_) * raid_->geometry().block_size / 1048576.0 / secs;
    return j;
}

}  // namespace nocstor::raid
