// Creating arrays: checks, claims, geometry, registration, and arrays that wait for members.
#include "modules/raid/raid_internal.h"
#include "modules/raid/raid_process.h"

#include "modules/module_util.h"
#include "runtime/runtime.h"
#include "util/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace nocstor::raid {

namespace detail {

RaidModule g_module;

std::vector<std::unique_ptr<PendingRaid>>& pending() {
    static auto* v = new std::vector<std::unique_ptr<PendingRaid>>();
    return *v;
}
PendingRaid* find_pending(const std::string& name) {
    for (auto& p : pending())
        if (p->opts.name == name) return p.get();
    return nullptr;
}

RaidBdev* find_raid(const std::string& name) {
    Bdev* b = bdev_get_by_name(name);
    return b && b->module == &g_module ? static_cast<RaidBdev*>(b) : nullptr;
}

static bool power_of_two(uint64_t v) {
    return v && (v & (v - 1)) == 0;
}

RaidBdev* find_raid_by_uuid(const Uuid& uuid) {
    for (Bdev* b : bdev_list())
        if (b->module == &g_module && b->uuid == uuid) return static_cast<RaidBdev*>(b);
    return nullptr;
}

void member_event(const std::string& raid, uint32_t slot, BdevEvent ev) {
    if (ev != BdevEvent::Remove) return;
    if (RaidBdev* r = find_raid(raid)) return r->detach_member(slot);
    if (PendingRaid* p = find_pending(raid)) {
        if (BdevDesc* d = p->descs[slot]) {
            bdev_release_claim(d->bdev());
            bdev_close(d);
            p->descs[slot] = nullptr;
        }
    }
}

// Opens a member writable and claims it for the raid module.
int open_member(const std::string& raid, uint32_t slot, const std::string& base, BdevDesc** out,
                std::string* err) {
    BdevDesc* desc = nullptr;
    int rc = bdev_open(
        base, true, [raid, slot](BdevEvent ev, Bdev*) { member_event(raid, slot, ev); }, &desc);
    if (rc == -EPERM) return fail(err, -EPERM, "raid: base bdev " + base + " is already claimed");
    if (rc) return fail(err, rc, "raid: cannot open base bdev " + base + ": " + std::strerror(-rc));
    rc = bdev_claim(desc->bdev(), &g_module);
    if (rc) {
        bdev_close(desc);
        return fail(err, -EPERM, "raid: base bdev " + base + " is already claimed");
    }
    *out = desc;
    return 0;
}

void close_members(std::vector<BdevDesc*>& descs) {
    for (BdevDesc*& d : descs) {
        if (!d) continue;
        bdev_release_claim(d->bdev());
        bdev_close(d);
        d = nullptr;
    }
}

// Checks what can be checked before the members exist.
int validate(const RaidCreateOptions& o, std::string* err) {
    if (o.name.empty()) return fail(err, -EINVAL, "raid: name is required");
    if (bdev_get_by_name(o.name) || find_pending(o.name))
        return fail(err, -EEXIST, "bdev " + o.name + " already exists");
    const uint32_t n = uint32_t(o.base_bdevs.size());
    const uint32_t min_members = o.level == Level::Raid1   ? 2
                                 : o.level == Level::Raid5 ? 3
                                 : o.level == Level::Raid6 ? 4
                                                           : 1;
    if (n < min_members)
        return fail(err, -EINVAL,
                    std::string("raid: ") + level_name(o.level) + " needs at least " +
                        std::to_string(min_members) + " base bdevs, got " + std::to_string(n));
    if (n > kMaxMembers)
        return fail(err, -EINVAL, "raid: at most " + std::to_string(kMaxMembers) + " base bdevs");
    std::set<std::string> seen;
    for (const auto& b : o.base_bdevs) {
        if (b.empty()) return fail(err, -EINVAL, "raid: empty base bdev name");
        if (!seen.insert(b).second)
            return fail(err, -EINVAL, "raid: base bdev " + b + " is listed twice");
    }
    if (o.level == Level::Raid1) {
        if (o.strip_size_kb != 0)
            return fail(err, -EINVAL, "raid: raid1 has no strips (strip_size_kb must be 0)");
    } else if (!power_of_two(o.strip_size_kb) || o.strip_size_kb < 4) {
        return fail(err, -EINVAL,
                    "raid: strip_size_kb must be a power of two of at least 4, not " +
                        std::to_string(o.strip_size_kb));
    }
    if (o.bitmap_region_kb && (!power_of_two(o.bitmap_region_kb) || o.bitmap_region_kb < 64))
        return fail(err, -EINVAL,
                    "raid: bitmap_region_kb must be a power of two of at least 64, not " +
                        std::to_string(o.bitmap_region_kb));
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) return -EINVAL;
    // The members there now: not claimed by anyone else, one block size.
    uint32_t block_size = 0;
    for (const auto& b : o.base_bdevs) {
        Bdev* bd = bdev_get_by_name(b);
        if (!bd) continue;
        if (bd->claimed_by())
            return fail(
                err, -EPERM,
                "raid: base bdev " + b + " is already claimed by " + bd->claimed_by()->name());
        if (block_size && bd->block_size != block_size)
            return fail(err, -EINVAL,
                        "raid: base bdevs must have the same block size (" +
                            std::to_string(block_size) + " and " + b + ": " +
                            std::to_string(bd->block_size) + ")");
        block_size = bd->block_size;
    }
    return 0;
}

