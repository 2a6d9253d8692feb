// nocstorctl vhost: serve a bdev to a VM as a vhost-user-blk disk, list controllers with their
// session and counters, delete one (SPDK's vhost_* methods underneath).
#include <fmt/format.h>

#include "tools/nocstorctl/commands.h"
#include "tools/nocstorctl/output.h"

namespace nocstor::ctl {

using nlohmann::json;

namespace {

struct VhostArgs {
    std::string bdev, socket, cpumask;
    bool readonly = false;
    uint32_t queues = 0;
};

int cmd_create(Ctl& ctl, const VhostArgs& a) {
    json p = {{"ctrlr", a.socket}, {"dev_name", a.bdev}, {"readonly", a.readonly}};
    if (!a.cpumask.empty()) p["cpumask"] = a.cpumask;
    if (a.queues) p["num_queues"] = a.queues;
    json r;
    if (int rc = ctl.call("vhost_create_blk_controller", p, &r)) return rc;
    json list;
    if (int rc = ctl.call("vhost_get_controllers", {{"name", a.socket}}, &list)) return rc;
    const std::string sock = list.empty() ? a.socket : str(list[0], "socket");
    fmt::print(
        "serving {}{} on {}\n"
        "QEMU: -object memory-backend-memfd,id=mem,size=<RAM>,share=on -numa node,memdev=mem"
        " -chardev socket,id=vub0,path={},reconnect=1"
        " -device vhost-user-blk-pci,chardev=vub0,num-queues=<N>\n",
        a.bdev, a.readonly ? " read-only" : "", sock, sock);
    return kExitOk;
}

int cmd_list(Ctl& ctl) {
    json list;
    if (int rc = ctl.call("vhost_get_controllers", json::object(), &list)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", list.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& c : list) {
        const json& blk = c["backend_specific"]["block"];
        const json& s = c["stats"];
        const bool connected = !c.value("sessions", json::array()).empty();
        rows.push_back(
            {str(c, "ctrlr"), str(blk, "bdev", "(removed)"),
             blk.value("readonly", false) ? "ro" : "rw",
             connected ? fmt::format("yes, {} queues", c["sessions"][0].value("active_queues", 0))
                       : "no",
             std::to_string(u64(s, "requests")), human_size(u64(s, "bytes_read")),
             human_size(u64(s, "bytes_written")), std::to_string(u64(s, "errors"))});
    }
    print_table({"CONTROLLER", "BDEV", "MODE", "VM", "REQUESTS", "READ", "WRITTEN", "ERRORS"},
                rows);
    return kExitOk;
}

}  // namespace

void add_vhost_commands(CLI::App& app, Ctl& ctl, Handlers& handlers) {
    auto a = std::make_shared<VhostArgs>();
    auto* vh = app.add_subcommand("vhost", "vhost-user-blk disks for VMs")->require_subcommand(1);
    auto* cr = vh->add_subcommand("create", "serve a bdev as a vhost-user-blk disk");
    cr->add_option("bdev", a->bdev, "bdev to serve")->required();
    cr->add_option("socket", a->socket,
                   "controller: a socket path, or a name in the daemon's --vhost-socket-dir")
        ->required();
    cr->add_flag("--readonly", a->readonly, "the guest may only read");
    cr->add_option("--cpumask", a->cpumask, "cores for the queues, e.g. 0x3 or [0-1]");
    cr->add_option("--queues", a->queues, "queues offered to the VMM (default 16)");
    auto* ls = vh->add_subcommand("list", "list controllers, their VM and counters");
    auto* del = vh->add_subcommand("delete", "delete a controller");
    del->add_option("socket", a->socket, "controller name")->required();
    handlers.add(cr, [&ctl, a] { return cmd_create(ctl, *a); });
    handlers.add(ls, [&ctl] { return cmd_list(ctl); });
    handlers.add(del, [&ctl, a] {
        return ctl.call_and_report("vhost_delete_controller", {{"ctrlr", a->socket}},
                                   "deleted controller " + a->socket);
    });
}

}  // namespace nocstor::ctl
