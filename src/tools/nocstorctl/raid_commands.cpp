// nocstorctl raid: list, show, create, delete, remove-member, add-member, scrub, wait (progress
// bar of the resync, rebuild or scrub), set-options.
#include "tools/nocstorctl/commands.h"
#include "tools/nocstorctl/output.h"

#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

namespace nocstor::ctl {

using nlohmann::json;

namespace {

struct RaidArgs {
    std::string name, level = "raid1", strip = "64K", uuid, bitmap_region, member;
    std::vector<std::string> members;
    bool superblock = false, clear_sb = false, repair = false, wait = false;
    std::optional<uint32_t> window_kb, max_mb_sec, clear_ms;
    double wait_timeout_s = 0;  // 0: no limit
};

// The array's bdev_raid_get_bdevs entry: 0, or an exit code (not found: kExitRpcError).
int get_raid(Ctl& ctl, const std::string& name, json* out) {
    json all;
    if (int rc = ctl.call("bdev_raid_get_bdevs", {{"category", "all"}}, &all)) return rc;
    for (const json& r : all) {
        if (str(r, "name", "") == name) {
            *out = r;
            return kExitOk;
        }
    }
    fmt::print(stderr, "error: no raid bdev named '{}'\n", name);
    return kExitRpcError;
}

std::string process_text(const json& r) {
    if (!r.contains("process")) return "-";
    const json& p = r["process"];
    const double pct = p.value("progress", json::object()).value("percent", 0.0);
    std::string target = p.contains("target") ? " -> " + str(p, "target") : "";
    return fmt::format("{}{} {:.1f}%", str(p, "type"), target, pct);
}

int cmd_list(Ctl& ctl) {
    json all;
    if (int rc = ctl.call("bdev_raid_get_bdevs", {{"category", "all"}}, &all)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", all.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& r : all) {
        const uint64_t strip = u64(r, "strip_size_kb");
        rows.push_back(
            {str(r, "name"), str(r, "raid_level"), str(r, "state"),
             fmt::format("{}/{}", str(r, "num_base_bdevs_operational"), str(r, "num_base_bdevs")),
             strip ? human_size(strip * 1024) : "-", r.value("superblock", false) ? "yes" : "no",
             process_text(r)});
    }
    print_table({"NAME", "LEVEL", "STATE", "MEMBERS", "STRIP", "SUPERBLOCK", "PROCESS"}, rows);
    return kExitOk;
}

int cmd_show(Ctl& ctl, const std::string& name) {
    json r;
    if (int rc = get_raid(ctl, name, &r)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", r.dump(2));
        return kExitOk;
    }
    fmt::print("name:       {}\nuuid:       {}\nlevel:      {}\nstate:      {}\n", name,
               str(r, "uuid"), str(r, "raid_level"), str(r, "state"));
    if (u64(r, "strip_size_kb")) fmt::print("strip:      {} KiB\n", u64(r, "strip_size_kb"));
    fmt::print("superblock: {}\n", r.value("superblock", false) ? "yes" : "no");
    if (r.contains("write_intent_bitmap")) {
        const json& b = r["write_intent_bitmap"];
        fmt::print("bitmap:     {} regions of {}, {} dirty\n", str(b, "regions"),
                   human_size(u64(b, "region_kb") * 1024), str(b, "dirty_regions"));
    }
    if (r.contains("process")) {
        const json& p = r["process"];
        const double pct = p.value("progress", json::object()).value("percent", 0.0);
        fmt::print("process:    {}{} {}", str(p, "type"),
                   p.contains("target") ? " onto " + str(p, "target") : "", progress_bar(pct));
        if (p.contains("rate_mb_sec")) fmt::print(" {:.1f} MB/s", p.value("rate_mb_sec", 0.0));
        fmt::print("\n");
    }
    if (r.contains("last_process")) {
        const json& l = r["last_process"];
        fmt::print("last:       {} {}, {} blocks in {:.1f} s\n", str(l, "type"), str(l, "result"),
                   str(l, "blocks_processed"), l.value("seconds", 0.0));
    }
    if (r.contains("last_scrub_mismatches"))
        fmt::print("scrub:      {} mismatching rows in the last scrub\n",
                   str(r, "last_scrub_mismatches"));
    std::vector<std::vector<std::string>> rows;
    for (const json& m : r.value("base_bdevs_list", json::array()))
        rows.push_back({str(m, "slot"), str(m, "name", ""), str(m, "state")});
    fmt::print("members:\n");
    print_table({"  SLOT", "BDEV", "STATE"}, rows);
    return kExitOk;
}

// Waits until the array runs no process, drawing its progress; the array's state at the end
// decides the exit code (offline: kExitRpcError).
int cmd_wait(Ctl& ctl, const std::string& name, double timeout_s) {
    const bool tty = isatty(STDOUT_FILENO) && !ctl.json_output;
    const auto start = std::chrono::steady_clock::now();
    std::string last_line;
    for (;;) {
        json r;
        if (int rc = get_raid(ctl, name, &r)) return rc;
        if (!r.contains("process")) {
            if (tty && !last_line.empty()) fmt::print("\n");
            if (ctl.json_output)
                fmt::print("{}\n", r.dump(2));
            else
                fmt::print("{}: {}\n", name, str(r, "state"));
            return str(r, "state") == "offline" ? kExitRpcError : kExitOk;
        }
        const json& p = r["process"];
        const double pct = p.value("progress", json::object()).value("percent", 0.0);
        const std::string line =
            fmt::format("{} {}{} {}", name, str(p, "type"),
                        p.contains("target") ? " onto " + str(p, "target") : "", progress_bar(pct));
        if (tty) {
            fmt::print("\r{}", line);
            std::fflush(stdout);
        } else if (!ctl.json_output && line != last_line) {
            fmt::print("{}\n", line);
        }
        last_line = line;
        const double waited =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (timeout_s > 0 && waited > timeout_s) {
            if (tty) fmt::print("\n");
            fmt::print(stderr, "error: {} still running after {:.0f} s\n", str(p, "type"), waited);
            return kExitRpcError;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 200 : 1000));
    }
}

std::optional<uint32_t> size_kb(const std::string& text, const char* what) {
    auto bytes = parse_size(text);
    if (!bytes || *bytes % 1024 || *bytes / 1024 > UINT32_MAX) {
        fmt::print(stderr, "error: invalid {} '{}' (examples: 64K, 1M)\n", what, text);
        return std::nullopt;
    }
    return uint32_t(*bytes / 1024);
}

int cmd_create(Ctl& ctl, const RaidArgs& a) {
    json params = {{"name", a.name},
                   {"raid_level", a.level},
                   {"base_bdevs", a.members},
                   {"superblock", a.superblock}};
    const bool mirror = a.level == "raid1" || a.level == "1";
    if (!mirror) {
        auto strip = size_kb(a.strip, "strip size");
        if (!strip) return kExitUsage;
        params["strip_size_kb"] = *strip;
    }
    if (!a.uuid.empty()) params["uuid"] = a.uuid;
    if (!a.bitmap_region.empty()) {
        auto kb = size_kb(a.bitmap_region, "bitmap region");
        if (!kb) return kExitUsage;
        params["bitmap_region_kb"] = *kb;
    }
    if (int rc = ctl.call_and_report(
            "bdev_raid_create", params,
            fmt::format("created {} ({} over {} members)", a.name, a.level, a.members.size())))
        return rc;
    return a.wait ? cmd_wait(ctl, a.name, a.wait_timeout_s) : kExitOk;
}

}  // namespace

