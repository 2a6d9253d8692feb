// The RAID bdev on the control path: creation (checks, claims, geometry), member failure and
// removal, deletion, bdev_raid_get_bdevs, save_config.
#include "modules/raid/raid_bdev.h"

#include "modules/raid/raid_internal.h"

#include "modules/raid/raid_process.h"
#include "modules/raid/raid_sb_io.h"
#include "modules/raid/raid_stripe.h"
#include "util/tick.h"

#include "modules/module_util.h"
#include "runtime/runtime.h"
#include "util/log.h"
#include "util/prometheus.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace nocstor::raid {

using namespace detail;

const char* member_state_name(MemberState s) {
    switch (s) {
        case MemberState::Online:
            return "online";
        case MemberState::Failed:
            return "failed";
        case MemberState::Missing:
            return "missing";
        case MemberState::Rebuilding:
            return "rebuilding";
    }
    return "?";
}

const char* array_state_name(ArrayState s) {
    switch (s) {
        case ArrayState::Online:
            return "online";
        case ArrayState::Degraded:
            return "degraded";
        case ArrayState::Offline:
            return "offline";
    }
    return "?";
}

BdevModule* raid_bdev_module() {
    return &g_module;
}

// --- MemberChannels ---

void MemberChannels::open(RaidBdev* r) {
    for (uint32_t m = 0; m < r->members(); ++m) {
        if (r->member(m).open_channels.load(std::memory_order_acquire))
            ch[m] = bdev_get_io_channel(r->member(m).desc);
    }
}

void MemberChannels::close_all() {
    for (uint32_t m = 0; m < kMaxMembers; ++m) {
        if (ch[m]) bdev_put_io_channel(ch[m]);
        ch[m] = nullptr;
    }
}

void MemberChannels::release(uint32_t m, std::function<void()> done) {
    auto put = [this, m, done = std::move(done)] {
        if (ch[m]) bdev_put_io_channel(ch[m]);
        ch[m] = nullptr;
        done();
    };
    if (inflight[m] == 0)
        put();
    else
        on_idle[m] = std::move(put);
}

RaidChannel::RaidChannel(RaidBdev* r) : raid(r) {
    mc.open(r);
}

RaidChannel::~RaidChannel() {
    mc.close_all();
}

// --- RaidBdev ---

RaidBdev::RaidBdev(std::string n, Geometry g) : Bdev(std::move(n), &g_module), g_(std::move(g)) {
    product_name = "Raid Volume";
    for (uint32_t i = 0; i < g_.members; ++i) members_.push_back(std::make_unique<Member>());
    if (g_.parity()) parity_ = std::make_unique<Parity>(g_.data_members(), g_.parity_members());
}

RaidBdev::~RaidBdev() {
    for (auto& m : members_) {
        if (m->desc) {
            bdev_release_claim(m->bdev);
            bdev_close(m->desc);
            m->desc = nullptr;
        }
    }
}

uint32_t RaidBdev::failed_members() const {
    uint32_t n = 0;
    for (const auto& m : members_)
        n += m->state.load(std::memory_order_acquire) != MemberState::Online;
    return n;
}

ArrayState RaidBdev::array_state() const {
    const uint32_t failed = failed_members();
    if (failed == 0) return ArrayState::Online;
    return failed <= g_.tolerance() ? ArrayState::Degraded : ArrayState::Offline;
}

uint32_t RaidBdev::member_of(const Bdev* b) const {
    for (uint32_t i = 0; i < g_.members; ++i)
        if (members_[i]->bdev == b) return i;
    return kMaxMembers;
}

void RaidBdev::fail_member(uint32_t m, const char* why) {
    MemberState expected = MemberState::Online;
    if (!members_[m]->state.compare_exchange_strong(expected, MemberState::Failed)) return;
    // Logged on the control thread (this may be a data thread; the array may be gone by then).
    struct Report {
        std::string raid, member, reason;
        uint32_t slot;
    };
    auto rep = std::make_shared<Report>(Report{name, members_[m]->name, why, m});
    auto log = [rep] {
        RaidBdev* r = find_raid(rep->raid);
        if (!r) return;
        r->save_superblocks();  // the others record that this member is not to be trusted
        const ArrayState s = r->array_state();
        if (s == ArrayState::Offline)
            NOC_ERROR("bdev",
                      "raid {}: member {} ({}) failed: {}; too many members lost, the array "
                      "is offline",
                      rep->raid, rep->slot, rep->member, rep->reason);
        else
            NOC_WARN("bdev", "raid {}: member {} ({}) failed: {}; the array is {}", rep->raid,
                     rep->slot, rep->member, rep->reason, array_state_name(s));
    };
    if (Runtime* rt = Runtime::instance())
        rt->control_thread()->send(std::move(log));
    else
        log();
}

