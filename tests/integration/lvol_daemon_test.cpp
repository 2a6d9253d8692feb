// Lvstores through the daemon's JSON-RPC (SPDK's method names): the feature list on a file, and
// 1,024 lvols that all come back, exported, after a restart.
#include "daemon_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string make_file(const std::string& dir, uint64_t bytes) {
    const std::string f = dir + "/disk";
    int fd = open(f.c_str(), O_CREAT | O_RDWR, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, off_t(bytes)), 0);
    close(fd);
    return f;
}

json lvol(Daemon& d, const std::string& name) {
    for (const auto& l : d.ok("bdev_lvol_get_lvols", json::object()))
        if (l["name"] == name) return l;
    return {};
}

TEST(LvolDaemon, FeaturesThroughRpcOnAFileSurviveARestart) {
    const std::string dir = temp_dir();
    const std::string file = make_file(dir, 128ull << 20);
    const std::vector<std::string> args = {"-c", dir + "/nocstor.json", "--persist"};
    std::string vol_uuid;
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        d.ok("bdev_uring_create", {{"name", "D0"}, {"filename", file}, {"block_size", 4096}});
        const json lvs = d.ok("bdev_lvol_create_lvstore",
                              {{"bdev_name", "D0"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
        ASSERT_TRUE(lvs.is_string());
        auto stores = d.ok("bdev_lvol_get_lvstores", {{"lvs_name", "lvs"}});
        ASSERT_EQ(stores.size(), 1u);
        EXPECT_EQ(stores[0]["uuid"], lvs);
        EXPECT_EQ(stores[0]["base_bdev"], "D0");
        EXPECT_EQ(stores[0]["cluster_size"], 1 << 20);
        const uint64_t total = stores[0]["total_data_clusters"];

        vol_uuid = d.ok("bdev_lvol_create", {{"lvs_name", "lvs"},
                                             {"lvol_name", "vol"},
                                             {"size_in_mib", 8},
                                             {"thin_provision", true}});
        d.ok("bdev_lvol_create", {{"uuid", lvs}, {"lvol_name", "thick"}, {"size_in_mib", 4}});
        d.ok("bdev_lvol_snapshot", {{"lvol_name", "lvs/vol"}, {"snapshot_name", "snap"}});
        d.ok("bdev_lvol_clone", {{"snapshot_name", "lvs/snap"}, {"clone_name", "clone"}});
        d.ok("bdev_lvol_rename", {{"old_name", "lvs/clone"}, {"new_name", "clone2"}});
        d.ok("bdev_lvol_resize", {{"name", "lvs/thick"}, {"size_in_mib", 6}});
        d.ok("bdev_lvol_inflate", {{"name", "lvs/clone2"}});
        d.ok("bdev_lvol_set_read_only", {{"name", "lvs/clone2"}});
        EXPECT_EQ(lvol(d, "thick")["num_allocated_clusters"], 6);
        EXPECT_EQ(lvol(d, "clone2")["read_only"], true);
        EXPECT_EQ(lvol(d, "clone2")["is_clone"], false);
        EXPECT_EQ(lvol(d, "vol")["is_clone"], true);
        EXPECT_EQ(d.ok("bdev_lvol_get_lvstores", json::object())[0]["free_clusters"],
                  total - 6 - 8);
        // bdev_get_bdevs shows the lvol with SPDK's driver_specific fields.
        auto b = d.ok("bdev_get_bdevs", {{"name", "lvs/vol"}});
        ASSERT_EQ(b.size(), 1u);
        EXPECT_EQ(b[0]["name"], vol_uuid);
        EXPECT_EQ(b[0]["aliases"][0], "lvs/vol");
        EXPECT_EQ(b[0]["driver_specific"]["lvol"]["base_snapshot"], "snap");
        EXPECT_EQ(b[0]["driver_specific"]["lvol"]["thin_provision"], true);

        // Bad input: clear errors, nothing changed.
        auto r = d.call("bdev_lvol_create",
                        {{"lvs_name", "lvs"}, {"lvol_name", "vol"}, {"size_in_mib", 1}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("exists"), std::string::npos) << r.message;
        r = d.call("bdev_lvol_create", {{"lvol_name", "x"}, {"size_in_mib", 1}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("uuid or lvs_name"), std::string::npos) << r.message;
        r = d.call("bdev_lvol_create",
                   {{"lvs_name", "lvs"}, {"lvol_name", "big"}, {"size_in_mib", 100000}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("free clusters"), std::string::npos) << r.message;
        r = d.call("bdev_lvol_resize", {{"name", "lvs/clone2"}, {"size_in_mib", 9}});
        EXPECT_FALSE(r.ok()) << "read-only";
        r = d.call("bdev_lvol_create_lvstore",
                   {{"bdev_name", "D0"}, {"lvs_name", "x"}, {"cluster_sz", 3000}});
        EXPECT_FALSE(r.ok());
        r = d.call("bdev_lvol_create_lvstore",
                   {{"bdev_name", "D0"}, {"lvs_name", "x"}, {"clear_method", "shred"}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("clear_method"), std::string::npos) << r.message;
        r = d.call("bdev_lvol_delete", {{"name", "lvs/nope"}});
        EXPECT_FALSE(r.ok());
        EXPECT_EQ(d.ok("bdev_lvol_get_lvols", json::object()).size(), 4u);
        EXPECT_EQ(d.stop(), 0);
    }
    // The store comes back from the file by itself (no lvol entries in the saved config).
    Daemon d(args, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    d.ok("bdev_wait_for_examine", json::object());
    auto all = d.ok("bdev_lvol_get_lvols", json::object());
    EXPECT_EQ(all.size(), 4u) << all.dump();
    EXPECT_EQ(lvol(d, "vol")["uuid"], vol_uuid);
    EXPECT_EQ(lvol(d, "thick")["num_allocated_clusters"], 6);
    EXPECT_EQ(lvol(d, "clone2")["read_only"], true);
    // Snapshot delete with one clone merges; then the store can be deleted once empty of users.
    d.ok("bdev_lvol_delete", {{"name", "lvs/snap"}});
    EXPECT_EQ(lvol(d, "vol")["is_clone"], false);
    d.ok("bdev_lvol_rename_lvstore", {{"old_name", "lvs"}, {"new_name", "store"}});
    EXPECT_FALSE(d.ok("bdev_get_bdevs", {{"name", "store/vol"}}).empty());
    d.ok("bdev_lvol_delete_lvstore", {{"lvs_name", "store"}});
    EXPECT_TRUE(d.ok("bdev_lvol_get_lvstores", json::object()).empty());
    // D0 is free again and holds no store: a new one can be made.
    d.ok("bdev_lvol_create_lvstore", {{"bdev_name", "D0"}, {"lvs_name", "again"}});
}

TEST(LvolDaemon, AThousandAndTwentyFourLvolsComeBackExported) {
    const std::string dir = temp_dir();
    const std::string file = make_file(dir, 256ull << 20);
    const std::vector<std::string> args = {"-c", dir + "/nocstor.json", "--persist"};
    const std::string nqn = "nqn.2024-01.io.nocstor:many";
    constexpr int kLvols = 1024;
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        d.ok("bdev_uring_create", {{"name", "D0"}, {"filename", file}, {"block_size", 4096}});
        d.ok("bdev_lvol_create_lvstore",
             {{"bdev_name", "D0"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
        d.ok("nvmf_create_subsystem",
             {{"nqn", nqn}, {"allow_any_host", true}, {"max_namespaces", kLvols}});
        // Several clients at once: their creations share journal commits.
        std::vector<std::thread> workers;
        std::atomic<int> failed{0};
        for (int w = 0; w < 8; ++w) {
            workers.emplace_back([&, w] {
                for (int i = w; i < kLvols; i += 8) {
                    auto r = d.call("bdev_lvol_create", {{"lvs_name", "lvs"},
                                                         {"lvol_name", "v" + std::to_string(i)},
                                                         {"size_in_mib", 1},
                                                         {"thin_provision", true}});
                    if (!r.ok()) ++failed;
                }
            });
        }
        for (auto& t : workers) t.join();
        ASSERT_EQ(failed.load(), 0);
        for (int i = 0; i < kLvols; ++i)
            d.ok("nvmf_subsystem_add_ns",
                 {{"nqn", nqn}, {"namespace", {{"bdev_name", "lvs/v" + std::to_string(i)}}}});
        kill(d.pid(), SIGKILL);  // no clean stop: the journal has it all
        d.stop();
    }
    Daemon d(args, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    EXPECT_EQ(d.ok("bdev_lvol_get_lvols", json::object()).size(), size_t(kLvols));
    auto subs = d.ok("nvmf_get_subsystems", {{"nqn", nqn}});
    ASSERT_EQ(subs.size(), 1u);
    EXPECT_EQ(subs[0]["namespaces"].size(), size_t(kLvols)) << d.log();
}

}  // namespace
