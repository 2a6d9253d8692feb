// The RAID bdev and its per-thread state (internal to the raid module).
//
// Threads: any thread submits array I/O through its RaidChannel. raid0, raid1, concat and
// healthy raid5/6 reads go straight to the members from there. raid5/6 writes and degraded reads
// change or depend on a whole stripe, so each stripe has an owner thread (stripe number modulo
// the data threads): the I/O goes there by message, takes the stripe's lock in that thread's
// StripeOwner (a table, not a mutex), reads, computes parity and writes with the owner's member
// channels, and its completion goes back to the submitting thread by message.
#pragma once

#include "bdev/bdev.h"
#include "modules/raid/raid.h"
#include "modules/raid/raid_bitmap.h"
#include "modules/raid/raid_layout.h"
#include "modules/raid/raid_parity.h"
#include "modules/raid/raid_region_set.h"
#include "modules/raid/raid_sb_io.h"
#include "modules/raid/raid_stripe_kind.h"
#include "modules/raid/raid_superblock.h"
#include "runtime/buffer_pool.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace nocstor::raid {

// Online: read and written. Rebuilding: written always, read only where already rebuilt.
// Failed, Missing: neither (a failed member is never written again until re-added).
enum class MemberState : uint8_t { Online, Failed, Missing, Rebuilding };
const char* member_state_name(MemberState s);

enum class ArrayState : uint8_t { Online, Degraded, Offline };
const char* array_state_name(ArrayState s);

struct Member {
    Uuid uuid{};       // this member's identity in the superblock
    std::string name;  // the base bdev's name
    Bdev* bdev = nullptr;
    BdevDesc* desc = nullptr;
    std::atomic<MemberState> state{MemberState::Missing};
    // New channels of the array open one to this member (false from the moment it is being
    // detached: channels made after that would never be let go).
    std::atomic<bool> open_channels{false};
};

class RaidBdev;
class RaidProcess;
class StripeOwner;
struct StripeOp;

// A piece of an I/O sent to one member, with its own iovecs.
struct MemberIo {
    static constexpr int kIovs = 16;
    StripeOp* op = nullptr;    // parity operations
    BdevIo* parent = nullptr;  // direct fan-out
    uint32_t member = 0;
    bool write = false;
    iovec iov[kIovs];
    int iovcnt = 0;
    MemberIo* next = nullptr;  // free list
};

// The member channels of one thread, with the I/O in flight on each, so that a member that goes
// away is let go (its channel put) only once nothing of ours is in flight on it.
struct MemberChannels {
    IoChannel* ch[kMaxMembers] = {};
    uint32_t inflight[kMaxMembers] = {};
    std::function<void()> on_idle[kMaxMembers];

    void open(RaidBdev* r);
    void close_all();
    void started(uint32_t m) { ++inflight[m]; }
    void finished(uint32_t m) {
        if (--inflight[m] == 0 && on_idle[m]) {
            auto f = std::move(on_idle[m]);
            on_idle[m] = nullptr;
            f();
        }
    }
    // Puts member m's channel once its I/O is done, then runs done.
    void release(uint32_t m, std::function<void()> done);
};

// A preallocated free list of MemberIo (one per thread context; no allocation on the data path).
class MemberIoPool {
  public:
    explicit MemberIoPool(uint32_t n) : storage_(std::make_unique<MemberIo[]>(n)) {
        for (uint32_t i = 0; i < n; ++i) put(&storage_[i]);
    }
    MemberIo* get() {
        MemberIo* m = free_;
        if (m) free_ = m->next;
        return m;
    }
    void put(MemberIo* m) {
        m->next = free_;
        free_ = m;
    }

  private:
    std::unique_ptr<MemberIo[]> storage_;
    MemberIo* free_ = nullptr;
};

// Per-thread context of the array on a submitting thread.
class RaidChannel : public IoChannel {
  public:
    explicit RaidChannel(RaidBdev* raid);
    ~RaidChannel() override;
    RaidBdev* raid;
    MemberChannels mc;
    MemberIoPool mios{256};
    uint32_t next_mirror = 0;  // raid1 read balancing
};

class RaidBdev : public Bdev {
  public:
    RaidBdev(std::string name, Geometry g);
    ~RaidBdev() override;

