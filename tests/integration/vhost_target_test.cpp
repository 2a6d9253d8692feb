// The vhost-user-blk target against the real daemon: the vhost_* methods, save_config, and the
// data path driven over the controller's socket by a hand-made front-end (vhost_driver.h):
// reads and writes land in the bdev, status codes for bad requests, a broken ring or a garbage
// message end only that session. QEMU guests are in vhost_interop_test.cpp.
#include "daemon_env.h"
#include "interop_util.h"
#include "vhost_driver.h"

#include <poll.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>

using namespace nocstor::testing;
using namespace nocstor::vhost;
using nlohmann::json;

namespace {

std::string sock_path(Daemon& d, const std::string& name) {
    return d.dir() + "/" + name;
}

void make_disk(Daemon& d, const std::string& name, uint64_t blocks, uint32_t bs) {
    d.ok("bdev_malloc_create", {{"name", name}, {"num_blocks", blocks}, {"block_size", bs}});
}

}  // namespace

TEST(VhostTarget, MethodsCreateListDeleteAndSaveConfig) {
    Daemon d({"--empty"});
    make_disk(d, "Disk0", 8192, 512);
    const std::string sock = sock_path(d, "vub0.sock");
    d.ok("vhost_create_blk_controller", {{"ctrlr", sock}, {"dev_name", "Disk0"}});
    struct stat st {};
    ASSERT_EQ(stat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    // Errors: duplicate, missing bdev, bad cpumask, features nocstor lacks.
    EXPECT_FALSE(
        d.call("vhost_create_blk_controller", {{"ctrlr", sock}, {"dev_name", "Disk0"}}).ok());
    auto r = d.call("vhost_create_blk_controller",
                    {{"ctrlr", sock_path(d, "x.sock")}, {"dev_name", "Nope"}});
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("Nope"), std::string::npos) << r.message;
    EXPECT_FALSE(
        d.call("vhost_create_blk_controller",
               {{"ctrlr", sock_path(d, "y.sock")}, {"dev_name", "Disk0"}, {"cpumask", "0x100"}})
            .ok());
    EXPECT_FALSE(
        d.call("vhost_create_blk_controller",
               {{"ctrlr", sock_path(d, "y.sock")}, {"dev_name", "Disk0"}, {"packed_ring", true}})
            .ok());
    EXPECT_FALSE(d.call("vhost_create_blk_controller", {{"ctrlr", sock_path(d, "y.sock")},
                                                        {"dev_name", "Disk0"},
                                                        {"transport", "vfio_user_virtio_blk"}})
                     .ok());
    d.ok("vhost_create_blk_controller", {{"ctrlr", sock_path(d, "ro.sock")},
                                         {"dev_name", "Disk0"},
                                         {"readonly", true},
                                         {"cpumask", "0x1"},
                                         {"num_queues", 4}});
    d.ok("vhost_controller_set_coalescing",
         {{"ctrlr", sock_path(d, "ro.sock")}, {"delay_base_us", 50}, {"iops_threshold", 60000}});
    EXPECT_FALSE(d.call("vhost_controller_set_coalescing",
                        {{"ctrlr", sock}, {"delay_base_us", 50}, {"iops_threshold", 0}})
                     .ok());
    const json list = d.ok("vhost_get_controllers");
    ASSERT_EQ(list.size(), 2u) << list.dump();
    EXPECT_EQ(list[0]["ctrlr"], sock);
    EXPECT_EQ(list[0]["backend_specific"]["block"]["bdev"], "Disk0");
    EXPECT_EQ(list[1]["backend_specific"]["block"]["readonly"], true);
    EXPECT_EQ(list[1]["backend_specific"]["block"]["num_queues"], 4);
    EXPECT_EQ(list[1]["delay_base_us"], 50);
    EXPECT_EQ(d.ok("vhost_get_controllers", {{"name", sock}}).size(), 1u);
    EXPECT_FALSE(d.call("vhost_get_controllers", {{"name", "nope"}}).ok());
    // The bdev is in use by the controller.
    EXPECT_FALSE(d.call("bdev_malloc_delete", {{"name", "Disk0"}}).ok() &&
                 stat(sock.c_str(), &st) != 0);

    const json cfg = d.ok("save_config");
    json calls;
    for (const auto& s : cfg["subsystems"])
        if (s["subsystem"] == "vhost_blk") calls = s["config"];
    ASSERT_EQ(calls.size(), 3u) << cfg.dump();
    EXPECT_EQ(calls[0]["method"], "vhost_create_blk_controller");
    EXPECT_EQ(calls[1]["params"]["num_queues"], 4);
    EXPECT_EQ(calls[2]["method"], "vhost_controller_set_coalescing");

    d.ok("vhost_delete_controller", {{"ctrlr", sock}});
    EXPECT_NE(stat(sock.c_str(), &st), 0) << "the socket file stays after delete";
    EXPECT_FALSE(d.call("vhost_delete_controller", {{"ctrlr", sock}}).ok());
    EXPECT_EQ(d.ok("vhost_get_controllers").size(), 1u);
}

