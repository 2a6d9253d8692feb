// nocstor-raid check: the metadata of each array the members belong to, then its redundancy.
#include "tools/nocstor_raid/array_group.h"
#include "tools/nocstor_raid/commands.h"
#include "tools/nocstor_raid/report_format.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

namespace nocstor::raid_tool {

using namespace nocstor::raid;
using nlohmann::json;

namespace {

constexpr size_t kMaxRanges = 8;

// Member data blocks the bitmap covers (concat: the largest member).
uint64_t bitmap_rows(const Superblock& sb) {
    if (sb.level != Level::Concat) return sb.member_blocks;
    uint64_t n = 0;
    for (const SbMember& m : sb.members) n = std::max(n, m.data_blocks);
    return n;
}

struct DataReport {
    bool checked = false;
    std::string reason;  // why not checked
    CheckResult result;
    std::vector<std::string> notes;
};

// A sentence on mismatches in rows the daemon resyncs anyway at its next start (writes that
// were in flight at an unclean stop, or a whole-array resync not finished).
std::string pending_verdict(const CheckResult& r) {
    if (r.mismatches_pending == 0) return "";
    if (r.mismatches_pending == r.mismatches)
        return "every mismatch lies in rows the daemon resyncs at its next start (writes in "
               "flight at an unclean stop, or a resync not finished): expected";
    return fmt::format(
        "{} of the {} mismatches lie in rows the daemon resyncs at its next start (expected); "
        "the other {} do not: damage",
        r.mismatches_pending, r.mismatches, r.mismatches - r.mismatches_pending);
}

DataReport check_data(const ArrayGroup& g, const CheckOptions& opts) {
    DataReport d;
    const Superblock& sb = g.sb();
    if (sb.level == Level::Raid0 || sb.level == Level::Concat) {
        d.reason =
            fmt::format("{} has no redundancy: only the metadata is checked", level_name(sb.level));
        return d;
    }
    std::vector<DataSource> sources;
    for (const SlotView& s : g.slots)
        if (s.file && (s.readable_rows || s.outside_dirty))
            sources.push_back({s.slot, s.file->file.get(), s.readable_rows, s.outside_dirty});
    d.checked = true;
    if (!check_redundancy(sb, sources, g.dirty, opts, &d.result)) return d;
    const CheckResult& r = d.result;
    if (r.rows_unchecked)
        d.notes.push_back(
            fmt::format("{} rows not checked: too few readable members there ({} needs {})",
                        r.rows_unchecked, level_name(sb.level),
                        sb.level == Level::Raid1   ? "two copies"
                        : sb.level == Level::Raid5 ? "every member"
                                                   : "all members but one"));
    if (const std::string v = pending_verdict(r); !v.empty()) d.notes.push_back(v);
    return d;
}

bool consistent(const ArrayGroup& g, const DataReport& d) {
    return g.problems.empty() && d.result.error.empty() && d.result.mismatches == 0;
}

json array_json(const ArrayGroup& g, const DataReport& d) {
    const Superblock& sb = g.sb();
    json slots = json::array();
    for (const SlotView& s : g.slots)
        slots.push_back({{"slot", s.slot},
                         {"uuid", uuid_to_string(s.entry.uuid)},
                         {"state", sb_member_state_name(s.entry.state)},
                         {"rebuild_offset", s.entry.rebuild_offset},
                         {"file", s.file ? json(s.file->path) : json(nullptr)},
                         {"rows_read", s.readable_rows}});
    json files = json::array();
    for (const GroupFile& f : g.files)
        files.push_back({{"path", f.info->path},
                         {"role", file_role_name(f.role)},
                         {"slot", f.info->sb()->slot},
                         {"seq", f.info->sb()->seq}});
    json bitmap = bitmap_json(g.dirty, bitmap_rows(sb), kMaxRanges);
    bitmap["members_differ"] = g.bitmaps_differ;
    json data = {{"checked", d.checked}};
    if (!d.checked) {
        data["reason"] = d.reason;
    } else {
        const CheckResult& r = d.result;
        json first = json::array();
        for (const Mismatch& m : r.first) first.push_back(mismatch_json(m, sb));
        data.update({{"rows", r.rows},
                     {"rows_checked", r.rows_checked},
                     {"rows_unchecked", r.rows_unchecked},
                     {"rows_filtered", r.rows_filtered},
                     {"mismatches", r.mismatches},
                     {"mismatches_pending_resync", r.mismatches_pending},
                     {"first_mismatches", first}});
        if (!r.error.empty()) data["error"] = r.error;
    }
    json notes = g.notes;
    for (const std::string& n : d.notes) notes.push_back(n);
    return {{"name", sb.name},
            {"array_uuid", uuid_to_string(sb.array_uuid)},
            {"level", level_name(sb.level)},
            {"num_members", sb.members.size()},
            {"strip_size_kb", sb.strip_size_kb},
            {"block_size", sb.block_size},
            {"member_blocks", sb.member_blocks},
            {"seq", sb.seq},
            {"clean", sb.clean},
            {"newest_superblock_from", g.newest->path},
            {"slots", slots},
            {"files", files},
            {"bitmap", bitmap},
            {"problems", g.problems},
            {"notes", notes},
            {"data", data},
            {"consistent", consistent(g, d)}};
}

void print_array(const ArrayGroup& g, const DataReport& d) {
    const Superblock& sb = g.sb();
    const std::string size = sb.level == Level::Concat
                                 ? std::string("member sizes in the member table")
                                 : fmt::format("{} blocks per member", sb.member_blocks);
    const std::string strip =
        sb.level == Level::Raid1 ? std::string() : fmt::format(", strip {} KiB", sb.strip_size_kb);
    fmt::print("array {} (uuid {}): {}, {} members{}, {} B blocks, {}\n", sb.name,
               uuid_to_string(sb.array_uuid), level_name(sb.level), sb.members.size(), strip,
               sb.block_size, size);
    fmt::print("  newest superblock: seq {} (from {}), {}\n", sb.seq, g.newest->path,
               sb.clean ? "clean" : "not clean");
    for (const SlotView& s : g.slots)
        fmt::print("  slot {:<2} {:<10}  {}{}\n", s.slot, sb_member_state_name(s.entry.state),
                   s.file ? s.file->path : "-",
                   sb.level == Level::Concat ? fmt::format("  ({} blocks)", s.entry.data_blocks)
                                             : std::string());
    for (const GroupFile& f : g.files)
        if (f.role != FileRole::Current)
            fmt::print("  also given: {} ({}, slot {}, seq {})\n", f.info->path,
                       file_role_name(f.role), f.info->sb()->slot, f.info->sb()->seq);
    fmt::print("  write-intent bitmap: {}\n", bitmap_text(g.dirty, bitmap_rows(sb), kMaxRanges));
    if (g.problems.empty()) {
        fmt::print("  metadata: consistent\n");
    } else {
        fmt::print("  metadata: {} problem{}\n", g.problems.size(),
                   g.problems.size() > 1 ? "s" : "");
        for (const std::string& p : g.problems) fmt::print("    - {}\n", p);
    }
    if (!d.checked) {
        fmt::print("  data: not checked: {}\n", d.reason);
    } else if (!d.result.error.empty()) {
        fmt::print("  data: error: {}\n", d.result.error);
    } else {
        const CheckResult& r = d.result;
        fmt::print(
            "  data: {} of {} rows checked{}, {} mismatch{}{}\n", r.rows_checked, r.rows,
            r.rows_filtered
                ? fmt::format(" ({} left out by --dirty-only / --skip-dirty)", r.rows_filtered)
                : std::string(),
            r.mismatches, r.mismatches == 1 ? "" : "es",
            r.mismatches_pending ? fmt::format(" ({} in rows pending resync)", r.mismatches_pending)
                                 : std::string());
        for (const Mismatch& m : r.first) fmt::print("    {}\n", mismatch_text(m, sb));
        if (r.mismatches > r.first.size())
            fmt::print("    ... and {} more (raise --max-report to list them)\n",
                       r.mismatches - r.first.size());
    }
    for (const std::string& n : g.notes) fmt::print("  note: {}\n", n);
    for (const std::string& n : d.notes) fmt::print("  note: {}\n", n);
    fmt::print("  result: {}\n", consistent(g, d) ? "consistent" : "INCONSISTENT");
}

}  // namespace

int run_check(const std::vector<std::string>& paths, const CheckCommandOptions& opts) {
    std::vector<MemberInfo> members;
    for (const std::string& p : paths) members.push_back(inspect_member(p));
    int status = kExitOk;
    json errors = json::array();
    for (const MemberInfo& m : members) {
        if (m.sb()) continue;
        const std::string why = m.error.empty() ? m.no_superblock_reason() : m.error;
        const bool damaged = m.error.empty() && (m.copies[0].has_magic || m.copies[1].has_magic);
        status = std::max(status, damaged ? kExitProblems : kExitError);
        errors.push_back({{"path", m.path}, {"error", why}});
        if (!opts.json) fmt::print(stderr, "nocstor-raid: {}: {}\n", m.path, why);
    }
    json arrays = json::array();
    bool first = true;
    for (const ArrayGroup& g : group_arrays(members)) {
        const DataReport d = check_data(g, opts.data);
        if (!d.result.error.empty()) status = std::max(status, kExitError);
        if (!consistent(g, d)) status = std::max(status, kExitProblems);
        if (opts.json) {
            arrays.push_back(array_json(g, d));
        } else {
            if (!first) fmt::print("\n");
            print_array(g, d);
        }
        first = false;
    }
    if (opts.json)
        fmt::print(
            "{}\n",
            json{{"arrays", arrays}, {"errors", errors}, {"consistent", status == kExitOk}}.dump(
                2));
    std::fflush(stdout);
    return status;
}

}  // namespace nocstor::raid_tool
