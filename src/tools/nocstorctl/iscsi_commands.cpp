// nocstorctl iscsi: export a bdev as an iSCSI LUN in one command (portal group, initiator group,
// CHAP secrets and target node, made with SPDK's iscsi_* methods), list targets, portals and
// connections, delete a target.
#include <fmt/format.h>

#include <algorithm>

#include "tools/nocstorctl/commands.h"
#include "tools/nocstorctl/output.h"

namespace nocstor::ctl {

using nlohmann::json;

namespace {

struct ExportArgs {
    std::string bdev, name, portal = "0.0.0.0:3260", initiators = "ANY", netmask = "ANY", chap,
                            mutual;
    int lun = 0;
    int queue_depth = 64;
    bool digests = false;
};

bool split_pair(const std::string& s, char sep, std::string* a, std::string* b) {
    const size_t p = s.rfind(sep);
    if (p == std::string::npos || p == 0 || p + 1 == s.size()) return false;
    *a = s.substr(0, p);
    *b = s.substr(p + 1);
    return true;
}

int next_tag(const json& list) {
    int tag = 0;
    for (const json& e : list) tag = std::max(tag, e.value("tag", 0));
    return tag + 1;
}

int cmd_export(Ctl& ctl, const ExportArgs& a) {
    std::string host, port, user, secret, muser, msecret;
    if (!split_pair(a.portal, ':', &host, &port)) {
        fmt::print(stderr, "error: --portal takes HOST:PORT, not '{}'\n", a.portal);
        return kExitUsage;
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (!a.chap.empty() && !split_pair(a.chap, ':', &user, &secret)) {
        fmt::print(stderr, "error: --chap takes USER:SECRET\n");
        return kExitUsage;
    }
    if (!a.mutual.empty() && (a.chap.empty() || !split_pair(a.mutual, ':', &muser, &msecret))) {
        fmt::print(stderr, "error: --mutual-chap takes TARGET_USER:SECRET and needs --chap\n");
        return kExitUsage;
    }
    // A portal group that already has this portal, or a new one.
    json pgs, igs, ags;
    if (int rc = ctl.call("iscsi_get_portal_groups", json::object(), &pgs)) return rc;
    int pg_tag = 0;
    for (const json& pg : pgs)
        for (const json& p : pg.value("portals", json::array()))
            if (str(p, "host") == host && str(p, "port") == port) pg_tag = pg.value("tag", 0);
    if (pg_tag == 0) {
        pg_tag = next_tag(pgs);
        json r;
        if (int rc =
                ctl.call("iscsi_create_portal_group",
                         {{"tag", pg_tag}, {"portals", {{{"host", host}, {"port", port}}}}}, &r))
            return rc;
    }
    if (int rc = ctl.call("iscsi_get_initiator_groups", json::object(), &igs)) return rc;
    const int ig_tag = next_tag(igs);
    json r;
    if (int rc = ctl.call(
            "iscsi_create_initiator_group",
            {{"tag", ig_tag}, {"initiators", {a.initiators}}, {"netmasks", {a.netmask}}}, &r))
        return rc;
    json node = {{"name", a.name},
                 {"alias_name", a.bdev},
                 {"pg_ig_maps", {{{"pg_tag", pg_tag}, {"ig_tag", ig_tag}}}},
                 {"luns", {{{"bdev_name", a.bdev}, {"lun_id", a.lun}}}},
                 {"queue_depth", a.queue_depth},
                 {"header_digest", a.digests},
                 {"data_digest", a.digests}};
    if (!user.empty()) {
        if (int rc = ctl.call("iscsi_get_auth_groups", json::object(), &ags)) return rc;
        const int ag_tag = next_tag(ags);
        json secretj = {{"user", user}, {"secret", secret}};
        if (!muser.empty()) {
            secretj["muser"] = muser;
            secretj["msecret"] = msecret;
        }
        if (int rc =
                ctl.call("iscsi_create_auth_group", {{"tag", ag_tag}, {"secrets", {secretj}}}, &r))
            return rc;
        node["require_chap"] = true;
        node["mutual_chap"] = !muser.empty();
        node["chap_group"] = ag_tag;
    }
    if (int rc = ctl.call("iscsi_create_target_node", node, &r)) return rc;
    json nodes;
    if (int rc = ctl.call("iscsi_get_target_nodes", json::object(), &nodes)) return rc;
    std::string full = a.name;
    for (const json& n : nodes)
        if (n.value("alias_name", "") == a.bdev && str(n, "name").find(a.name) != std::string::npos)
            full = str(n, "name");
    fmt::print("exported {} as {} LUN {} on {}:{} (portal group {}, initiators {} from {}{})\n",
               a.bdev, full, a.lun, host, port, pg_tag, a.initiators, a.netmask,
               user.empty() ? "" : (muser.empty() ? ", CHAP" : ", mutual CHAP"));
    return kExitOk;
}

int cmd_targets(Ctl& ctl) {
    json nodes;
    if (int rc = ctl.call("iscsi_get_target_nodes", json::object(), &nodes)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", nodes.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& n : nodes) {
        std::string luns, maps;
        for (const json& l : n.value("luns", json::array()))
            luns += (luns.empty() ? "" : ",") + str(l, "lun_id") + ":" + str(l, "bdev_name");
        for (const json& m : n.value("pg_ig_maps", json::array()))
            maps += (maps.empty() ? "" : ",") + str(m, "pg_tag") + "/" + str(m, "ig_tag");
        const std::string auth = n.value("mutual_chap", false)    ? "mutual CHAP"
                                 : n.value("require_chap", false) ? "CHAP"
                                                                  : "none";
        rows.push_back({str(n, "name"), luns, maps, auth, str(n, "queue_depth")});
    }
    print_table({"TARGET", "LUNS", "PG/IG", "AUTH", "QD"}, rows);
    return kExitOk;
}

int cmd_portals(Ctl& ctl) {
    json pgs;
    if (int rc = ctl.call("iscsi_get_portal_groups", json::object(), &pgs)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", pgs.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& pg : pgs)
        for (const json& p : pg.value("portals", json::array()))
            rows.push_back({str(pg, "tag"), str(p, "host") + ":" + str(p, "port"),
                            pg.value("started", false) ? "listening" : "waiting"});
    print_table({"TAG", "PORTAL", "STATE"}, rows);
    return kExitOk;
}

int cmd_connections(Ctl& ctl) {
    json conns;
    if (int rc = ctl.call("iscsi_get_connections", json::object(), &conns)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", conns.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& c : conns) {
        std::string digests = c.value("header_digest", false) ? "H" : "";
        if (c.value("data_digest", false)) digests += "D";
        rows.push_back({str(c, "initiator_name"), str(c, "initiator_addr"),
                        str(c, "target_node_name", "(discovery)"), str(c, "poll_group"),
                        digests.empty() ? "-" : digests, str(c, "commands")});
    }
    print_table({"INITIATOR", "FROM", "TARGET", "POLL GROUP", "DIGESTS", "COMMANDS"}, rows);
    return kExitOk;
}

}  // namespace

void add_iscsi_commands(CLI::App& app, Ctl& ctl, Handlers& handlers) {
    auto a = std::make_shared<ExportArgs>();
    auto* is = app.add_subcommand("iscsi", "the iSCSI target")->require_subcommand(1);
    auto* ex = is->add_subcommand("export", "serve a bdev as an iSCSI LUN (one command)");
    ex->add_option("bdev", a->bdev, "bdev to serve")->required();
    ex->add_option("name", a->name, "target name: an IQN, or a short name under node_base")
        ->required();
    ex->add_option("--portal", a->portal, "HOST:PORT to listen on (default 0.0.0.0:3260)");
    ex->add_option("--lun", a->lun, "LUN number (default 0)");
    ex->add_option("--initiators", a->initiators, "initiator name allowed (default ANY)");
    ex->add_option("--netmask", a->netmask, "addresses allowed, e.g. 10.0.0.0/8 (default ANY)");
    ex->add_option("--queue-depth", a->queue_depth, "commands per session (default 64)");
    ex->add_option("--chap", a->chap, "require CHAP: USER:SECRET");
    ex->add_option("--mutual-chap", a->mutual, "mutual CHAP: TARGET_USER:SECRET");
    ex->add_flag("--digests", a->digests, "require CRC32C header and data digests");
    auto* targets = is->add_subcommand("targets", "list target nodes");
    auto* portals = is->add_subcommand("portals", "list portal groups");
    auto* conns = is->add_subcommand("connections", "list connections");
    auto* del = is->add_subcommand("delete", "delete a target node");
    del->add_option("name", a->name, "target name")->required();
    handlers.add(ex, [&ctl, a] { return cmd_export(ctl, *a); });
    handlers.add(targets, [&ctl] { return cmd_targets(ctl); });
    handlers.add(portals, [&ctl] { return cmd_portals(ctl); });
    handlers.add(conns, [&ctl] { return cmd_connections(ctl); });
    handlers.add(del, [&ctl, a] {
        return ctl.call_and_report("iscsi_delete_target_node", {{"name", a->name}},
                                   "deleted target " + a->name);
    });
}

}  // namespace nocstor::ctl
