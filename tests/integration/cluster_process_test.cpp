// Clusters as processes through the real daemon (--cluster-processes): data cluster 2 runs as a
// child process on the shared NoC; management calls for it are routed to it; kill -9 of the
// child is reported, the parent keeps serving, and the restarted child reloads its own
// configuration.
#include "daemon_env.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

json processes(Daemon& d) {
    return d.ok("nocstor_get_cluster_processes");
}

// Waits until cluster 2's process runs, answers, and has restarted `restarts` times.
bool wait_child(Daemon& d, uint32_t restarts, int* pid) {
    for (int i = 0; i < 300; ++i) {
        json p = processes(d);
        if (p.size() == 1 && p[0]["state"] == "running" && p[0]["restarts"] == restarts &&
            d.call("bdev_get_bdevs", {{"cluster", 2}}).ok()) {
            *pid = p[0]["pid"].get<int>();
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

std::vector<std::string> names(const json& bdevs) {
    std::vector<std::string> out;
    for (const auto& b : bdevs) out.push_back(b["name"]);
    std::sort(out.begin(), out.end());
    return out;
}

TEST(ClusterProcessDaemon, AKilledDataClusterProcessIsReportedRestartedAndKeepsItsBdevs) {
    const std::string dir = temp_dir();
    Daemon d({"--clusters", "0:control:0;1:data:0;2:data:0", "--cluster-processes", "-c",
              dir + "/nocstor.json", "--persist", "--empty"},
             dir);
    ASSERT_TRUE(d.alive()) << d.log();
    int pid = 0;
    ASSERT_TRUE(wait_child(d, 0, &pid)) << processes(d).dump() << d.log();
    EXPECT_GT(pid, 0);
    EXPECT_NE(pid, d.pid());

    // Creation for cluster 2 runs in the child, for cluster 1 here; the view merges both.
    EXPECT_EQ(d.ok("bdev_malloc_create",
                   {{"name", "m2"}, {"num_blocks", 2048}, {"block_size", 512}, {"cluster", 2}}),
              "m2");
    EXPECT_EQ(d.ok("bdev_malloc_create",
                   {{"name", "m1"}, {"num_blocks", 2048}, {"block_size", 512}, {"cluster", 1}}),
              "m1");
    EXPECT_EQ(names(d.ok("bdev_get_bdevs")), (std::vector<std::string>{"m1", "m2"}));
    EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "m2"}})[0]["cluster"], 2);
    EXPECT_EQ(names(d.ok("bdev_get_bdevs", {{"cluster", 2}})), std::vector<std::string>{"m2"});
    EXPECT_FALSE(d.call("bdev_get_bdevs", {{"name", "nope"}}).ok());
    EXPECT_TRUE(std::filesystem::exists(dir + "/nocstor.json.cluster2.json"));

    // kill -9: reported, the parent keeps answering for its own cluster, the child comes back
    // with the bdevs of its saved configuration.
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "m1"}})[0]["cluster"], 1);
    int again = 0;
    ASSERT_TRUE(wait_child(d, 1, &again)) << processes(d).dump() << d.log();
    EXPECT_NE(again, pid);
    EXPECT_NE(processes(d)[0]["last_exit"].get<std::string>().find("signal 9"), std::string::npos)
        << processes(d).dump();
    EXPECT_NE(d.log().find("cluster 2 process killed by signal 9"), std::string::npos);
    EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "m2"}})[0]["cluster"], 2);

    // Other methods reach the child when they name its cluster.
    d.ok("bdev_malloc_delete", {{"name", "m2"}, {"cluster", 2}});
    EXPECT_EQ(names(d.ok("bdev_get_bdevs")), std::vector<std::string>{"m1"});

    EXPECT_EQ(d.stop(), 0) << d.log();
    EXPECT_NE(kill(again, 0), 0) << "the child outlived the daemon";
}

json remote_info(Daemon& d, const std::string& name) {
    auto r = d.call("bdev_get_bdevs", {{"name", name}});
    return r.ok() && r.result.size() == 1 ? r.result[0]["driver_specific"]["remote"] : json();
}

constexpr uint32_t kIo = 4096;
constexpr uint64_t kSlots = 256;  // 1 MiB of each base is written

std::vector<uint8_t> content(uint64_t slot, uint32_t version) {
    return random_bytes(kIo, slot * 7919 + version);
}