void RaidBdev::adopt_member(uint32_t slot, const std::string& base, BdevDesc* desc) {
    Member& m = *members_[slot];
    m.name = base;
    m.bdev = desc->bdev();
    m.desc = desc;
    m.state.store(MemberState::Online);
    m.open_channels.store(true, std::memory_order_release);
}

void RaidBdev::detach_member(uint32_t m, std::function<void()> done) {
    Member& mem = *members_[m];
    if (!mem.desc) {
        if (done) done();
        return;
    }
    fail_member(m, "the base bdev is being removed");
    mem.state.store(MemberState::Missing);
    mem.open_channels.store(false, std::memory_order_release);
    NOC_WARN("bdev", "raid {}: member {} ({}) removed", name, m, mem.name);
    // Every thread lets go of its channel to the member once its I/O there is done; then the
    // descriptor is closed so that the member bdev can go.
    struct Detach {
        std::string raid;
        uint32_t slot;
        Thread* ctl;
        std::atomic<size_t> owners_left{0};
        std::function<void()> done;
    };
    auto st = std::make_shared<Detach>();
    st->raid = name;
    st->slot = m;
    st->ctl = Thread::current();
    st->done = std::move(done);
    auto close_desc = [st] {
        RaidBdev* r = find_raid(st->raid);
        if (r) {
            Member& mem = *r->members_[st->slot];
            if (mem.desc) {
                bdev_release_claim(mem.bdev);
                bdev_close(mem.desc);
                mem.desc = nullptr;
                mem.bdev = nullptr;
            }
            r->save_superblocks();
        }
        if (st->done) st->done();
    };
    for_each_channel(
        [m](IoChannel& c, std::function<void(int)> next) {
            static_cast<RaidChannel&>(c).mc.release(m, [next] { next(0); });
        },
        [st, close_desc](int) {
            RaidBdev* r = find_raid(st->raid);
            if (!r) return close_desc();
            // Owner threads: each releases its own channel; the last one closes the member.
            st->owners_left = r->owners_.size();
            for (size_t i = 0; i < r->owners_.size(); ++i) {
                r->owners_[i]->send([r, i, st, close_desc] {
                    auto last = [st, close_desc] {
                        if (st->owners_left.fetch_sub(1) == 1) st->ctl->send(close_desc);
                    };
                    if (r->owner_ctx_[i])
                        owner_member_channels(r->owner_ctx_[i].get())->release(st->slot, last);
                    else
                        last();
                });
            }
        });
}

void RaidBdev::set_owner_threads(std::vector<Thread*> threads) {
    owners_ = std::move(threads);
    owner_ctx_.resize(owners_.size());
}

StripeOwner* RaidBdev::owner_here() {
    Thread* t = Thread::current();
    for (size_t i = 0; i < owners_.size(); ++i) {
        if (owners_[i] != t) continue;
        if (!owner_ctx_[i]) owner_ctx_[i] = make_stripe_owner(this);
        return owner_ctx_[i].get();
    }
    return nullptr;
}

bool RaidBdev::io_type_supported(IoType t) const {
    switch (t) {
        case IoType::Read:
        case IoType::Write:
        case IoType::Flush:
        case IoType::Reset:
            return true;
        case IoType::Unmap:
        case IoType::WriteZeroes:
            // Parity levels: the bdev layer turns write-zeroes into writes of zeros, which keep
            // the parity right; an unmapped member is not known to read back zeros.
            if (g_.parity()) return false;
            for (const auto& m : members_)
                if (m->bdev && !m->bdev->io_type_supported(t)) return false;
            return true;
        default:
            return false;
    }
}

std::unique_ptr<IoChannel> RaidBdev::create_channel() {
    return std::make_unique<RaidChannel>(this);
}

void RaidBdev::submit_request(IoChannel* c, BdevIo* io) {
    auto* ch = static_cast<RaidChannel*>(c);
    if (io->type == IoType::Reset) {
        bdev_io_complete(io, IoStatus::Success);  // nothing of ours to abort
        return;
    }
    if (!all_members_online() && array_state() == ArrayState::Offline) {
        bdev_io_complete(io, IoStatus::Failed);
        return;
    }
    if (io->type == IoType::Flush) return submit_all_members(this, ch, io);
    switch (g_.level) {
        case Level::Raid0:
        case Level::Concat:
            return submit_plain(this, ch, io);
        case Level::Raid1:
            return submit_mirror(this, ch, io);
        case Level::Raid5:
        case Level::Raid6:
            return submit_parity(this, ch, io);
    }
}

