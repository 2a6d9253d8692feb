#include "modules/raid/raid_bitmap.h"

#include "modules/raid/raid_bdev.h"
#include "modules/raid/raid_process.h"
#include "modules/raid/raid_sb_io.h"
#include "runtime/runtime.h"
#include "util/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace nocstor::raid {

namespace {

// Bitmap writes cover whole 4 KiB pages (or whole blocks if larger) from the area's start.
uint64_t io_align(const RaidBdev* r) {
    return std::max<uint64_t>(4096, r->geometry().block_size);
}

}  // namespace

WriteIntentBitmap::WriteIntentBitmap(RaidBdev* raid, uint64_t region_blocks, uint64_t regions)
    : raid_(raid),
      region_blocks_(region_blocks),
      regions_(regions),
      state_(std::make_unique<std::atomic<uint8_t>[]>(regions)),
      inflight_(std::make_unique<std::atomic<uint32_t>[]>(regions)),
      touched_(std::make_unique<std::atomic<uint8_t>[]>(regions)),
      image_(bitmap_bytes(regions, io_align(raid)), 0) {
    for (uint64_t r = 0; r < regions; ++r) {
        state_[r].store(kClean);
        inflight_[r].store(0);
        touched_[r].store(0);
    }
}

WriteIntentBitmap::~WriteIntentBitmap() {
    stop();
}

void WriteIntentBitmap::start(uint32_t clear_interval_ms) {
    if (poller_ || clear_interval_ms == 0) return;
    poller_ = Thread::current()->register_poller(
        "raid_bitmap_clear",
        [this] {
            clear_pass();
            return 0;
        },
        uint64_t(clear_interval_ms) * 1000);
}

void WriteIntentBitmap::stop() {
    if (poller_) Thread::current()->unregister_poller(poller_);
    poller_ = nullptr;
}

void WriteIntentBitmap::when_idle(std::function<void()> then) {
    if (!busy_) return then();
    idle_waiters_.push_back(std::move(then));
}

bool WriteIntentBitmap::enter(uint64_t r) {
    // Sequentially consistent with clear_pass(): either it sees this write in flight and keeps
    // the bit, or this sees the region leaving the dirty state and asks for the bit again.
    inflight_[r].fetch_add(1);
    touched_[r].store(1, std::memory_order_relaxed);
    for (;;) {
        uint8_t s = state_[r].load();
        if (s == kDirty) return true;
        if (s == kRequested) return false;  // someone asked already; the wake-up follows
        if (s == kClean && !state_[r].compare_exchange_weak(s, kRequested)) continue;
        WriteIntentBitmap* self = this;
        Runtime::instance()->control_thread()->send([self, r] { self->request_set(r); });
        return false;
    }
}

void WriteIntentBitmap::load(const uint8_t* bits) {
    for (uint64_t r = 0; r < regions_; ++r) {
        if (!bitmap_test(bits, r)) continue;
        state_[r].store(kDirty);
        image_[r / 8] |= uint8_t(1u << (r % 8));
    }
}

void WriteIntentBitmap::request_set(uint64_t r) {
    const uint8_t s = state_[r].load();
    if (s == kDirty) return raid_->wake_owners();  // set in the meantime
    to_set_.push_back(r);
    if (s == kClean) state_[r].store(kRequested);  // a Clearing region is set once cleared
    kick();
}

void WriteIntentBitmap::kick() {
    if (busy_) return;
    if (to_set_.empty() && !rewrite_) {
        auto waiters = std::move(idle_waiters_);
        idle_waiters_.clear();
        for (auto& w : waiters) w();
        return;
    }
    busy_ = true;
    rewrite_ = false;
    auto regions = std::make_shared<std::vector<uint64_t>>(std::move(to_set_));
    to_set_.clear();
    for (uint64_t r : *regions) {
        uint8_t s = state_[r].load();
        if (s == kClean) state_[r].store(kRequested);
        image_[r / 8] |= uint8_t(1u << (r % 8));
    }
    // FUA: the bit is durable before any write it covers starts.
    write_image(true, [this, regions] {
        for (uint64_t r : *regions) {
            if (state_[r].load() != kDirty) ++sets_;
            state_[r].store(kDirty);
        }
        busy_ = false;
        raid_->wake_owners();
        kick();
    });
}

