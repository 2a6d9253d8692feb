// The real daemon driven over its JSON-RPC socket: every method's happy path, a table of bad
// inputs that must leave the state unchanged, and malformed traffic that must not hurt it.
#include "daemon_env.h"

#include <sys/un.h>

#include <fstream>
#include <set>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

constexpr char kNqn[] = "nqn.2024-01.io.nocstor:test1";

json listen_address(uint16_t port) {
    return {{"trtype", "TCP"},
            {"adrfam", "IPv4"},
            {"traddr", "127.0.0.1"},
            {"trsvcid", std::to_string(port)}};
}

// The state a bad request must not change.
json snapshot(Daemon& d) {
    return {{"bdevs", d.ok("bdev_get_bdevs")}, {"subsystems", d.ok("nvmf_get_subsystems")}};
}

}  // namespace

TEST(DaemonRpc, FrameworkMethodsAnswer) {
    Daemon d({"--empty"});
    ASSERT_TRUE(d.alive()) << d.log();
    EXPECT_EQ(d.ok("spdk_get_version")["version"], "nocstor v0.1.0");
    json methods = d.ok("rpc_get_methods");
    std::set<std::string> names(methods.begin(), methods.end());
    for (const char* m : {"bdev_malloc_create", "nvmf_create_subsystem", "save_config",
                          "framework_get_reactors", "thread_get_stats", "nocstor_get_clusters"})
        EXPECT_TRUE(names.count(m)) << m;
    json reactors = d.ok("framework_get_reactors");
    EXPECT_EQ(reactors["reactors"].size(), 2u);
    json threads = d.ok("thread_get_stats");
    EXPECT_GE(threads["threads"].size(), 2u);
    json clusters = d.ok("nocstor_get_clusters");
    ASSERT_EQ(clusters.size(), 2u);
    EXPECT_EQ(clusters[0]["role"], "control");
    EXPECT_EQ(clusters[1]["role"], "data");
    json noc = d.ok("nocstor_get_noc_stats");
    EXPECT_EQ(noc["clusters"].size(), 2u);
    EXPECT_EQ(d.ok("framework_wait_init"), true);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(DaemonRpc, BdevMethodsHappyPath) {
    Daemon d({"--empty"});
    std::string file = d.dir() + "/disk.img";
    { std::ofstream(file).close(); }
    std::filesystem::resize_file(file, 8 << 20);
    EXPECT_EQ(
        d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 2048}, {"block_size", 512}}),
        "M0");
    EXPECT_EQ(
        d.ok("bdev_null_create", {{"name", "N0"}, {"num_blocks", 1024}, {"block_size", 4096}}),
        "N0");
    EXPECT_EQ(d.ok("bdev_uring_create", {{"name", "U0"}, {"filename", file}, {"block_size", 512}}),
              "U0");
    EXPECT_EQ(d.ok("bdev_passthru_create", {{"base_bdev_name", "M0"}, {"name", "P0"}}), "P0");
    EXPECT_EQ(d.ok("bdev_delay_create", {{"base_bdev_name", "N0"},
                                         {"name", "D0"},
                                         {"avg_read_latency", 10},
                                         {"p99_read_latency", 20},
                                         {"avg_write_latency", 10},
                                         {"p99_write_latency", 20}}),
              "D0");
    d.ok("bdev_delay_update_latency",
         {{"delay_bdev_name", "D0"}, {"latency_type", "avg_read"}, {"latency_us", 5}});
    EXPECT_EQ(d.ok("bdev_error_create", {{"base_name", "U0"}}), "EE_U0");
    d.ok("bdev_error_inject_error",
         {{"name", "EE_U0"}, {"io_type", "read"}, {"error_type", "failure"}, {"num", 1}});
    json bdevs = d.ok("bdev_get_bdevs");
    EXPECT_EQ(bdevs.size(), 6u);
    json m0 = d.ok("bdev_get_bdevs", {{"name", "M0"}});
    ASSERT_EQ(m0.size(), 1u);
    EXPECT_EQ(m0[0]["num_blocks"], 2048);
    EXPECT_EQ(m0[0]["claimed"], true);  // by P0
    json iostat = d.ok("bdev_get_iostat");
    EXPECT_EQ(iostat["bdevs"].size(), 6u);
    for (auto [m, n] : {std::pair{"bdev_error_delete", "EE_U0"},
                        {"bdev_delay_delete", "D0"},
                        {"bdev_passthru_delete", "P0"},
                        {"bdev_uring_delete", "U0"},
                        {"bdev_null_delete", "N0"},
                        {"bdev_malloc_delete", "M0"}})
        EXPECT_EQ(d.ok(m, {{"name", n}}), true) << m;
    EXPECT_EQ(d.ok("bdev_get_bdevs").size(), 0u);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(DaemonRpc, NvmfMethodsHappyPath) {
    Daemon d({"--empty"});
    uint16_t port = free_tcp_port();
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 4096}, {"block_size", 512}});
    d.ok("bdev_malloc_create", {{"name", "M1"}, {"num_blocks", 4096}, {"block_size", 512}});
    d.ok("nvmf_create_transport", {{"trtype", "TCP"}, {"max_queue_depth", 128}});
    EXPECT_EQ(d.ok("nvmf_get_transports")[0]["trtype"], "TCP");
    d.ok("nvmf_create_subsystem", {{"nqn", kNqn},
                                   {"serial_number", "SN123"},
                                   {"model_number", "test model"},
                                   {"allow_any_host", false}});
    EXPECT_EQ(d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "M0"}}}}),
              1);
    EXPECT_EQ(d.ok("nvmf_subsystem_add_ns",
                   {{"nqn", kNqn}, {"namespace", {{"bdev_name", "M1"}, {"nsid", 7}}}}),
              7);
    d.ok("nvmf_subsystem_add_listener", {{"nqn", kNqn}, {"listen_address", listen_address(port)}});
    d.ok("nvmf_subsystem_add_host",
         {{"nqn", kNqn},
          {"host", "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"}});
    d.ok("nvmf_subsystem_allow_any_host", {{"nqn", kNqn}, {"allow_any_host", true}});
    json subs = d.ok("nvmf_get_subsystems", {{"nqn", kNqn}});
    ASSERT_EQ(subs.size(), 1u);
    EXPECT_EQ(subs[0]["serial_number"], "SN123");
    EXPECT_EQ(subs[0]["namespaces"].size(), 2u);
    EXPECT_EQ(subs[0]["namespaces"][1]["nsid"], 7);
    EXPECT_EQ(subs[0]["listen_addresses"][0]["trsvcid"], std::to_string(port));
    EXPECT_EQ(subs[0]["hosts"].size(), 1u);
    EXPECT_EQ(subs[0]["allow_any_host"], true);
    EXPECT_TRUE(d.ok("nvmf_subsystem_get_controllers", {{"nqn", kNqn}}).is_array());
    EXPECT_TRUE(d.ok("nvmf_subsystem_get_qpairs", {{"nqn", kNqn}}).is_array());
    EXPECT_GE(d.ok("nvmf_get_stats")["poll_groups"].size(), 1u);
    d.ok("nvmf_subsystem_remove_host",
         {{"nqn", kNqn},
          {"host", "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"}});
    d.ok("nvmf_subsystem_remove_ns", {{"nqn", kNqn}, {"nsid", 7}});
    d.ok("nvmf_subsystem_remove_listener",
         {{"nqn", kNqn}, {"listen_address", listen_address(port)}});
    d.ok("nvmf_delete_subsystem", {{"nqn", kNqn}});
    // The bdevs are free again once the subsystem is gone.
    d.ok("bdev_malloc_delete", {{"name", "M0"}});
    d.ok("bdev_malloc_delete", {{"name", "M1"}});
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(DaemonRpc, BadInputIsRejectedAndLeavesStateUnchanged) {
    Daemon d({"--empty"});
    uint16_t port = free_tcp_port();
    d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 4096}, {"block_size", 512}});
    d.ok("bdev_passthru_create", {{"base_bdev_name", "M0"}, {"name", "P0"}});
    d.ok("bdev_malloc_create", {{"name", "M1"}, {"num_blocks", 4096}, {"block_size", 512}});
    d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
    d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "M1"}}}});
    d.ok("nvmf_subsystem_add_listener", {{"nqn", kNqn}, {"listen_address", listen_address(port)}});
    json before = snapshot(d);

    struct Case {
        const char* method;
        json params;
        int code;  // 0: any error
    };
    const Case cases[] = {
        {"no_such_method", nullptr, -32601},
        {"bdev_malloc_create", {{"num_blocks", 10}}, -32602},  // missing
        {"bdev_malloc_create", {{"name", "X"}, {"num_blocks", 8}, {"bogus", 1}}, -32602},  // extra
        {"bdev_malloc_create", {{"name", "X"}, {"num_blocks", "many"}}, -32602},           // type
        {"bdev_malloc_create", {{"name", "X"}, {"num_blocks", 8}, {"block_size", 1000}}, -32602},
        {"bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 8}}, 0},  // duplicate
        {"bdev_malloc_create", json::array({1, 2}), -32602},             // not object
        {"bdev_malloc_delete", {{"name", "M0"}}, 0},                     // claimed by P0
        {"bdev_malloc_delete", {{"name", "M1"}}, 0},                     // a namespace uses it
        {"bdev_malloc_delete", {{"name", "nope"}}, 0},                   // missing
        {"bdev_null_delete", {{"name", "M1"}}, 0},                       // wrong module
        {"bdev_passthru_create", {{"base_bdev_name", "M0"}, {"name", "P1"}}, 0},  // second claim
        {"bdev_passthru_create", {{"base_bdev_name", "ghost"}, {"name", "P2"}}, 0},
        {"bdev_uring_create", {{"name", "U9"}, {"filename", "/nonexistent/file"}}, 0},
        {"nvmf_create_subsystem", {{"nqn", "not-an-nqn"}}, 0},
        {"nvmf_create_subsystem", {{"nqn", kNqn}}, 0},  // duplicate
        {"nvmf_create_subsystem",
         {{"nqn", "nqn.2024-01.io.nocstor:x"}, {"serial_number", std::string(30, 'a')}},
         -32602},
        {"nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "ghost"}}}}, 0},
        {"nvmf_subsystem_add_ns",
         {{"nqn", "nqn.2024-01.io.nocstor:none"}, {"namespace", {{"bdev_name", "M0"}}}},
         0},
        {"nvmf_subsystem_add_ns",
         {{"nqn", kNqn}, {"namespace", {{"bdev_name", "M1"}, {"nsid", 1}}}},
         0},
        {"nvmf_subsystem_add_listener",
         {{"nqn", kNqn},
          {"listen_address", {{"trtype", "RDMA"}, {"traddr", "127.0.0.1"}, {"trsvcid", "4420"}}}},
         -32602},
        {"nvmf_subsystem_add_listener",
         {{"nqn", kNqn},
          {"listen_address", {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", "99999"}}}},
         -32602},
        {"nvmf_subsystem_add_listener",
         {{"nqn", kNqn},
          {"listen_address",
           {{"trtype", "TCP"}, {"adrfam", "IPv6"}, {"traddr", "127.0.0.1"}, {"trsvcid", "4420"}}}},
         -32602},
        {"nvmf_subsystem_remove_ns", {{"nqn", kNqn}, {"nsid", 99}}, 0},
        {"nvmf_subsystem_add_host", {{"nqn", kNqn}}, -32602},
        {"nvmf_delete_subsystem", {{"nqn", "nqn.2024-01.io.nocstor:none"}}, 0},
        {"nvmf_create_transport", {{"trtype", "RDMA"}}, -32602},
        {"nvmf_create_transport", {{"trtype", "TCP"}}, 0},  // already exists
    };
    for (const auto& c : cases) {
        auto r = d.call(c.method, c.params);
        EXPECT_FALSE(r.ok()) << c.method << " " << c.params.dump() << " was accepted";
        EXPECT_EQ(r.kind, nocstor::control::RpcResult::Kind::kRpcError) << c.method;
        EXPECT_FALSE(r.message.empty()) << c.method;
        if (c.code) {
            EXPECT_EQ(r.code, c.code) << c.method << " " << c.params.dump() << ": " << r.message;
        }
    }
    EXPECT_EQ(snapshot(d), before);
    EXPECT_TRUE(d.alive());
    EXPECT_EQ(d.stop(), 0) << d.log();
}

namespace {
int unix_connect(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}
std::string read_some(int fd) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    return n > 0 ? std::string(buf, size_t(n)) : std::string();
}
}  // namespace

TEST(DaemonRpc, MalformedTrafficGetsErrorsAndTheDaemonKeepsServing) {
    Daemon d({"--empty"});
    {  // malformed JSON → parse error
        int fd = unix_connect(d.socket());
        ASSERT_GE(fd, 0);
        std::string bad = "{\"jsonrpc\":\"2.0\",\"method\":}";
        (void)!write(fd, bad.data(), bad.size());
        std::string resp = read_some(fd);
        EXPECT_NE(resp.find("-32700"), std::string::npos) << resp;
        close(fd);
    }
    {  // not a request object
        int fd = unix_connect(d.socket());
        std::string bad = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":42}";
        (void)!write(fd, bad.data(), bad.size());
        std::string resp = read_some(fd);
        EXPECT_NE(resp.find("-32600"), std::string::npos) << resp;
        close(fd);
    }
    {  // a client that disconnects mid-request
        int fd = unix_connect(d.socket());
        std::string part = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bdev_malloc_create\",\"par";
        (void)!write(fd, part.data(), part.size());
        close(fd);
    }
    {  // oversized request: more than the 16 MiB limit, in one unterminated string
        int fd = unix_connect(d.socket());
        std::string head = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":\"";
        (void)!write(fd, head.data(), head.size());
        std::string chunk(1 << 20, 'a');
        for (int i = 0; i < 17; ++i)
            if (write(fd, chunk.data(), chunk.size()) < 0) break;  // the daemon may close early
        std::string resp = read_some(fd);
        EXPECT_NE(resp.find("-32600"), std::string::npos) << resp.substr(0, 200);
        close(fd);
    }
    EXPECT_TRUE(d.alive());
    EXPECT_EQ(d.ok("spdk_get_version")["version"], "nocstor v0.1.0");
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(DaemonConfig, SaveRestartRestoresTheSameState) {
    std::string dir = temp_dir();
    std::string cfg = dir + "/nocstor.json";
    uint16_t port = free_tcp_port();
    json before;
    {
        Daemon d({"-c", cfg, "--persist", "--empty"}, dir);
        d.ok("bdev_malloc_create", {{"name", "M0"}, {"num_blocks", 4096}, {"block_size", 4096}});
        d.ok("bdev_null_create", {{"name", "N0"}, {"num_blocks", 1024}, {"block_size", 512}});
        d.ok("bdev_passthru_create", {{"base_bdev_name", "N0"}, {"name", "P0"}});
        d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
        d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"serial_number", "SAVE1"}});
        d.ok("nvmf_subsystem_add_host",
             {{"nqn", kNqn},
              {"host", "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"}});
        d.ok("nvmf_subsystem_add_ns",
             {{"nqn", kNqn}, {"namespace", {{"bdev_name", "M0"}, {"nsid", 3}}}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "P0"}}}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kNqn}, {"listen_address", listen_address(port)}});
        before = snapshot(d);
        // save_config answers the same layout as the persisted file.
        json saved = d.ok("save_config");
        json file;
        std::ifstream(cfg) >> file;
        EXPECT_EQ(saved, file);
        EXPECT_EQ(d.stop(), 0) << d.log();
    }
    {
        // --empty is only for a first start without a file: the file now exists and wins.
        Daemon d({"-c", cfg, "--persist"}, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        json after = snapshot(d);
        EXPECT_EQ(after, before);
        EXPECT_EQ(d.stop(), 0) << d.log();
    }
}