void RaidBdev::destruct(std::function<void()> done) {
    // A background process stops first (its windows use the owners' state); then each owner
    // thread drops its stripe state and member channels; then the members are released (the
    // destructor closes them).
    if (process_) {
        RaidProcess* p = process_.get();
        p->stop([this, done = std::move(done)]() mutable {
            process_.reset();
            destruct(std::move(done));
        });
        return;
    }
    if (bitmap_) {
        // No clear pass starts from now on; one in flight finishes first.
        bitmap_->stop();
        if (!bitmap_idle_) {
            bitmap_->when_idle([this, done = std::move(done)]() mutable {
                bitmap_idle_ = true;
                destruct(std::move(done));
            });
            return;
        }
    }
    if (superblock && clear_sb_on_delete) {
        // bdev_raid_delete clear_sb: the members forget the array.
        superblock = false;
        std::vector<SbTarget> targets;
        for (uint32_t i = 0; i < g_.members; ++i)
            if (members_[i]->desc) targets.push_back({i, members_[i]->desc});
        sb_clear(targets, [this, done = std::move(done)](uint32_t failed) mutable {
            if (failed) NOC_ERROR("bdev", "raid {}: could not clear every superblock", name);
            destruct(std::move(done));
        });
        return;
    }
    if (superblock && !clean_ && !crash_on_delete) {
        // Stopped in order: the next start needs no resync (unless one is still due: the
        // superblock says clean only without one). A whole array leaves no bit set behind.
        clean_ = true;
        auto save = [this, done = std::move(done)]() mutable {
            save_superblocks(
                [this, done = std::move(done)]() mutable { destruct(std::move(done)); });
        };
        if (bitmap_ && bitmap_may_clear()) return bitmap_->clear_all(std::move(save));
        save();
        return;
    }
    // Every owner thread, also those without stripe state: messages sent to them earlier
    // (wake_owners) are behind this one.
    run_on_threads(
        owners_,
        [this](Thread* t) {
            for (size_t i = 0; i < owners_.size(); ++i)
                if (owners_[i] == t && owner_ctx_[i])
                    destroy_stripe_owner(std::move(owner_ctx_[i]));
        },
        std::move(done));
}

// --- superblock ---

Superblock RaidBdev::make_superblock(bool clean) const {
    Superblock sb;
    sb.seq = sb_seq;
    sb.clean = clean && resync_pos_.load() == UINT64_MAX;
    sb.array_uuid = uuid;
    sb.name = name;
    sb.level = g_.level;
    sb.strip_size_kb = strip_size_kb;
    sb.block_size = g_.block_size;
    sb.data_offset = g_.data_offset;
    sb.member_blocks = g_.member_blocks;
    if (bitmap_) {
        sb.bitmap_region_blocks = bitmap_->region_blocks();
        sb.bitmap_regions = bitmap_->regions();
    }
    const uint64_t resync = resync_pos_.load();
    sb.resync_pending = whole_resync_ && resync != UINT64_MAX;
    sb.resync_offset = sb.resync_pending ? resync : 0;
    for (uint32_t i = 0; i < g_.members; ++i) {
        SbMember m;
        m.uuid = members_[i]->uuid;
        switch (members_[i]->state.load()) {
            case MemberState::Online:
                m.state = SbMemberState::Online;
                break;
            case MemberState::Failed:
                m.state = SbMemberState::Failed;
                break;
            case MemberState::Missing:
                m.state = SbMemberState::Missing;
                break;
            case MemberState::Rebuilding:
                m.state = SbMemberState::Rebuilding;
                m.rebuild_offset = rebuild_pos_.load();
                m.partial_rebuild = partial_rebuild_.load();
                break;
        }
        if (g_.level == Level::Concat) m.data_blocks = g_.concat_blocks[i];
        sb.members.push_back(m);
    }
    return sb;
}

