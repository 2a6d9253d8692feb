#include "tools/nocstor_raid/array_group.h"

#include <fmt/format.h>

namespace nocstor::raid_tool {

using namespace nocstor::raid;

const char* file_role_name(FileRole r) {
    switch (r) {
        case FileRole::Current:
            return "current";
        case FileRole::Stale:
            return "stale";
        case FileRole::Replaced:
            return "replaced";
        case FileRole::Conflict:
            return "conflict";
    }
    return "?";
}

namespace {

const Uuid& own_uuid(const Superblock& sb) {
    return sb.members[sb.slot].uuid;
}

// Two superblocks of the same seq describe the same array (all but the slot).
bool same_description(const Superblock& a, const Superblock& b) {
    if (a.clean != b.clean || a.name != b.name || a.level != b.level ||
        a.strip_size_kb != b.strip_size_kb || a.block_size != b.block_size ||
        a.data_offset != b.data_offset || a.member_blocks != b.member_blocks ||
        a.bitmap_region_blocks != b.bitmap_region_blocks || a.bitmap_regions != b.bitmap_regions ||
        a.resync_pending != b.resync_pending || a.resync_offset != b.resync_offset ||
        a.members.size() != b.members.size())
        return false;
    for (size_t i = 0; i < a.members.size(); ++i) {
        const SbMember &x = a.members[i], &y = b.members[i];
        if (x.uuid != y.uuid || x.state != y.state || x.data_blocks != y.data_blocks ||
            x.rebuild_offset != y.rebuild_offset || x.partial_rebuild != y.partial_rebuild)
            return false;
    }
    return true;
}

// Rows of the member in this slot that hold valid data, per the newest superblock.
uint64_t trusted_rows(const SbMember& e, uint64_t data_blocks) {
    switch (e.state) {
        case SbMemberState::Online:
            return data_blocks;
        case SbMemberState::Rebuilding:
            return std::min(e.rebuild_offset, data_blocks);
        default:
            return 0;
    }
}

void judge(ArrayGroup& g) {
    const Superblock& best = g.sb();
    const uint32_t n = uint32_t(best.members.size());
    for (uint32_t i = 0; i < n; ++i) g.slots.push_back({i, best.members[i], nullptr, 0});

    std::vector<bool> slot_given(n, false);  // a file of this slot's member, current or not
    for (GroupFile& f : g.files) {
        const MemberInfo& m = *f.info;
        const Superblock& sb = *m.sb();
        if (sb.slot >= n || own_uuid(sb) != best.members[sb.slot].uuid) {
            f.role = FileRole::Replaced;
            g.problems.push_back(fmt::format(
                "{}: claims slot {}, which the newest superblock gives to member {}", m.path,
                sb.slot, sb.slot < n ? uuid_to_string(best.members[sb.slot].uuid) : "(none)"));
            continue;
        }
        slot_given[sb.slot] = true;
        if (sb.seq < best.seq) {
            f.role = FileRole::Stale;
            const bool redundant = best.level != Level::Raid0 && best.level != Level::Concat;
            g.problems.push_back(fmt::format(
                "{}: stale: superblock seq {}, the array is at seq {} (slot {} missed updates; {})",
                m.path, sb.seq, best.seq, sb.slot,
                redundant ? "the daemon rebuilds it instead of trusting it"
                          : "without redundancy the daemon cannot rebuild it and does not "
                            "assemble the array"));
            continue;
        }
        if (!same_description(sb, best))
            g.problems.push_back(fmt::format(
                "{} and {} both have seq {} but describe the array differently (split brain?)",
                m.path, g.newest->path, sb.seq));
        SlotView& s = g.slots[sb.slot];
        if (s.file) {
            f.role = FileRole::Conflict;
            g.problems.push_back(
                fmt::format("{} and {} both claim slot {}", s.file->path, m.path, sb.slot));
            continue;
        }
        s.file = &m;
        if (const std::string p = m.size_problem(); !p.empty()) {
            g.problems.push_back(fmt::format("{}: {}", m.path, p));
            continue;  // its data is not read
        }
        s.readable_rows = trusted_rows(s.entry, m.data_blocks());
        // A member that came back is rebuilt only where it missed writes (bits are not cleared
        // while it is away or rebuilding).
        s.outside_dirty = s.entry.state == SbMemberState::Rebuilding && s.entry.partial_rebuild &&
                          best.bitmap_region_blocks != 0;
        if (!m.bitmap_error.empty())
            g.problems.push_back(
                fmt::format("{}: write-intent bitmap: {}", m.path, m.bitmap_error));
    }

    for (const SlotView& s : g.slots) {
        const char* state = sb_member_state_name(s.entry.state);
        const SbMemberState st = s.entry.state;
        if (st == SbMemberState::Online && !s.file && !slot_given[s.slot])
            g.problems.push_back(fmt::format("slot {} (member {}, {}) is not among the files given",
                                             s.slot, uuid_to_string(s.entry.uuid), state));
        if (st == SbMemberState::Failed || st == SbMemberState::Missing)
            g.notes.push_back(
                fmt::format("slot {} is {} in the superblock: the array runs without it (degraded)",
                            s.slot, state));
        if (st == SbMemberState::Rebuilding && s.entry.partial_rebuild)
            g.notes.push_back(fmt::format(
                "slot {} is being rebuilt where it missed writes: its data is valid below block "
                "{} (rebuild_offset) and in the regions the bitmap marks clean",
                s.slot, s.entry.rebuild_offset));
        else if (st == SbMemberState::Rebuilding)
            g.notes.push_back(fmt::format(
                "slot {} is being rebuilt: only its first {} blocks hold data (rebuild_offset)",
                s.slot, s.entry.rebuild_offset));
        if (st == SbMemberState::Rebuilding && !s.file)
            g.notes.push_back(
                fmt::format("slot {} is not among the files given: not read", s.slot));
    }
    if (!best.clean)
        g.notes.push_back(fmt::format(
            "the array was not stopped cleanly (or is running): writes may have been in flight; "
            "the daemon resyncs {} at the next assembly",
            best.bitmap_region_blocks ? "the regions its write-intent bitmap marks dirty"
                                      : "the whole array (no write-intent bitmap)"));
    if (best.resync_pending)
        g.notes.push_back(fmt::format(
            "a whole-array resync (the initial one) is unfinished: rows from block {} on are not "
            "resynced yet; the daemon goes on from there at its next start",
            best.resync_offset));

    // The bitmap is the same on every writable member; a crash may leave one a step behind, so
    // the union counts.
    bool first = true;
    for (const SlotView& s : g.slots) {
        if (!s.file || !s.file->bitmap.present()) continue;
        if (!first && !g.dirty.same_bits(s.file->bitmap)) g.bitmaps_differ = true;
        g.dirty.merge(s.file->bitmap);
        first = false;
    }
    if (g.bitmaps_differ)
        g.notes.push_back("the members' write-intent bitmaps differ (their union counts as dirty)");
}

}  // namespace

std::vector<ArrayGroup> group_arrays(const std::vector<MemberInfo>& members) {
    std::vector<ArrayGroup> groups;
    for (const MemberInfo& m : members) {
        if (!m.sb()) continue;
        ArrayGroup* g = nullptr;
        for (ArrayGroup& x : groups)
            if (x.sb().array_uuid == m.sb()->array_uuid) g = &x;
        if (!g) {
            groups.emplace_back();
            g = &groups.back();
            g->newest = &m;
        }
        g->files.push_back({&m, FileRole::Current});
        if (m.sb()->seq > g->sb().seq) g->newest = &m;
    }
    for (ArrayGroup& g : groups) judge(g);
    return groups;
}

}  // namespace nocstor::raid_tool
