// The SPDK methods added for SPDK users' scripts, end to end on the real daemon: bdev_aio_*
// (with a rescan that grows a namespace and tells the host by AEN), histograms readable by
// SPDK's tools, iostat reset modes, log levels, nvmf_subsystem_get_listeners, bdev_get_bdevs
// with a timeout.
#include "daemon_env.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <thread>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
namespace nvme = nocstor::nvme;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:methods";

// Subsystem kNqn with namespace `bdev` on a free port; returns the port.
uint16_t export_bdev(Daemon& d, const std::string& bdev) {
    const uint16_t port = free_tcp_port();
    d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", bdev}}}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", kNqn},
          {"listen_address",
           {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
    return port;
}

std::vector<uint64_t> decode_buckets(const std::string& b64) {
    std::string raw(b64.size(), '\0');
    const int n =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                        reinterpret_cast<const unsigned char*>(b64.data()), int(b64.size()));
    const size_t pad = std::count(b64.end() - std::min<size_t>(2, b64.size()), b64.end(), '=');
    raw.resize(size_t(n) - pad);
    std::vector<uint64_t> out(raw.size() / 8);
    for (size_t i = 0; i < out.size(); ++i)
        for (size_t b = 0; b < 8; ++b) out[i] |= uint64_t(uint8_t(raw[i * 8 + b])) << (8 * b);
    return out;
}

TEST(SpdkMethods, AioCreateRescanGrowsTheNamespaceAndRaisesAnAen) {
    Daemon d({"--empty"});
    const std::string file = d.dir() + "/aio.img";
    FILE* f = fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fclose(f);
    ASSERT_EQ(truncate(file.c_str(), 4 << 20), 0);
    EXPECT_EQ(
        d.ok("bdev_aio_create",
             {{"name", "Aio0"}, {"filename", file}, {"block_size", 512}, {"fallocate", true}}),
        "Aio0");
    json b = d.ok("bdev_get_bdevs", {{"name", "Aio0"}})[0];
    EXPECT_EQ(b["product_name"], "AIO disk");
    EXPECT_EQ(b["driver_specific"]["aio"]["fallocate"], true);
    EXPECT_EQ(b["driver_specific"]["aio"]["block_size_override"], true);
    EXPECT_EQ(b["supported_io_types"]["unmap"], true);
    bool saved = false;
    const json config = d.ok("save_config");
    for (const auto& s : config["subsystems"])
        for (const auto& c : s["config"])
            if (c["method"] == "bdev_aio_create") {
                saved = true;
                EXPECT_EQ(c["params"]["filename"], file);
                EXPECT_EQ(c["params"]["fallocate"], true);
            }
    EXPECT_TRUE(saved);

    const uint16_t port = export_bdev(d, "Aio0");
    TestHost a(port);
    ASSERT_NE(bring_up_admin(a, false, false, 0, kNqn), 0);
    auto sf = sqe(nvme::admin_opc::kSetFeatures, 20);
    sf.cdw10 = nvme::feature::kAsyncEventConfig;
    sf.cdw11 = nvme::kOaesNamespaceAttributeNotices;
    a.send_cmd(sf);
    ASSERT_TRUE(a.wait_resp(20));
    a.send_cmd(sqe(nvme::admin_opc::kAsyncEventRequest, 21));

    ASSERT_EQ(truncate(file.c_str(), 8 << 20), 0);
    d.ok("bdev_aio_rescan", {{"name", "Aio0"}});
    EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "Aio0"}})[0]["num_blocks"], (8 << 20) / 512);
    auto r = a.wait_resp(21);
    ASSERT_TRUE(r && r->status.ok()) << "no AEN after the namespace grew";
    EXPECT_EQ(r->dw0, nvme::make_async_event(nvme::aer_type::kNotice, 0, 4));
    std::vector<uint8_t> data;
    r = identify(a, nvme::cns::kNamespace, 1, &data);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(reinterpret_cast<const nvme::IdentifyNamespace*>(data.data())->nsze,
              uint64_t(8 << 20) / 512);

    // Shrinking a bdev an NVMe-oF namespace uses is refused.
    ASSERT_EQ(truncate(file.c_str(), 1 << 20), 0);
    auto rr = d.call("bdev_aio_rescan", {{"name", "Aio0"}});
    EXPECT_FALSE(rr.ok());
    EXPECT_EQ(rr.code, -16) << rr.message;
    EXPECT_NE(d.call("bdev_aio_rescan", {{"name", "Missing"}}).code, 0);
}