    const Geometry& geometry() const { return g_; }
    uint32_t members() const { return g_.members; }
    Member& member(uint32_t i) { return *members_[i]; }
    const Member& member(uint32_t i) const { return *members_[i]; }
    bool member_ok(uint32_t i) const {
        return members_[i]->state.load(std::memory_order_acquire) == MemberState::Online;
    }
    bool member_writable(uint32_t i) const {
        const MemberState s = members_[i]->state.load(std::memory_order_acquire);
        return s == MemberState::Online || s == MemberState::Rebuilding;
    }
    // Member i holds valid data for lock unit `unit` (a stripe; raid1: kMirrorUnitBlocks rows).
    bool member_readable(uint32_t i, uint64_t unit) const {
        const MemberState s = members_[i]->state.load(std::memory_order_acquire);
        if (s == MemberState::Online) return true;
        if (s != MemberState::Rebuilding) return false;
        if ((unit + 1) * unit_blocks() <= rebuild_pos_.load(std::memory_order_acquire)) return true;
        // A member that came back holds everything outside the regions written while it was away.
        return partial_rebuild_.load(std::memory_order_acquire) &&
               !rebuild_set_->test(region_of_unit(unit));
    }
    // Parity (raid1: the mirrors) of lock unit `unit` may not match its data: the initial
    // resync, or the resync after a crash, has not got there (writes then compute parity from
    // scratch instead of updating it, raid1 reads go to one mirror).
    bool needs_resync(uint64_t unit) const {
        const uint64_t pos = resync_pos_.load(std::memory_order_acquire);
        if (pos == UINT64_MAX || (unit + 1) * unit_blocks() <= pos) return false;
        return !resync_set_ || resync_set_->test(region_of_unit(unit));
    }
    bool parity_trusted(uint64_t unit) const { return !needs_resync(unit); }
    uint64_t region_of_unit(uint64_t unit) const {
        return bitmap_ ? bitmap_->region_of(unit * unit_blocks()) : 0;
    }
    // Rows of a lock unit: a strip for parity levels, a fixed window for raid1, else 0.
    uint64_t unit_blocks() const {
        return g_.parity() ? g_.strip_blocks : g_.level == Level::Raid1 ? kMirrorUnitBlocks : 0;
    }
    static constexpr uint64_t kMirrorUnitBlocks = 256;  // raid1 lock unit (rows)
    uint32_t failed_members() const;
    ArrayState array_state() const;
    // The data path's check before array_state(): every member online (the common case).
    bool all_members_online() const {
        for (const auto& m : members_)
            if (m->state.load(std::memory_order_acquire) != MemberState::Online) return false;
        return true;
    }
    const Parity& parity() const { return *parity_; }

    // Any thread: takes member m out of service after an I/O error (the first report wins, the
    // control thread logs it). The array serves I/O from the others while it can.
    void fail_member(uint32_t m, const char* why);
    // The member index of a base bdev (from a member I/O's completion), or kMaxMembers.
    uint32_t member_of(const Bdev* b) const;

    // --- control thread ---
    // A claimed, open member for slot (before bdev_register).
    void adopt_member(uint32_t slot, const std::string& base, BdevDesc* desc);
    // A member bdev is going away: fail it, then put every thread's channel to it and close it;
    // done (if given) runs on the control thread once it is closed.
    void detach_member(uint32_t m, std::function<void()> done = nullptr);
    void set_owner_threads(std::vector<Thread*> threads);

    // --- parity levels ---
    Thread* owner_thread(uint64_t stripe) const { return owners_[stripe % owners_.size()]; }
    // The calling owner thread's StripeOwner, created on first use.
    StripeOwner* owner_here();

    // --- Bdev ---
    bool io_type_supported(IoType t) const override;
    std::unique_ptr<IoChannel> create_channel() override;
    void submit_request(IoChannel* ch, BdevIo* io) override;
    void destruct(std::function<void()> done) override;
    void dump_info_json(nlohmann::json& out) const override;
    void write_config_json(nlohmann::json& out) const override;

    bool superblock = false;
    bool clear_sb_on_delete = false;
    // Tests: deletion leaves the metadata as a crash would (not marked clean).
    bool crash_on_delete = false;
    uint32_t strip_size_kb = 0;
    // Background processes (raid_process.cpp): member data blocks rebuilt on the member in the
    // Rebuilding state, and resynced (parity trusted below this).
    std::atomic<uint64_t> rebuild_pos_{0};
    std::atomic<uint64_t> resync_pos_{UINT64_MAX};
    bool whole_resync_ = false;  // control thread
    bool bitmap_idle_ = false;   // destruct: no bitmap I/O left

