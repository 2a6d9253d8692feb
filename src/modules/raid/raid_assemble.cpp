// Arrays with superblocks: creation (every member gets the superblock before the array is used)
// and assembly from the superblocks found on bdevs as they appear (examine). The newest copy
// (highest seq) describes the array; the array is built once every member it lists as online or
// rebuilding is there; a member whose superblock is older missed updates and is rebuilt, not
// trusted; after an unclean stop the redundancy is resynced.
#include "modules/raid/raid_internal.h"
#include "modules/raid/raid_sb_io.h"

#include "modules/module_util.h"
#include "util/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace nocstor::raid::detail {

namespace {

struct Candidate {
    std::string bdev;
    Superblock sb;
};

// Members of one array (by UUID) found so far.
// One per cluster: an array assembles from members of one cluster only, so that the same data
// seen from two clusters (an lvol on its data cluster and a remote bdev towards it on the front
// end) assembles where all of its members are, not across clusters.
struct Assembly {
    Uuid uuid{};
    int cluster = 0;
    std::map<uint32_t, Candidate> found;  // by slot
    bool building = false;                // its bitmap is being read
    std::vector<std::string> late;        // members that showed up meanwhile
};

std::vector<std::unique_ptr<Assembly>>& assemblies() {
    static auto* v = new std::vector<std::unique_ptr<Assembly>>();
    return *v;
}

const Superblock& newest(const Assembly& a) {
    const Superblock* best = nullptr;
    for (const auto& [slot, c] : a.found)
        if (!best || c.sb.seq > best->seq) best = &c.sb;
    return *best;
}

// The array waits for its online members; one being rebuilt is not needed (it may not even
// carry the superblock that names it yet) and is taken back when it shows up.
bool slot_needed(SbMemberState s) {
    return s == SbMemberState::Online;
}

// The candidate of slot i if it is the member `best` lists there.
const Candidate* member_candidate(const Assembly& a, const Superblock& best, uint32_t i) {
    auto it = a.found.find(i);
    if (it == a.found.end() || it->second.sb.slot != i) return nullptr;
    return it->second.sb.members[i].uuid == best.members[i].uuid ? &it->second : nullptr;
}

// How an assembled array gets whole again.
struct AssemblyPlan {
    uint32_t rebuilding = kMaxMembers;  // the one stale member rebuilt now
    uint64_t rebuild_from = 0;
    bool partial = false;  // only the regions whose bitmap bit is set
};

void drop_assembly(const Assembly* a) {
    auto& v = assemblies();
    v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& x) { return x.get() == a; }),
            v.end());
}

// The array is there: the other clusters' views of its members need no assembly any more.
void drop_array_assemblies(const Uuid& uuid) {
    auto& v = assemblies();
    v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& x) { return x->uuid == uuid; }),
            v.end());
}

// The bitmap is in (bits, or null if it could not be read): register the array and start what
// it needs.
void finish_assembly(const Assembly* a, std::unique_ptr<RaidBdev> raid, const Superblock& best,
                     const AssemblyPlan& plan, const uint8_t* bits) {
    const std::vector<std::string> late = a->late;
    drop_array_assemblies(a->uuid);
    RaidBdev* r = raid.get();
    WriteIntentBitmap* bm = r->bitmap();
    if (bm && bits) {
        bm->load(bits);
    } else if (bm) {
        NOC_WARN("bdev",
                 "raid {}: cannot read the write-intent bitmap; every region counts as "
                 "written",
                 best.name);
        std::vector<uint8_t> all(bitmap_bytes(bm->regions(), 1), 0xFF);
        bm->load(all.data());
    }
    // A crash: the regions that may have been written are resynced (all of them without a
    // bitmap). An unfinished whole-array resync goes on where the superblock says.
    const bool resync = !best.clean || best.resync_pending;
    if (resync) {
        const uint64_t from = best.resync_pending && (best.clean || bm) ? best.resync_offset : 0;
        if (!best.clean && bm) bm->dirty(r->resync_set());
        r->plan_resync(from, best.resync_pending || !bm);
    }
    const std::string name = best.name;
    std::string err;
    if (register_raid(std::move(raid), false, &err) != 0) {
        NOC_ERROR("bdev", "raid {}: {}", name, err);
        return;
    }
    NOC_INFO("bdev", "raid {}: assembled from superblocks (seq {}, {}){}{}", name, best.seq,
             best.clean ? "clean" : "not stopped cleanly",
             resync ? bm ? ", resyncing " + std::to_string(r->resync_set()->count()) + " of " +
                               std::to_string(bm->regions()) + " regions"
                         : ", resyncing"
                    : "",
             plan.rebuilding < kMaxMembers
                 ? ", rebuilding member " + std::to_string(plan.rebuilding) +
                       (plan.partial ? " (regions written while it was away)" : "") +
                       " from block " + std::to_string(plan.rebuild_from)
                 : "");
    if (plan.rebuilding < kMaxMembers)
        r->start_rebuild(plan.rebuilding, plan.rebuild_from, plan.partial);  // resync follows
    else
        r->start_planned_resync();
    r->save_superblocks();
    // Members that arrived during the assembly are looked at again: they join the array now.
    for (const std::string& m : late)
        if (Bdev* b = bdev_get_by_name(m); b && !b->claimed_by()) examine_superblock(b);
}

