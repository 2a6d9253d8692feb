// nocstor-raid dump: what each member's superblocks say.
#include "tools/nocstor_raid/commands.h"
#include "tools/nocstor_raid/member_file.h"
#include "tools/nocstor_raid/report_format.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

namespace nocstor::raid_tool {

using namespace nocstor::raid;
using nlohmann::json;

namespace {

// A file without the magic anywhere is not a member (exit 2); a damaged one is (exit 1).
int member_status(const MemberInfo& m) {
    if (!m.error.empty()) return kExitError;
    if (!m.sb()) return m.copies[0].has_magic || m.copies[1].has_magic ? kExitProblems : kExitError;
    return m.size_problem().empty() && m.bitmap_error.empty() ? kExitOk : kExitProblems;
}

json member_json(const MemberInfo& m, const DumpOptions& o) {
    json j = {{"path", m.path}};
    if (!m.error.empty()) {
        j["error"] = m.error;
        return j;
    }
    j["size"] = m.size;
    json copies = json::array();
    for (int i = 0; i < 2; ++i) {
        const SbCopy& c = m.copies[i];
        json cj = {{"copy", copy_name(i)}, {"offset", c.offset}, {"valid", c.valid}};
        if (c.valid)
            cj["seq"] = c.sb.seq;
        else
            cj["error"] = c.why;
        copies.push_back(cj);
    }
    j["copies"] = copies;
    if (!m.sb()) {
        j["error"] = m.no_superblock_reason();
        return j;
    }
    j["current"] = copy_name(m.current);
    j["superblock"] = superblock_json(*m.sb());
    j["bitmap"] = bitmap_json(m.bitmap, m.data_blocks(), o.max_ranges);
    json problems = json::array();
    if (const std::string p = m.size_problem(); !p.empty()) problems.push_back(p);
    if (!m.bitmap_error.empty()) problems.push_back("write-intent bitmap: " + m.bitmap_error);
    j["problems"] = problems;
    return j;
}

void print_superblock(const MemberInfo& m, const DumpOptions& o) {
    const Superblock& sb = *m.sb();
    const uint64_t bs = sb.block_size;
    fmt::print("  current: copy {}, seq {}\n", copy_name(m.current), sb.seq);
    fmt::print("    array          {} (uuid {})\n", sb.name, uuid_to_string(sb.array_uuid));
    fmt::print(
        "    level          {}, {} members{}\n", level_name(sb.level), sb.members.size(),
        sb.level == Level::Raid1 ? std::string() : fmt::format(", strip {} KiB", sb.strip_size_kb));
    fmt::print("    block size     {} B\n", bs);
    fmt::print("    data offset    block {} (byte {})\n", sb.data_offset, sb.data_offset * bs);
    if (sb.level == Level::Concat)
        fmt::print("    member blocks  per member (concat); this one {} ({})\n", m.data_blocks(),
                   human_bytes(m.data_blocks() * bs));
    else
        fmt::print("    member blocks  {} ({})\n", sb.member_blocks,
                   human_bytes(sb.member_blocks * bs));
    fmt::print("    this member    slot {}\n", sb.slot);
    fmt::print("    clean          {}\n",
               sb.clean ? "yes: stopped cleanly" : "no: running, or not stopped cleanly");
    if (sb.resync_pending)
        fmt::print("    resync         unfinished: goes on from member block {}\n",
                   sb.resync_offset);
    else
        fmt::print("    resync         none pending\n");
    fmt::print("    members        {:<4}  {:<36}  {:<10}  {:>12}  {:>14}\n", "slot", "uuid",
               "state", "data_blocks", "rebuild_offset");
    for (size_t i = 0; i < sb.members.size(); ++i) {
        const SbMember& e = sb.members[i];
        fmt::print("                   {:<4}  {:<36}  {:<10}  {:>12}  {:>14}{}\n", i,
                   uuid_to_string(e.uuid), sb_member_state_name(e.state), e.data_blocks,
                   e.rebuild_offset,
                   std::string(e.partial_rebuild ? "  (where it missed writes)" : "") +
                       (i == sb.slot ? "  <- this member" : ""));
    }
    fmt::print("    bitmap         {}\n", bitmap_text(m.bitmap, m.data_blocks(), o.max_ranges));
    if (const std::string p = m.size_problem(); !p.empty()) fmt::print("  problem: {}\n", p);
    if (!m.bitmap_error.empty()) fmt::print("  problem: write-intent bitmap: {}\n", m.bitmap_error);
}

void print_member(const MemberInfo& m, const DumpOptions& o) {
    if (!m.error.empty()) {
        fmt::print("{}: error: {}\n", m.path, m.error);
        return;
    }
    fmt::print("{} ({} bytes)\n", m.path, m.size);
    for (int i = 0; i < 2; ++i) {
        const SbCopy& c = m.copies[i];
        const std::string head =
            fmt::format("superblock copy {} (byte {}):", copy_name(i), c.offset);
        if (c.valid)
            fmt::print("  {:<31} valid, seq {}\n", head, c.sb.seq);
        else
            fmt::print("  {:<31} invalid: {}\n", head, c.why);
    }
    if (!m.sb()) {
        fmt::print("  error: {}\n", m.no_superblock_reason());
        return;
    }
    print_superblock(m, o);
}

}  // namespace

int run_dump(const std::vector<std::string>& paths, const DumpOptions& opts) {
    int status = kExitOk;
    json out = json::array();
    for (size_t i = 0; i < paths.size(); ++i) {
        const MemberInfo m = inspect_member(paths[i]);
        status = std::max(status, member_status(m));
        if (opts.json) {
            out.push_back(member_json(m, opts));
        } else {
            if (i) fmt::print("\n");
            print_member(m, opts);
        }
    }
    if (opts.json) fmt::print("{}\n", json{{"members", out}}.dump(2));
    std::fflush(stdout);
    return status;
}

}  // namespace nocstor::raid_tool
