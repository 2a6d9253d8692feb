// nocstorctl ublk: serve a bdev to this host's kernel as /dev/ublkbN, list, stop, and recover
// a disk after the daemon restarted (SPDK's ublk_* methods underneath; the target is created on
// first use).
#include <fmt/format.h>

#include "tools/nocstorctl/commands.h"
#include "tools/nocstorctl/output.h"

namespace nocstor::ctl {

using nlohmann::json;

namespace {

struct UblkArgs {
    std::string bdev;
    uint32_t id = 0, queues = 1, depth = 128;
};

// ublk_create_target unless the target exists already (its config section is empty then).
int ensure_target(Ctl& ctl) {
    json section;
    if (int rc = ctl.call("framework_get_config", {{"name", "ublk"}}, &section)) return rc;
    if (section.is_array() && !section.empty()) return kExitOk;
    json r;
    return ctl.call("ublk_create_target", json::object(), &r);
}

int cmd_start(Ctl& ctl, const UblkArgs& a, bool recover) {
    if (int rc = ensure_target(ctl)) return rc;
    json r;
    if (recover) {
        if (int rc = ctl.call("ublk_recover_disk", {{"bdev_name", a.bdev}, {"ublk_id", a.id}}, &r))
            return rc;
        fmt::print("recovered /dev/ublkb{} on bdev {}\n", a.id, a.bdev);
        return kExitOk;
    }
    const json p = {{"bdev_name", a.bdev},
                    {"ublk_id", a.id},
                    {"num_queues", a.queues},
                    {"queue_depth", a.depth}};
    if (int rc = ctl.call("ublk_start_disk", p, &r)) return rc;
    fmt::print("serving bdev {} as /dev/ublkb{} ({} queue(s) of depth {})\n", a.bdev, a.id,
               a.queues, a.depth);
    return kExitOk;
}

int cmd_list(Ctl& ctl) {
    json list;
    if (int rc = ctl.call("ublk_get_disks", json::object(), &list)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", list.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& d : list) {
        const json& s = d["stats"];
        rows.push_back({str(d, "ublk_device"), str(d, "bdev_name"), str(d, "state"),
                        fmt::format("{} x {}", u64(d, "num_queues"), u64(d, "queue_depth")),
                        std::to_string(u64(s, "reads")), std::to_string(u64(s, "writes")),
                        human_size(u64(s, "bytes_read")), human_size(u64(s, "bytes_written")),
                        std::to_string(u64(s, "errors"))});
    }
    print_table(
        {"DEVICE", "BDEV", "STATE", "QUEUES", "READS", "WRITES", "READ", "WRITTEN", "ERRORS"},
        rows);
    return kExitOk;
}

}  // namespace

void add_ublk_commands(CLI::App& app, Ctl& ctl, Handlers& handlers) {
    auto a = std::make_shared<UblkArgs>();
    auto* ub = app.add_subcommand("ublk", "ublk block devices on this host (/dev/ublkbN)")
                   ->require_subcommand(1);
    auto* st = ub->add_subcommand("start", "serve a bdev as /dev/ublkbID");
    st->add_option("bdev", a->bdev, "bdev to serve")->required();
    st->add_option("id", a->id, "device number: /dev/ublkb<id>")->required();
    st->add_option("--queues", a->queues, "hardware queues")->capture_default_str();
    st->add_option("--depth", a->depth, "requests per queue")->capture_default_str();
    auto* rc = ub->add_subcommand(
        "recover", "take over /dev/ublkbID after the daemon was killed and restarted");
    rc->add_option("bdev", a->bdev, "bdev behind the device")->required();
    rc->add_option("id", a->id, "device number")->required();
    auto* ls = ub->add_subcommand("list", "list ublk devices with their counters");
    auto* sp = ub->add_subcommand("stop", "stop and delete /dev/ublkbID");
    sp->add_option("id", a->id, "device number")->required();
    handlers.add(st, [&ctl, a] { return cmd_start(ctl, *a, false); });
    handlers.add(rc, [&ctl, a] { return cmd_start(ctl, *a, true); });
    handlers.add(ls, [&ctl] { return cmd_list(ctl); });
    handlers.add(sp, [&ctl, a] {
        return ctl.call_and_report("ublk_stop_disk", {{"ublk_id", a->id}},
                                   fmt::format("stopped /dev/ublkb{}", a->id));
    });
}

}  // namespace nocstor::ctl
