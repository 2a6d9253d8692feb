// Use case 2 end to end, from the configuration in the repo (configs/use-case-2-iscsi-cache.json):
// a LUN of a real iSCSI target (Debian's tgt, a file) -> bdev_iscsi (two sessions) -> a delay
// bdev (disk-like latency) -> a write-back cache on a small fast bdev (lines get evicted and
// cleaned while fio runs) -> NVMe/TCP, where the Linux kernel NVMe/TCP initiator (the
// ../shared/interop harness in a VM) runs fio randwrite+verify and its own checks. Afterwards
// a flush writes every dirty line back to the LUN. Skips cleanly without the harness, QEMU or tgt.
#include "daemon_env.h"
#include "interop_util.h"
#include "tgt_server.h"

#include <fstream>
#include <sstream>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string harness() {
    return std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/kernel-nvme-tcp.sh";
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
}

}  // namespace

TEST(CacheKernelInterop, UseCase2IscsiLunThroughAWriteBackCacheVerifiesUnderFio) {
    if (access(harness().c_str(), X_OK) != 0) GTEST_SKIP() << "no " << harness();
    if (!have_tool("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    const std::string dir = temp_dir();
    TgtServer tgt(dir);
    if (!tgt.ok()) GTEST_SKIP() << tgt.why();
    const std::string lun = dir + "/hdd.img";
    std::ofstream(lun).close();
    ASSERT_EQ(truncate(lun.c_str(), 256 << 20), 0);
    ASSERT_TRUE(tgt.add_target(1, "iqn.2026-11.io.nocstor:hdd-array", lun)) << tgt.log();

    // The repo's configuration, with this test's ports.
    std::ifstream in(std::string(NOCSTOR_SOURCE_DIR) + "/configs/use-case-2-iscsi-cache.json");
    ASSERT_TRUE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    std::string cfg = text.str();
    const uint16_t port = free_tcp_port();
    replace_all(cfg, "127.0.0.1:3260", tgt.portal());
    replace_all(cfg, "\"trsvcid\": \"4420\"", "\"trsvcid\": \"" + std::to_string(port) + "\"");
    const std::string cfg_path = dir + "/use-case-2.json";
    std::ofstream(cfg_path) << cfg;

    Daemon d({"-c", cfg_path}, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    d.ok("bdev_ocf_set_cleaning", {{"name", "Cached0"}, {"stale_ms", 200}});
    const std::string nqn = "nqn.2026-11.io.nocstor:cached-hdd";
    int rc = 0;
    const std::string out =
        run_command(harness() + " -q --fio-size 32M --no-discard --timeout 500 " +
                        std::to_string(port) + " " + nqn + " 2>&1",
                    &rc);
    std::cout << "[ harness ] " << out.substr(out.rfind('\n', out.size() - 2) + 1);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;
    const json st = d.ok("bdev_ocf_get_stats", {{"name", "Cached0"}});
    EXPECT_GT(st["requests"]["wr_total"]["count"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_GT(st["requests"]["rd_hits"]["count"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_GT(st["lines"]["evicted"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_GT(st["lines"]["cleaned"].get<uint64_t>(), 0u) << st.dump();
    EXPECT_EQ(st["lines"]["cache_device_failed"], false) << st.dump();
    // Every dirty line back on the LUN, through the iSCSI sessions.
    d.ok("bdev_ocf_flush_start", {{"name", "Cached0"}});
    EXPECT_TRUE(wait_until(
        [&] {
            auto r = d.call("bdev_ocf_flush_status", {{"name", "Cached0"}});
            return r.ok() && r.result["in_progress"] == false;
        },
        120));
    const json io = d.ok("bdev_get_iostat", {{"name", "Hdd0"}});
    EXPECT_GT(io["bdevs"][0]["num_write_ops"].get<uint64_t>(), 0u) << io.dump();
    const json info = d.ok("bdev_get_bdevs", {{"name", "Hdd0"}})[0]["driver_specific"]["iscsi"];
    EXPECT_EQ(info["sessions"][0]["state"], "ready") << info.dump();
    EXPECT_EQ(d.stop(), 0) << d.log();
}
