// nocstorctl volume: list, show (the stack as a tree across clusters), create, delete.
#include "tools/nocstorctl/commands.h"
#include "tools/nocstorctl/output.h"

#include <fmt/format.h>

#include <sstream>

namespace nocstor::ctl {

using nlohmann::json;

namespace {

struct VolumeArgs {
    std::string name, size = "1G", layout = "raid0", stripe = "64K", nqn, clusters;
    int front = -1;
    bool thin = false;
};

// One line per bdev of the stack, indented under its parent:
//   vol  raid/raid0  cluster 1  16.0 MiB  online
//   └─ vol_m0_remote  remote  cluster 1
//      └─ lvs2/vol_m0  lvol  cluster 2
std::string node_line(const json& n) {
    std::string name = str(n, "bdev");
    if (n.contains("alias")) name = str(n, "alias");
    std::string line = fmt::format("{}  {}  cluster {}  {}", name, str(n, "module"),
                                   str(n, "cluster"), human_size(u64(n, "size_bytes")));
    if (n.contains("state")) line += "  " + str(n, "state");
    if (str(n, "link") == "down") line += "  link down (its owner's process is not running)";
    return line;
}

void print_tree(const json& n, const std::string& indent, bool root) {
    fmt::print("{}{}{}\n", indent, root ? "" : "└─ ", node_line(n));
    if (!n.contains("children")) return;
    for (const json& c : n["children"]) print_tree(c, root ? indent : indent + "   ", false);
}

int cmd_list(Ctl& ctl) {
    json all;
    if (int rc = ctl.call("nocstor_volume_get", json::object(), &all)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", all.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& v : all) {
        std::string clusters;
        for (const auto& c : v.value("clusters", json::array()))
            clusters += (clusters.empty() ? "" : ",") + c.dump();
        rows.push_back({str(v, "name"), human_size(u64(v, "size_bytes")), str(v, "layout"),
                        str(v, "front_cluster"), clusters,
                        str(v.value("tree", json::object()), "state")});
    }
    print_table({"NAME", "SIZE", "LAYOUT", "FRONT", "CLUSTERS", "STATE"}, rows);
    return kExitOk;
}

int cmd_show(Ctl& ctl, const std::string& name) {
    json all;
    if (int rc = ctl.call("nocstor_volume_get", {{"name", name}}, &all)) return rc;
    const json v = all.at(0);
    if (ctl.json_output) {
        fmt::print("{}\n", v.dump(2));
        return kExitOk;
    }
    fmt::print("volume {}: {} {}, stripe {} KiB, front end on cluster {}\n", name,
               human_size(u64(v, "size_bytes")), str(v, "layout"), str(v, "stripe_kb"),
               str(v, "front_cluster"));
    for (const json& ns : v.value("namespaces", json::array()))
        fmt::print("exported as namespace {} of {}\n", str(ns, "nsid"), str(ns, "nqn"));
    print_tree(v.value("tree", json::object()), "", true);
    return kExitOk;
}

int cmd_create(Ctl& ctl, const VolumeArgs& a) {
    auto bytes = parse_size(a.size);
    auto stripe = parse_size(a.stripe);
    if (!bytes || !stripe) {
        fmt::print(stderr, "error: bad size '{}' or stripe '{}'\n", a.size, a.stripe);
        return kExitUsage;
    }
    json params = {{"name", a.name},
                   {"size", *bytes},
                   {"layout", a.layout},
                   {"stripe_kb", *stripe / 1024},
                   {"thin_provision", a.thin}};
    if (a.front >= 0) params["front_cluster"] = a.front;
    if (!a.nqn.empty()) params["nqn"] = a.nqn;
    if (!a.clusters.empty()) {
        json ids = json::array();
        std::stringstream ss(a.clusters);
        for (std::string id; std::getline(ss, id, ',');) {
            try {
                ids.push_back(std::stoi(id));
            } catch (const std::exception&) {
                fmt::print(stderr, "error: --clusters takes ids like 2,3, not '{}'\n", a.clusters);
                return kExitUsage;
            }
        }
        params["clusters"] = ids;
    }
    json v;
    if (int rc = ctl.call("nocstor_volume_create", params, &v)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", v.dump(2));
        return kExitOk;
    }
    fmt::print("created volume {} ({})\n", a.name, human_size(u64(v, "size_bytes")));
    print_tree(v.value("tree", json::object()), "", true);
    return kExitOk;
}

}  // namespace

void add_volume_commands(CLI::App& app, Ctl& ctl, Handlers& handlers) {
    auto a = std::make_shared<VolumeArgs>();
    auto* vol =
        app.add_subcommand("volume", "distributed volumes across clusters")->require_subcommand(1);
    auto* list = vol->add_subcommand("list", "list volumes");
    auto* show = vol->add_subcommand("show", "show a volume's stack as a tree across clusters");
    show->add_option("name", a->name, "volume name")->required();
    auto* create = vol->add_subcommand("create", "create a volume (lvols, remote bdevs, a RAID)");
    create->add_option("name", a->name, "volume name")->required();
    create->add_option("--size", a->size, "size, e.g. 10G (default 1G)");
    create->add_option("--clusters", a->clusters, "data clusters, e.g. 2,3 (default: all)");
    create->add_option("--front", a->front, "front-end cluster (default: the first data one)");
    create->add_option("--layout", a->layout, "raid0, raid1, raid5, raid6 or concat");
    create->add_option("--stripe", a->stripe, "strip size, e.g. 64K");
    create->add_option("--nqn", a->nqn, "export it as a namespace of this subsystem");
    create->add_flag("--thin", a->thin, "thin-provisioned lvols");
    auto* del = vol->add_subcommand("delete", "delete a volume and its whole stack");
    del->add_option("name", a->name, "volume name")->required();
    handlers.add(list, [&ctl] { return cmd_list(ctl); });
    handlers.add(show, [&ctl, a] { return cmd_show(ctl, a->name); });
    handlers.add(create, [&ctl, a] { return cmd_create(ctl, *a); });
    handlers.add(del, [&ctl, a] {
        return ctl.call_and_report("nocstor_volume_delete", {{"name", a->name}},
                                   "deleted volume " + a->name);
    });
}

}  // namespace nocstor::ctl
