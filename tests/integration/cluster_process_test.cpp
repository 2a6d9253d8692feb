// Clusters as processes through the real daemon (--cluster-processes): data cluster 2 runs as a
// child process on the shared NoC; management calls for it are routed to it; kill -9 of the
// child is reported, the parent keeps serving, and the restarted child reloads its own
// configuration.
#include "daemon_env.h"

#include <signal.h>

using namespace nocstor::testing;
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

}  // namespace
