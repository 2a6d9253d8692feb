#include "runtime/topology.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace nocstor {
namespace {

namespace fs = std::filesystem;
using Role = ClusterSpec::Role;

std::vector<int> cpus_of(std::string_view s) {
    std::vector<int> v;
    std::string err;
    EXPECT_TRUE(parse_cpu_list(s, &v, &err)) << err;
    return v;
}

TEST(CpuList, ParsesAndFormats) {
    EXPECT_EQ(cpus_of("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
    EXPECT_EQ(cpus_of("5"), (std::vector<int>{5}));
    EXPECT_EQ(cpus_of("3,1,1-2"), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
    EXPECT_EQ(format_cpu_list({7, 5, 6, 5}), "5-7");
    EXPECT_EQ(format_cpu_list({}), "");
}

TEST(CpuList, RejectsBadInput) {
    for (const char* bad :
         {"", " ", "a", "1,,2", "3-1", "1-", "-1", "1-2-3", "0x1", "1;2", "99999"}) {
        std::vector<int> v;
        std::string err;
        EXPECT_FALSE(parse_cpu_list(bad, &v, &err)) << "'" << bad << "'";
        EXPECT_FALSE(err.empty());
    }
}

// A fake /sys: 8 cpus online in 2 L3 domains (0-3, 4-7) and 2 NUMA nodes; cpus 6-7 have no cache
// "id" file, so the L3 domain comes from shared_cpu_list.
class FakeSysfs : public ::testing::Test {
  protected:
    void SetUp() override {
        root_ = fs::temp_directory_path() / ("nocstor_topo_" + std::to_string(getpid()));
        fs::remove_all(root_);
        auto sys = root_ / "devices/system";
        write(sys / "cpu/online", "0-7\n");
        for (int c = 0; c < 8; ++c) {
            auto cache = sys / ("cpu/cpu" + std::to_string(c)) / "cache";
            write(cache / "index0/level", "1\n");
            write(cache / "index0/id", std::to_string(c) + "\n");
            write(cache / "index3/level", "3\n");
            write(cache / "index3/shared_cpu_list", c < 4 ? "0-3\n" : "4-7\n");
            if (c < 6) write(cache / "index3/id", c < 4 ? "0\n" : "4\n");
        }
        write(sys / "node/node0/cpulist", "0-3\n");
        write(sys / "node/node1/cpulist", "4-7\n");
    }
    void TearDown() override { fs::remove_all(root_); }
    static void write(const fs::path& p, const std::string& text) {
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }
    fs::path root_;
};

TEST_F(FakeSysfs, ReadsCpusL3AndNuma) {
    Topology t = Topology::from_sysfs_root(root_.string());
    ASSERT_EQ(t.cpus.size(), 8u);
    for (const auto& c : t.cpus) {
        EXPECT_EQ(c.l3, c.cpu < 4 ? 0 : 4) << c.cpu;
        EXPECT_EQ(c.numa, c.cpu < 4 ? 0 : 1) << c.cpu;
    }
}

TEST_F(FakeSysfs, AllowedSetRestrictsCpus) {
    std::vector<int> allowed{1, 2, 5, 9};
    Topology t = Topology::from_sysfs_root(root_.string(), &allowed);
    EXPECT_EQ(t.cpu_ids(), (std::vector<int>{1, 2, 5}));
}

TEST_F(FakeSysfs, DefaultPlanIsOneDataClusterPerL3) {
    auto plan = default_cluster_plan(Topology::from_sysfs_root(root_.string()));
    ASSERT_EQ(plan.size(), 3u);
    EXPECT_EQ(plan[0].role, Role::Control);
    EXPECT_EQ(plan[0].cores, (std::vector<int>{0}));
    EXPECT_EQ(plan[1].role, Role::Data);
    EXPECT_EQ(plan[1].cores, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(plan[2].id, 2);
    EXPECT_EQ(plan[2].cores, (std::vector<int>{4, 5, 6, 7}));
    EXPECT_EQ(format_cluster_plan(plan), "0:control:0;1:data:1-3;2:data:4-7");
}

TEST(DefaultPlan, SmallMachines) {
    Topology two{{{0, 0, 0}, {1, 0, 0}}};
    auto plan = default_cluster_plan(two);
    EXPECT_EQ(format_cluster_plan(plan), "0:control:0;1:data:1");
    Topology one{{{3, 0, 0}}};
    EXPECT_EQ(format_cluster_plan(default_cluster_plan(one)), "0:control:3;1:data:3");
}

TEST(DefaultPlan, DetectOnThisMachineIsValid) {
    Topology t = Topology::detect();
    ASSERT_FALSE(t.cpus.empty());
    auto plan = default_cluster_plan(t);
    std::string err;
    EXPECT_TRUE(parse_cluster_plan(format_cluster_plan(plan), t, &err).has_value()) << err;
}

TEST(ParseClusterPlan, AcceptsValidSpecs) {
    Topology t;
    for (int c = 0; c < 8; ++c) t.cpus.push_back({c, c / 4, 0});
    std::string err;
    auto plan = parse_cluster_plan("1:data:1-3; 0:control:0 ;2:data:4-7;", t, &err);
    ASSERT_TRUE(plan) << err;
    ASSERT_EQ(plan->size(), 3u);
    EXPECT_EQ((*plan)[0].role, Role::Control);
    EXPECT_EQ((*plan)[2].cores, (std::vector<int>{4, 5, 6, 7}));
    // The control core may be shared with a data cluster (1-2 core machines).
    EXPECT_TRUE(parse_cluster_plan("0:control:0;1:data:0", t, &err)) << err;
    // So may data clusters (tests run several on two cores; a warning is logged).
    auto shared = parse_cluster_plan("0:control:0;1:data:1-3;2:data:3-4", t, &err);
    ASSERT_TRUE(shared) << err;
    EXPECT_EQ((*shared)[2].cores, (std::vector<int>{3, 4}));
}

TEST(ParseClusterPlan, RejectsInvalidSpecs) {
    Topology t;
    for (int c = 0; c < 8; ++c) t.cpus.push_back({c, 0, 0});
    for (const char* bad : {
             "",                                   // empty
             "0:control:0",                        // no data cluster
             "0:data:0;1:data:1",                  // no control cluster
             "0:control:0;1:control:1;2:data:2",   // two control clusters
             "0:control:0;2:data:1",               // ids not dense
             "0:control:0;0:data:1",               // duplicate id
             "0:control:0;1:data:9",               // core does not exist
             "0:control:0;1:storage:1",            // unknown role
             "0:control;1:data:1",                 // missing field
             "x:control:0;1:data:1",               // bad id
             "0:control:0;1:data:3-1",             // bad cpu list
         }) {
        std::string err;
        EXPECT_FALSE(parse_cluster_plan(bad, t, &err)) << "'" << bad << "'";
        EXPECT_FALSE(err.empty()) << "'" << bad << "'";
    }
}

}  // namespace
}  // namespace nocstor
