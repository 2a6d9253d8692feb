// nocstor-lvs-check: offline, read-only check of an lvstore (an image file or a block device
// holding it at some offset): both superblock copies, both checkpoint slots, the metadata as
// the daemon loads it (newest checkpoint + journal replay) and its consistency. The format is
// in docs/lvol.md; the code that judges it is in nocstor_lvs_check/.
#include "tools/nocstor_lvs_check/inspect.h"
#include "tools/nocstor_lvs_check/report.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

namespace {

using namespace nocstor::lvs_tool;

constexpr const char* kDescription =
    "Offline check of a nocstor lvstore (an image file or a block device). Opens the file "
    "read-only and never writes. Use it on a store that is not loaded (daemon stopped): a "
    "running store changes its metadata under the tool.";

constexpr const char* kDetail =
    "Reads both superblock copies (byte 0 and one metadata page later) and the metadata region "
    "before the data, decodes both checkpoint slots, and loads the metadata as the daemon does "
    "(the newest valid checkpoint, then the journal batches after it). Problems: the metadata "
    "does not load (no valid checkpoint, a journal operation that does not apply); clusters "
    "owned twice or past the end of the store; parents that are missing, writable or form a "
    "loop; names used twice; the newest checkpoint's allocation bitmap disagreeing with what "
    "its lvols own (leaked clusters, owned clusters marked free); the data region ending past "
    "the end of the file. Warnings (exit status unchanged): a damaged superblock copy while the "
    "other is good (a crash during a superblock update), a clean superblock with journal "
    "batches after the checkpoint.";

constexpr const char* kExitStatus =
    "Exit status: 0 an lvstore, consistent; 1 problems found (damaged superblocks, metadata that "
    "does not load or is inconsistent, a truncated file); 2 usage error, cannot open or read "
    "the file, or not an lvstore.";

constexpr const char* kExamples =
    "Examples:\n"
    "  nocstor-lvs-check /dev/nvme1n1\n"
    "  nocstor-lvs-check --verbose lvs.img\n"
    "  nocstor-lvs-check --json --offset 1048576 disk.img";

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{kDescription, "nocstor-lvs-check"};
    app.footer(std::string(kDetail) + "\n\n" + kExitStatus + "\n\n" + kExamples);
    std::string path;
    uint64_t offset = 0;
    bool json = false, verbose = false;
    app.add_option("FILE", path, "image file or block device holding the lvstore")->required();
    app.add_option("--offset", offset, "byte offset of the lvstore in FILE")->capture_default_str();
    app.add_flag("--json", json, "machine-readable output (everything, every lvol)");
    app.add_flag("-v,--verbose", verbose, "list every lvol");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kExitOk : kExitError;
    }
    const Inspection in = inspect(path, offset);
    if (json)
        fmt::print("{}\n", report_json(in).dump(2));
    else
        print_text(in, verbose);
    std::fflush(stdout);
    return in.exit_status();
}
