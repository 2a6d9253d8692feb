#include "tools/nocstor_raid/report_format.h"

#include <fmt/format.h>

namespace nocstor::raid_tool {

using namespace nocstor::raid;
using nlohmann::json;

json superblock_json(const Superblock& sb) {
    json members = json::array();
    for (size_t i = 0; i < sb.members.size(); ++i) {
        const SbMember& m = sb.members[i];
        members.push_back({{"slot", i},
                           {"uuid", uuid_to_string(m.uuid)},
                           {"state", sb_member_state_name(m.state)},
                           {"data_blocks", m.data_blocks},
                           {"rebuild_offset", m.rebuild_offset},
                           {"partial_rebuild", m.partial_rebuild}});
    }
    return {{"seq", sb.seq},
            {"clean", sb.clean},
            {"name", sb.name},
            {"array_uuid", uuid_to_string(sb.array_uuid)},
            {"level", level_name(sb.level)},
            {"num_members", sb.members.size()},
            {"strip_size_kb", sb.strip_size_kb},
            {"block_size", sb.block_size},
            {"data_offset_blocks", sb.data_offset},
            {"member_blocks", sb.member_blocks},
            {"slot", sb.slot},
            {"bitmap_region_blocks", sb.bitmap_region_blocks},
            {"bitmap_regions", sb.bitmap_regions},
            {"resync_pending", sb.resync_pending},
            {"resync_offset", sb.resync_offset},
            {"members", members}};
}

json bitmap_json(const IntentBitmap& b, uint64_t data_blocks, size_t max_ranges) {
    if (!b.present()) return {{"present", false}};
    json ranges = json::array();
    for (const BlockRange& r : b.dirty_ranges(data_blocks, max_ranges))
        ranges.push_back({r.begin, r.end});
    return {{"present", true},
            {"region_blocks", b.region_blocks()},
            {"regions", b.regions()},
            {"dirty_regions", b.dirty_count()},
            {"dirty_ranges", ranges}};
}

std::string bitmap_text(const IntentBitmap& b, uint64_t data_blocks, size_t max_ranges) {
    if (!b.present()) return "none";
    std::string s = fmt::format("regions of {} blocks, {} region{}, {} dirty", b.region_blocks(),
                                b.regions(), b.regions() == 1 ? "" : "s", b.dirty_count());
    const auto ranges = b.dirty_ranges(data_blocks, max_ranges);
    if (!ranges.empty()) {
        s += ", member data blocks";
        for (const BlockRange& r : ranges) s += fmt::format(" [{}, {})", r.begin, r.end);
        if (ranges.size() == max_ranges) s += " ...";
    }
    return s;
}

json mismatch_json(const Mismatch& m, const Superblock& sb) {
    json j = {{"row", m.row},
              {"member_byte_offset", (sb.data_offset + m.row) * sb.block_size},
              {"kind", mismatch_kind_name(m.kind)},
              {"slots", m.slots},
              {"degraded", m.degraded},
              {"dirty", m.dirty},
              {"pending_resync", m.pending}};
    if (m.kind == MismatchKind::Mirror)
        j["reference_slot"] = m.reference;
    else
        j["stripe"] = m.stripe;
    if (m.suspect >= 0) j["suspect_slot"] = m.suspect;
    return j;
}

namespace {

std::string slot_list(const std::vector<uint32_t>& slots) {
    std::string s;
    for (uint32_t v : slots) s += (s.empty() ? "" : ", ") + std::to_string(v);
    return s;
}

std::string what_text(const Mismatch& m, const Superblock& sb) {
    const bool raid6 = sb.level == Level::Raid6;
    switch (m.kind) {
        case MismatchKind::Mirror:
            return fmt::format("slot{} {} differ{} from slot {}", m.slots.size() > 1 ? "s" : "",
                               slot_list(m.slots), m.slots.size() > 1 ? "" : "s", m.reference);
        case MismatchKind::P:
            if (m.degraded) return fmt::format("P (slot {}) does not match the data", m.slots[0]);
            return raid6 ? fmt::format(
                               "P (slot {}) does not match the data, Q does: the P strip "
                               "is probably wrong",
                               m.slots[0])
                         : fmt::format(
                               "P (slot {}) does not match the data (raid5 cannot tell "
                               "which strip is wrong)",
                               m.slots[0]);
        case MismatchKind::Q:
            if (m.degraded) return fmt::format("Q (slot {}) does not match the data", m.slots[0]);
            return fmt::format(
                "Q (slot {}) does not match the data, P does: the Q strip is probably wrong",
                m.slots[0]);
        case MismatchKind::PQ:
            if (m.degraded)
                return fmt::format("P (slot {}) and Q (slot {}) disagree", m.slots[0], m.slots[1]);
            return fmt::format(
                "neither P (slot {}) nor Q (slot {}) matches the data: a data "
                "strip is wrong{}",
                m.slots[0], m.slots[1],
                m.suspect >= 0 ? fmt::format(", most likely slot {}'s", m.suspect) : std::string());
    }
    return "?";
}

}  // namespace

std::string mismatch_text(const Mismatch& m, const Superblock& sb) {
    const uint64_t byte = (sb.data_offset + m.row) * sb.block_size;
    const std::string where =
        m.kind == MismatchKind::Mirror
            ? fmt::format("row {} (byte {} of each member)", m.row, byte)
            : fmt::format("row {} (stripe {}, byte {} of each member)", m.row, m.stripe, byte);
    return fmt::format("{}: {}{}{}{}", where, what_text(m, sb),
                       m.degraded ? " (checked degraded)" : "", m.dirty ? " [dirty region]" : "",
                       m.pending ? " [pending resync: expected]" : "");
}

}  // namespace nocstor::raid_tool
