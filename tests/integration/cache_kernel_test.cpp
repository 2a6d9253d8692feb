// The Linux kernel NVMe/TCP initiator (../shared/interop harness in a VM) on a write-back cache:
// a small fast cache (lines get evicted and cleaned while fio runs) in front of a core with
// disk-like latency (a delay bdev), fio randwrite+verify and the harness's own checks through
// it. Skips cleanly without the harness or QEMU.
#include "daemon_env.h"
#include "interop_util.h"

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string harness() {
    return std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
}

TEST(CacheKernelInterop, FioVerifiesThroughAWriteBackCacheOnASlowCore) {
    if (access(harness().c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness();
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const std::string nqn = "nqn.2024-01.io.nocstor:cache";
    Daemon d({"--empty"});
    ASSERT_TRUE(d.alive()) << d.log();
    d.ok("bdev_malloc_create", {{"name", "Fast"}, {"num_blocks", 4096}, {"block_size", 4096}});
    d.ok("bdev_malloc_create", {{"name", "Disk"}, {"num_blocks", 16384}, {"block_size", 4096}});
    d.ok("bdev_delay_create", {{"name", "Slow"},
                               {"base_bdev_name", "Disk"},
                               {"avg_read_latency", 200},
                               {"p99_read_latency", 2000},
                               {"avg_write_latency", 200},
                               {"p99_write_latency", 2000}});
    d.ok("bdev_ocf_create", {{"name", "Cache0"},
                             {"mode", "wb"},
                             {"cache_line_size", 16},
                             {"cache_bdev_name", "Fast"},
                             {"core_bdev_name", "Slow"}});
    d.ok("bdev_ocf_set_cleaning", {{"name", "Cache0"}, {"stale_ms", 200}});
    const uint16_t port = free_tcp_port();
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", {{"bdev_name", "Cache0"}}}});
    listen_with_discovery(d, port, nqn);
    int rc = 0;
    const std::string out =
        run_command(harness() + " -q --fio-size 32M --no-discard --timeout 500 " +
                        std::to_string(port) + " " + nqn + " 2>&1",
                    &rc);
    std::cout << "[ harness ] " << out.substr(out.rfind('\n', out.size() - 2) + 1);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;
    const json st = d.ok("bdev_ocf_get_stats", {{"name", "Cache0"}});
    EXPECT_GT(st["requests"]["wr_total"]["count"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_GT(st["requests"]["rd_hits"]["count"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_GT(st["lines"]["evicted"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_GT(st["lines"]["cleaned"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_EQ(st["lines"]["cache_device_failed"], false) << st.dump();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
