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

#include <map>

namespace nocstor::raid::detail {

namespace {

struct Candidate {
    std::string bdev;
    Superblock sb;
};

// Members of one array (by UUID) found so far.
struct Assembly {
    Uuid uuid{};
    std::map<uint32_t, Candidate> found;  // by slot
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

bool slot_needed(SbMemberState s) {
    return s == SbMemberState::Online || s == SbMemberState::Rebuilding;
}

// The candidate of slot i if it is the member `best` lists there.
const Candidate* member_candidate(const Assembly& a, const Superblock& best, uint32_t i) {
    auto it = a.found.find(i);
    if (it == a.found.end() || it->second.sb.slot != i) return nullptr;
    return it->second.sb.members[i].uuid == best.members[i].uuid ? &it->second : nullptr;
}

void assemble(std::unique_ptr<Assembly> a) {
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
        return;
    }
    std::vector<BdevDesc*> descs(n, nullptr);
    std::vector<bool> stale(n, false);
    uint32_t rebuilding = kMaxMembers;
    uint64_t rebuild_from = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const Candidate* c = member_candidate(*a, best, i);
        if (!c) continue;
        const bool current =
            c->sb.seq == best.seq && best.members[i].state == SbMemberState::Online;
        const bool resuming =
            c->sb.seq == best.seq && best.members[i].state == SbMemberState::Rebuilding;
        stale[i] = !current;
        if (stale[i]) {
            // Only one member is rebuilt at a time; the others wait to be added again.
            if (rebuilding != kMaxMembers) {
                NOC_WARN("bdev",
                         "raid {}: member {} ({}) is out of date; add it again with "
                         "bdev_raid_add_base_bdev once the rebuild is done",
                         o.name, i, c->bdev);
                continue;
            }
            rebuilding = i;
            rebuild_from = resuming ? best.members[i].rebuild_offset : 0;
        }
        o.base_bdevs[i] = c->bdev;
        std::string err;
        if (open_member(o.name, i, c->bdev, &descs[i], &err) != 0) {
            NOC_ERROR("bdev", "raid {}: {}", o.name, err);
            close_members(descs);
            return;
        }
    }
    std::string err;
    auto raid = make_raid(o, std::move(descs), &best, &err);
    if (!raid) {
        NOC_ERROR("bdev", "raid {}: cannot assemble: {}", o.name, err);
        return;
    }
    RaidBdev* r = raid.get();
    for (uint32_t i = 0; i < n; ++i) {
        if (!r->member(i).desc) {
            r->member(i).state.store(best.members[i].state == SbMemberState::Failed
                                         ? MemberState::Failed
                                         : MemberState::Missing);
            if (r->member(i).name.empty()) r->member(i).name = "";
        } else if (i == rebuilding) {
            r->member(i).state.store(MemberState::Rebuilding);
        }
    }
    r->sb_seq = best.seq;
    if (r->array_state() == ArrayState::Offline) {
        NOC_ERROR("bdev", "raid {}: too few members to assemble", o.name);
        return;  // the destructor releases the members
    }
    const bool clean = best.clean;
    if (register_raid(std::move(raid), false, &err) != 0) {
        NOC_ERROR("bdev", "raid {}: {}", o.name, err);
        return;
    }
    NOC_INFO("bdev", "raid {}: assembled from superblocks (seq {}, {}){}", o.name, best.seq,
             clean ? "clean" : "not stopped cleanly: resyncing",
             rebuilding < kMaxMembers ? ", rebuilding member " + std::to_string(rebuilding) +
                                            " from block " + std::to_string(rebuild_from)
                                      : "");
    if (!clean) r->resync_pos_.store(0);  // parity is rewritten from scratch until resynced
    if (rebuilding < kMaxMembers)
        r->start_rebuild(rebuilding, rebuild_from);  // the resync follows (process_finished)
    else if (!clean)
        r->start_resync(0);
    r->save_superblocks();
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
        // A member that was away comes back: it is rebuilt into its own slot.
        if (sb.slot < r->members() && !r->member(sb.slot).desc &&
            r->member(sb.slot).uuid == sb.members[sb.slot].uuid) {
            std::string err;
            NOC_INFO("bdev", "raid {}: member {} ({}) is back, rebuilding it", r->name, sb.slot,
                     name);
            if (r->add_member(name, &err, sb.slot) != 0)
                NOC_WARN("bdev", "raid {}: cannot take {} back: {}", r->name, name, err);
        } else {
            NOC_WARN("bdev", "{}: carries a superblock of raid {} for a slot in use; ignored", name,
                     r->name);
        }
        return;
    }
    Assembly* a = nullptr;
    for (auto& x : assemblies())
        if (x->uuid == sb.array_uuid) a = x.get();
    if (!a) {
        assemblies().push_back(std::make_unique<Assembly>());
        a = assemblies().back().get();
        a->uuid = sb.array_uuid;
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
    for (size_t i = 0; i < assemblies().size(); ++i) {
        if (assemblies()[i].get() != a) continue;
        std::unique_ptr<Assembly> ready = std::move(assemblies()[i]);
        assemblies().erase(assemblies().begin() + long(i));
        assemble(std::move(ready));
        return;
    }
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
    for (const auto& b : o.base_bdevs)
        if (!bdev_get_by_name(b))
            return done(-ENODEV, "raid: base bdev " + b +
                                     " does not exist (an array with a "
                                     "superblock is created over bdevs that are all there)");
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
