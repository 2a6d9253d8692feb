// nocstorctl lvol: stores, create-store, delete-store, rename-store, grow-store, list, tree (the
// snapshot/clone chains), create, snapshot, clone, clone-bdev, set-parent, set-parent-bdev,
// resize, rename, set-read-only, delete, inflate, decouple.
#include "tools/nocstorctl/commands.h"
#include "tools/nocstorctl/output.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace nocstor::ctl {

using nlohmann::json;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

struct LvolArgs {
    std::string bdev, store, name, target, size, cluster_size, clear_method;
    bool thin = false;
};

std::string clusters_text(uint64_t clusters, uint64_t cluster_bytes) {
    return fmt::format("{} ({})", clusters, human_size(clusters * cluster_bytes));
}

int cmd_stores(Ctl& ctl) {
    json stores;
    if (int rc = ctl.call("bdev_lvol_get_lvstores", nullptr, &stores)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", stores.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& s : stores) {
        const uint64_t cs = u64(s, "cluster_size"), total = u64(s, "total_data_clusters"),
                       free = std::min(u64(s, "free_clusters"), total);
        rows.push_back({str(s, "name"), str(s, "uuid"), str(s, "base_bdev"), human_size(cs),
                        clusters_text(total, cs), clusters_text(total - free, cs),
                        clusters_text(free, cs), str(s, "state")});
    }
    print_table({"NAME", "UUID", "BASE", "CLUSTER", "TOTAL", "USED", "FREE", "STATE"}, rows);
    return kExitOk;
}

// The lvols (of one store, or all) with "size_bytes", "allocated_bytes" and "parent" filled in
// from the stores' cluster sizes (and bdev_get_bdevs for a daemon that lists no parent).
int get_lvols(Ctl& ctl, const std::string& store, json* out, json* stores_out = nullptr) {
    json stores, lvols;
    if (int rc = ctl.call("bdev_lvol_get_lvstores",
                          store.empty() ? json(nullptr) : json{{"lvs_name", store}}, &stores))
        return rc;
    if (int rc = ctl.call("bdev_lvol_get_lvols",
                          store.empty() ? json(nullptr) : json{{"lvs_name", store}}, &lvols))
        return rc;
    std::map<std::string, uint64_t> cluster_size;
    for (const json& s : stores) cluster_size[str(s, "uuid")] = u64(s, "cluster_size");
    bool parents_missing = false;
    for (json& l : lvols) {
        const json lvs = l.value("lvs", json::object());
        const uint64_t cs = cluster_size[str(lvs, "uuid")];
        l["size_bytes"] = u64(l, "num_clusters") * cs;
        l["allocated_bytes"] = u64(l, "num_allocated_clusters") * cs;
        parents_missing |= l.value("is_clone", false) && !l.contains("parent");
    }
    if (parents_missing) {
        json bdevs;
        if (int rc = ctl.call("bdev_get_bdevs", nullptr, &bdevs)) return rc;
        std::map<std::string, std::string> base_snapshot;  // lvol UUID -> its parent's name
        for (const json& b : bdevs) {
            const json lv = b.value("driver_specific", json::object()).value("lvol", json());
            if (lv.is_object() && lv.contains("base_snapshot"))
                base_snapshot[str(b, "name")] = str(lv, "base_snapshot");
        }
        for (json& l : lvols) {
            if (l.contains("parent")) continue;
            auto it = base_snapshot.find(str(l, "uuid"));
            l["parent"] = it == base_snapshot.end() ? json(nullptr) : json(it->second);
        }
    }
    *out = std::move(lvols);
    if (stores_out) *stores_out = std::move(stores);
    return kExitOk;
}

// "snapshot, thin, ..." for an lvol.
std::string kind_text(const json& l) {
    std::vector<std::string> kinds;
    if (l.value("is_snapshot", false)) kinds.push_back("snapshot");
    if (l.value("read_only", false) && !l.value("is_snapshot", false)) kinds.push_back("read-only");
    if (l.value("is_clone", false)) kinds.push_back("clone");
    if (l.value("is_esnap_clone", false)) kinds.push_back("esnap clone");
    if (l.value("is_degraded", false)) kinds.push_back("degraded");
    // A snapshot's clusters are what its origin had: "thin" says nothing there.
    if (l.value("is_thin_provisioned", false) && !l.value("is_snapshot", false))
        kinds.push_back("thin");
    return fmt::format("{}", fmt::join(kinds, ", "));
}