void add_raid_commands(CLI::App& app, Ctl& ctl, Handlers& handlers) {
    auto a = std::make_shared<RaidArgs>();
    auto* raid = app.add_subcommand("raid", "RAID arrays (raid0, raid1, raid5, raid6, concat)")
                     ->require_subcommand(1);

    auto* list = raid->add_subcommand("list", "list arrays with their state and progress");
    handlers.add(list, [&ctl] { return cmd_list(ctl); });

    auto* show = raid->add_subcommand("show", "one array: members, bitmap, process");
    show->add_option("name", a->name, "array name")->required();
    handlers.add(show, [&ctl, a] { return cmd_show(ctl, a->name); });

    auto* create = raid->add_subcommand("create", "create an array");
    create->add_option("name", a->name, "array name")->required();
    create->add_option("members", a->members, "base bdevs, in slot order")->required();
    create->add_option("-l,--level", a->level, "raid0, raid1, raid5, raid6 or concat")
        ->capture_default_str()
        ->check(CLI::IsMember({"raid0", "raid1", "raid5", "raid6", "concat", "0", "1", "5", "6"}));
    create->add_option("--strip", a->strip, "strip size (not raid1), e.g. 64K")
        ->capture_default_str();
    create->add_flag("--superblock", a->superblock,
                     "metadata on the members: the array assembles by itself after a restart, "
                     "redundant levels keep a write-intent bitmap");
    create->add_option("--bitmap-region", a->bitmap_region,
                       "write-intent bitmap region size, e.g. 16M (default: from the size)");
    create->add_option("--uuid", a->uuid, "array UUID");
    create->add_flag("--wait", a->wait, "wait for the initial resync, with a progress bar");
    handlers.add(create, [&ctl, a] { return cmd_create(ctl, *a); });

    auto* del = raid->add_subcommand("delete", "delete an array (its members stay)");
    del->add_option("name", a->name, "array name")->required();
    del->add_flag("--clear-sb", a->clear_sb, "erase the members' superblocks too");
    handlers.add(del, [&ctl, a] {
        return ctl.call_and_report("bdev_raid_delete",
                                   {{"name", a->name}, {"clear_sb", a->clear_sb}},
                                   fmt::format("deleted {}", a->name));
    });

    auto* remove = raid->add_subcommand("remove-member", "take a base bdev out of its array");
    remove->add_option("bdev", a->member, "base bdev")->required();
    handlers.add(remove, [&ctl, a] {
        return ctl.call_and_report("bdev_raid_remove_base_bdev", {{"name", a->member}},
                                   fmt::format("removed {}", a->member));
    });

    auto* add =
        raid->add_subcommand("add-member", "add a base bdev to a degraded array and rebuild");
    add->add_option("name", a->name, "array name")->required();
    add->add_option("bdev", a->member, "base bdev")->required();
    add->add_flag("--wait", a->wait, "wait for the rebuild, with a progress bar");
    handlers.add(add, [&ctl, a] {
        if (int rc = ctl.call_and_report(
                "bdev_raid_add_base_bdev", {{"raid_bdev", a->name}, {"base_bdev", a->member}},
                fmt::format("{} is rebuilding onto {}", a->name, a->member)))
            return rc;
        return a->wait ? cmd_wait(ctl, a->name, a->wait_timeout_s) : kExitOk;
    });

    auto* scrub = raid->add_subcommand("scrub", "check (and with --repair fix) the redundancy");
    scrub->add_option("name", a->name, "array name")->required();
    scrub->add_flag("--repair", a->repair, "rewrite the parity/mirrors that do not match");
    scrub->add_flag("--wait", a->wait, "wait for the result, with a progress bar");
    handlers.add(scrub, [&ctl, a] {
        if (int rc = ctl.call_and_report("bdev_raid_start_scrub",
                                         {{"name", a->name}, {"repair", a->repair}},
                                         fmt::format("scrub of {} started", a->name)))
            return rc;
        if (!a->wait) return kExitOk;
        if (int rc = cmd_wait(ctl, a->name, a->wait_timeout_s)) return rc;
        json r;
        if (int rc = get_raid(ctl, a->name, &r)) return rc;
        fmt::print("{} mismatching rows{}\n", str(r, "last_scrub_mismatches"),
                   a->repair ? " (repaired)" : "");
        return kExitOk;
    });

    auto* wait =
        raid->add_subcommand("wait", "wait until the array's resync, rebuild or scrub is done");
    wait->add_option("name", a->name, "array name")->required();
    handlers.add(wait, [&ctl, a] { return cmd_wait(ctl, a->name, a->wait_timeout_s); });
    for (auto* cmd : {create, add, scrub, wait})
        cmd->add_option("--wait-timeout", a->wait_timeout_s,
                        "seconds to wait at most (0: no limit)")
            ->check(CLI::NonNegativeNumber);

    auto* opts = raid->add_subcommand("set-options", "background process settings (all arrays)");
    opts->add_option("--window", a->window_kb, "KiB of each member per process step");
    opts->add_option("--max-bandwidth", a->max_mb_sec, "MB/s cap of each process (0: none)");
    opts->add_option("--bitmap-clear-ms", a->clear_ms,
                     "how often idle write-intent bits are cleared");
    handlers.add(opts, [&ctl, a] {
        json params = json::object();
        if (a->window_kb) params["process_window_size_kb"] = *a->window_kb;
        if (a->max_mb_sec) params["process_max_bandwidth_mb_sec"] = *a->max_mb_sec;
        if (a->clear_ms) params["bitmap_clear_interval_ms"] = *a->clear_ms;
        return ctl.call_and_report("bdev_raid_set_options", params, "options set");
    });
}

}  // namespace nocstor::ctl