void WriteIntentBitmap::write_image(bool fua, std::function<void()> then) {
    std::vector<SbTarget> targets = raid_->metadata_targets();
    if (targets.empty()) return then();
    meta_write(targets, kBitmapOffset, image_.data(), image_.size(), fua,
               [this, then = std::move(then)](uint32_t failed) {
                   for (uint32_t i = 0; i < raid_->members(); ++i)
                       if (failed & (1u << i))
                           raid_->fail_member(i, "write-intent bitmap write failed");
                   then();
               });
}

bool WriteIntentBitmap::clear_pass() {
    if (busy_ || !raid_->bitmap_may_clear()) return false;
    auto cleared = std::make_shared<std::vector<uint64_t>>();
    for (uint64_t r = 0; r < regions_; ++r) {
        if (state_[r].load() != kDirty) continue;
        // Written since the last pass: not idle yet.
        if (touched_[r].exchange(0, std::memory_order_relaxed)) continue;
        uint8_t s = kDirty;
        if (!state_[r].compare_exchange_strong(s, kClearing)) continue;
        if (inflight_[r].load() != 0) {
            state_[r].store(kDirty);
            continue;
        }
        cleared->push_back(r);
    }
    if (cleared->empty()) return false;
    busy_ = true;
    // What was written to these regions must be durable on every member before their bits go.
    meta_flush(raid_->metadata_targets(), [this, cleared](uint32_t failed) {
        for (uint32_t i = 0; i < raid_->members(); ++i)
            if (failed & (1u << i)) raid_->fail_member(i, "flush failed");
        if (failed) {
            for (uint64_t r : *cleared) state_[r].store(kDirty);
            busy_ = false;
            return kick();
        }
        for (uint64_t r : *cleared) image_[r / 8] &= uint8_t(~(1u << (r % 8)));
        // No FUA: a clear that does not reach the disk costs a resync that was not needed.
        write_image(false, [this, cleared] {
            for (uint64_t r : *cleared) {
                state_[r].store(kClean);
                ++clears_;
            }
            busy_ = false;
            kick();  // regions asked for while they were being cleared
        });
    });
    return true;
}

void WriteIntentBitmap::clear_all(std::function<void()> then) {
    if (dirty_count() == 0) return then();
    busy_ = true;
    meta_flush(raid_->metadata_targets(), [this, then = std::move(then)](uint32_t failed) mutable {
        if (failed) {  // the bits stay: the next start resyncs those regions
            busy_ = false;
            return then();
        }
        for (uint64_t r = 0; r < regions_; ++r) {
            if (state_[r].load() != kClean) ++clears_;
            state_[r].store(kClean);
        }
        std::fill(image_.begin(), image_.end(), 0);
        write_image(true, [this, then = std::move(then)]() mutable {
            busy_ = false;
            then();
        });
    });
}

void WriteIntentBitmap::dirty(RegionSet* out) const {
    for (uint64_t r = 0; r < regions_; ++r)
        if (state_[r].load() != kClean) out->set(r);
}

uint64_t WriteIntentBitmap::dirty_count() const {
    uint64_t n = 0;
    for (uint64_t r = 0; r < regions_; ++r) n += state_[r].load() != kClean;
    return n;
}

nlohmann::json WriteIntentBitmap::to_json() const {
    return {{"region_kb", region_blocks_ * raid_->geometry().block_size / 1024},
            {"regions", regions_},
            {"dirty_regions", dirty_count()},
            {"bits_set", sets_},
            {"bits_cleared", clears_}};
}

}  // namespace nocstor::raid