int cmd_list(Ctl& ctl, const std::string& store) {
    json lvols;
    if (int rc = get_lvols(ctl, store, &lvols)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", lvols.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& l : lvols) {
        const std::string kind = kind_text(l);
        rows.push_back({str(l, "alias"), str(l, "uuid"), human_size(u64(l, "size_bytes")),
                        human_size(u64(l, "allocated_bytes")),
                        l.value("is_thin_provisioned", false) ? "yes" : "no",
                        kind.empty() ? "-" : kind,
                        l.value("is_esnap_clone", false) && str(l, "parent") == "-"
                            ? "bdev " + str(l, "external_snapshot_name")
                            : str(l, "parent")});
    }
    print_table({"ALIAS", "UUID", "SIZE", "ALLOCATED", "THIN", "KIND", "PARENT"}, rows);
    return kExitOk;
}

// The lvols of each store as a forest: the lvols without a parent (or whose parent is not
// listed) are roots; each lvol's clones are its children.
struct Forest {
    struct Store {
        std::string name, uuid;
        std::vector<size_t> roots;
    };
    std::vector<Store> stores;
    std::vector<std::vector<size_t>> children;  // by index into the lvols
};

Forest build_forest(const json& lvols) {
    Forest f;
    f.children.resize(lvols.size());
    std::map<std::string, size_t> store_index;
    std::map<std::pair<std::string, std::string>, size_t> by_name;  // (store uuid, name)
    for (size_t i = 0; i < lvols.size(); ++i) {
        const json lvs = lvols[i].value("lvs", json::object());
        by_name[{str(lvs, "uuid"), str(lvols[i], "name")}] = i;
        if (!store_index.count(str(lvs, "uuid"))) {
            store_index[str(lvs, "uuid")] = f.stores.size();
            f.stores.push_back({str(lvs, "name"), str(lvs, "uuid"), {}});
        }
    }
    // parent[i]: the index of i's parent, or i itself for a root.
    std::vector<size_t> parent(lvols.size());
    for (size_t i = 0; i < lvols.size(); ++i) {
        const json lvs = lvols[i].value("lvs", json::object());
        parent[i] = i;
        const std::string p = str(lvols[i], "parent", "");
        if (p.empty()) continue;
        auto it = by_name.find({str(lvs, "uuid"), p});
        if (it != by_name.end() && it->second != i) parent[i] = it->second;
    }
    // A parent loop (never from a sane daemon) would hide its lvols: break it at its first one.
    for (size_t i = 0; i < lvols.size(); ++i) {
        std::set<size_t> seen{i};
        for (size_t at = parent[i]; parent[at] != at; at = parent[at]) {
            if (!seen.insert(at).second) {
                parent[at] = at;
                break;
            }
        }
    }
    auto by_name_order = [&lvols](size_t a, size_t b) {
        return str(lvols[a], "name") < str(lvols[b], "name");
    };
    for (size_t i = 0; i < lvols.size(); ++i) {
        if (parent[i] == i)
            f.stores[store_index[str(lvols[i].value("lvs", json::object()), "uuid")]]
                .roots.push_back(i);
        else
            f.children[parent[i]].push_back(i);
    }
    for (auto& s : f.stores) std::sort(s.roots.begin(), s.roots.end(), by_name_order);
    for (auto& c : f.children) std::sort(c.begin(), c.end(), by_name_order);
    return f;
}

json tree_json(const json& lvols, const Forest& f, size_t i) {
    json node = lvols[i];
    node["clones"] = json::array();
    for (size_t c : f.children[i]) node["clones"].push_back(tree_json(lvols, f, c));
    return node;
}

void print_node(const json& lvols, const Forest& f, size_t i, const std::string& prefix, bool last,
                bool root) {
    const json& l = lvols[i];
    const std::string kind = kind_text(l);
    std::string line = fmt::format("{}{}{}", prefix, last ? "`-- " : "|-- ", str(l, "name"));
    if (!kind.empty()) line += " [" + kind + "]";
    line += fmt::format(" {} / {}", human_size(u64(l, "allocated_bytes")),
                        human_size(u64(l, "size_bytes")));
    // A root with a parent: not listed (should not happen); said instead of hidden.
    if (root && !str(l, "parent", "").empty())
        line += " (parent " + str(l, "parent") + " not found)";
    fmt::print("{}\n", line);
    const auto& kids = f.children[i];
    for (size_t k = 0; k < kids.size(); ++k)
        print_node(lvols, f, kids[k], prefix + (last ? "    " : "|   "), k + 1 == kids.size(),
                   false);
}

