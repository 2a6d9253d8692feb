// nocstorctl lvol against the daemon: an lvstore on a malloc bdev, lvols created, snapshotted,
// cloned, inflated, decoupled, resized, renamed, made read-only and deleted through the tool;
// the snapshot/clone tree as text and JSON; errors and exit codes; the lvol families in /metrics.
#include "daemon_env.h"
#include "interop_util.h"

#include <fmt/format.h>

#include <sstream>
#include <string>
#include <vector>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

// The cells of the table row whose first cell is `first` (cells are apart by 2+ spaces).
std::vector<std::string> row(const std::string& out, const std::string& first) {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> cells;
        size_t at = 0;
        while (at < line.size()) {
            size_t gap = line.find("  ", at);
            if (gap == std::string::npos) gap = line.size();
            cells.push_back(line.substr(at, gap - at));
            at = line.find_first_not_of(' ', gap);
            if (at == std::string::npos) break;
        }
        if (!cells.empty() && cells[0] == first) return cells;
    }
    return {};
}

// A sample's value in Prometheus text: the line "name{labels} value"; -1 when absent.
double metric(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.size() > series.size() + 1 && line.compare(0, series.size(), series) == 0 &&
            line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

TEST(LvolTool, NocstorctlManagesLvolsAndDrawsTheirTree) {
    Daemon d({"--empty"});
    const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket();
    auto run = [&](const std::string& args, int want_rc = 0) {
        int rc = 0;
        std::string out = run_command(ctl + " " + args + " 2>&1", &rc);
        EXPECT_EQ(rc, want_rc) << "nocstorctl " << args << ":\n" << out;
        return out;
    };
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 16384}, {"block_size", 4096}});

    std::string out = run("lvol create-store M0 lvs --cluster-size 1M --clear-method none");
    EXPECT_NE(out.find("created lvstore lvs on M0 ("), std::string::npos) << out;
    json store = d.ok("bdev_lvol_get_lvstores", {{"lvs_name", "lvs"}})[0];
    EXPECT_EQ(store["cluster_size"], 1 << 20);
    const uint64_t total = store["total_data_clusters"];
    const std::string mib = fmt::format("{} ({}.00 MiB)", total, total);
    EXPECT_EQ(row(run("lvol stores"), "lvs"),
              (std::vector<std::string>{"lvs", store["uuid"], "M0", "1.00 MiB", mib, "0 (0 B)", mib,
                                        "online"}));

    out = run("lvol create lvs base 8M --thin");
    const std::string base_uuid = d.ok("bdev_get_bdevs", {{"name", "lvs/base"}})[0]["name"];
    EXPECT_EQ(out, "created lvs/base (" + base_uuid + ")\n");
    run("lvol create lvs thick 4M");
    out = run("lvol snapshot lvs/base snap");
    EXPECT_NE(out.find("created snapshot snap of lvs/base ("), std::string::npos) << out;
    out = run("lvol clone lvs/snap c1");
    EXPECT_NE(out.find("created clone c1 of lvs/snap ("), std::string::npos) << out;

    // The snapshot with its two clones (the origin and the new clone), the thick lvol beside.
    EXPECT_EQ(run("lvol tree"),
              "lvs\n"
              "|-- snap [snapshot] 0 B / 8.00 MiB\n"
              "|   |-- base [clone, thin] 0 B / 8.00 MiB\n"
              "|   `-- c1 [clone, thin] 0 B / 8.00 MiB\n"
              "`-- thick 4.00 MiB / 4.00 MiB\n");
    // A chain one deeper: c1's snapshot between snap and c1.
    run("lvol snapshot lvs/c1 snap2");
    EXPECT_EQ(run("lvol tree --store lvs"),
              "lvs\n"
              "|-- snap [snapshot] 0 B / 8.00 MiB\n"
              "|   |-- base [clone, thin] 0 B / 8.00 MiB\n"
              "|   `-- snap2 [snapshot, clone] 0 B / 8.00 MiB\n"
              "|       `-- c1 [clone, thin] 0 B / 8.00 MiB\n"
              "`-- thick 4.00 MiB / 4.00 MiB\n");
    json tree = json::parse(run("--json lvol tree"));
    ASSERT_EQ(tree.size(), 1u);
    EXPECT_EQ(tree[0]["name"], "lvs");
    ASSERT_EQ(tree[0]["lvols"].size(), 2u);
    const json& snap = tree[0]["lvols"][0];
    EXPECT_EQ(snap["name"], "snap");
    ASSERT_EQ(snap["clones"].size(), 2u);
    EXPECT_EQ(snap["clones"][0]["name"], "base");
    EXPECT_EQ(snap["clones"][0]["parent"], "snap");
    EXPECT_EQ(snap["clones"][1]["clones"][0]["name"], "c1");
    EXPECT_EQ(snap["clones"][1]["clones"][0]["size_bytes"], 8 << 20);

    out = run("lvol list");
    const std::string c1_uuid = d.ok("bdev_get_bdevs", {{"name", "lvs/c1"}})[0]["name"];
    EXPECT_EQ(row(out, "ALIAS"), (std::vector<std::string>{"ALIAS", "UUID", "SIZE", "ALLOCATED",
                                                           "THIN", "KIND", "PARENT"}));
    EXPECT_EQ(row(out, "lvs/c1"), (std::vector<std::string>{"lvs/c1", c1_uuid, "8.00 MiB", "0 B",
                                                            "yes", "clone, thin", "snap2"}))
        << out;
    EXPECT_EQ(row(out, "lvs/thick").size(), 7u) << out;
    EXPECT_EQ(row(out, "lvs/thick")[3], "4.00 MiB") << out;
    EXPECT_EQ(row(out, "lvs/thick")[6], "-") << out;
    json listed = json::parse(run("--json lvol list --store lvs"));
    EXPECT_EQ(listed.size(), 5u);

    // A snapshot with two clones cannot go: the daemon's message, exit 1.
    out = run("lvol delete lvs/snap", 1);
    EXPECT_NE(out.find("error: bdev_lvol_delete: snapshot snap has 2 clones"), std::string::npos)
        << out;
    out = run("lvol inflate lvs/base");
    EXPECT_EQ(out, "inflated lvs/base\n");
    out = run("lvol decouple lvs/c1");
    EXPECT_EQ(out, "decoupled lvs/c1 from its parent\n");
    run("lvol delete lvs/snap2");
    run("lvol resize lvs/thick 6M");
    run("lvol rename lvs/thick big");
    run("lvol set-read-only lvs/big");
    EXPECT_EQ(run("lvol tree"),
              "lvs\n"
              "|-- base [thin] 8.00 MiB / 8.00 MiB\n"
              "|-- big [read-only] 6.00 MiB / 6.00 MiB\n"
              "`-- snap [snapshot] 0 B / 8.00 MiB\n"
              "    `-- c1 [clone, thin] 0 B / 8.00 MiB\n");
    const std::string free = fmt::format("{} ({}.00 MiB)", total - 14, total - 14);
    EXPECT_EQ(row(run("lvol stores"), "lvs"),
              (std::vector<std::string>{"lvs", store["uuid"], "M0", "1.00 MiB", mib,
                                        "14 (14.00 MiB)", free, "online"}));

    // /metrics: the store's clusters and journal, each lvol's size and allocation.
    auto m = http_request(d.http_port(), "GET", "/metrics");
    ASSERT_EQ(m.status, 200);
    const std::string& t = m.body;
    EXPECT_EQ(metric(t, "nocstor_lvstore_cluster_size_bytes{lvstore=\"lvs\"}"), 1 << 20) << t;
    EXPECT_EQ(metric(t, "nocstor_lvstore_total_clusters{lvstore=\"lvs\"}"), double(total));
    EXPECT_EQ(metric(t, "nocstor_lvstore_used_clusters{lvstore=\"lvs\"}"), 14);
    EXPECT_EQ(metric(t, "nocstor_lvstore_free_clusters{lvstore=\"lvs\"}"), double(total - 14));
    EXPECT_EQ(metric(t, "nocstor_lvstore_lvols{lvstore=\"lvs\"}"), 4);
    EXPECT_GE(metric(t, "nocstor_lvstore_journal_batches_total{lvstore=\"lvs\"}"), 1);
    EXPECT_GE(metric(t, "nocstor_lvstore_checkpoints_total{lvstore=\"lvs\"}"), 0);  // present
    EXPECT_GE(metric(t, "nocstor_lvstore_journal_used_bytes{lvstore=\"lvs\"}"), 0);
    EXPECT_EQ(metric(t, "nocstor_lvstore_failed{lvstore=\"lvs\"}"), 0);
    const std::string base_labels = "{lvstore=\"lvs\",lvol=\"base\",bdev=\"" + base_uuid + "\"}";
    EXPECT_EQ(metric(t, "nocstor_lvol_size_bytes" + base_labels), 8 << 20) << t;
    EXPECT_EQ(metric(t, "nocstor_lvol_allocated_bytes" + base_labels), 8 << 20);
    const std::string big = d.ok("bdev_get_bdevs", {{"name", "lvs/big"}})[0]["name"];
    const std::string big_labels = "{lvstore=\"lvs\",lvol=\"big\",bdev=\"" + big + "\"}";
    EXPECT_EQ(metric(t, "nocstor_lvol_size_bytes" + big_labels), 6 << 20);
    EXPECT_EQ(metric(t, "nocstor_lvol_allocated_bytes" + big_labels), 6 << 20);
    EXPECT_NE(t.find("nocstor_lvol_allocated_bytes{lvstore=\"lvs\",lvol=\"c1\","),
              std::string::npos);
    EXPECT_EQ(t.find("lvol=\"snap2\""), std::string::npos);

    // Bad input: the daemon's message and exit 1, or a usage error (exit 2) before any call.
    out = run("lvol delete lvs/nope", 1);
    EXPECT_NE(out.find("error: bdev_lvol_delete: no lvol named lvs/nope"), std::string::npos)
        << out;
    out = run("lvol create lvs big 1M", 1);
    EXPECT_NE(out.find("exists"), std::string::npos) << out;
    out = run("lvol resize lvs/base 1536K", 2);
    EXPECT_NE(out.find("not a whole number of MiB"), std::string::npos) << out;
    out = run("lvol create lvs x", 2);
    out = run("lvol create-store M0 other --clear-method wipe", 2);
    out = run("lvol tree --store nope", 1);
    EXPECT_NE(out.find("no lvstore nope"), std::string::npos) << out;
    out = run("lvol --help");
    for (const char* cmd :
         {"stores", "create-store", "delete-store", "list", "tree", "create", "snapshot", "clone",
          "resize", "rename", "set-read-only", "delete", "inflate", "decouple"})
        EXPECT_NE(out.find(std::string("  ") + cmd + " "), std::string::npos) << cmd << "\n" << out;

    EXPECT_EQ(run("lvol delete-store lvs"), "deleted lvstore lvs\n");
    EXPECT_EQ(run("lvol stores"), "NAME  UUID  BASE  CLUSTER  TOTAL  USED  FREE  STATE\n(none)\n");
    EXPECT_EQ(run("lvol tree"), "(no lvstores)\n");
    m = http_request(d.http_port(), "GET", "/metrics");
    EXPECT_EQ(m.body.find("nocstor_lvstore_total_clusters{"), std::string::npos);
    EXPECT_NE(m.body.find("# TYPE nocstor_lvstore_total_clusters gauge"), std::string::npos);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