// kill -9 during a --persist write leaves "FILE.tmp.PID" behind: the next start removes those of
// dead processes (and keeps unrelated files).
TEST(DaemonConfig, StaleTemporariesOfThePersistedConfigAreRemovedAtStart) {
    std::string dir = temp_dir();
    std::string cfg = dir + "/nocstor.json";
    const std::vector<std::string> stale = {cfg + ".tmp.999999999", cfg + ".tmp.1"};
    const std::vector<std::string> kept = {cfg + ".tmp.x1", dir + "/other.json.tmp.999999999"};
    for (const auto& f : stale) std::ofstream(f) << "{\"subsystems\": [";
    for (const auto& f : kept) std::ofstream(f) << "keep";
    Daemon d({"-c", cfg, "--persist", "--empty"}, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    for (const auto& f : stale) EXPECT_FALSE(std::filesystem::exists(f)) << f;
    for (const auto& f : kept) EXPECT_TRUE(std::filesystem::exists(f)) << f;
    EXPECT_NE(d.log().find("left behind by an interrupted save"), std::string::npos);
    EXPECT_EQ(d.stop(), 0);
}

TEST(DaemonConfig, BrokenConfigFailsWithAClearMessage) {
    std::string dir = temp_dir();
    std::string cfg = dir + "/broken.json";
    { std::ofstream(cfg) << "{\"subsystems\": [ {\"subsystem\": \"bdev\", \"config\": ["; }
    Daemon d({"-c", cfg}, dir);
    EXPECT_TRUE(d.exited());
    EXPECT_NE(d.exit_status(), 0);
    EXPECT_NE(d.log().find("not valid JSON"), std::string::npos) << d.log();

    std::string cfg2 = dir + "/unknown.json";
    {
        std::ofstream(cfg2)
            << R"({"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_frobnicate","params":{}}]}]})";
    }
    Daemon d2({"-c", cfg2}, dir);
    EXPECT_TRUE(d2.exited());
    EXPECT_NE(d2.log().find("bdev_frobnicate"), std::string::npos) << d2.log();
}

TEST(DaemonConfig, SpdkConfigWithTuningMethodsLoads) {
    std::string dir = temp_dir();
    std::string cfg = dir + "/spdk.json";
    uint16_t port = free_tcp_port();
    json spdk = {
        {"subsystems",
         {{{"subsystem", "iobuf"},
           {"config",
            {{{"method", "iobuf_set_options"}, {"params", {{"small_pool_count", 8192}}}}}}},
          {{"subsystem", "nvmf"},
           {"config",
            {{{"method", "nvmf_set_config"},
              {"params",
               {{"discovery_filter", "match_any"},
                {"admin_cmd_passthru", {{"identify_ctrlr", false}}},
                {"dhchap_digests", {"sha256", "sha384", "sha512"}},
                {"dhchap_dhgroups",
                 {"null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"}}}}},
             {{"method", "nvmf_create_transport"},
              {"params", {{"trtype", "TCP"}, {"io_unit_size", 131072}}}},
             {{"method", "nvmf_create_subsystem"},
              {"params", {{"nqn", kNqn}, {"allow_any_host", true}}}},
             {{"method", "nvmf_subsystem_add_ns"},
              {"params", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "Malloc0"}}}}}},
             {{"method", "nvmf_subsystem_add_listener"},
              {"params", {{"nqn", kNqn}, {"listen_address", listen_address(port)}}}}}}},
          {{"subsystem", "bdev"},
           {"config",
            {{{"method", "bdev_set_options"}, {"params", {{"bdev_io_pool_size", 65535}}}},
             {{"method", "bdev_nvme_set_options"},
              {"params",
               {{"action_on_timeout", "none"},
                {"timeout_us", 0},
                {"transport_retry_count", 4},
                {"bdev_retry_count", 3},
                {"dhchap_digests", {"sha256", "sha384", "sha512"}},
                {"dhchap_dhgroups", {"null", "ffdhe2048"}}}}},
             {{"method", "bdev_malloc_create"},
              {"params", {{"name", "Malloc0"}, {"num_blocks", 8192}, {"block_size", 512}}}},
             {{"method", "bdev_wait_for_examine"}}}}}}}};
    { std::ofstream(cfg) << spdk.dump(2); }
    Daemon d({"-c", cfg}, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    json subs = d.ok("nvmf_get_subsystems", {{"nqn", kNqn}});
    ASSERT_EQ(subs.size(), 1u);
    EXPECT_EQ(subs[0]["namespaces"][0]["bdev_name"], "Malloc0");
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// The parameters SPDK's scripts/rpc.py sends by default (checked against rpc.py itself) must be
// accepted, so that SPDK's own tooling drives nocstor unchanged; values asking for a feature
// nocstor lacks are refused.
TEST(DaemonRpc, AcceptsTheDefaultsSpdkRpcPySends) {
    Daemon d({"--empty"});
    EXPECT_EQ(d.ok("bdev_malloc_create", {{"num_blocks", 131072},
                                          {"block_size", 512},
                                          {"name", "Malloc1"},
                                          {"md_interleave", false},
                                          {"dif_is_head_of_md", false}}),
              "Malloc1");
    EXPECT_EQ(d.ok("bdev_null_create", {{"num_blocks", 16384},
                                        {"block_size", 4096},
                                        {"name", "Null0"},
                                        {"dif_is_head_of_md", false}}),
              "Null0");
    auto r = d.call("bdev_null_create",
                    {{"num_blocks", 16}, {"block_size", 512}, {"name", "Null1"}, {"md_size", 8}});
    EXPECT_EQ(r.code, -32602) << r.message;
    d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
    d.ok("nvmf_create_subsystem", {{"nqn", kNqn},
                                   {"serial_number", "SPDK0001"},
                                   {"model_number", "spdk rpc"},
                                   {"allow_any_host", true},
                                   {"ana_reporting", false},
                                   {"passthrough", false},
                                   {"enable_nssr", false}});
    d.ok("nvmf_subsystem_add_ns",
         {{"nqn", kNqn},
          {"namespace",
           {{"bdev_name", "Malloc1"}, {"no_auto_visible", false}, {"hide_metadata", false}}}});
    d.ok("nvmf_subsystem_add_listener", {{"nqn", kNqn},
                                         {"secure_channel", false},
                                         {"listen_address",
                                          {{"trtype", "tcp"},
                                           {"traddr", "127.0.0.1"},
                                           {"adrfam", "ipv4"},
                                           {"trsvcid", std::to_string(free_tcp_port())}}}});
    // rpc.py's save_config is built from these two.
    json subs = d.ok("framework_get_subsystems");
    ASSERT_EQ(subs.size(), 3u);
    EXPECT_EQ(subs[1]["subsystem"], "nvmf");
    EXPECT_EQ(subs[1]["depends_on"][0], "bdev");
    EXPECT_EQ(subs[2]["subsystem"], "iscsi");  // loaded after the bdevs it serves
    // The two bdevs, the raid and iscsi modules' options and the wait for examine.
    EXPECT_EQ(d.ok("framework_get_config", {{"name", "bdev"}}).size(), 5u);
    EXPECT_EQ(d.stop(), 0) << d.log();
}