void RaidBdev::save_superblocks(std::function<void()> done) {
    if (!superblock) {
        if (done) done();
        return;
    }
    if (done) sb_waiters_.push_back(std::move(done));
    if (sb_writing_) {
        sb_again_ = true;
        return;
    }
    sb_writing_ = true;
    sb_again_ = false;
    ++sb_seq;
    auto waiters = std::make_shared<std::vector<std::function<void()>>>(std::move(sb_waiters_));
    sb_waiters_.clear();
    const std::string raid = name;
    const Superblock sb = make_superblock(clean_);
    uint32_t untrusted = 0;
    for (uint32_t i = 0; i < sb.members.size(); ++i)
        if (sb.members[i].state != SbMemberState::Online) untrusted |= 1u << i;
    sb_write(metadata_targets(), sb, [raid, waiters, untrusted](uint32_t failed) {
        RaidBdev* self = find_raid(raid);
        if (self) {
            self->sb_writing_ = false;
            for (uint32_t i = 0; i < self->g_.members; ++i)
                if (failed & (1u << i)) self->fail_member(i, "superblock write failed");
            // Writes that left these members out may be acknowledged now.
            self->set_recorded_untrusted(untrusted);
            self->wake_owners();
        }
        for (auto& w : *waiters) w();
        if (self && self->sb_again_) self->save_superblocks();
    });
}

std::vector<SbTarget> RaidBdev::metadata_targets() const {
    std::vector<SbTarget> targets;
    for (uint32_t i = 0; i < g_.members; ++i)
        if (members_[i]->desc && member_writable(i)) targets.push_back({i, members_[i]->desc});
    return targets;
}

void RaidBdev::wake_owners() {
    for (size_t i = 0; i < owners_.size(); ++i) {
        owners_[i]->send([this, i] {
            if (owner_ctx_[i]) wake_parked(owner_ctx_[i].get());
        });
    }
}

void RaidBdev::set_bitmap(uint64_t region_blocks, uint64_t regions) {
    bitmap_ = std::make_unique<WriteIntentBitmap>(this, region_blocks, regions);
    resync_set_ = std::make_unique<RegionSet>(regions);
    rebuild_set_ = std::make_unique<RegionSet>(regions);
}

bool RaidBdev::bitmap_may_clear() const {
    return failed_members() == 0 && !process_ && resync_pos_.load() == UINT64_MAX;
}