TEST(VhostTarget, RingRequestsReachTheBdevWithoutACopyOfTheirOwn) {
    Daemon d({"--empty"});
    make_disk(d, "Disk0", 16384, 512);
    const std::string sock = sock_path(d, "vub.sock");
    d.ok("vhost_create_blk_controller", {{"ctrlr", sock}, {"dev_name", "Disk0"}});
    VhostDriver drv;
    ASSERT_TRUE(drv.connect(sock));
    const uint64_t features = drv.setup(16, true);
    EXPECT_TRUE(features & bit(kBlkFlush));
    EXPECT_TRUE(features & bit(kBlkMq));
    EXPECT_FALSE(features & bit(kBlkRo));
    EXPECT_EQ(drv.get_u64(Req::GetQueueNum), 16u);
    const BlkConfig cfg = drv.config();
    EXPECT_EQ(cfg.capacity, 16384u);
    EXPECT_EQ(cfg.blk_size, 512u);
    EXPECT_EQ(cfg.seg_max, 126u);

    // Write a pattern, overwrite the buffer, read it back.
    const auto pattern = random_bytes(8192, 7);
    memcpy(drv.data(), pattern.data(), pattern.size());
    const json before = d.ok("bdev_get_iostat", {{"name", "Disk0"}})["bdevs"][0];
    ASSERT_EQ(drv.request(kBlkTOut, 64, 8192), kBlkSOk);
    memset(drv.data(), 0, 8192);
    ASSERT_EQ(drv.request(kBlkTIn, 64, 8192), kBlkSOk);
    EXPECT_EQ(memcmp(drv.data(), pattern.data(), 8192), 0);
    // The same blocks through the bdev layer's own view: bdev_get_iostat counted them.
    const json io = d.ok("bdev_get_iostat", {{"name", "Disk0"}})["bdevs"][0];
    EXPECT_EQ(io["bytes_written"].get<uint64_t>() - before["bytes_written"].get<uint64_t>(), 8192u);
    EXPECT_EQ(io["bytes_read"].get<uint64_t>() - before["bytes_read"].get<uint64_t>(), 8192u);

    EXPECT_EQ(drv.request(kBlkTFlush, 0, 0), kBlkSOk);
    ASSERT_EQ(drv.request(kBlkTGetId, 0, 20), kBlkSOk);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(drv.data()), 5), "Disk0");
    // Errors: past the end, a length that is not whole sectors, an unknown type.
    EXPECT_EQ(drv.request(kBlkTIn, 16384, 512), kBlkSIoErr);
    EXPECT_EQ(drv.request(kBlkTIn, 16383, 1024), kBlkSIoErr);
    EXPECT_EQ(drv.request(kBlkTIn, 0, 100), kBlkSIoErr);
    EXPECT_EQ(drv.request(77, 0, 512), kBlkSUnsupp);
    // Write zeroes over the pattern.
    if (features & bit(kBlkWriteZeroes)) {
        auto* seg = reinterpret_cast<BlkDiscardWz*>(drv.data());
        *seg = BlkDiscardWz{64, 16, 0};
        ASSERT_EQ(drv.request(kBlkTWriteZeroes, 0, sizeof(*seg)), kBlkSOk);
        memset(drv.data(), 0xaa, 8192);
        ASSERT_EQ(drv.request(kBlkTIn, 64, 8192), kBlkSOk);
        EXPECT_EQ(drv.data()[0], 0);
        EXPECT_EQ(drv.data()[8191], 0);
    }
    const json list = d.ok("vhost_get_controllers");
    EXPECT_EQ(list[0]["sessions"].size(), 1u);
    EXPECT_EQ(list[0]["sessions"][0]["active_queues"], 1);
    EXPECT_GE(list[0]["stats"]["requests"].get<uint64_t>(), 8u);
    EXPECT_GE(list[0]["stats"]["errors"].get<uint64_t>(), 3u);
    // The front-end goes away and comes back: a new session on the same socket sees the data.
    const auto second = random_bytes(1024, 9);
    memcpy(drv.data(), second.data(), second.size());
    ASSERT_EQ(drv.request(kBlkTOut, 200, 1024), kBlkSOk);
    drv.close_socket();
    ASSERT_TRUE(
        wait_until([&] { return d.ok("vhost_get_controllers")[0]["sessions"].empty(); }, 10));
    VhostDriver again;
    ASSERT_TRUE(again.connect(sock));
    again.setup();
    memset(again.data(), 0, 1024);
    ASSERT_EQ(again.request(kBlkTIn, 200, 1024), kBlkSOk);
    EXPECT_EQ(memcmp(again.data(), second.data(), 1024), 0);
}