TEST(SpdkMethods, HistogramIsReadableAsSpdkData) {
    Daemon d({"--empty"});
    d.ok("bdev_malloc_create", {{"name", "M"}, {"num_blocks", 2048}, {"block_size", 512}});
    EXPECT_NE(d.call("bdev_get_histogram", {{"name", "M"}}).message.find("off"), std::string::npos);
    d.ok("bdev_enable_histogram", {{"name", "M"}, {"enable", true}, {"opc", "read"}});
    EXPECT_FALSE(
        d.call("bdev_enable_histogram", {{"name", "M"}, {"enable", true}, {"opc", "zap"}}).ok());
    const uint16_t port = export_bdev(d, "M");
    TestHost a(port);
    const uint16_t cntlid = bring_up_admin(a, false, false, 0, kNqn);
    ASSERT_NE(cntlid, 0);
    TestHost q(port);
    ASSERT_TRUE(bring_up_io(q, cntlid, 1, false, false, kNqn));
    d.ok("bdev_reset_iostat", {{"name", "M"}});  // (examine read the bdev when it appeared)
    std::vector<uint8_t> data;
    for (uint16_t i = 0; i < 25; ++i) ASSERT_TRUE(read(q, i, i, 4096, &data));
    ASSERT_TRUE(write_incapsule(q, 99, 0, std::vector<uint8_t>(4096, 1)));  // not counted
    json h = d.ok("bdev_get_histogram", {{"name", "M"}});
    EXPECT_EQ(h["granularity"], 7);
    EXPECT_EQ(h["tsc_rate"], 1000000000);
    const auto buckets = decode_buckets(h["histogram"]);
    EXPECT_EQ(buckets.size(), size_t(h["max_range"].get<int>() - h["min_range"].get<int>() + 1)
                                  << 7);
    uint64_t total = 0;
    for (uint64_t b : buckets) total += b;
    EXPECT_EQ(total, 25u);
    // save_config keeps the histogram on.
    bool saved = false;
    const json config = d.ok("save_config");
    for (const auto& s : config["subsystems"])
        for (const auto& c : s["config"])
            saved = saved || (c["method"] == "bdev_enable_histogram" &&
                              c["params"].value("opc", "") == "read");
    EXPECT_TRUE(saved);
    d.ok("bdev_enable_histogram", {{"name", "M"}, {"enable", false}});
    EXPECT_FALSE(d.call("bdev_get_histogram", {{"name", "M"}}).ok());

    // iostat: names, per_channel, reset modes.
    json st = d.ok("bdev_get_iostat", {{"names", {"M"}}});
    ASSERT_EQ(st["bdevs"].size(), 1u);
    EXPECT_EQ(st["bdevs"][0]["num_read_ops"], 25);
    EXPECT_GT(st["bdevs"][0]["max_read_latency_ticks"].get<uint64_t>(), 0u);
    json pc = d.ok("bdev_get_iostat", {{"names", {"M"}}, {"per_channel", true}});
    ASSERT_GE(pc["bdevs"][0]["channels"].size(), 1u);
    EXPECT_TRUE(pc["bdevs"][0]["channels"][0].contains("thread"));
    EXPECT_FALSE(d.call("bdev_get_iostat", {{"names", {"M", "Missing"}}}).ok());
    d.ok("bdev_reset_iostat", {{"name", "M"}, {"mode", "maxmin"}});
    st = d.ok("bdev_get_iostat", {{"names", {"M"}}, {"reset_mode", "all"}});
    EXPECT_EQ(st["bdevs"][0]["num_read_ops"], 25);
    EXPECT_EQ(st["bdevs"][0]["max_read_latency_ticks"], 0);
    st = d.ok("bdev_get_iostat", {{"names", {"M"}}});
    EXPECT_EQ(st["bdevs"][0]["num_read_ops"], 0) << "reset_mode all cleared after reading";
    EXPECT_FALSE(d.call("bdev_reset_iostat", {{"mode", "sometimes"}}).ok());
}

TEST(SpdkMethods, LogLevelsAndFlags) {
    Daemon d({"--empty"});
    EXPECT_EQ(d.ok("log_get_level"), "INFO");
    d.ok("log_set_level", {{"level", "DEBUG"}});
    EXPECT_EQ(d.ok("log_get_level"), "DEBUG");
    EXPECT_EQ(d.ok("log_get_print_level"), "DEBUG");
    d.ok("log_set_print_level", {{"level", "warning"}});
    EXPECT_EQ(d.ok("log_get_level"), "WARNING");
    EXPECT_FALSE(d.call("log_set_level", {{"level", "LOUD"}}).ok());
    d.ok("log_set_flag", {{"flag", "nvmf"}});
    json flags = d.ok("log_get_flags");
    EXPECT_EQ(flags["nvmf"], true);
    EXPECT_EQ(flags["bdev"], false);
    d.ok("log_clear_flag", {{"flag", "nvmf"}});
    EXPECT_EQ(d.ok("log_get_flags")["nvmf"], false);
    EXPECT_FALSE(d.call("log_set_flag", {{"flag", "nonsense"}}).ok());
}

TEST(SpdkMethods, ListenersAndWaitingForABdev) {
    Daemon d({"--empty"});
    d.ok("bdev_malloc_create", {{"name", "M"}, {"num_blocks", 256}, {"block_size", 512}});
    const uint16_t port = export_bdev(d, "M");
    json l = d.ok("nvmf_subsystem_get_listeners", {{"nqn", kNqn}});
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0]["address"]["trsvcid"], std::to_string(port));
    EXPECT_EQ(l[0]["address"]["traddr"], "127.0.0.1");
    EXPECT_FALSE(d.call("nvmf_subsystem_get_listeners", {{"nqn", kNqn + "x"}}).ok());

    // bdev_get_bdevs {name, timeout} waits for a bdev that appears meanwhile...
    auto start = Clock::now();
    std::thread creator([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        d.ok("bdev_null_create", {{"name", "Late"}, {"num_blocks", 64}, {"block_size", 512}});
    });
    auto r = d.call("bdev_get_bdevs", {{"name", "Late"}, {"timeout", 5000}});
    creator.join();
    EXPECT_TRUE(r.ok()) << r.message;
    EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(250));
    // ...and gives up after the timeout.
    start = Clock::now();
    r = d.call("bdev_get_bdevs", {{"name", "Never"}, {"timeout", 300}});
    EXPECT_FALSE(r.ok());
    EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(280));
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
