// Distributed volumes through the real daemon (use case 1 as one command): three data clusters
// on one core, an lvstore on a file owned by each of clusters 2 and 3, nocstor_volume_create
// builds lvols there, remote bdevs towards them on cluster 1, a RAID0 on cluster 1 and the
// NVMe-oF namespace; the tree, the data over NVMe/TCP, bad requests, a restart from the saved
// configuration, the REST view and the delete.
#include "daemon_env.h"
#include "interop_util.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:volume";

void make_file(const std::string& path, uint64_t size) {
    int fd = open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, off_t(size)), 0);
    close(fd);
}

json volume(Daemon& d, const std::string& name) {
    auto r = d.call("nocstor_volume_get", {{"name", name}});
    return r.ok() && r.result.is_array() && r.result.size() == 1 ? r.result[0] : json();
}

// LBAs (512-byte blocks) that land on both members of a 2 x 64 KiB stripe, and across a strip.
const std::vector<uint64_t> kLbas = {0, 128, 256, 384, 120, 2000, 30000};

// Threads (false) or --cluster-processes (true): clusters 2 and 3, which hold the lvols, then run
// as child processes, and the volume's remote bdevs reach them across processes.
class VolumeDaemon : public ::testing::TestWithParam<bool> {};

TEST_P(VolumeDaemon, OneCommandBuildsTheStackAcrossClustersAndARestartKeepsIt) {
    const std::string dir = temp_dir();
    const uint16_t port = free_tcp_port();
    const bool processes = GetParam();
    std::vector<std::string> args = {"--clusters", kThreeClusterPlan, "-c", dir + "/nocstor.json",
                                     "--persist"};
    if (processes) args.push_back("--cluster-processes");
    auto children_up = [&](Daemon& d) { return !processes || wait_cluster_processes(d, 2); };
    make_file(dir + "/d2", 64 << 20);
    make_file(dir + "/d3", 64 << 20);
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        ASSERT_TRUE(children_up(d)) << d.log();
        for (int c : {2, 3}) {
            const std::string n = "d" + std::to_string(c);
            d.ok("bdev_uring_create",
                 {{"name", n}, {"filename", dir + "/" + n}, {"block_size", 512}, {"cluster", c}});
            d.ok("bdev_lvol_create_lvstore", {{"bdev_name", n},
                                              {"cluster", c},
                                              {"lvs_name", "lvs" + std::to_string(c)},
                                              {"cluster_sz", 1 << 20}});
        }
        export_over_nvmf(d, kNqn, "", port);  // the volume becomes its namespace

        // What a user gets wrong is refused with a reason, and nothing is left behind.
        auto r = d.call("nocstor_volume_create",
                        {{"name", "v"}, {"size_in_mib", 16}, {"clusters", {1, 2}}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("cluster 1 has no lvstore"), std::string::npos) << r.message;
        r = d.call("nocstor_volume_create",
                   {{"name", "v"}, {"size_in_mib", 16}, {"clusters", {9}}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("not a data cluster"), std::string::npos) << r.message;
        r = d.call("nocstor_volume_create",
                   {{"name", "v"}, {"size_in_mib", 4096}, {"clusters", {2, 3}}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("free"), std::string::npos) << r.message;
        r = d.call("nocstor_volume_create", {{"name", "v"}, {"clusters", {2, 3}}});
        EXPECT_FALSE(r.ok());
        r = d.call("nocstor_volume_create",
                   {{"name", "v"}, {"size_in_mib", 16}, {"clusters", {2, 3}}, {"layout", "raid5"}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("at least 3"), std::string::npos) << r.message;
        EXPECT_EQ(d.ok("bdev_get_bdevs").size(), 2u) << "the two files, nothing left over";

        json v = d.ok("nocstor_volume_create", {{"name", "vol"},
                                                {"size_in_mib", 16},
                                                {"clusters", {2, 3}},
                                                {"front_cluster", 1},
                                                {"stripe_kb", 64},
                                                {"nqn", kNqn}});
        ASSERT_TRUE(v.is_object()) << v.dump();
        EXPECT_GE(v["size_bytes"].get<uint64_t>(), 16u << 20);
        EXPECT_EQ(v["namespaces"][0]["nqn"], kNqn);
        const json& t = v["tree"];
        EXPECT_EQ(t["module"], "raid");
        EXPECT_EQ(t["cluster"], 1);
        EXPECT_EQ(t["state"], "online");
        ASSERT_EQ(t["children"].size(), 2u) << t.dump(2);
        for (int i = 0; i < 2; ++i) {
            const json& rem = t["children"][i];
            EXPECT_EQ(rem["module"], "remote");
            EXPECT_EQ(rem["cluster"], 1);
            const json& lv = rem["children"][0];
            EXPECT_EQ(lv["module"], "lvol");
            EXPECT_EQ(lv["cluster"], 2 + i);
            EXPECT_EQ(lv["lvstore"], "lvs" + std::to_string(2 + i));
            EXPECT_EQ(lv["children"][0]["bdev"], "d" + std::to_string(2 + i));
            EXPECT_EQ(lv["children"][0]["cluster"], 2 + i);
        }
        EXPECT_FALSE(d.call("nocstor_volume_create",
                            {{"name", "vol"}, {"size_in_mib", 16}, {"clusters", {2, 3}}})
                         .ok());

        IoSession s(port, kNqn);
        ASSERT_TRUE(s.up) << d.log();
        uint16_t cid = 1;
        for (size_t i = 0; i < kLbas.size(); ++i) {
            auto w = write_incapsule(s.io, cid++, kLbas[i], random_bytes(4096, i));
            ASSERT_TRUE(w && w->status.ok()) << i;
        }
        ASSERT_TRUE(flush_ns1(s.io, cid++));
        for (size_t i = 0; i < kLbas.size(); ++i) {
            std::vector<uint8_t> got;
            auto rd = read(s.io, cid++, kLbas[i], 4096, &got);
            ASSERT_TRUE(rd && rd->status.ok()) << i;
            EXPECT_EQ(got, random_bytes(4096, i)) << i;
        }
        // Both data clusters hold part of it, and it crossed the NoC without copies.
        for (const char* rem : {"vol_m0_remote", "vol_m1_remote"}) {
            auto b = d.ok("bdev_get_bdevs", {{"name", rem}})[0]["driver_specific"]["remote"];
            EXPECT_GT(b["zero_copy_ios"].get<uint64_t>(), 0u) << rem;
            EXPECT_EQ(b["timeouts"], 0) << rem;
            EXPECT_EQ(b["owner_in_this_process"], !processes) << rem;
            EXPECT_EQ(b["link"], "up") << rem;
        }
        if (processes) {
            // kill -9 of cluster 3's process: the RAID0 over the two remote bdevs fails the I/O
            // that needs cluster 3 while it is down (fast, Namespace Not Ready) without taking
            // the member out of service, and the whole volume reads back once it is back.
            const json p = d.ok("nocstor_get_cluster_processes");
            ASSERT_EQ(p[1]["cluster"], 3);
            const int pid = p[1]["pid"].get<int>();
            ASSERT_EQ(kill(pid, SIGKILL), 0);
            // Dead (a zombie until the daemon reaps it), so nothing more is served by it.
            EXPECT_TRUE(wait_until(
                [&] {
                    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
                    std::string pid_s, comm, state;
                    return !(st >> pid_s >> comm >> state) || state == "Z";
                },
                5));
            {
                std::vector<uint8_t> got;
                const auto t0 = std::chrono::steady_clock::now();
                auto rd = read(s.io, cid++, 128, 4096, &got);  // LBA 128 is on member 1
                ASSERT_TRUE(rd) << "no answer while cluster 3 was down";
                EXPECT_FALSE(rd->status.ok());
                EXPECT_EQ(rd->status.sc(), 0x82) << "expected Namespace Not Ready";
                EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
            }
            bool back = wait_until(
                [&] {
                    std::vector<uint8_t> got;
                    auto rd = read(s.io, cid++, 128, 4096, &got);  // on member 1
                    return rd && rd->status.ok();
                },
                30);
            EXPECT_TRUE(back) << d.log();
            EXPECT_EQ(volume(d, "vol")["tree"]["state"], "online");
            for (size_t i = 0; i < kLbas.size(); ++i) {
                std::vector<uint8_t> got;
                auto rd = read(s.io, cid++, kLbas[i], 4096, &got);
                ASSERT_TRUE(rd && rd->status.ok()) << i;
                EXPECT_EQ(got, random_bytes(4096, i)) << i;
            }
        }
        // nocstorctl draws the tree across clusters.
        int rc = 0;
        const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket();
        std::string out = run_command(ctl + " volume show vol 2>&1", &rc);
        EXPECT_EQ(rc, 0) << out;
        EXPECT_NE(out.find("exported as namespace 1 of " + kNqn), std::string::npos) << out;
        EXPECT_NE(out.find("vol  raid  cluster 1"), std::string::npos) << out;
        EXPECT_NE(out.find("└─ vol_m1_remote  remote  cluster 1"), std::string::npos) << out;
        EXPECT_NE(out.find("   └─ lvs3/vol_m1  lvol  cluster 3"), std::string::npos) << out;
        EXPECT_NE(out.find("      └─ d3  uring  cluster 3"), std::string::npos) << out;
        out = run_command(ctl + " volume list 2>&1", &rc);
        EXPECT_EQ(rc, 0) << out;
        EXPECT_NE(out.find("raid0"), std::string::npos) << out;
        out = run_command(ctl + " volume show nope 2>&1", &rc);
        EXPECT_NE(rc, 0) << out;
        // REST shows the same tree.
        auto h = http_request(d.http_port(), "GET", "/api/v1/volumes/vol", "", d.token());
        EXPECT_EQ(h.status, 200) << h.body;
        EXPECT_NE(h.body.find("vol_m1_remote"), std::string::npos);
        EXPECT_EQ(d.stop(), 0) << d.log();
    }
    // Restart: stores, remote bdevs, the array (from its superblocks), the namespace and the
    // volume record come back; the data is there.
    {
        Daemon d(args, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        ASSERT_TRUE(children_up(d)) << d.log();
        json v = volume(d, "vol");
        ASSERT_FALSE(v.is_null()) << d.log();
        EXPECT_EQ(v["tree"]["state"], "online") << v.dump(2);
        EXPECT_EQ(v["tree"]["children"][1]["children"][0]["cluster"], 3);
        IoSession s(port, kNqn);
        ASSERT_TRUE(s.up) << d.log();
        uint16_t cid = 1;
        for (size_t i = 0; i < kLbas.size(); ++i) {
            std::vector<uint8_t> got;
            auto rd = read(s.io, cid++, kLbas[i], 4096, &got);
            ASSERT_TRUE(rd && rd->status.ok()) << i;
            EXPECT_EQ(got, random_bytes(4096, i)) << i;
        }
        // Delete takes the whole stack down, the namespace first.
        d.ok("nocstor_volume_delete", {{"name", "vol"}});
        EXPECT_TRUE(volume(d, "vol").is_null());
        for (const char* gone :
             {"vol", "vol_m0_remote", "vol_m1_remote", "lvs2/vol_m0", "lvs3/vol_m1"})
            EXPECT_FALSE(d.call("bdev_get_bdevs", {{"name", gone}}).ok()) << gone;
        EXPECT_TRUE(d.ok("nvmf_get_subsystems")[1]["namespaces"].empty());
        EXPECT_FALSE(d.call("nocstor_volume_delete", {{"name", "vol"}}).ok());
        EXPECT_EQ(d.stop(), 0) << d.log();
        EXPECT_EQ(d.log().find("did not stop in time"), std::string::npos) << d.log();
    }
}

INSTANTIATE_TEST_SUITE_P(Mode, VolumeDaemon, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                             return i.param ? "ClusterProcesses" : "Threads";
                         });

}  // namespace