void RaidBdev::process_progress() {
    const uint64_t now = now_ns();
    if (now - progress_saved_ns_ < 2'000'000'000ull) return;
    progress_saved_ns_ = now;
    save_superblocks();
}

uint64_t RaidBdev::process_next(OpKind kind, uint64_t pos) const {
    const RegionSet* set = nullptr;
    if (kind == OpKind::Resync) set = resync_set_.get();
    if (kind == OpKind::Rebuild && partial_rebuild_.load()) set = rebuild_set_.get();
    if (!set || !bitmap_) return pos;
    const uint64_t r = bitmap_->region_of(pos);
    const uint64_t next = set->next(r);
    if (next == r) return pos;
    return std::min(next * bitmap_->region_blocks(), g_.member_blocks);
}

// --- background processes ---

void RaidBdev::start_process(OpKind kind, uint32_t target, bool repair, uint64_t start) {
    process_ = std::make_unique<RaidProcess>(
        this, kind, target, repair, start,
        [raid = name, kind, target](IoStatus status, uint64_t mismatches) {
            // Runs from inside the process: it is destroyed by a message, not here (and the
            // array may be gone by then).
            auto name = std::make_shared<std::string>(raid);
            Thread::current()->send([name, kind, target, status, mismatches] {
                if (RaidBdev* r = find_raid(*name))
                    r->process_finished(kind, target, status, mismatches);
            });
        });
    process_->start();
}

void RaidBdev::process_finished(OpKind kind, uint32_t target, IoStatus status,
                                uint64_t mismatches) {
    if (!process_ || process_->kind() != kind) return;  // stopped for another one
    last_process_ = process_->summary(status);
    process_.reset();
    const bool ok = status == IoStatus::Success;
    if (kind == OpKind::Resync && ok) {
        resync_pos_.store(UINT64_MAX);
        whole_resync_ = false;
        if (resync_set_) resync_set_->clear();
    }
    if (kind == OpKind::Scrub && ok) last_scrub_mismatches_ = int64_t(mismatches);
    if (kind == OpKind::Rebuild && ok) {
        MemberState expected = MemberState::Rebuilding;
        if (members_[target]->state.compare_exchange_strong(expected, MemberState::Online))
            NOC_INFO("bdev", "raid {}: member {} ({}) rebuilt, the array is {}", name, target,
                     members_[target]->name, array_state_name(array_state()));
        rebuild_pos_.store(0);
        partial_rebuild_.store(false);
        if (rebuild_set_) rebuild_set_->clear();
    }
    save_superblocks();
    // A resync interrupted by a rebuild (or waiting for the array to be whole) goes on from
    // where it was.
    if (!process_ && resync_pos_.load() != UINT64_MAX && resync_can_run())
        start_process(OpKind::Resync, kMaxMembers, false, resync_pos_.load());
}

// Parity levels resync only with every member there (a member being rebuilt counts): with one
// missing, the parity is all that defines its data, and a write the crash cut half-way may have
// left it inconsistent. Recomputing it then would make a guess permanent; left as it is, the
// rebuild onto the member that comes back (its own rows are checked against P and Q) or a
// replacement settles it.
bool RaidBdev::resync_can_run() const {
    if (array_state() == ArrayState::Offline) return false;
    if (!g_.parity()) return true;
    for (uint32_t i = 0; i < g_.members; ++i)
        if (!member_writable(i)) return false;
    return true;
}

void RaidBdev::plan_resync(uint64_t from, bool whole) {
    whole_resync_ = whole;
    if (whole && resync_set_) resync_set_->set_from(bitmap_->region_of(from));
    // With a bitmap the pass goes over the regions in the set, wherever they are.
    resync_pos_.store(resync_set_ ? 0 : from);
}

void RaidBdev::start_resync(uint64_t from, bool whole) {
    if (g_.tolerance() == 0) return;
    plan_resync(from, whole);
    start_planned_resync();
}

void RaidBdev::start_planned_resync() {
    const uint64_t pos = resync_pos_.load();
    if (g_.tolerance() == 0 || pos == UINT64_MAX || process_) return;
    if (!resync_can_run()) {
        NOC_WARN("bdev",
                 "raid {}: the resync waits until the array is whole again (a member is "
                 "missing; its data in the regions to resync is left as the crash left it)",
                 name);
        return;
    }
    start_process(OpKind::Resync, kMaxMembers, false, pos);
}

void RaidBdev::start_rebuild(uint32_t slot, uint64_t from, bool partial) {
    rebuild_pos_.store(from);
    set_partial_rebuild(partial && bitmap_);
    start_process(OpKind::Rebuild, slot, false, from);
}

void RaidBdev::set_partial_rebuild(bool partial) {
    if (rebuild_set_) {
        rebuild_set_->clear();
        if (partial) bitmap_->dirty(rebuild_set_.get());
    }
    partial_rebuild_.store(partial);
}

int RaidBdev::start_scrub(bool repair, std::string* err) {
    if (g_.tolerance() == 0)
        return fail(err, -EINVAL,
                    "raid " + name + ": " + level_name(g_.level) + " has no redundancy to check");
    if (process_)
        return fail(err, -EBUSY,
                    "raid " + name + ": a " + process_type_name(process_->kind()) + " is running");
    const uint32_t online = g_.members - failed_members();
    if (g_.parity() ? online < g_.members : online < 2)
        return fail(err, -EBUSY,
                    "raid " + name + " is " + array_state_name(array_state()) +
                        ": a scrub compares every member's copy, rebuild first");
    start_process(OpKind::Scrub, kMaxMembers, repair, 0);
    return 0;
}

int RaidBdev::add_member(const std::string& base, std::string* err, uint32_t slot_hint,
                         bool partial, std::function<void()> started) {
    if (g_.tolerance() == 0)
        return fail(err, -EINVAL,
                    "raid " + name + ": " + level_name(g_.level) + " cannot take a new base bdev");
    uint32_t slot = slot_hint < g_.members && !members_[slot_hint]->desc ? slot_hint : kMaxMembers;
    for (uint32_t i = 0; i < g_.members && slot == kMaxMembers; ++i) {
        const MemberState st = members_[i]->state.load();
        if (st == MemberState::Missing || (st == MemberState::Failed && !members_[i]->desc))
            slot = i;
    }
    if (slot == kMaxMembers) {
        // A failed member still attached gives its slot up to the new one.
        for (uint32_t i = 0; i < g_.members && slot == kMaxMembers; ++i)
            if (members_[i]->state.load() == MemberState::Failed) slot = i;
    }
    if (slot == kMaxMembers)
        return fail(err, -EINVAL, "raid " + name + " has no missing or failed member to replace");
    for (uint32_t i = 0; i < g_.members; ++i) {
        if (members_[i]->state.load() == MemberState::Rebuilding)
            return fail(
                err, -EBUSY,
                "raid " + name + ": member " + members_[i]->name + " is still being rebuilt");
    }
    Bdev* b = bdev_get_by_name(base);
    if (!b) return fail(err, -ENODEV, "raid: base bdev " + base + " does not exist");
    if (b->block_size != g_.block_size)
        return fail(err, -EINVAL,
                    "raid: base bdev " + base + " has " + std::to_string(b->block_size) +
                        " B blocks, the array " + std::to_string(g_.block_size));
    if (b->num_blocks < g_.data_offset + g_.member_blocks)
        return fail(err, -EINVAL,
                    "raid: base bdev " + base + " is smaller than a member (" +
                        std::to_string(g_.data_offset + g_.member_blocks) + " blocks needed)");
    Member& old = *members_[slot];
    if (old.desc) {
        // The failed member leaves (its channels first), then the new one takes the slot.
        auto base_copy = std::make_shared<std::string>(base);
        const std::string raid = name;
        detach_member(slot, [raid, base_copy, started] {
            RaidBdev* r = find_raid(raid);
            std::string e;
            if (r && r->add_member(*base_copy, &e, kMaxMembers, false, started) == 0) return;
            NOC_ERROR("bdev", "raid {}: cannot add {}: {}", raid, *base_copy, e);
            if (started) started();
        });
        return 0;
    }
    BdevDesc* desc = nullptr;
    int rc = open_member(name, slot, base, &desc, err);
    if (rc) return rc;
    old.name = base;
    old.bdev = desc->bdev();
    old.desc = desc;
    old.open_channels.store(true, std::memory_order_release);
    rebuild_pos_.store(0);
    NOC_INFO("bdev", "raid {}: base bdev {} takes slot {}, rebuilding", name, base, slot);
    // Every thread opens its channel to the new member before the member is written to; then
    // the rebuild starts (a resync or scrub gives way, and the resync resumes afterwards).
    const std::string raid = name;
    for_each_channel(
        [slot](IoChannel& c, std::function<void(int)> next) {
            auto& ch = static_cast<RaidChannel&>(c);
            if (!ch.mc.ch[slot]) ch.mc.ch[slot] = bdev_get_io_channel(ch.raid->member(slot).desc);
            next(0);
        },
        [raid, slot, partial, returning = slot_hint < g_.members, started](int) {
            RaidBdev* r = find_raid(raid);
            if (!r) {
                if (started) started();
                return;
            }
            run_on_threads(
                r->owners_,
                [r, slot](Thread* t) {
                    for (size_t i = 0; i < r->owners_.size(); ++i) {
                        if (r->owners_[i] != t || !r->owner_ctx_[i]) continue;
                        MemberChannels* mc = owner_member_channels(r->owner_ctx_[i].get());
                        if (!mc->ch[slot] && r->members_[slot]->desc)
                            mc->ch[slot] = bdev_get_io_channel(r->members_[slot]->desc);
                    }
                },
                [raid, slot, partial, returning, started] {
                    RaidBdev* r = find_raid(raid);
                    if (!r || !r->members_[slot]->desc) {
                        if (started) started();
                        return;
                    }
                    // A member that comes back gets only the regions written while it was
                    // away: their bits are still set (nothing is cleared while degraded).
                    r->set_partial_rebuild(partial && r->bitmap_);
                    r->members_[slot]->state.store(MemberState::Rebuilding);
                    // A new disk is a new member; one that comes back keeps its identity. The
                    // slot's identity changes only now, in the superblock that also goes to the
                    // new member: until then the superblocks name the member that left.
                    if (!returning || r->members_[slot]->uuid == Uuid{})
                        r->members_[slot]->uuid = uuid_generate_random();
                    if (r->bitmap_) r->bitmap_->refresh();  // its bitmap area as the others'
                    r->save_superblocks();
                    if (r->process_) {
                        r->process_->stop([r, slot, started] {
                            r->process_.reset();
                            r->start_process(OpKind::Rebuild, slot, false, 0);
                            if (started) started();
                        });
                    } else {
                        r->start_process(OpKind::Rebuild, slot, false, 0);
                        if (started) started();
                    }
                });
        });
    return 0;
}

void RaidBdev::dump_info_json(nlohmann::json& out) const {
    nlohmann::json members = nlohmann::json::array();
    for (uint32_t i = 0; i < g_.members; ++i) {
        const Member& m = *members_[i];
        members.push_back({{"name", m.name},
                           {"slot", i},
                           {"state", member_state_name(m.state.load())},
                           {"is_configured", m.desc != nullptr}});
    }
    out["raid"] = {{"uuid", uuid_to_string(uuid)},
                   {"strip_size_kb", strip_size_kb},
                   {"state", array_state_name(array_state())},
                   {"raid_level", level_name(g_.level)},
                   {"superblock", superblock},
                   {"num_base_bdevs", g_.members},
                   {"num_base_bdevs_discovered", g_.members - failed_members()},
                   {"num_base_bdevs_operational", g_.members - failed_members()},
                   {"base_bdevs_list", members}};
    if (process_) out["raid"]["process"] = process_->to_json();
    if (!last_process_.is_null()) out["raid"]["last_process"] = last_process_;
    if (bitmap_) out["raid"]["write_intent_bitmap"] = bitmap_->to_json();
    if (last_scrub_mismatches_ >= 0) out["raid"]["last_scrub_mismatches"] = last_scrub_mismatches_;
}

void RaidBdev::write_config_json(nlohmann::json& out) const {
    if (superblock) return;  // assembled from its members' superblocks
    nlohmann::json bases = nlohmann::json::array();
    for (const auto& m : members_) bases.push_back(m->name);
    out = {{"method", "bdev_raid_create"},
           {"params",
            {{"name", name},
             {"raid_level", level_name(g_.level)},
             {"strip_size_kb", strip_size_kb},
             {"base_bdevs", bases},
             {"uuid", uuid_to_string(uuid)},
             {"superblock", superblock}}}};
}

// --- control API ---

void raid_delete(const std::string& name, bool clear_sb, std::function<void(int)> done) {
    for (size_t i = 0; i < pending().size(); ++i) {
        if (pending()[i]->opts.name != name) continue;
        close_members(pending()[i]->descs);
        pending().erase(pending().begin() + long(i));
        if (done) done(0);
        return;
    }
    RaidBdev* r = find_raid(name);
    if (!r) {
        if (done) done(-ENODEV);
        return;
    }
    r->clear_sb_on_delete = clear_sb;
    bdev_unregister(r, std::move(done));
}

int raid_fail_member(const std::string& raid, const std::string& member, std::string* err) {
    RaidBdev* r = find_raid(raid);
    if (!r) return fail(err, -ENODEV, "no raid bdev named '" + raid + "'");
    for (uint32_t i = 0; i < r->members(); ++i) {
        if (r->member(i).name == member) {
            r->fail_member(i, "failed by request");
            return 0;
        }
    }
    return fail(err, -ENODEV, "raid " + raid + " has no member " + member);
}

int raid_remove_member(const std::string& member, std::function<void()> done, std::string* err) {
    for (Bdev* b : bdev_list()) {
        if (b->module != &g_module) continue;
        auto* r = static_cast<RaidBdev*>(b);
        for (uint32_t i = 0; i < r->members(); ++i) {
            if (r->member(i).name == member && r->member(i).desc) {
                r->detach_member(i, std::move(done));
                return 0;
            }
        }
    }
    return fail(err, -ENODEV, "no raid bdev has a base bdev named '" + member + "'");
}

int raid_add_member(const std::string& raid, const std::string& base, std::string* err,
                    std::function<void()> started) {
    RaidBdev* r = find_raid(raid);
    if (!r) return fail(err, -ENODEV, "no raid bdev named '" + raid + "'");
    return r->add_member(base, err, kMaxMembers, false, std::move(started));
}

int raid_start_scrub(const std::string& raid, bool repair, std::string* err) {
    RaidBdev* r = find_raid(raid);
    if (!r) return fail(err, -ENODEV, "no raid bdev named '" + raid + "'");
    return r->start_scrub(repair, err);
}

void raid_set_process_options(uint32_t window_size_kb, uint32_t max_bandwidth_mb_sec,
                              uint32_t bitmap_clear_interval_ms) {
    process_options().window_size_kb = window_size_kb;
    process_options().max_bandwidth_mb_sec = max_bandwidth_mb_sec;
    process_options().bitmap_clear_interval_ms = bitmap_clear_interval_ms;
    // Arrays that run already take the new interval.
    for (Bdev* b : bdev_list()) {
        if (b->module != &g_module) continue;
        if (WriteIntentBitmap* bm = static_cast<RaidBdev*>(b)->bitmap()) {
            bm->stop();
            bm->start(bitmap_clear_interval_ms);
        }
    }
}

nlohmann::json raid_process_options_json() {
    return {{"process_window_size_kb", process_options().window_size_kb},
            {"process_max_bandwidth_mb_sec", process_options().max_bandwidth_mb_sec},
            {"bitmap_clear_interval_ms", process_options().bitmap_clear_interval_ms}};
}

void raid_metrics(std::string& out) {
    struct Sample {
        std::string name;
        int state;  // 0 online, 1 degraded, 2 offline
        uint32_t failed;
        double progress;  // percent, -1 without a process
        std::string process;
        int64_t mismatches;
    };
    std::vector<Sample> samples;
    for (Bdev* b : bdev_list()) {
        if (b->module != &g_module) continue;
        auto* r = static_cast<RaidBdev*>(b);
        Sample s{r->name, int(r->array_state()),     r->failed_members(), -1,
                 "",      r->last_scrub_mismatches()};
        if (RaidProcess* p = r->process()) {
            s.process = process_type_name(p->kind());
            s.progress = p->total() ? double(p->position()) * 100.0 / double(p->total()) : 100.0;
        }
        samples.push_back(std::move(s));
    }
    for (auto& s : samples) s.name = escape_prometheus_label(s.name);
    auto family = [&](const char* name, const char* type, const char* help) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    family("nocstor_raid_state", "gauge", "Array state: 0 online, 1 degraded, 2 offline.");
    for (const auto& s : samples)
        out += "nocstor_raid_state{raid=\"" + s.name + "\"} " + std::to_string(s.state) + "\n";
    family("nocstor_raid_degraded", "gauge", "1 while the array runs without full redundancy.");
    for (const auto& s : samples)
        out +=
            "nocstor_raid_degraded{raid=\"" + s.name + "\"} " + (s.state == 1 ? "1" : "0") + "\n";
    family("nocstor_raid_members_unavailable", "gauge", "Members failed, missing or rebuilding.");
    for (const auto& s : samples)
        out += "nocstor_raid_members_unavailable{raid=\"" + s.name + "\"} " +
               std::to_string(s.failed) + "\n";
    family("nocstor_raid_process_progress_percent", "gauge",
           "Progress of the running resync, rebuild or scrub.");
    for (const auto& s : samples)
        if (s.progress >= 0)
            out += "nocstor_raid_process_progress_percent{raid=\"" + s.name + "\",process=\"" +
                   s.process + "\"} " + std::to_string(s.progress) + "\n";
    family("nocstor_raid_scrub_mismatches", "gauge",
           "Block rows whose redundancy did not match in the last finished scrub.");
    for (const auto& s : samples)
        if (s.mismatches >= 0)
            out += "nocstor_raid_scrub_mismatches{raid=\"" + s.name + "\"} " +
                   std::to_string(s.mismatches) + "\n";
}

nlohmann::json raid_list(const std::string& category) {
    nlohmann::json out = nlohmann::json::array();
    for (Bdev* b : bdev_list()) {
        if (b->module != &g_module) continue;
        auto* r = static_cast<RaidBdev*>(b);
        const ArrayState s = r->array_state();
        const bool online = s != ArrayState::Offline;
        if (category == "online" && !online) continue;
        if (category == "offline" && online) continue;
        if (category == "configuring") continue;  // registered arrays are whole
        nlohmann::json info;
        r->dump_info_json(info);
        nlohmann::json e = info["raid"];
        e["name"] = r->name;
        out.push_back(std::move(e));
    }
    assembly_list(category, &out);
    if (category == "all" || category == "configuring") {
        for (const auto& p : pending()) {
            nlohmann::json members = nlohmann::json::array();
            uint32_t found = 0;
            for (uint32_t i = 0; i < p->descs.size(); ++i) {
                found += p->descs[i] != nullptr;
                members.push_back({{"name", p->opts.base_bdevs[i]},
                                   {"slot", i},
                                   {"state", p->descs[i] ? "online" : "missing"},
                                   {"is_configured", p->descs[i] != nullptr}});
            }
            out.push_back({{"name", p->opts.name},
                           {"uuid", p->opts.uuid},
                           {"strip_size_kb", p->opts.strip_size_kb},
                           {"state", "configuring"},
                           {"raid_level", level_name(p->opts.level)},
                           {"superblock", p->opts.superblock},
                           {"num_base_bdevs", p->descs.size()},
                           {"num_base_bdevs_discovered", found},
                           {"num_base_bdevs_operational", found},
                           {"base_bdevs_list", members}});
        }
    }
    return out;
}

}  // namespace nocstor::raid