// The array object over its claimed members (null: a member missing at assembly). Geometry
// from the members, or from a superblock (`from`) when assembling. Takes the descriptors: on
// failure they are closed.
std::unique_ptr<RaidBdev> make_raid(const RaidCreateOptions& o, std::vector<BdevDesc*> descs,
                                    const Superblock* from, std::string* err) {
    const uint32_t n = uint32_t(descs.size());
    Geometry g;
    g.level = o.level;
    g.members = n;
    BdevDesc* any = nullptr;
    for (BdevDesc* d : descs) any = any ? any : d;
    g.block_size = from ? from->block_size : any->bdev()->block_size;
    auto failed = [&](std::string msg) {
        close_members(descs);
        fail(err, -EINVAL, std::move(msg));
        return nullptr;
    };
    for (BdevDesc* d : descs)
        if (d && d->bdev()->block_size != g.block_size)
            return failed("raid: base bdevs must have the same block size");
    // An array runs on the cluster of its (first) member. Members owned by other clusters still
    // work in the one-process mode, but their I/O then crosses clusters outside the NoC: stack
    // remote bdevs (bdev_remote_create) under the array for a share-nothing volume.
    for (BdevDesc* d : descs) {
        if (d && d->bdev()->cluster != any->bdev()->cluster)
            NOC_WARN("bdev",
                     "raid {}: member {} is owned by cluster {}, {} by cluster {}; the array "
                     "runs on cluster {} (reach other clusters' bdevs with bdev_remote_create)",
                     o.name, d->bdev()->name, d->bdev()->cluster, any->bdev()->name,
                     any->bdev()->cluster, any->bdev()->cluster);
    }
    if (std::string why; bdev_check_same_cluster(any->bdev(), "raid", &why)) return failed(why);
    const uint64_t strip_bytes = uint64_t(o.strip_size_kb) * 1024;
    if (o.level != Level::Raid1 && strip_bytes < g.block_size)
        return failed("raid: the strip is smaller than a block");
    g.strip_blocks = strip_bytes / g.block_size;
    if (from) {
        g.data_offset = from->data_offset;
        g.member_blocks = from->member_blocks;
        if (o.level == Level::Concat)
            for (const auto& m : from->members) g.concat_blocks.push_back(m.data_blocks);
        for (BdevDesc* d : descs)
            if (d && d->bdev()->num_blocks < g.data_offset + g.member_blocks)
                return failed("raid: base bdev " + d->bdev()->name +
                              " is smaller than its superblock says");
    } else {
        g.data_offset = o.superblock ? kMetadataBytes / g.block_size : 0;
        uint64_t min_blocks = UINT64_MAX;
        for (BdevDesc* d : descs) {
            const Bdev* b = d->bdev();
            uint64_t usable = b->num_blocks > g.data_offset ? b->num_blocks - g.data_offset : 0;
            if (g.strip_blocks) usable -= usable % g.strip_blocks;
            if (usable == 0) return failed("raid: base bdev " + b->name + " is too small");
            g.concat_blocks.push_back(usable);
            min_blocks = std::min(min_blocks, usable);
        }
        if (o.level != Level::Concat) {
            g.member_blocks = min_blocks;
            g.concat_blocks.clear();
        }
    }
    Uuid uuid{};
    if (from)
        uuid = from->array_uuid;
    else if (!parse_optional_uuid(o.uuid, &uuid, nullptr) || uuid == Uuid{})
        uuid = uuid_generate_random();
    auto raid = std::make_unique<RaidBdev>(o.name, g);
    raid->cluster = any->bdev()->cluster;
    raid->strip_size_kb = o.strip_size_kb;
    raid->superblock = o.superblock;
    raid->block_size = g.block_size;
    raid->num_blocks = g.num_blocks();
    raid->uuid = uuid;
    raid->write_cache = false;
    for (BdevDesc* d : descs) {
        if (!d) continue;
        raid->write_cache = raid->write_cache || d->bdev()->write_cache;
        raid->required_alignment =
            std::max(raid->required_alignment, d->bdev()->required_alignment);
    }
    // Each I/O the layer hands us stays in one strip (raid0, concat: one member), one stripe
    // (raid5/6: one parity computation) or one raid1 lock unit.
    if (g.level == Level::Raid0 || g.level == Level::Concat)
        raid->optimal_io_boundary = uint32_t(g.strip_blocks);
    else if (g.parity())
        raid->optimal_io_boundary = uint32_t(g.stripe_data_blocks());
    else
        raid->optimal_io_boundary = uint32_t(RaidBdev::kMirrorUnitBlocks);
    // A member's piece carries at most MemberIo::kIovs iovecs (guest pages from vhost can be
    // many more): the layer splits such I/O first.
    raid->max_num_segments = MemberIo::kIovs;
    if (Runtime* rt = Runtime::instance()) {
        std::vector<Thread*> owners = rt->data_threads();
        if (owners.empty()) owners.push_back(rt->control_thread());
        raid->set_owner_threads(std::move(owners));
    } else {
        raid->set_owner_threads({Thread::current()});
    }
    if (o.superblock && g.tolerance() > 0) {
        // The write-intent bitmap: regions are whole lock units.
        const uint64_t unit = raid->unit_blocks();
        uint64_t region_blocks = 0, regions = 0;
        if (from) {
            region_blocks = from->bitmap_region_blocks;
            regions = from->bitmap_regions;
            const bool fits = region_blocks && region_blocks % unit == 0 &&
                              regions * region_blocks >= g.member_blocks &&
                              (regions + 7) / 8 <= kMetadataBytes - kBitmapOffset;
            if (region_blocks && !fits) {
                NOC_WARN("bdev", "raid {}: the superblock's bitmap geometry is invalid; no bitmap",
                         o.name);
                region_blocks = 0;
            }
        } else {
            bitmap_geometry(g.member_blocks, g.block_size, unit,
                            uint64_t(o.bitmap_region_kb) * 1024, &region_blocks, &regions);
        }
        if (region_blocks) raid->set_bitmap(region_blocks, regions);
    }
    for (uint32_t i = 0; i < n; ++i) {
        if (descs[i]) {
            raid->adopt_member(i, o.base_bdevs[i], descs[i]);
        } else {
            raid->member(i).name = o.base_bdevs[i];
            raid->member(i).state.store(MemberState::Missing);
        }
        if (from) raid->member(i).uuid = from->members[i].uuid;
        if (!from) raid->member(i).uuid = uuid_generate_random();
    }
    return raid;
}