// One host on one namespace, writing and reading back 4 KiB slots at QD1 until told to stop.
struct Verifier {
    struct Failure {
        std::chrono::steady_clock::time_point at;
        uint8_t sct = 0, sc = 0;
        bool answered = false;
        double ms = 0;
    };
    explicit Verifier(uint16_t port, std::string nqn) : port(port), nqn(std::move(nqn)) {}
    uint16_t port;
    std::string nqn;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> ok{0};
    std::atomic<bool> broken{false};  // the session failed (no answer at all)
    std::mutex m;
    std::vector<Failure> failures;
    std::vector<std::chrono::steady_clock::time_point> ok_at;
    std::map<uint64_t, uint32_t> acked;                // slot -> last acknowledged version
    std::map<uint64_t, std::set<uint32_t>> uncertain;  // slot -> versions of failed writes
    std::vector<std::string> mismatches;

    void run() {
        IoSession s(port, nqn);
        if (!s.up) {
            broken = true;
            return;
        }
        std::mt19937_64 rng(port ^ std::hash<std::string>()(nqn));
        uint32_t version = 0;
        uint16_t cid = 1;
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(90);
        while (!stop && std::chrono::steady_clock::now() < end) {
            const uint64_t slot = rng() % kSlots;
            const uint32_t v = ++version;
            cid = uint16_t(cid % 100 + 1);
            const auto t0 = std::chrono::steady_clock::now();
            auto w = write_incapsule(s.io, cid, slot * (kIo / 512), content(slot, v));
            const auto t1 = std::chrono::steady_clock::now();
            if (!w) {
                broken = true;
                return;
            }
            std::lock_guard<std::mutex> g(m);
            if (!w->status.ok()) {
                failures.push_back({t1, w->status.sct(), w->status.sc(), true,
                                    std::chrono::duration<double, std::milli>(t1 - t0).count()});
                uncertain[slot].insert(v);
                continue;
            }
            acked[slot] = v;
            uncertain.erase(slot);
            std::vector<uint8_t> back;
            auto r = read(s.io, uint16_t(cid + 100), slot * (kIo / 512), kIo, &back);
            if (!r) {
                broken = true;
                return;
            }
            if (!r->status.ok()) {
                failures.push_back(
                    {std::chrono::steady_clock::now(), r->status.sct(), r->status.sc(), true, 0});
                continue;
            }
            if (back != content(slot, v))
                mismatches.push_back("slot " + std::to_string(slot) + " version " +
                                     std::to_string(v));
            ++ok;
            ok_at.push_back(std::chrono::steady_clock::now());
        }
    }

    // After the run: every slot holds its last acknowledged version, or one of the versions
    // whose writes failed after it (they may have reached the disk before the process died).
    void check_all(uint16_t port) {
        IoSession s(port, nqn);
        ASSERT_TRUE(s.up);
        for (const auto& [slot, v] : acked) {
            std::vector<uint8_t> back;
            auto r = read(s.io, 7, slot * (kIo / 512), kIo, &back);
            ASSERT_TRUE(r && r->status.ok()) << nqn << " slot " << slot;
            bool good = back == content(slot, v);
            for (uint32_t u : uncertain[slot]) good = good || back == content(slot, u);
            EXPECT_TRUE(good) << nqn << " slot " << slot << " lost version " << v;
        }
    }
};

void make_file(const std::string& path, uint64_t bytes) {
    const int fd = open(path.c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, off_t(bytes)), 0);
    close(fd);
}