    // --- background processes (control thread) ---
    // The initial resync of a new redundant array (its members may hold anything).
    void start_initial_resync() { start_resync(0, true); }
    // Resync from member block `from`: of the whole array (whole: the superblocks record how
    // far it got), or with a bitmap only of the regions in resync_set().
    void start_resync(uint64_t from, bool whole);
    // The same in two steps (assembly: planned before the array takes I/O, started after).
    void plan_resync(uint64_t from, bool whole);
    void start_planned_resync();
    bool resync_can_run() const;
    // Assembly: member `slot` (Rebuilding) is rebuilt from member block `from`; partial: only
    // the regions whose bitmap bit is set.
    void start_rebuild(uint32_t slot, uint64_t from, bool partial);
    // Takes `base` into an empty (missing or failed) slot, `slot` if given, and rebuilds onto it
    // (partial: a member that comes back gets only the regions written while it was away).
    // started (if given) runs once the rebuild runs (or could not start).
    int add_member(const std::string& base, std::string* err, uint32_t slot_hint = kMaxMembers,
                   bool partial = false, std::function<void()> started = nullptr);
    // Scrub: -EBUSY while another process runs.
    int start_scrub(bool repair, std::string* err);
    RaidProcess* process() const { return process_.get(); }
    // The last finished scrub: mismatching block rows, or -1 if none ran.
    int64_t last_scrub_mismatches() const { return last_scrub_mismatches_; }
    // A rebuild or a whole resync moved on: the superblocks record it now and then (so that a
    // restart resumes there).
    void process_progress();
    // Where a resync or rebuild finds work next, from member block pos (regions not in its set
    // are skipped); the member size if nothing is left.
    uint64_t process_next(OpKind kind, uint64_t pos) const;

    // --- write-intent bitmap (null without one) ---
    WriteIntentBitmap* bitmap() const { return bitmap_.get(); }
    void set_bitmap(uint64_t region_blocks, uint64_t regions);
    RegionSet* resync_set() const { return resync_set_.get(); }
    // The next rebuild covers only the regions whose bit is set (partial), or everything.
    void set_partial_rebuild(bool partial);
    // The bitmap may be cleared: every member online, no resync due, no process running.
    bool bitmap_may_clear() const;
    // The members the metadata goes to (open and written to).
    std::vector<SbTarget> metadata_targets() const;
    // Owner threads: operations waiting for metadata (a bitmap bit, a recorded failure) look
    // again. Control thread.
    void wake_owners();
    // Members that the superblocks on disk record as not trusted (failed, missing, rebuilding):
    // a write that left one of them out may complete only once it is in this mask.
    uint32_t recorded_untrusted() const { return recorded_untrusted_.load(); }
    void set_recorded_untrusted(uint32_t mask) { recorded_untrusted_.store(mask); }

    // --- superblock (control thread; no-ops without one) ---
    Superblock make_superblock(bool clean) const;
    // Writes the current state to every member that is written to; members whose write fails
    // are failed out. Writes are serialised; done runs once the state as of this call is on disk.
    void save_superblocks(std::function<void()> done = nullptr);
    uint64_t sb_seq = 0;

  private:
    Geometry g_;
    std::vector<std::unique_ptr<Member>> members_;
    std::unique_ptr<Parity> parity_;
    std::vector<Thread*> owners_;
    // Indexed like owners_; each slot is created and used only by its own thread.
    std::vector<std::unique_ptr<StripeOwner>> owner_ctx_;
    std::unique_ptr<RaidProcess> process_;
    int64_t last_scrub_mismatches_ = -1;
    nlohmann::json last_process_;  // the last finished process (get_bdevs)
    bool clean_ = false;
    bool sb_writing_ = false;
    bool sb_again_ = false;
    std::vector<std::function<void()>> sb_waiters_;
    uint64_t progress_saved_ns_ = 0;
    std::unique_ptr<WriteIntentBitmap> bitmap_;
    std::unique_ptr<RegionSet> resync_set_, rebuild_set_;
    std::atomic<bool> partial_rebuild_{false};
    std::atomic<uint32_t> recorded_untrusted_{0};
    void start_process(OpKind kind, uint32_t target, bool repair, uint64_t start);
    void process_finished(OpKind kind, uint32_t target, IoStatus status, uint64_t mismatches);
    friend MemberChannels* owner_member_channels(StripeOwner* o);
};

// --- data path entry points (raid_io.cpp, raid_stripe.cpp) ---
void submit_plain(RaidBdev* r, RaidChannel* ch, BdevIo* io);        // raid0, concat
void submit_mirror(RaidBdev* r, RaidChannel* ch, BdevIo* io);       // raid1
void submit_parity(RaidBdev* r, RaidChannel* ch, BdevIo* io);       // raid5, raid6
void submit_all_members(RaidBdev* r, RaidChannel* ch, BdevIo* io);  // flush
void submit_to_owner(RaidBdev* r, BdevIo* io);                      // raid_stripe.cpp
std::unique_ptr<StripeOwner> make_stripe_owner(RaidBdev* r);
void destroy_stripe_owner(std::unique_ptr<StripeOwner> owner);
MemberChannels* owner_member_channels(StripeOwner* o);
// On o's thread: the operations parked there for metadata look again.
void wake_parked(StripeOwner* o);

}  // namespace nocstor::raid
