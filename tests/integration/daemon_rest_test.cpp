// REST resources, /metrics (checked by a strict parser of the Prometheus text format), the CLI.
#include "daemon_env.h"

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

// A strict reading of the Prometheus text format 0.0.4: every sample belongs to a family declared
// by HELP and TYPE lines before it, names and labels are well formed, values parse, no series
// appears twice. Returns the problems found.
std::vector<std::string> check_prometheus(const std::string& text, size_t* samples) {
    std::vector<std::string> problems;
    static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
    static const std::regex type(
        R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary|histogram|untyped)$)");
    static const std::regex sample(
        R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*)?\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$)");
    std::map<std::string, std::string> types;
    std::set<std::string> helps, series;
    std::istringstream in(text);
    std::string line;
    *samples = 0;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        std::smatch m;
        if (line.empty()) continue;
        if (std::regex_match(line, m, help)) {
            helps.insert(m[1]);
            continue;
        }
        if (std::regex_match(line, m, type)) {
            if (types.count(m[1])) problems.push_back("line " + std::to_string(n) + ": TYPE twice");
            types[m[1]] = m[2];
            continue;
        }
        if (line[0] == '#') {
            problems.push_back("line " + std::to_string(n) + ": stray comment");
            continue;
        }
        if (!std::regex_match(line, m, sample)) {
            problems.push_back("line " + std::to_string(n) + ": malformed sample: " + line);
            continue;
        }
        std::string name = m[1];
        std::string family = name;
        for (const char* suffix : {"_sum", "_count", "_bucket"})
            if (!types.count(family) && family.size() > strlen(suffix) &&
                family.compare(family.size() - strlen(suffix), strlen(suffix), suffix) == 0)
                family = family.substr(0, family.size() - strlen(suffix));
        if (!types.count(family) || !helps.count(family))
            problems.push_back("line " + std::to_string(n) +
                               ": sample before its HELP/TYPE: " + name);
        std::string key = name + std::string(m[2]);
        if (!series.insert(key).second)
            problems.push_back("line " + std::to_string(n) + ": duplicate series " + key);
        ++*samples;
    }
    return problems;
}

}  // namespace