// vhost_controller_set_coalescing: while a queue completes more requests per second than the
// threshold, its interrupts are at least delay_base_us apart (held back, not dropped).
TEST(VhostTarget, CoalescingSpacesInterruptsUnderLoad) {
    Daemon d({"--empty"});
    make_disk(d, "Disk0", 4096, 512);
    auto interrupts_after_qd1_burst = [&](const std::string& name, uint32_t delay_us,
                                          uint64_t* requests) {
        const std::string sock = sock_path(d, name);
        d.ok("vhost_create_blk_controller", {{"ctrlr", sock}, {"dev_name", "Disk0"}});
        if (delay_us)
            d.ok("vhost_controller_set_coalescing",
                 {{"ctrlr", sock}, {"delay_base_us", delay_us}, {"iops_threshold", 1}});
        VhostDriver drv;
        EXPECT_TRUE(drv.connect(sock));
        drv.setup();
        // One request at a time; the driver looks at the used ring every millisecond, as a
        // polling guest driver does, so the request rate does not depend on when interrupts
        // come. 30 ms of warm-up first: the queue measures its rate in 10 ms windows.
        drv.poll_ring = true;
        auto run_for = [&](int ms) {
            uint64_t n = 0;
            const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
            while (std::chrono::steady_clock::now() < end) {
                EXPECT_EQ(drv.request(kBlkTIn, 0, 4096), kBlkSOk);
                ++n;
            }
            return n;
        };
        auto interrupts = [&] {
            return d.ok("vhost_get_controllers", {{"name", sock}})[0]["stats"]["interrupts"]
                .get<uint64_t>();
        };
        run_for(30);
        const uint64_t before = interrupts();
        *requests = run_for(100);
        return interrupts() - before;
    };
    uint64_t plain_requests = 0, coalesced_requests = 0;
    const uint64_t plain = interrupts_after_qd1_burst("plain.sock", 0, &plain_requests);
    const uint64_t coalesced =
        interrupts_after_qd1_burst("coalesced.sock", 20000, &coalesced_requests);
    ASSERT_GT(plain_requests, 20u);
    ASSERT_GT(coalesced_requests, 20u);
    // Without coalescing every completion interrupts; with 20 ms, about one per 20 ms.
    EXPECT_GE(plain, plain_requests * 9 / 10);
    EXPECT_LE(coalesced, 12u) << coalesced << " of " << coalesced_requests;
    EXPECT_LT(coalesced, coalesced_requests / 3) << coalesced << " of " << coalesced_requests;
    EXPECT_GE(coalesced, 2u);  // held back, not dropped: they still go out every 20 ms
}