void assemble(Assembly* a) {
    const Superblock best = newest(*a);
    const uint32_t n = uint32_t(best.members.size());
    RaidCreateOptions o;
    o.name = best.name;
    o.level = best.level;
    o.strip_size_kb = best.strip_size_kb;
    o.superblock = true;
    o.base_bdevs.assign(n, "");
    if (bdev_get_by_name(o.name)) {
        NOC_ERROR("bdev", "raid {}: a bdev of that name exists; array {} not assembled", o.name,
                  uuid_to_string(best.array_uuid));
        return drop_assembly(a);
    }
    std::vector<BdevDesc*> descs(n, nullptr);
    std::vector<bool> stale(n, false);
    AssemblyPlan plan;
    for (const auto& [slot, c] : a->found) {
        if (!member_candidate(*a, best, slot))
            NOC_WARN("bdev",
                     "raid {}: {} carries an older superblock for slot {}, which another member "
                     "has now; not used (bdev_raid_add_base_bdev takes it as a new member)",
                     o.name, c.bdev, slot);
    }
    for (uint32_t i = 0; i < n; ++i) {
        const Candidate* c = member_candidate(*a, best, i);
        if (!c) continue;
        // A member that missed only the last superblock update (a crash while it was written to
        // every member) and was online before and after it missed no data write: writes are
        // not acknowledged until a member's failure is on disk. Without redundancy there is
        // nothing to rebuild from anyway: such a member is used as it is.
        const bool missed_last_update =
            c->sb.seq + 1 == best.seq && c->sb.members[i].state == SbMemberState::Online;
        const bool current = (c->sb.seq == best.seq || missed_last_update ||
                              best.level == Level::Raid0 || best.level == Level::Concat) &&
                             best.members[i].state == SbMemberState::Online;
        const bool resuming =
            c->sb.seq == best.seq && best.members[i].state == SbMemberState::Rebuilding;
        stale[i] = !current;
        if (stale[i]) {
            // Only one member is rebuilt at a time; the others wait to be added again.
            if (plan.rebuilding != kMaxMembers) {
                NOC_WARN("bdev",
                         "raid {}: member {} ({}) is out of date; add it again with "
                         "bdev_raid_add_base_bdev once the rebuild is done",
                         o.name, i, c->bdev);
                continue;
            }
            plan.rebuilding = i;
            plan.rebuild_from = resuming ? best.members[i].rebuild_offset : 0;
            // A member that left while whole holds everything but what was written since
            // (those regions' bits are still set: nothing is cleared while one is away).
            plan.partial = resuming ? best.members[i].partial_rebuild
                                    : c->sb.members[i].state == SbMemberState::Online;
        }
        o.base_bdevs[i] = c->bdev;
        std::string err;
        if (open_member(o.name, i, c->bdev, &descs[i], &err) != 0) {
            NOC_ERROR("bdev", "raid {}: {}", o.name, err);
            close_members(descs);
            return drop_assembly(a);
        }
    }
    std::string err;
    auto raid = make_raid(o, std::move(descs), &best, &err);
    if (!raid) {
        NOC_ERROR("bdev", "raid {}: cannot assemble: {}", o.name, err);
        return drop_assembly(a);
    }
    RaidBdev* r = raid.get();
    uint32_t untrusted = 0;
    for (uint32_t i = 0; i < n; ++i) {
        if (best.members[i].state != SbMemberState::Online) untrusted |= 1u << i;
        if (!r->member(i).desc) {
            r->member(i).state.store(best.members[i].state == SbMemberState::Failed
                                         ? MemberState::Failed
                                         : MemberState::Missing);
        } else if (i == plan.rebuilding) {
            r->member(i).state.store(MemberState::Rebuilding);
        }
    }
    r->set_recorded_untrusted(untrusted);
    r->sb_seq = best.seq;
    if (r->array_state() == ArrayState::Offline) {
        NOC_ERROR("bdev", "raid {}: too few members to assemble", o.name);
        return drop_assembly(a);  // the destructor releases the members
    }
    if (!plan.partial || !r->bitmap()) plan.partial = false;
    WriteIntentBitmap* bm = r->bitmap();
    uint32_t source = kMaxMembers;  // a member whose bitmap is current
    for (uint32_t i = 0; i < n && bm; ++i)
        if (r->member(i).desc && !stale[i] && source == kMaxMembers) source = i;
    if (!bm || source == kMaxMembers)
        return finish_assembly(a, std::move(raid), best, plan, nullptr);
    a->building = true;  // members that show up meanwhile wait for the array
    bdev_examine_begin();
    auto holder = std::make_shared<std::unique_ptr<RaidBdev>>(std::move(raid));
    meta_read(r->member(source).desc, kBitmapOffset, bitmap_bytes(bm->regions(), 1),
              [a, holder, best, plan](int rc, const uint8_t* bits) {
                  finish_assembly(a, std::move(*holder), best, plan, rc == 0 ? bits : nullptr);
                  bdev_examine_end();
              });
}