// Registers a built array; a new one starts its initial resync.
int register_raid(std::unique_ptr<RaidBdev> raid, bool initial_resync, std::string* err) {
    RaidBdev* r = raid.get();
    const std::string name = raid->name;
    const Geometry g = raid->geometry();
    const uint32_t strip_kb = raid->strip_size_kb;
    int rc = bdev_register(std::move(raid));  // on failure its destructor closes the members
    if (rc) return fail(err, rc, "raid: cannot register " + name + ": " + std::strerror(-rc));
    NOC_INFO("bdev", "raid {}: {} over {} members, strip {} KiB, {} blocks of {} B{}", name,
             level_name(g.level), g.members, strip_kb, g.num_blocks(), g.block_size,
             r->superblock ? ", superblock" : "");
    // The members may hold anything: make the redundancy match before trusting it. Writes in
    // the part not resynced yet compute their parity from scratch.
    if (r->bitmap()) r->bitmap()->start(process_options().bitmap_clear_interval_ms);
    if (initial_resync) r->start_initial_resync();
    return 0;
}

int build(const RaidCreateOptions& o, std::vector<BdevDesc*> descs, std::string* err) {
    auto raid = make_raid(o, std::move(descs), nullptr, err);
    if (!raid) return -EINVAL;
    return register_raid(std::move(raid), true, err);
}

}  // namespace detail

