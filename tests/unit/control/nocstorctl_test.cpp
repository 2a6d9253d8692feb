// Runs the real nocstorctl binary (built next to this test) against an in-process stub server.
#include "control/jsonrpc_server.h"
#include "test_helpers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <vector>

namespace nocstor::control {
namespace {

using nlohmann::json;

std::string nocstorctl_path() {
    return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "nocstorctl").string();
}

struct RunResult {
    int exit_code = -1;
    std::string out, err;
};

// Runs nocstorctl with args, capturing stdout/stderr, killing it after 10 s.
RunResult run_ctl(const std::vector<std::string>& args) {
    int out_pipe[2], err_pipe[2];
    EXPECT_EQ(::pipe2(out_pipe, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err_pipe, O_CLOEXEC), 0);
    const std::string path = nocstorctl_path();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        std::vector<char*> argv{const_cast<char*>(path.c_str())};
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(path.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    RunResult result;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open = 2;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (open > 0 && std::chrono::steady_clock::now() < deadline) {
        if (::poll(fds, 2, 100) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open;
            }
        }
    }
    if (open > 0) ::kill(pid, SIGKILL);
    for (auto& f : fds) {
        if (f.fd >= 0) ::close(f.fd);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

class NocstorctlTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::access(nocstorctl_path().c_str(), X_OK) != 0) {
            GTEST_SKIP() << "nocstorctl not built next to the test binary";
        }
        JsonRpcServerOptions opts;
        opts.socket_path = dir_.file("rpc.sock");
        server_ = std::make_unique<JsonRpcServer>(opts);
        auto record = [this](const std::string& method, json result) {
            server_->register_method(method, [this, method, result](const json& p, Responder r) {
                std::lock_guard lock(mutex_);
                calls_.push_back({{"method", method}, {"params", p}});
                r.result(result);
            });
        };
        record("spdk_get_version", {{"version", "SPDK v23.09 (nocstor 0.1)"}});
        record("framework_get_reactors", {{"tick_rate", 1000000},
                                          {"reactors",
                                           {{{"lcore", 0},
                                             {"busy", 5},
                                             {"idle", 7},
                                             {"lw_threads", {{{"name", "app_thread"}}}}}}}});
        record("bdev_get_bdevs",
               {{{"name", "Malloc0"},
                 {"num_blocks", 262144},
                 {"block_size", 4096},
                 {"product_name", "Malloc disk"},
                 {"claimed", true}},
                {{"name", "Null0"},
                 {"num_blocks", 2048},
                 {"block_size", 512},
                 {"product_name", "Null disk"},
                 {"claimed", false}},
                // Lvol bdevs as SPDK lists them (their parents are here only).
                {{"name", "u-base"}, {"driver_specific", {{"lvol", {{"base_snapshot", "snap"}}}}}},
                {{"name", "u-c1"}, {"driver_specific", {{"lvol", {{"base_snapshot", "snap"}}}}}},
                {{"name", "u-orph"}, {"driver_specific", {{"lvol", {{"base_snapshot", "gone"}}}}}},
                {{"name", "u-snap"}, {"driver_specific", {{"lvol", json::object()}}}}});
        // SPDK's bdev_lvol_get_lvols: no parent field.
        auto lv = [](const char* name, const char* uuid, bool snapshot, bool clone,
                     uint64_t allocated) {
            return json{{"alias", std::string("lvs/") + name},
                        {"uuid", uuid},
                        {"name", name},
                        {"is_thin_provisioned", true},
                        {"is_snapshot", snapshot},
                        {"is_clone", clone},
                        {"is_esnap_clone", false},
                        {"read_only", snapshot},
                        {"num_clusters", 4},
                        {"num_allocated_clusters", allocated},
                        {"lvs", {{"name", "lvs"}, {"uuid", "lvs-uuid"}}}};
        };
        record("bdev_lvol_get_lvols",
               {lv("snap", "u-snap", true, false, 2), lv("c1", "u-c1", false, true, 1),
                lv("base", "u-base", false, true, 0), lv("orph", "u-orph", false, true, 0)});
        record("bdev_lvol_get_lvstores", {{{"uuid", "lvs-uuid"},
                                           {"name", "lvs"},
                                           {"base_bdev", "Malloc0"},
                                           {"total_data_clusters", 100},
                                           {"free_clusters", 97},
                                           {"cluster_size", 4194304},
                                           {"state", "online"}}});
        record("bdev_lvol_create_lvstore", "lvs-uuid");
        record("bdev_lvol_create", "u-new");
        record("bdev_lvol_resize", true);
        record("bdev_malloc_create", "Malloc1");
        record("bdev_null_delete", true);
        record("nvmf_create_subsystem", true);
        record("nvmf_subsystem_add_ns", 1);
        record("nvmf_subsystem_add_listener", true);
        record("nvmf_get_subsystems", {{{"nqn", "nqn.2016-06.io.spdk:cnode1"},
                                        {"subtype", "NVMe"},
                                        {"serial_number", "SN1"},
                                        {"allow_any_host", true},
                                        {"namespaces", {{{"nsid", 1}, {"bdev_name", "Malloc0"}}}},
                                        {"listen_addresses",
                                         {{{"trtype", "TCP"},
                                           {"adrfam", "IPv4"},
                                           {"traddr", "127.0.0.1"},
                                           {"trsvcid", "4420"}}}}}});
        server_->register_method("nvmf_delete_subsystem", [](const json&, Responder r) {
            r.error(-32602, "Invalid parameters");
        });
        std::string err;
        ASSERT_TRUE(server_->start(&err)) << err;
        thread_ = std::make_unique<test::PollThread>([this] { server_->poll(); });
    }
    void TearDown() override {
        thread_.reset();
        server_.reset();
    }