void on_superblock(const std::string& name, const SbReadResult& res) {
    if (!res.found) {
        if (res.damaged)
            NOC_WARN("bdev",
                     "{}: a raid superblock is there but damaged (both copies); not "
                     "assembled",
                     name);
        return;
    }
    Bdev* b = bdev_get_by_name(name);
    if (!b || b->claimed_by()) return;
    const Superblock& sb = res.sb;
    if (sb.block_size != b->block_size) {
        NOC_WARN("bdev", "{}: raid superblock of {} for {} B blocks, the bdev has {} B", name,
                 sb.name, sb.block_size, b->block_size);
        return;
    }
    if (RaidBdev* r = find_raid_by_uuid(sb.array_uuid)) {
        if (b->cluster != r->cluster) return;  // the member as another cluster sees it
        // A member that was away comes back: it is rebuilt into its own slot.
        if (sb.slot < r->members() && !r->member(sb.slot).desc &&
            r->member(sb.slot).uuid == sb.members[sb.slot].uuid) {
            std::string err;
            // It left while whole: only what was written since is rebuilt.
            const bool partial = r->bitmap() && sb.members[sb.slot].state == SbMemberState::Online;
            NOC_INFO("bdev", "raid {}: member {} ({}) is back, rebuilding {}", r->name, sb.slot,
                     name, partial ? "the regions written while it was away" : "it");
            if (r->add_member(name, &err, sb.slot, partial) != 0)
                NOC_WARN("bdev", "raid {}: cannot take {} back: {}", r->name, name, err);
        } else {
            NOC_WARN("bdev", "{}: carries a superblock of raid {} for a slot in use; ignored", name,
                     r->name);
        }
        return;
    }
    Assembly* a = nullptr;
    for (auto& x : assemblies())
        if (x->uuid == sb.array_uuid && x->cluster == b->cluster) a = x.get();
    if (a && a->building) {
        a->late.push_back(name);  // looked at again once the array is there
        return;
    }
    if (!a) {
        assemblies().push_back(std::make_unique<Assembly>());
        a = assemblies().back().get();
        a->uuid = sb.array_uuid;
        a->cluster = b->cluster;
    }
    auto it = a->found.find(sb.slot);
    if (it == a->found.end() || it->second.sb.seq < sb.seq) a->found[sb.slot] = {name, sb};
    const Superblock& best = newest(*a);
    for (uint32_t i = 0; i < best.members.size(); ++i) {
        if (slot_needed(best.members[i].state) && !member_candidate(*a, best, i)) {
            NOC_INFO("bdev", "raid {}: found {} (slot {}), waiting for more members", best.name,
                     name, sb.slot);
            return;
        }
    }
    assemble(a);
}

}  // namespace

void examine_superblock(Bdev* b) {
    bdev_examine_begin();
    const std::string name = b->name;
    sb_read(name, [name](SbReadResult res) {
        on_superblock(name, res);
        bdev_examine_end();
    });
}

