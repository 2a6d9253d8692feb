// nocstor-raid: offline inspection of the members of nocstor RAID arrays (image files or block
// devices), read-only: `dump` shows what each member's superblocks say, `check` checks an
// array's metadata and verifies its redundancy (mirrors, P, Q) row by row. The formats are in
// docs/raid.md; the code that reads them is in nocstor_raid/.
#include "tools/nocstor_raid/commands.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace {

using namespace nocstor::raid_tool;

constexpr const char* kDescription =
    "Offline inspection of nocstor RAID members (image files or block devices). Opens every "
    "member read-only and never writes. Use it on the members of an array that is not running "
    "(daemon stopped, or the array deleted without clear_sb): a running array changes its "
    "members under the tool.";

constexpr const char* kExitStatus =
    "Exit status: 0 everything read and consistent; 1 data mismatches, inconsistent or damaged "
    "metadata; 2 usage error, I/O error, or a file that is not a raid member.";

constexpr const char* kExamples =
    "Examples:\n"
    "  nocstor-raid dump /dev/nvme1n1 /dev/nvme2n1\n"
    "  nocstor-raid check --max-report 20 disk0.img disk1.img disk2.img disk3.img\n"
    "  nocstor-raid check --json --skip-dirty disk*.img";

constexpr const char* kDumpDetail =
    "For each member: both superblock copies (byte 0 and byte 4096: valid with their seq, or "
    "why not), the current one (the valid copy with the highest seq) in full: array name and "
    "UUID, level, strip and block size, data offset, member blocks, this member's slot, the "
    "clean flag, the member table (UUID, state, data blocks, rebuild offset); and the "
    "write-intent bitmap: region size, region count, dirty regions as member data-block "
    "ranges.";

constexpr const char* kCheckDetail =
    "Groups the members by array UUID and judges the metadata as assembly does: members with "
    "an older superblock seq (stale), two files in one slot, a file whose slot now belongs to "
    "another member, slots listed online that are not among the files. Then reads the data of "
    "the members the newest superblock trusts (online; a rebuilding one below its rebuild "
    "offset, and outside the dirty regions if it is rebuilt only where it missed writes) and "
    "checks every block row: raid1 all copies equal, raid5 P, raid6 P and Q (one "
    "member may be missing). raid0 and concat: metadata only. Mismatches are listed with "
    "their row (member data block), stripe and byte offset in the members, and whether the "
    "daemon resyncs that row anyway at its next start (a dirty bitmap region after an unclean "
    "stop, or past an unfinished initial resync): those are expected.";

std::string footer(const char* detail) {
    return std::string(detail) + "\n\n" + kExitStatus + "\n\n" + kExamples;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{kDescription, "nocstor-raid"};
    app.footer(std::string(kExitStatus) + "\n\n" + kExamples);
    app.require_subcommand(1);

    std::vector<std::string> dump_paths;
    DumpOptions dump_opts;
    CLI::App* dump = app.add_subcommand(
        "dump", "show each member's superblock copies, current superblock and bitmap");
    dump->footer(footer(kDumpDetail));
    dump->add_option("members", dump_paths, "member files or block devices")->required();
    dump->add_flag("--json", dump_opts.json, "machine-readable output");
    dump->add_option("--max-ranges", dump_opts.max_ranges, "dirty bitmap ranges listed per member")
        ->capture_default_str();

    std::vector<std::string> check_paths;
    CheckCommandOptions check_opts;
    bool dirty_only = false, skip_dirty = false;
    CLI::App* check = app.add_subcommand(
        "check", "check the arrays' metadata and redundancy (raid1 copies, raid5 P, raid6 P+Q)");
    check->footer(footer(kCheckDetail));
    check->add_option("members", check_paths, "member files or block devices")->required();
    check->add_flag("--json", check_opts.json, "machine-readable output");
    check
        ->add_option("--max-report", check_opts.data.max_report,
                     "mismatching rows listed per array (all are counted)")
        ->capture_default_str();
    CLI::Option* dirty_flag = check->add_flag(
        "--dirty-only", dirty_only,
        "check only the rows the daemon resyncs at its next start: regions the write-intent "
        "bitmap marks dirty on an array not stopped cleanly (all rows without a bitmap), rows "
        "past an unfinished initial resync");
    check
        ->add_flag("--skip-dirty", skip_dirty,
                   "leave those rows out: mismatches anywhere else are damage, not writes that "
                   "were in flight")
        ->excludes(dirty_flag);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kExitOk : kExitError;
    }
    if (*dump) return run_dump(dump_paths, dump_opts);
    check_opts.data.filter = dirty_only   ? RowFilter::DirtyOnly
                             : skip_dirty ? RowFilter::SkipDirty
                                          : RowFilter::All;
    return run_check(check_paths, check_opts);
}