    RunResult ctl(std::vector<std::string> args) {
        args.insert(args.begin(), {"-s", dir_.file("rpc.sock"), "--timeout", "5"});
        return run_ctl(args);
    }
    json last_call() {
        std::lock_guard lock(mutex_);
        return calls_.empty() ? json() : calls_.back();
    }

    test::TempDir dir_;
    std::unique_ptr<JsonRpcServer> server_;
    std::unique_ptr<test::PollThread> thread_;
    std::mutex mutex_;
    std::vector<json> calls_;
};

TEST_F(NocstorctlTest, CallPrintsPrettyResult) {
    RunResult r = ctl({"call", "spdk_get_version"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["version"], "SPDK v23.09 (nocstor 0.1)");
    r = ctl({"call", "bdev_malloc_create", R"({"name":"M","num_blocks":8,"block_size":512})"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(last_call()["params"]["num_blocks"], 8);
}

TEST_F(NocstorctlTest, ExitCodes) {
    RunResult r = ctl({"call", "no_such_method"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "error: Method not found (code -32601)\n");
    r = ctl({"subsystem", "delete", "nqn.x"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "error: Invalid parameters (code -32602)\n");
    r = ctl({"call", "m", "{not json"});
    EXPECT_EQ(r.exit_code, 2);
    r = ctl({"bdev", "create", "malloc", "--name", "M"});  // --size missing
    EXPECT_EQ(r.exit_code, 2);
    r = ctl({"bdev", "create", "malloc", "--name", "M", "--size", "1X"});
    EXPECT_EQ(r.exit_code, 2);
    r = run_ctl({"-s", dir_.file("absent.sock"), "status"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("is nocstor running?"), std::string::npos) << r.err;
}

TEST_F(NocstorctlTest, Status) {
    RunResult r = ctl({"status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("SPDK v23.09"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("reactors: 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("app_thread"), std::string::npos) << r.out;
}

TEST_F(NocstorctlTest, BdevListAndCreate) {
    RunResult r = ctl({"bdev", "list"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Malloc0  1.00 GiB"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Malloc disk  yes"), std::string::npos) << r.out;

    r = ctl(
        {"bdev", "create", "malloc", "--name", "Malloc1", "--size", "1G", "--block-size", "4096"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(last_call()["params"],
              json({{"name", "Malloc1"}, {"num_blocks", 262144}, {"block_size", 4096}}));

    r = ctl({"bdev", "delete", "Null0"});  // type detected from product_name
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(last_call()["method"], "bdev_null_delete");
}

TEST_F(NocstorctlTest, SubsystemCommands) {
    RunResult r = ctl({"subsystem", "create", "nqn.2016-06.io.spdk:cnode1", "--allow-any-host",
                       "--serial", "SN1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(last_call()["params"], json({{"nqn", "nqn.2016-06.io.spdk:cnode1"},
                                           {"allow_any_host", true},
                                           {"serial_number", "SN1"}}));
    r = ctl({"subsystem", "add-ns", "nqn.x", "Malloc0", "--nsid", "3"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(last_call()["params"],
              json({{"nqn", "nqn.x"}, {"namespace", {{"bdev_name", "Malloc0"}, {"nsid", 3}}}}));
    r = ctl({"subsystem", "add-listener", "nqn.x", "--address", "::1", "--port", "4421"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(
        last_call()["params"]["listen_address"],
        json({{"trtype", "TCP"}, {"adrfam", "IPv6"}, {"traddr", "::1"}, {"trsvcid", "4421"}}));
    r = ctl({"subsystem", "list"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("1:Malloc0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("TCP 127.0.0.1:4420"), std::string::npos) << r.out;
}

// Against SPDK-style results (no "parent" in bdev_lvol_get_lvols) the tree takes the parents
// from bdev_get_bdevs; a parent that is not listed leaves its clone a root, said so.
TEST_F(NocstorctlTest, LvolTreeAndArguments) {
    RunResult r = ctl({"lvol", "tree"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out,
              "lvs\n"
              "|-- orph [clone, thin] 0 B / 16.00 MiB (parent gone not found)\n"
              "`-- snap [snapshot] 8.00 MiB / 16.00 MiB\n"
              "    |-- base [clone, thin] 0 B / 16.00 MiB\n"
              "    `-- c1 [clone, thin] 4.00 MiB / 16.00 MiB\n");
    r = ctl({"lvol", "stores"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("lvs   lvs-uuid  Malloc0  4.00 MiB  100 (400.00 MiB)  3 (12.00 MiB)  "
                         "97 (388.00 MiB)  online"),
              std::string::npos)
        << r.out;
    r = ctl({"lvol", "create-store", "Malloc0", "lvs", "--cluster-size", "1M", "--clear-method",
             "write_zeroes"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "created lvstore lvs on Malloc0 (lvs-uuid)\n");
    EXPECT_EQ(last_call()["params"], json({{"bdev_name", "Malloc0"},
                                           {"lvs_name", "lvs"},
                                           {"cluster_sz", 1048576},
                                           {"clear_method", "write_zeroes"}}));
    r = ctl({"lvol", "create", "lvs", "v", "2G", "--thin"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "created lvs/v (u-new)\n");
    EXPECT_EQ(last_call()["params"], json({{"lvs_name", "lvs"},
                                           {"lvol_name", "v"},
                                           {"size_in_mib", 2048},
                                           {"thin_provision", true}}));
    r = ctl({"--json", "lvol", "resize", "lvs/v", "3G"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "true\n");
    EXPECT_EQ(last_call()["params"], json({{"name", "lvs/v"}, {"size_in_mib", 3072}}));
    r = ctl({"lvol", "create", "lvs", "v", "1M", "--clear-method", "shred"});
    EXPECT_EQ(r.exit_code, 2);
    r = ctl({"lvol", "create-store", "Malloc0", "lvs", "--cluster-size", "8G"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("invalid cluster size '8G'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace nocstor::control