TEST(DaemonRest, ResourcesAndErrors) {
    Daemon d({"--empty"});
    uint16_t p = d.http_port();
    const std::string tok = d.token();
    ASSERT_EQ(tok.size(), 64u);
    auto r = http_request(p, "GET", "/api/v1/version");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)["version"], "nocstor v0.1.0");
    r = http_request(p, "POST", "/api/v1/bdevs",
                     R"({"type":"malloc","name":"R0","num_blocks":1024,"block_size":512})", tok);
    EXPECT_EQ(r.status, 201) << r.body;
    r = http_request(p, "GET", "/api/v1/bdevs/R0");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)[0]["num_blocks"], 1024);
    EXPECT_EQ(http_request(p, "GET", "/api/v1/bdevs/missing").status, 404);
    EXPECT_EQ(http_request(p, "POST", "/api/v1/bdevs", "{not json", tok).status, 400);
    EXPECT_EQ(http_request(p, "POST", "/api/v1/bdevs",
                           R"({"type":"malloc","name":"R0","num_blocks":8})", tok)
                  .status,
              409);
    EXPECT_EQ(http_request(p, "POST", "/api/v1/bdevs", R"({"type":"warp","name":"X"})", tok).status,
              400);
    EXPECT_EQ(http_request(p, "GET", "/api/v1/nothing-here").status, 404);
    EXPECT_EQ(http_request(p, "PUT", "/api/v1/bdevs", "", tok).status, 405);
    r = http_request(p, "POST", "/api/v1/subsystems",
                     R"({"nqn":"nqn.2024-01.io.nocstor:rest","allow_any_host":true})", tok);
    EXPECT_EQ(r.status, 201) << r.body;
    r = http_request(p, "POST", "/api/v1/subsystems/nqn.2024-01.io.nocstor:rest/namespaces",
                     R"({"bdev_name":"R0"})", tok);
    EXPECT_EQ(r.status, 201) << r.body;
    r = http_request(p, "GET", "/api/v1/subsystems/nqn.2024-01.io.nocstor:rest");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)[0]["namespaces"].size(), 1u);
    EXPECT_EQ(http_request(p, "DELETE", "/api/v1/bdevs/R0", "", tok).status, 409);  // in use
    EXPECT_EQ(http_request(p, "DELETE",
                           "/api/v1/subsystems/nqn.2024-01.io.nocstor:rest/namespaces/1", "", tok)
                  .status,
              200);
    EXPECT_EQ(
        http_request(p, "DELETE", "/api/v1/subsystems/nqn.2024-01.io.nocstor:rest", "", tok).status,
        200);
    EXPECT_EQ(http_request(p, "DELETE", "/api/v1/bdevs/R0", "", tok).status, 200);
    EXPECT_EQ(json::parse(http_request(p, "GET", "/api/v1/bdevs").body).size(), 0u);
    EXPECT_EQ(http_request(p, "GET", "/api/v1/clusters").status, 200);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(DaemonRest, MetricsAreStrictPrometheusText) {
    Daemon d({"--empty"});
    d.ok("bdev_malloc_create", {{"name", "M\"0"}, {"num_blocks", 1024}, {"block_size", 512}});
    // An lvstore and an lvol with quotes in their names: the lvol families.
    d.ok("bdev_malloc_create", {{"name", "L0"}, {"num_blocks", 4096}, {"block_size", 4096}});
    d.ok("bdev_lvol_create_lvstore",
         {{"bdev_name", "L0"}, {"lvs_name", "l\"s"}, {"cluster_sz", 1 << 20}});
    d.ok("bdev_lvol_create", {{"lvs_name", "l\"s"}, {"lvol_name", "v\"1"}, {"size_in_mib", 2}});
    // And an array: the raid families.
    for (const char* m : {"A0", "A1"})
        d.ok("bdev_malloc_create", {{"name", m}, {"num_blocks", 2048}, {"block_size", 512}});
    d.ok("bdev_raid_create", {{"name", "r\"0\\x"},
                              {"raid_level", "raid1"},
                              {"base_bdevs", {"A0", "A1"}},
                              {"strip_size_kb", 0}});
    auto r = http_request(d.http_port(), "GET", "/metrics");
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.headers.find("text/plain; version=0.0.4"), std::string::npos) << r.headers;
    size_t samples = 0;
    auto problems = check_prometheus(r.body, &samples);
    for (const auto& p : problems) ADD_FAILURE() << p;
    EXPECT_GT(samples, 10u);
    EXPECT_NE(r.body.find("nocstor_bdev_ops_total{bdev=\"M\\\"0\",type=\"write\"} 0"),
              std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("nocstor_reactor_busy_seconds_total"), std::string::npos);
    EXPECT_NE(
        r.body.find("nocstor_lvol_allocated_bytes{lvstore=\"l\\\"s\",lvol=\"v\\\"1\",bdev=\""),
        std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("nocstor_raid_state{raid=\"r\\\"0\\\\x\"} "), std::string::npos)
        << r.body;
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(DaemonCli, NocstorctlTalksToTheDaemonAndReportsErrors) {
    Daemon d({"--empty"});
    std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket();
    EXPECT_EQ(system((ctl + " bdev create malloc --name C0 --size 4M >/dev/null").c_str()), 0);
    EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "C0"}})[0]["num_blocks"].get<uint64_t>() * 512 > 0,
              true);
    EXPECT_EQ(system((ctl + " bdev list >/dev/null").c_str()), 0);
    EXPECT_EQ(system((ctl + " status >/dev/null").c_str()), 0);
    // An RPC error exits 1, a missing daemon exits 3.
    EXPECT_EQ(WEXITSTATUS(system(
                  (ctl + " call bdev_malloc_delete '{\"name\":\"nope\"}' 2>/dev/null").c_str())),
              1);
    EXPECT_EQ(WEXITSTATUS(system((std::string(NOCSTOR_BIN_DIR) +
                                  "/nocstorctl -s /nonexistent.sock status 2>/dev/null")
                                     .c_str())),
              3);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

namespace {
// utime + stime of a process, in clock ticks.
long cpu_ticks(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), {});
    std::istringstream in(s.substr(s.rfind(')') + 2));
    std::string tok;
    long total = 0;
    for (int field = 3; field <= 15 && in >> tok; ++field)
        if (field == 14 || field == 15) total += std::stol(tok);
    return total;
}
}  // namespace

TEST(DaemonIdle, AnIdleDaemonUsesAlmostNoCpu) {
    // A served namespace with a listener, nobody connected.
    Daemon d({"--empty"});
    uint16_t port = free_tcp_port();
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 8192}, {"block_size", 512}});
    d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
    d.ok("nvmf_create_subsystem",
         {{"nqn", "nqn.2024-01.io.nocstor:idle"}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns",
         {{"nqn", "nqn.2024-01.io.nocstor:idle"}, {"namespace", {{"bdev_name", "M0"}}}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", "nqn.2024-01.io.nocstor:idle"},
          {"listen_address",
           {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    long t0 = cpu_ticks(d.pid());
    std::this_thread::sleep_for(std::chrono::seconds(3));
    long t1 = cpu_ticks(d.pid());
    double pct = double(t1 - t0) * 100.0 / double(sysconf(_SC_CLK_TCK)) / 3.0;
    // SPDK's reactors use 100% of a core each; the goal is ~0%. Allow noise on a busy machine.
    EXPECT_LT(pct, 5.0) << "idle daemon used " << pct << "% of a core";
    EXPECT_EQ(d.stop(), 0);
}