// The process-mode test: remote bdevs on the front end towards bdevs of two child
// processes, each exported over NVMe/TCP and verified by its own host; cluster 2's process is
// SIGKILLed under that load. Cluster 3's namespace keeps verifying throughout; cluster 2's I/O
// fails at once with Namespace Not Ready (not at the remote bdev's 20 s timeout); the restarted
// process exports its bdev again and the same namespace verifies again, with every
// acknowledged write still there. A restart of the whole daemon then rebuilds the stack from
// the saved configurations.
TEST(ClusterProcessDaemon, RemoteBdevsTowardsChildProcessesSurviveAKillNineUnderLoad) {
    const std::string dir = temp_dir();
    const uint16_t port = free_tcp_port();
    const std::string nqn2 = "nqn.2024-01.io.nocstor:child2",
                      nqn3 = "nqn.2024-01.io.nocstor:child3";
    const std::vector<std::string> args = {
        "--clusters",          "0:control:0;1:data:0;2:data:0;3:data:0",
        "--cluster-processes", "-c",
        dir + "/nocstor.json", "--persist"};
    make_file(dir + "/d2", 8u << 20);
    make_file(dir + "/d3", 8u << 20);
    std::unique_ptr<Verifier> v3;
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        ASSERT_TRUE(wait_cluster_processes(d, 2)) << processes(d).dump() << d.log();
        for (int c : {2, 3})
            d.ok("bdev_uring_create", {{"name", "D" + std::to_string(c)},
                                       {"filename", dir + "/d" + std::to_string(c)},
                                       {"block_size", 512},
                                       {"cluster", c}});

        // Errors first: a base no process has, a remote bdev on a child's own cluster.
        auto r = d.call("bdev_remote_create",
                        {{"name", "x"}, {"base_bdev_name", "nope"}, {"cluster", 1}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("no bdev named nope"), std::string::npos) << r.message;

        for (int c : {2, 3})
            EXPECT_EQ(d.ok("bdev_remote_create", {{"name", "r" + std::to_string(c)},
                                                  {"base_bdev_name", "D" + std::to_string(c)},
                                                  {"cluster", 1},
                                                  {"timeout_ms", 20000}}),
                      "r" + std::to_string(c));
        json info = remote_info(d, "r2");
        EXPECT_EQ(info["owner_cluster"], 2) << info.dump();
        EXPECT_EQ(info["owner_in_this_process"], false);
        EXPECT_EQ(info["link"], "up");
        EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "D2"}})[0]["claimed"], true);
        r = d.call("bdev_remote_create",
                   {{"name", "again"}, {"base_bdev_name", "D2"}, {"cluster", 1}});
        EXPECT_FALSE(r.ok()) << "a claimed base exported twice";
        EXPECT_NE(r.message.find("claimed"), std::string::npos) << r.message;
        EXPECT_FALSE(d.call("bdev_get_bdevs", {{"name", "again"}}).ok());

        export_over_nvmf(d, nqn2, "r2", port);
        export_over_nvmf(d, nqn3, "r3", port);

        Verifier v2(port, nqn2);
        v3 = std::make_unique<Verifier>(port, nqn3);
        std::thread t2([&] { v2.run(); }), t3([&] { v3->run(); });
        auto wait_ok = [](Verifier& v, uint64_t n) {
            for (int i = 0; i < 3000 && v.ok < n && !v.broken; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            return v.ok >= n;
        };
        EXPECT_TRUE(wait_ok(v2, 50) && wait_ok(*v3, 50)) << d.log();

        int pid = processes(d)[0]["pid"].get<int>();
        ASSERT_EQ(processes(d)[0]["cluster"], 2);
        const auto killed_at = std::chrono::steady_clock::now();
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        // Back: restarted, D2 exported again, r2's link up.
        bool back = false;
        for (int i = 0; i < 1500 && !back; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            const json p = processes(d);
            back = p[0]["restarts"] == 1 && remote_info(d, "r2")["link"] == "up";
        }
        const auto back_at = std::chrono::steady_clock::now();
        EXPECT_TRUE(back) << processes(d).dump() << remote_info(d, "r2").dump() << d.log();
        const uint64_t ok2_back = v2.ok;
        EXPECT_TRUE(wait_ok(v2, ok2_back + 50)) << d.log();
        const uint64_t ok3 = v3->ok;
        EXPECT_TRUE(wait_ok(*v3, ok3 + 20));
        v2.stop = v3->stop = true;
        t2.join();
        t3.join();

        EXPECT_FALSE(v2.broken) << d.log();
        EXPECT_FALSE(v3->broken) << d.log();
        EXPECT_TRUE(v2.mismatches.empty()) << v2.mismatches.front();
        EXPECT_TRUE(v3->mismatches.empty()) << v3->mismatches.front();
        // Cluster 3's namespace never failed and kept working while cluster 2 was down.
        EXPECT_TRUE(v3->failures.empty()) << int(v3->failures.front().sc);
        size_t during = 0;
        for (auto t : v3->ok_at) during += t > killed_at && t < back_at;
        EXPECT_GT(during, 0u) << "no I/O on cluster 3 while cluster 2 was down";
        // Cluster 2's I/O failed fast and cleanly while it was down, and only then.
        EXPECT_FALSE(v2.failures.empty()) << "no I/O reached r2 while its cluster was down";
        for (const auto& f : v2.failures) {
            EXPECT_EQ(f.sct, 0);
            EXPECT_EQ(f.sc, 0x82) << "expected Namespace Not Ready";
            EXPECT_LT(f.ms, 2000.0) << "a failure waited for the timeout";
            EXPECT_GT(f.at, killed_at);
            EXPECT_LT(f.at, back_at + std::chrono::milliseconds(100));
        }
        RecordProperty("r2_failed_while_down", int(v2.failures.size()));
        RecordProperty("r3_ok_while_r2_down", int(during));
        RecordProperty("r2_down_ms",
                       int(std::chrono::duration<double, std::milli>(back_at - killed_at).count()));
        EXPECT_EQ(remote_info(d, "r2")["timeouts"], 0) << "an I/O waited for the timeout";
        EXPECT_EQ(remote_info(d, "r2")["peer_down_failures"], v2.failures.size());
        EXPECT_EQ(remote_info(d, "r3")["peer_down_failures"], 0);
        v2.check_all(port);
        v3->check_all(port);
        EXPECT_NE(d.log().find("cluster 2 is back; its I/O resumes"), std::string::npos);

        // The child's base grows: the front end's remote bdev follows (told over the NoC).
        make_file(dir + "/d3", 12u << 20);
        d.ok("bdev_uring_rescan", {{"name", "D3"}, {"cluster", 3}});
        EXPECT_TRUE(wait_until(
            [&] {
                return d.ok("bdev_get_bdevs", {{"name", "r3"}})[0]["num_blocks"] == 24576;
            },
            5))
            << d.ok("bdev_get_bdevs", {{"name", "r3"}}).dump() << d.log();

        // A child that comes back without the base (its configuration lost): r2 stays down and
        // fails fast, deterministically, until the base is created again; then it relinks.
        std::filesystem::remove(dir + "/nocstor.json.cluster2.json");
        const int pid2 = processes(d)[0]["pid"].get<int>();
        ASSERT_EQ(kill(pid2, SIGKILL), 0);
        EXPECT_TRUE(wait_until([&] { return processes(d)[0]["restarts"] == 2; }, 10));
        ASSERT_TRUE(wait_cluster_processes(d, 2)) << d.log();
        EXPECT_EQ(remote_info(d, "r2")["link"], "down");
        {
            IoSession s(port, nqn2);
            ASSERT_TRUE(s.up);
            std::vector<uint8_t> got;
            auto rd = read(s.io, 1, 0, 4096, &got);
            ASSERT_TRUE(rd);
            EXPECT_EQ(rd->status.sc(), 0x82);
        }
        d.ok("bdev_uring_create",
             {{"name", "D2"}, {"filename", dir + "/d2"}, {"block_size", 512}, {"cluster", 2}});
        EXPECT_TRUE(wait_until([&] { return remote_info(d, "r2")["link"] == "up"; }, 10))
            << d.log();
        v2.check_all(port);

        // A deleted remote bdev gives its base back to the child.
        d.ok("nvmf_delete_subsystem", {{"nqn", nqn2}});
        d.ok("bdev_remote_delete", {{"name", "r2"}});
        bool released = false;
        for (int i = 0; i < 200 && !released; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            released = d.ok("bdev_get_bdevs", {{"name", "D2"}})[0]["claimed"] == false;
        }
        EXPECT_TRUE(released) << d.log();
        EXPECT_EQ(d.stop(), 0) << d.log();
    }
    // The whole daemon again from its saved configurations: r3 finds D3 in cluster 3's process.
    Daemon d(args, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    json info = remote_info(d, "r3");
    EXPECT_EQ(info["link"], "up") << d.log();
    EXPECT_FALSE(d.call("bdev_get_bdevs", {{"name", "r2"}}).ok());
    v3->check_all(port);
    EXPECT_EQ(d.stop(), 0) << d.log();
    // A child holding an export for the front end stops on SIGTERM like any other.
    EXPECT_EQ(d.log().find("did not stop in time"), std::string::npos) << d.log();
}

// A child on another core than the control thread that forks it: it must not inherit that
// thread's pinning (it used to, and exited at once: "cpu 1 is not online or not allowed").
TEST(ClusterProcessDaemon, AChildRunsOnItsOwnCoreNotTheForkingThreads) {
    cpu_set_t set;
    ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    if (!CPU_ISSET(0, &set) || !CPU_ISSET(1, &set)) GTEST_SKIP() << "needs cpus 0 and 1";
    const std::string dir = temp_dir();
    Daemon d({"--clusters", "0:control:0;1:data:0;2:data:1", "--cluster-processes", "--empty"},
             dir);
    ASSERT_TRUE(d.alive()) << d.log();
    ASSERT_TRUE(wait_cluster_processes(d, 1)) << processes(d).dump() << d.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const json p = processes(d);
    EXPECT_EQ(p[0]["state"], "running") << p.dump();
    EXPECT_EQ(p[0]["restarts"], 0) << p.dump() << d.log();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
