// nocstor-cache-check: offline, read-only check and dump of a cache device (an image file or a
// block device holding a nocstor cache): both superblock copies and every line-table entry,
// judged as the daemon's load judges them. The format is in docs/cache.md.
#include "modules/cache/cache_format.h"
#include "tools/common/image_file.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using namespace nocstor;
using namespace nocstor::cache;

constexpr int kExitOk = 0, kExitProblems = 1, kExitError = 2;

constexpr const char* kDescription =
    "Offline check of a nocstor cache device (an image file or a block device). Opens it "
    "read-only and never writes. Use it while the cache is not attached (daemon stopped).";

constexpr const char* kDetail =
    "Reads both superblock copies and the line table. Problems (exit 1): no valid superblock "
    "copy while one has the magic, entries whose CRC does not match or whose dirty blocks are "
    "not valid, entries naming a core line past the core or outside their set, a data region "
    "past the end of the file. Warnings (exit status unchanged): a damaged superblock copy "
    "while the other is good (a crash during a superblock update), two entries naming one core "
    "line (an eviction cut by a crash: the newer mapping wins at load).";

constexpr const char* kExitStatus =
    "Exit status: 0 a cache device, consistent; 1 problems found; 2 usage error, cannot open or "
    "read the file, or not a cache device.";

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{kDescription, "nocstor-cache-check"};
    app.footer(std::string(kDetail) + "\n\n" + kExitStatus +
               "\n\nExamples:\n  nocstor-cache-check /dev/nvme1n1\n  nocstor-cache-check "
               "--json --lines cache.img");
    std::string path;
    bool json_out = false, list_lines = false;
    app.add_option("FILE", path, "image file or block device holding the cache")->required();
    app.add_flag("--json", json_out, "machine-readable output");
    app.add_flag("--lines", list_lines, "list every mapped line (core line, valid, dirty blocks)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kExitOk : kExitError;
    }
    std::string err;
    auto f = tools::ImageFile::open(path, &err, {true, true});
    if (!f) {
        fmt::print(stderr, "nocstor-cache-check: {}\n", err);
        return kExitError;
    }
    std::vector<std::string> problems, warnings;
    std::vector<uint8_t> sbuf(2 * kSbBytes);
    if (!f->read(0, sbuf.data(), sbuf.size(), &err)) {
        fmt::print(stderr, "nocstor-cache-check: {}\n", err);
        return kExitError;
    }
    bool found = false, magic = false;
    Superblock sb;
    for (int copy = 0; copy < 2; ++copy) {
        const uint8_t* p = sbuf.data() + kSbCopyOffset[copy];
        Superblock s;
        std::string why;
        if (sb_decode(p, &s, &why)) {
            if (!found || s.seq > sb.seq) sb = s;
            found = true;
        } else if (sb_has_magic(p)) {
            magic = true;
            warnings.push_back(fmt::format("superblock copy {} is damaged: {}", "AB"[copy], why));
        }
    }
    if (!found) {
        if (!magic) {
            fmt::print(stderr, "nocstor-cache-check: {}: not a nocstor cache device\n", path);
            return kExitError;
        }
        fmt::print("{}: no valid superblock copy\n", path);
        return kExitProblems;
    }
    if (sb.data_offset + sb.line_count * sb.line_size > f->size())
        problems.push_back(fmt::format("the data region ends at byte {}, past the end ({})",
                                       sb.data_offset + sb.line_count * sb.line_size, f->size()));
    const uint64_t per_set = sb.lines_per_set();
    const uint64_t core_lines = (sb.core_blocks + sb.blocks_per_line() - 1) / sb.blocks_per_line();
    uint64_t mapped = 0, dirty_lines = 0, dirty_blocks = 0, damaged = 0, duplicates = 0;
    std::unordered_map<uint64_t, uint64_t> seen;  // core line -> line
    nlohmann::json lines = nlohmann::json::array();
    std::vector<uint8_t> chunk;
    const uint64_t table = sb.line_count * kEntryBytes;
    for (uint64_t off = 0; off < table; off += chunk.size()) {
        chunk.resize(std::min<uint64_t>(1 << 20, table - off));
        if (!f->read(kTableOffset + off, chunk.data(), chunk.size(), &err)) {
            fmt::print(stderr, "nocstor-cache-check: {}\n", err);
            return kExitError;
        }
        for (uint64_t i = 0; i < chunk.size() / kEntryBytes; ++i) {
            const uint64_t line = off / kEntryBytes + i;
            Entry e;
            if (!entry_decode(chunk.data() + i * kEntryBytes, &e)) {
                ++damaged;
                if (damaged <= 20) problems.push_back(fmt::format("line {}: damaged entry", line));
                continue;
            }
            if (e.core_line == kNoCoreLine) continue;
            if (e.core_line >= core_lines || set_of(e.core_line, sb.set_count) != line / per_set) {
                ++damaged;
                if (damaged <= 20)
                    problems.push_back(fmt::format("line {}: core line {} cannot be there{}", line,
                                                   e.core_line, e.dirty.any() ? " (dirty)" : ""));
                continue;
            }
            ++mapped;
            if (e.dirty.any()) ++dirty_lines;
            dirty_blocks += e.dirty.count();
            if (auto [it, fresh] = seen.try_emplace(e.core_line, line); !fresh) {
                ++duplicates;
                warnings.push_back(fmt::format(
                    "core line {} is named by lines {} and {} (an eviction cut short; the newer "
                    "mapping wins at load)",
                    e.core_line, it->second, line));
            }
            if (list_lines)
                lines.push_back({{"line", line},
                                 {"core_line", e.core_line},
                                 {"valid_blocks", e.valid.count()},
                                 {"dirty_blocks", e.dirty.count()},
                                 {"gen", e.gen}});
        }
    }
    if (damaged > 20) problems.push_back(fmt::format("... {} damaged entries in all", damaged));
    if (json_out) {
        nlohmann::json j = {{"file", path},
                            {"name", sb.name},
                            {"core_bdev_name", sb.core_name},
                            {"mode", mode_name(sb.mode)},
                            {"seq", sb.seq},
                            {"clean", sb.clean},
                            {"block_size", sb.block_size},
                            {"line_size", sb.line_size},
                            {"lines", sb.line_count},
                            {"sets", sb.set_count},
                            {"mapped_lines", mapped},
                            {"dirty_lines", dirty_lines},
                            {"dirty_blocks", dirty_blocks},
                            {"damaged_entries", damaged},
                            {"duplicate_mappings", duplicates},
                            {"problems", problems},
                            {"warnings", warnings}};
        if (list_lines) j["line_table"] = lines;
        fmt::print("{}\n", j.dump(2));
    } else {
        fmt::print("{}: cache {} of core {} (mode {}, seq {}, {})\n", path, sb.name, sb.core_name,
                   mode_name(sb.mode), sb.seq,
                   sb.clean ? "stopped cleanly" : "not stopped cleanly");
        fmt::print("  {} lines of {} KiB in {} sets, blocks of {} bytes\n", sb.line_count,
                   sb.line_size / 1024, sb.set_count, sb.block_size);
        fmt::print("  {} lines mapped, {} dirty ({} dirty blocks)\n", mapped, dirty_lines,
                   dirty_blocks);
        if (list_lines)
            for (const auto& l : lines)
                fmt::print("  line {} core line {} valid {} dirty {} gen {}\n",
                           l["line"].get<uint64_t>(), l["core_line"].get<uint64_t>(),
                           l["valid_blocks"].get<uint32_t>(), l["dirty_blocks"].get<uint32_t>(),
                           l["gen"].get<uint64_t>());
        for (const auto& w : warnings) fmt::print("warning: {}\n", w);
        for (const auto& p : problems) fmt::print("problem: {}\n", p);
        fmt::print("{}\n", problems.empty() ? "consistent" : "PROBLEMS FOUND");
    }
    std::fflush(stdout);
    return problems.empty() ? kExitOk : kExitProblems;
}