using namespace detail;

int raid_create(const RaidCreateOptions& o, std::string* err) {
    if (o.superblock)
        return fail(err, -EINVAL, "raid: an array with a superblock is created asynchronously");
    int rc = validate(o, err);
    if (rc) return rc;
    std::vector<BdevDesc*> descs(o.base_bdevs.size(), nullptr);
    std::vector<std::string> missing;
    for (uint32_t i = 0; i < descs.size(); ++i) {
        if (!bdev_get_by_name(o.base_bdevs[i])) {
            missing.push_back(o.base_bdevs[i]);
            continue;
        }
        rc = open_member(o.name, i, o.base_bdevs[i], &descs[i], err);
        if (rc) {
            close_members(descs);
            return rc;
        }
    }
    if (missing.empty()) return build(o, std::move(descs), err);
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    NOC_INFO("bdev", "raid {}: configuring, waiting for base bdev(s) {}", o.name, list);
    auto p = std::make_unique<PendingRaid>();
    p->opts = o;
    p->descs = std::move(descs);
    pending().push_back(std::move(p));
    return 0;
}

void raid_create_async(const RaidCreateOptions& o, std::function<void(int, std::string)> done) {
    if (o.superblock) return create_with_superblock(o, std::move(done));
    std::string err;
    const int rc = raid_create(o, &err);
    done(rc, err);
}

void detail::RaidModule::examine(Bdev* b) {
    // Superblocks first: a bdev that carries one belongs to that array.
    examine_superblock(b);
    for (size_t i = 0; i < pending().size(); ++i) {
        PendingRaid* p = pending()[i].get();
        for (uint32_t slot = 0; slot < p->descs.size(); ++slot) {
            if (p->descs[slot] || p->opts.base_bdevs[slot] != b->name) continue;
            std::string err;
            if (open_member(p->opts.name, slot, b->name, &p->descs[slot], &err) != 0) {
                NOC_WARN("bdev", "raid {}: {}", p->opts.name, err);
                return;
            }
            NOC_INFO("bdev", "raid {}: base bdev {} appeared", p->opts.name, b->name);
        }
        if (std::find(p->descs.begin(), p->descs.end(), nullptr) != p->descs.end()) continue;
        std::unique_ptr<PendingRaid> done = std::move(pending()[i]);
        pending().erase(pending().begin() + long(i));
        std::string err;
        if (build(done->opts, std::move(done->descs), &err) != 0)
            NOC_ERROR("bdev", "raid {}: cannot assemble: {}", done->opts.name, err);
        return;
    }
}

void detail::RaidModule::write_config_json(nlohmann::json& calls) const {
    calls.push_back({{"method", "bdev_raid_set_options"}, {"params", raid_process_options_json()}});
    for (const auto& p : pending()) {
        calls.push_back({{"method", "bdev_raid_create"},
                         {"params",
                          {{"name", p->opts.name},
                           {"raid_level", level_name(p->opts.level)},
                           {"strip_size_kb", p->opts.strip_size_kb},
                           {"base_bdevs", p->opts.base_bdevs},
                           {"superblock", p->opts.superblock}}}});
        if (!p->opts.uuid.empty()) calls.back()["params"]["uuid"] = p->opts.uuid;
    }
}

}  // namespace nocstor::raid