int cmd_tree(Ctl& ctl, const std::string& store) {
    json lvols, stores;
    if (int rc = get_lvols(ctl, store, &lvols, &stores)) return rc;
    Forest f = build_forest(lvols);
    for (const json& s : stores) {  // stores without lvols too
        bool found = false;
        for (const auto& fs : f.stores) found = found || fs.uuid == str(s, "uuid");
        if (!found) f.stores.push_back({str(s, "name"), str(s, "uuid"), {}});
    }
    std::sort(f.stores.begin(), f.stores.end(),
              [](const Forest::Store& a, const Forest::Store& b) { return a.name < b.name; });
    if (ctl.json_output) {
        json out = json::array();
        for (const auto& s : f.stores) {
            json roots = json::array();
            for (size_t r : s.roots) roots.push_back(tree_json(lvols, f, r));
            out.push_back({{"name", s.name}, {"uuid", s.uuid}, {"lvols", roots}});
        }
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
    }
    if (f.stores.empty()) fmt::print("(no lvstores)\n");
    for (const auto& s : f.stores) {
        fmt::print("{}\n", s.name);
        if (s.roots.empty()) fmt::print("    (no lvols)\n");
        for (size_t r = 0; r < s.roots.size(); ++r)
            print_node(lvols, f, s.roots[r], "", r + 1 == s.roots.size(), true);
    }
    return kExitOk;
}

// SIZE in whole MiB (the RPCs' unit); nullopt after printing a usage error.
std::optional<uint64_t> size_mib(const std::string& text) {
    auto bytes = parse_size(text);
    if (!bytes || *bytes == 0) {
        fmt::print(stderr, "error: invalid size '{}' (examples: 64M, 1G)\n", text);
        return std::nullopt;
    }
    if (*bytes % kMiB) {
        fmt::print(stderr, "error: size '{}' is not a whole number of MiB (examples: 64M, 1G)\n",
                   text);
        return std::nullopt;
    }
    return *bytes / kMiB;
}

int cmd_create_store(Ctl& ctl, const LvolArgs& a) {
    json params = {{"bdev_name", a.bdev}, {"lvs_name", a.store}};
    if (!a.cluster_size.empty()) {
        auto bytes = parse_size(a.cluster_size);
        if (!bytes || *bytes == 0 || *bytes > UINT32_MAX) {
            fmt::print(stderr, "error: invalid cluster size '{}' (examples: 1M, 4M)\n",
                       a.cluster_size);
            return kExitUsage;
        }
        params["cluster_sz"] = *bytes;
    }
    if (!a.clear_method.empty()) params["clear_method"] = a.clear_method;
    json uuid;
    if (int rc = ctl.call("bdev_lvol_create_lvstore", params, &uuid)) return rc;
    if (ctl.json_output)
        fmt::print("{}\n", uuid.dump(2));
    else
        fmt::print("created lvstore {} on {} ({})\n", a.store, a.bdev,
                   uuid.is_string() ? uuid.get<std::string>() : uuid.dump());
    return kExitOk;
}

// Calls a method that answers a new lvol's UUID and reports it.
int report_uuid(Ctl& ctl, const char* method, const json& params, const std::string& what) {
    json uuid;
    if (int rc = ctl.call(method, params, &uuid)) return rc;
    if (ctl.json_output)
        fmt::print("{}\n", uuid.dump(2));
    else
        fmt::print("{} ({})\n", what, uuid.is_string() ? uuid.get<std::string>() : uuid.dump());
    return kExitOk;
}

}  // namespace