// A bdev that grows: the front-end that gave us a back-end channel (SET_BACKEND_REQ_FD) gets
// VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, and GET_CONFIG then shows the new capacity (QEMU
// forwards it to the guest as a config-change interrupt).
TEST(VhostTarget, ResizedBdevIsAnnouncedOnTheBackendChannel) {
    Daemon d({"--empty"});
    const std::string file = d.dir() + "/grow.img";
    { std::ofstream(file).flush(); }
    ASSERT_EQ(::truncate(file.c_str(), 8 << 20), 0);
    d.ok("bdev_uring_create", {{"name", "Grow0"}, {"filename", file}, {"block_size", 512}});
    const std::string sock = sock_path(d, "grow.sock");
    d.ok("vhost_create_blk_controller", {{"ctrlr", sock}, {"dev_name", "Grow0"}});
    VhostDriver drv;
    ASSERT_TRUE(drv.connect(sock));
    drv.setup();
    const int chan = drv.backend_channel();
    ASSERT_GE(chan, 0);
    EXPECT_EQ(drv.config().capacity, (8u << 20) / 512);
    ASSERT_EQ(::truncate(file.c_str(), 16 << 20), 0);
    d.ok("bdev_uring_rescan", {{"name", "Grow0"}});
    pollfd p{chan, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1) << "no config-change notice";
    MsgHeader h{};
    ASSERT_EQ(::recv(chan, &h, sizeof(h), MSG_WAITALL), ssize_t(sizeof(h)));
    EXPECT_EQ(h.request, kBackendConfigChangeMsg);
    EXPECT_EQ(h.flags & kVersionMask, kVersion);
    EXPECT_EQ(h.size, 0u);
    EXPECT_EQ(drv.config().capacity, (16u << 20) / 512);
    // The queue kept working and uses the new size: the last block is readable.
    EXPECT_EQ(drv.request(kBlkTIn, (16u << 20) / 512 - 8, 4096), kBlkSOk);
    ::close(chan);
}

TEST(VhostTarget, ReadOnlyControllerRefusesWrites) {
    Daemon d({"--empty"});
    make_disk(d, "Disk0", 4096, 4096);
    const std::string sock = sock_path(d, "ro.sock");
    d.ok("vhost_create_blk_controller",
         {{"ctrlr", sock}, {"dev_name", "Disk0"}, {"readonly", true}});
    VhostDriver drv;
    ASSERT_TRUE(drv.connect(sock));
    const uint64_t f = drv.setup();
    EXPECT_TRUE(f & bit(kBlkRo));
    EXPECT_FALSE(f & bit(kBlkDiscard));
    EXPECT_EQ(drv.config().blk_size, 4096u);
    EXPECT_EQ(drv.config().capacity, 4096u * 8);
    EXPECT_EQ(drv.request(kBlkTOut, 0, 4096), kBlkSIoErr);
    EXPECT_EQ(drv.request(kBlkTIn, 0, 4096), kBlkSOk);
    EXPECT_EQ(drv.request(kBlkTIn, 1, 4096), kBlkSIoErr);  // not aligned to the 4 KiB block
    // Nothing was written, so there is nothing to flush: a flush succeeds.
    EXPECT_EQ(drv.request(kBlkTFlush, 0, 0), kBlkSOk);
}

