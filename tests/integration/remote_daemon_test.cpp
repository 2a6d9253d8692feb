// Bdevs owned by clusters and the remote bdev through the real daemon: {"cluster": N} on
// creation methods, the owner in bdev_get_bdevs and save_config, bdev_remote_create over the
// NoC between three data clusters sharing one core, its data over NVMe/TCP, the errors a user
// gets for a wrong cluster, an NVMe/TCP controller attached on a chosen cluster, and a restart
// that rebuilds the same placement.
#include "daemon_env.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <memory>
#include <set>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:remote";

json bdev(Daemon& d, const std::string& name) {
    auto r = d.call("bdev_get_bdevs", {{"name", name}});
    return r.ok() && r.result.is_array() && r.result.size() == 1 ? r.result[0] : json();
}

TEST(RemoteDaemon, BdevsOwnedByClustersReachedOverTheNocAndServedOverNvmf) {
    const std::string dir = temp_dir();
    const uint16_t port = free_tcp_port();
    const std::vector<std::string> args = {"--clusters", kThreeClusterPlan, "-c",
                                           dir + "/nocstor.json", "--persist"};
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        d.ok("bdev_malloc_create",
             {{"name", "m2"}, {"num_blocks", 2048}, {"block_size", 512}, {"cluster", 2}});
        EXPECT_EQ(bdev(d, "m2")["cluster"], 2);
        // Without a cluster: the data cluster owning the fewest bdevs (1, then 3).
        d.ok("bdev_null_create", {{"name", "n"}, {"num_blocks", 64}, {"block_size", 512}});
        EXPECT_EQ(bdev(d, "n")["cluster"], 1);

        auto r = d.call("bdev_malloc_create",
                        {{"name", "x"}, {"num_blocks", 64}, {"block_size", 512}, {"cluster", 7}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("not a data cluster"), std::string::npos) << r.message;
        r = d.call("bdev_malloc_create",
                   {{"name", "x"}, {"num_blocks", 64}, {"block_size", 512}, {"cluster", "two"}});
        EXPECT_FALSE(r.ok());
        r = d.call("bdev_remote_create", {{"name", "r2"}, {"base_bdev_name", "m2"}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("cluster"), std::string::npos) << r.message;
        r = d.call("bdev_remote_create",
                   {{"name", "r2"}, {"base_bdev_name", "m2"}, {"cluster", 2}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("already owned"), std::string::npos) << r.message;
        r = d.call("bdev_passthru_create",
                   {{"name", "p"}, {"base_bdev_name", "m2"}, {"cluster", 3}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("owned by cluster 2"), std::string::npos) << r.message;

        EXPECT_EQ(
            d.ok("bdev_remote_create", {{"name", "r2"}, {"base_bdev_name", "m2"}, {"cluster", 1}}),
            "r2");
        json rb = bdev(d, "r2");
        EXPECT_EQ(rb["cluster"], 1);
        EXPECT_EQ(rb["num_blocks"], 2048);
        EXPECT_EQ(rb["driver_specific"]["remote"]["owner_cluster"], 2);
        EXPECT_EQ(bdev(d, "m2")["claimed"], true);

        // The listener is bound to cluster 1, where r2 lives: its connections run there.
        export_over_nvmf(d, kNqn, "r2", port, 1);
        const json la = {
            {"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}};
        r = d.call("nvmf_subsystem_add_listener", {{"nqn", "nqn.2014-08.org.nvmexpress.discovery"},
                                                   {"listen_address", la},
                                                   {"cluster", 2}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("bound to cluster 1"), std::string::npos) << r.message;
        r = d.call(
            "nvmf_subsystem_add_listener",
            {{"nqn", kNqn},
             {"listen_address", {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", "1"}}},
             {"cluster", 0}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("no NVMe/TCP poll group"), std::string::npos) << r.message;
        EXPECT_EQ(d.ok("nvmf_subsystem_get_listeners", {{"nqn", kNqn}})[0]["cluster"], 1);
        IoSession s(port, kNqn);
        ASSERT_TRUE(s.up) << d.log();
        for (const auto& q : d.ok("nvmf_subsystem_get_qpairs", {{"nqn", kNqn}}))
            EXPECT_EQ(q["cluster"], 1) << q.dump();
        uint16_t cid = 1;
        for (int i = 0; i < 16; ++i) {
            const auto data = random_bytes(4096, uint64_t(i));
            const uint64_t lba = uint64_t(i) * 97 % 2040;
            auto w = write_incapsule(s.io, cid++, lba, data);
            ASSERT_TRUE(w && w->status.ok()) << i;
            std::vector<uint8_t> got;
            auto rd = read(s.io, cid++, lba, 4096, &got);
            ASSERT_TRUE(rd && rd->status.ok()) << i;
            EXPECT_EQ(got, data) << i;
        }
        ASSERT_TRUE(flush_ns1(s.io, cid++));
        json remote = bdev(d, "r2")["driver_specific"]["remote"];
        EXPECT_EQ(remote["timeouts"], 0);
        // Every read and write crossed as one request (examine's superblock reads included),
        // and the owner cluster's bdev served each of them.
        auto rst = d.ok("bdev_get_iostat", {{"name", "r2"}})["bdevs"][0];
        auto mst = d.ok("bdev_get_iostat", {{"name", "m2"}})["bdevs"][0];
        const uint64_t ios =
            rst["num_read_ops"].get<uint64_t>() + rst["num_write_ops"].get<uint64_t>();
        EXPECT_GE(ios, 32u);
        EXPECT_EQ(remote["zero_copy_ios"].get<uint64_t>() + remote["bounced_ios"].get<uint64_t>(),
                  ios);
        // The target's request buffers are arena buffers: its 32 I/Os crossed without a copy.
        EXPECT_GE(remote["zero_copy_ios"].get<uint64_t>(), 32u);
        EXPECT_EQ(mst["num_write_ops"], 16);
        // (m2 was also examined when it was created, directly.)
        EXPECT_GE(mst["num_read_ops"].get<uint64_t>(), rst["num_read_ops"].get<uint64_t>());

        // The placement is saved with each creation call.
        auto cfg = d.ok("save_config");
        bool saw_remote = false;
        for (const auto& sub : cfg["subsystems"]) {
            if (sub["subsystem"] != "bdev" && sub["subsystem"] != "nvmf") continue;
            for (const auto& c : sub["config"]) {
                if (c["method"] == "bdev_malloc_create") {
                    EXPECT_EQ(c["params"]["cluster"], 2);
                }
                if (c["method"] == "nvmf_subsystem_add_listener") {
                    EXPECT_EQ(c["params"]["cluster"], 1);
                }
                if (c["method"] == "bdev_remote_create") {
                    saw_remote = true;
                    EXPECT_EQ(c["params"]["cluster"], 1);
                }
            }
        }
        EXPECT_TRUE(saw_remote) << cfg.dump();

        // An NVMe/TCP controller (here: our own subsystem) attached on cluster 3: its namespace
        // bdevs are cluster 3's, and save_config says so.
        d.ok("bdev_nvme_attach_controller", {{"name", "loop"},
                                             {"trtype", "TCP"},
                                             {"adrfam", "IPv4"},
                                             {"traddr", "127.0.0.1"},
                                             {"trsvcid", std::to_string(port)},
                                             {"subnqn", kNqn},
                                             {"cluster", 3}});
        EXPECT_EQ(bdev(d, "loopn1")["cluster"], 3);
        bool saw_attach = false;
        cfg = d.ok("save_config");
        for (const auto& sub : cfg["subsystems"]) {
            if (sub["subsystem"] != "bdev") continue;
            for (const auto& c : sub["config"]) {
                if (c["method"] != "bdev_nvme_attach_controller") continue;
                saw_attach = true;
                EXPECT_EQ(c["params"]["cluster"], 3) << c.dump();
            }
        }
        EXPECT_TRUE(saw_attach) << cfg.dump();
        // (Detached again: a restart could not attach before its own listener exists.)
        d.ok("bdev_nvme_detach_controller", {{"name", "loop"}});
        EXPECT_EQ(d.stop(), 0) << d.log();
    }
    // A restart from the saved configuration puts everything back on its cluster.
    Daemon d(args, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    EXPECT_EQ(bdev(d, "m2")["cluster"], 2);
    EXPECT_EQ(bdev(d, "r2")["cluster"], 1);
    IoSession s(port, kNqn);
    ASSERT_TRUE(s.up) << d.log();
    for (const auto& q : d.ok("nvmf_subsystem_get_qpairs", {{"nqn", kNqn}}))
        EXPECT_EQ(q["cluster"], 1) << q.dump();
    uint16_t cid = 1;
    const auto data = random_bytes(4096, 5);
    auto w = write_incapsule(s.io, cid++, 8, data);
    ASSERT_TRUE(w && w->status.ok());
    std::vector<uint8_t> got;
    auto rd = read(s.io, cid++, 8, 4096, &got);
    ASSERT_TRUE(rd && rd->status.ok());
    EXPECT_EQ(got, data);
    // Deleting the remote bdev releases the base on its cluster.
    d.ok("nvmf_subsystem_remove_ns", {{"nqn", kNqn}, {"nsid", 1}});
    d.ok("bdev_remote_delete", {{"name", "r2"}});
    EXPECT_TRUE(bdev(d, "r2").is_null());
    EXPECT_EQ(bdev(d, "m2")["claimed"], false);
    EXPECT_FALSE(d.call("bdev_remote_delete", {{"name", "r2"}}).ok());
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// Without a bound listener, a connection goes to the cluster that owns every namespace of the
// subsystems on that address, so its I/O never leaves the cluster; a subsystem whose namespaces
// live on several clusters spreads its connections over all of them as before.
TEST(RemoteDaemon, ConnectionsOnAnUnboundListenerGoToTheClusterThatOwnsTheNamespaces) {
    const std::string dir = temp_dir();
    const uint16_t port_a = free_tcp_port(), port_b = free_tcp_port();
    const std::string nqn_a = kNqn + "a", nqn_b = kNqn + "b";
    Daemon d({"--clusters", kThreeClusterPlan, "--empty"}, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    for (int c : {2, 3})
        d.ok("bdev_malloc_create", {{"name", "m" + std::to_string(c)},
                                    {"num_blocks", 2048},
                                    {"block_size", 512},
                                    {"cluster", c}});
    export_over_nvmf(d, nqn_a, "m3", port_a);
    export_over_nvmf(d, nqn_b, "m2", port_b);
    d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn_b}, {"namespace", {{"bdev_name", "m3"}}}});

    std::vector<std::unique_ptr<IoSession>> sessions;
    for (int i = 0; i < 4; ++i) {
        sessions.push_back(std::make_unique<IoSession>(port_a, nqn_a));
        ASSERT_TRUE(sessions.back()->up) << d.log();
        sessions.push_back(std::make_unique<IoSession>(port_b, nqn_b));
        ASSERT_TRUE(sessions.back()->up) << d.log();
    }
    const json qa = d.ok("nvmf_subsystem_get_qpairs", {{"nqn", nqn_a}});
    EXPECT_EQ(qa.size(), 8u);
    for (const auto& q : qa) EXPECT_EQ(q["cluster"], 3) << q.dump();
    std::set<int> b_clusters;
    for (const auto& q : d.ok("nvmf_subsystem_get_qpairs", {{"nqn", nqn_b}}))
        b_clusters.insert(q["cluster"].get<int>());
    EXPECT_GT(b_clusters.size(), 1u) << "namespaces on clusters 2 and 3: spread as before";

    const auto data = random_bytes(4096, 3);
    auto w = write_incapsule(sessions[0]->io, 1, 8, data);
    ASSERT_TRUE(w && w->status.ok());
    std::vector<uint8_t> got;
    auto rd = read(sessions[0]->io, 2, 8, 4096, &got);
    ASSERT_TRUE(rd && rd->status.ok());
    EXPECT_EQ(got, data);
    sessions.clear();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