void assembly_list(const std::string& category, nlohmann::json* out) {
    if (category != "all" && category != "configuring") return;
    for (const auto& a : assemblies()) {
        const Superblock& best = newest(*a);
        nlohmann::json members = nlohmann::json::array();
        uint32_t found = 0;
        for (uint32_t i = 0; i < best.members.size(); ++i) {
            const Candidate* c = member_candidate(*a, best, i);
            found += c != nullptr;
            members.push_back({{"name", c ? c->bdev : ""},
                               {"slot", i},
                               {"state", c ? "online" : "missing"},
                               {"is_configured", c != nullptr}});
        }
        out->push_back({{"name", best.name},
                        {"uuid", uuid_to_string(best.array_uuid)},
                        {"strip_size_kb", best.strip_size_kb},
                        {"state", "configuring"},
                        {"raid_level", level_name(best.level)},
                        {"superblock", true},
                        {"num_base_bdevs", best.members.size()},
                        {"num_base_bdevs_discovered", found},
                        {"num_base_bdevs_operational", found},
                        {"base_bdevs_list", members}});
    }
}

void create_with_superblock(const RaidCreateOptions& o,
                            std::function<void(int, std::string)> done) {
    std::string err;
    if (int rc = validate(o, &err)) return done(rc, err);
    for (const auto& b : o.base_bdevs) {
        const Bdev* bd = bdev_get_by_name(b);
        if (!bd)
            return done(-ENODEV, "raid: base bdev " + b +
                                     " does not exist (an array with a "
                                     "superblock is created over bdevs that are all there)");
        if (bd->block_size > kSbBytes)
            return done(-EINVAL, "raid: base bdev " + b + " has " + std::to_string(bd->block_size) +
                                     " B blocks; a superblock needs blocks of at most 4096 B");
    }
    // No member may belong to another array: read every superblock area first.
    struct Check {
        RaidCreateOptions o;
        size_t next = 0;
        std::function<void(int, std::string)> done;
    };
    auto st = std::make_shared<Check>(Check{o, 0, std::move(done)});
    auto step = std::make_shared<std::function<void()>>();
    *step = [st, step] {
        if (st->next < st->o.base_bdevs.size()) {
            const std::string b = st->o.base_bdevs[st->next++];
            sb_read(b, [st, step, b](SbReadResult res) {
                if (res.found) {
                    auto d = std::move(st->done);
                    *step = nullptr;
                    return d(-EEXIST, "raid: base bdev " + b + " belongs to raid " + res.sb.name +
                                          " (" + uuid_to_string(res.sb.array_uuid) +
                                          "); delete it with clear_sb first");
                }
                (*step)();
            });
            return;
        }
        auto finish = [st, step](int rc, std::string e) {
            auto d = std::move(st->done);
            *step = nullptr;
            d(rc, std::move(e));
        };
        const RaidCreateOptions& o = st->o;
        std::string err;
        std::vector<BdevDesc*> descs(o.base_bdevs.size(), nullptr);
        for (uint32_t i = 0; i < descs.size(); ++i) {
            if (int rc = open_member(o.name, i, o.base_bdevs[i], &descs[i], &err)) {
                close_members(descs);
                return finish(rc, err);
            }
        }
        auto raid = make_raid(o, descs, nullptr, &err);
        if (!raid) return finish(-EINVAL, err);
        // Zero the metadata area (no old bitmap bits), then the superblocks: the array exists
        // on disk before anything is written to it.
        std::vector<SbTarget> targets;
        for (uint32_t i = 0; i < descs.size(); ++i) targets.push_back({i, raid->member(i).desc});
        auto holder = std::make_shared<std::unique_ptr<RaidBdev>>(std::move(raid));
        sb_clear(targets, [holder, targets, finish](uint32_t failed) {
            if (failed) return finish(-EIO, "raid: cannot write the members' metadata area");
            RaidBdev* r = holder->get();
            r->sb_seq = 1;
            sb_write(targets, r->make_superblock(false), [holder, finish](uint32_t failed) {
                if (failed) return finish(-EIO, "raid: cannot write the superblocks");
                std::string err;
                int rc = register_raid(std::move(*holder), true, &err);
                finish(rc, err);
            });
        });
    };
    (*step)();
}

}  // namespace nocstor::raid::detail