TEST(VhostTarget, GarbageAndBrokenRingsEndOnlyThatSession) {
    Daemon d({"--empty"});
    make_disk(d, "Disk0", 4096, 512);
    const std::string sock = sock_path(d, "vub.sock");
    d.ok("vhost_create_blk_controller", {{"ctrlr", sock}, {"dev_name", "Disk0"}});
    {
        // A message with a wrong version: the session ends, the daemon stays.
        VhostDriver drv;
        ASSERT_TRUE(drv.connect(sock));
        const uint32_t junk[3] = {1, 0x2, 0};
        ASSERT_EQ(::send(drv.sock(), junk, sizeof(junk), MSG_NOSIGNAL), ssize_t(sizeof(junk)));
        char c;
        EXPECT_EQ(::recv(drv.sock(), &c, 1, 0), 0) << "the server should close the session";
    }
    {
        // A memory table that claims more regions than it carries fds.
        VhostDriver drv;
        ASSERT_TRUE(drv.connect(sock));
        ASSERT_NE(drv.get_u64(Req::GetFeatures), ~0ull);
        drv.send(Req::SetFeatures, nullptr, 0);  // wrong size: ends the session
        char c;
        EXPECT_EQ(::recv(drv.sock(), &c, 1, 0), 0);
    }
    {
        VhostDriver drv;
        ASSERT_TRUE(
            wait_until([&] { return d.ok("vhost_get_controllers")[0]["sessions"].empty(); }, 10));
        ASSERT_TRUE(drv.connect(sock));
        drv.set_u64(Req::SetProtocolFeatures, bit(kPfReplyAck));
        MemTable t{};
        t.nregions = 2;  // but no fds
        std::vector<uint8_t> ack;
        ASSERT_TRUE(
            drv.send(Req::SetMemTable, &t, 8 + 2 * sizeof(MemRegion), -1, &ack, kFlagNeedReply));
        ASSERT_EQ(ack.size(), 8u);
        EXPECT_NE(ack[0], 0) << "a failed REPLY_ACK";
    }
    {
        // A descriptor loop breaks the queue; the daemon keeps serving the next session.
        VhostDriver drv;
        ASSERT_TRUE(
            wait_until([&] { return d.ok("vhost_get_controllers")[0]["sessions"].empty(); }, 10));
        ASSERT_TRUE(drv.connect(sock));
        drv.setup();
        drv.desc()[0] = VringDesc{drv.gpa(VhostDriver::kHdr), 16, kDescNext, 1};
        drv.desc()[1] = VringDesc{drv.gpa(VhostDriver::kHdr), 16, kDescNext, 0};
        drv.publish(0);
        EXPECT_FALSE(drv.wait_used(1, 500));
        // A head outside the ring.
        drv.avail()->ring[1] = 999;
        drv.publish(999);
    }
    VhostDriver drv;
    ASSERT_TRUE(
        wait_until([&] { return d.ok("vhost_get_controllers")[0]["sessions"].empty(); }, 10));
    ASSERT_TRUE(drv.connect(sock));
    drv.setup();
    EXPECT_EQ(drv.request(kBlkTIn, 0, 512), kBlkSOk);
    EXPECT_NE(d.log().find("malformed descriptor chain"), std::string::npos);
}

TEST(VhostTarget, NocstorctlCreatesListsAndDeletes) {
    Daemon d({"--empty"});
    make_disk(d, "Disk9", 4096, 512);
    const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket();
    const std::string sock = sock_path(d, "vm9.sock");
    int rc = 0;
    std::string out = run_command(ctl + " vhost create Disk9 " + sock + " --queues 2 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("serving Disk9 on " + sock), std::string::npos) << out;
    EXPECT_NE(out.find("vhost-user-blk-pci"), std::string::npos) << out;
    VhostDriver drv;
    ASSERT_TRUE(drv.connect(sock));
    drv.setup();
    ASSERT_EQ(drv.request(kBlkTIn, 0, 4096), kBlkSOk);
    out = run_command(ctl + " vhost list 2>&1", &rc);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("Disk9"), std::string::npos) << out;
    EXPECT_NE(out.find("yes, 1 queues"), std::string::npos) << out;
    const HttpReply m = http_request(d.http_port(), "GET", "/metrics");
    EXPECT_NE(m.body.find("nocstor_vhost_requests_total{ctrlr=\"" + sock + "\"} 1"),
              std::string::npos)
        << m.body.substr(0, 3000);
    EXPECT_NE(m.body.find("nocstor_vhost_connected{ctrlr=\"" + sock + "\"} 1"), std::string::npos);
    out = run_command(ctl + " vhost delete " + sock + " 2>&1", &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_TRUE(d.ok("vhost_get_controllers").empty());
    EXPECT_TRUE(d.alive());
}