void add_lvol_commands(CLI::App& app, Ctl& ctl, Handlers& handlers) {
    auto a = std::make_shared<LvolArgs>();
    auto* lvol =
        app.add_subcommand("lvol", "logical volumes: lvstores, thin lvols, snapshots, clones")
            ->require_subcommand(1);
    const char* lvol_help = "lvol: STORE/NAME (its alias) or its UUID";

    auto* stores = lvol->add_subcommand("stores", "list lvstores with their cluster usage");
    handlers.add(stores, [&ctl] { return cmd_stores(ctl); });

    auto* create_store = lvol->add_subcommand("create-store", "create an lvstore on a bdev");
    create_store->add_option("bdev", a->bdev, "base bdev (claimed by the store)")->required();
    create_store->add_option("name", a->store, "lvstore name")->required();
    create_store->add_option("--cluster-size", a->cluster_size,
                             "cluster size, e.g. 1M (default: the daemon's, 4M)");
    create_store
        ->add_option("--clear-method", a->clear_method,
                     "how the data region is cleared at creation (default: unmap)")
        ->check(CLI::IsMember({"none", "unmap", "write_zeroes"}));
    handlers.add(create_store, [&ctl, a] { return cmd_create_store(ctl, *a); });

    auto* delete_store =
        lvol->add_subcommand("delete-store", "delete an lvstore and every lvol in it");
    delete_store->add_option("name", a->store, "lvstore name")->required();
    handlers.add(delete_store, [&ctl, a] {
        return ctl.call_and_report("bdev_lvol_delete_lvstore", {{"lvs_name", a->store}},
                                   fmt::format("deleted lvstore {}", a->store));
    });

    auto* rename_store = lvol->add_subcommand("rename-store", "rename an lvstore");
    rename_store->add_option("name", a->store, "lvstore name")->required();
    rename_store->add_option("new_name", a->name, "new name")->required();
    handlers.add(rename_store, [&ctl, a] {
        return ctl.call_and_report("bdev_lvol_rename_lvstore",
                                   {{"old_name", a->store}, {"new_name", a->name}},
                                   fmt::format("renamed lvstore {} to {}", a->store, a->name));
    });

    auto* grow_store =
        lvol->add_subcommand("grow-store", "take in the space its base bdev grew by");
    grow_store->add_option("name", a->store, "lvstore name")->required();
    handlers.add(grow_store, [&ctl, a] {
        return ctl.call_and_report("bdev_lvol_grow_lvstore", {{"lvs_name", a->store}},
                                   fmt::format("grew lvstore {}", a->store));
    });

    auto* list = lvol->add_subcommand("list", "list lvols: size, allocated, kind, parent");
    list->add_option("--store", a->store, "only this lvstore");
    handlers.add(list, [&ctl, a] { return cmd_list(ctl, a->store); });

    auto* tree = lvol->add_subcommand(
        "tree", "show the snapshot/clone chains: each lvol without a parent, its clones under it");
    tree->add_option("--store", a->store, "only this lvstore");
    handlers.add(tree, [&ctl, a] { return cmd_tree(ctl, a->store); });

    auto* create = lvol->add_subcommand("create", "create an lvol");
    create->add_option("store", a->store, "lvstore name")->required();
    create->add_option("name", a->name, "lvol name")->required();
    create->add_option("size", a->size, "size in whole MiB, e.g. 64M, 1G")->required();
    create->add_flag("--thin", a->thin, "thin provisioned: clusters are allocated on first write");
    create
        ->add_option("--clear-method", a->clear_method,
                     "how its clusters are cleared when it is deleted (default: unmap)")
        ->check(CLI::IsMember({"none", "unmap", "write_zeroes"}));
    handlers.add(create, [&ctl, a] {
        auto mib = size_mib(a->size);
        if (!mib) return kExitUsage;
        json params = {{"lvs_name", a->store},
                       {"lvol_name", a->name},
                       {"size_in_mib", *mib},
                       {"thin_provision", a->thin}};
        if (!a->clear_method.empty()) params["clear_method"] = a->clear_method;
        return report_uuid(ctl, "bdev_lvol_create", params,
                           fmt::format("created {}/{}", a->store, a->name));
    });

    auto* snapshot = lvol->add_subcommand(
        "snapshot", "snapshot an lvol (read-only; the lvol becomes a clone of it)");
    snapshot->add_option("lvol", a->target, lvol_help)->required();
    snapshot->add_option("name", a->name, "snapshot name")->required();
    handlers.add(snapshot, [&ctl, a] {
        return report_uuid(ctl, "bdev_lvol_snapshot",
                           {{"lvol_name", a->target}, {"snapshot_name", a->name}},
                           fmt::format("created snapshot {} of {}", a->name, a->target));
    });

    auto* clone = lvol->add_subcommand("clone", "create a thin clone of a snapshot");
    clone->add_option("snapshot", a->target, "snapshot: STORE/NAME or its UUID")->required();
    clone->add_option("name", a->name, "clone name")->required();
    handlers.add(clone, [&ctl, a] {
        return report_uuid(ctl, "bdev_lvol_clone",
                           {{"snapshot_name", a->target}, {"clone_name", a->name}},
                           fmt::format("created clone {} of {}", a->name, a->target));
    });

    auto* clone_bdev = lvol->add_subcommand(
        "clone-bdev", "create a thin clone of a bdev outside the store (an external snapshot)");
    clone_bdev->add_option("bdev", a->bdev, "bdev: its name or UUID (read-only from now on)")
        ->required();
    clone_bdev->add_option("store", a->store, "lvstore name")->required();
    clone_bdev->add_option("name", a->name, "clone name")->required();
    handlers.add(clone_bdev, [&ctl, a] {
        return report_uuid(
            ctl, "bdev_lvol_clone_bdev",
            {{"bdev", a->bdev}, {"lvs_name", a->store}, {"clone_name", a->name}},
            fmt::format("created clone {}/{} of bdev {}", a->store, a->name, a->bdev));
    });

    auto* set_parent =
        lvol->add_subcommand("set-parent", "make a snapshot the parent of a thin lvol");
    set_parent->add_option("lvol", a->target, lvol_help)->required();
    set_parent->add_option("snapshot", a->name, "snapshot of the same store: STORE/NAME or UUID")
        ->required();
    handlers.add(set_parent, [&ctl, a] {
        return ctl.call_and_report("bdev_lvol_set_parent",
                                   {{"lvol_name", a->target}, {"parent_name", a->name}},
                                   fmt::format("{} is now the parent of {}", a->name, a->target));
    });

    auto* set_parent_bdev = lvol->add_subcommand(
        "set-parent-bdev", "make a bdev outside the store the parent of a thin lvol");
    set_parent_bdev->add_option("lvol", a->target, lvol_help)->required();
    set_parent_bdev->add_option("bdev", a->bdev, "bdev: its name or UUID")->required();
    handlers.add(set_parent_bdev, [&ctl, a] {
        return ctl.call_and_report(
            "bdev_lvol_set_parent_bdev", {{"lvol_name", a->target}, {"parent_name", a->bdev}},
            fmt::format("bdev {} is now the parent of {}", a->bdev, a->target));
    });

    auto* resize = lvol->add_subcommand("resize", "grow or shrink an lvol");
    resize->add_option("lvol", a->target, lvol_help)->required();
    resize->add_option("size", a->size, "new size in whole MiB, e.g. 64M, 1G")->required();
    handlers.add(resize, [&ctl, a] {
        auto mib = size_mib(a->size);
        if (!mib) return kExitUsage;
        return ctl.call_and_report(
            "bdev_lvol_resize", {{"name", a->target}, {"size_in_mib", *mib}},
            fmt::format("resized {} to {}", a->target, human_size(*mib * kMiB)));
    });

    auto* rename = lvol->add_subcommand("rename", "rename an lvol (within its store)");
    rename->add_option("lvol", a->target, lvol_help)->required();
    rename->add_option("new_name", a->name, "new name (without the store)")->required();
    handlers.add(rename, [&ctl, a] {
        return ctl.call_and_report("bdev_lvol_rename",
                                   {{"old_name", a->target}, {"new_name", a->name}},
                                   fmt::format("renamed {} to {}", a->target, a->name));
    });

    struct ByName {
        const char* cmd;
        const char* method;
        const char* help;
        const char* done;
    };
    for (const ByName& m : {
             ByName{"set-read-only", "bdev_lvol_set_read_only", "make an lvol read-only",
                    "{} is read-only"},
             ByName{"delete", "bdev_lvol_delete",
                    "delete an lvol (a snapshot with one clone merges into it)", "deleted {}"},
             ByName{"inflate", "bdev_lvol_inflate",
                    "allocate every cluster of an lvol and drop its parent", "inflated {}"},
             ByName{"decouple", "bdev_lvol_decouple_parent",
                    "copy what the parent holds and link the lvol to the grandparent",
                    "decoupled {} from its parent"},
         }) {
        auto* cmd = lvol->add_subcommand(m.cmd, m.help);
        cmd->add_option("lvol", a->target, lvol_help)->required();
        handlers.add(cmd, [&ctl, a, method = std::string(m.method), done = std::string(m.done)] {
            return ctl.call_and_report(method, {{"name", a->target}},
                                       fmt::format(fmt::runtime(done), a->target));
        });
    }
}

}  // namespace nocstor::ctl
