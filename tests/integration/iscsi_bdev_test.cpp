// The iSCSI bdev against a real iSCSI target (Debian's tgt on 127.0.0.1, file-backed LUNs),
// its data read and written through the daemon's NVMe/TCP target and checked in the LUN's
// backing file; bad input refused with nothing created; CHAP; and a target that is killed and
// started again under traffic (the sessions reconnect, nothing acknowledged is lost) or stays
// away (I/O fails after the timeout). Skipped without tgt or root.
#include "daemon_env.h"
#include "interop_util.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"
#include "tgt_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kInitiator = "iqn.2026-11.io.nocstor:test-initiator";
const std::string kTarget = "iqn.2026-11.io.nocstor:lun-store";
const std::string kNqn = "nqn.2026-11.io.nocstor:iscsi";
constexpr uint64_t kLunBytes = 64ull << 20;

std::string make_lun_file(const std::string& dir, const std::string& name) {
    const std::string path = dir + "/" + name;
    int fd = open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, off_t(kLunBytes)), 0);
    close(fd);
    return path;
}

std::vector<uint8_t> file_bytes(const std::string& path, uint64_t off, size_t n) {
    std::vector<uint8_t> v(n);
    int fd = open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(pread(fd, v.data(), n, off_t(off)), ssize_t(n));
    close(fd);
    return v;
}

std::string url(const TgtServer& t, const std::string& iqn = kTarget, int lun = 1,
                const std::string& cred = "") {
    return "iscsi://" + cred + t.portal() + "/" + iqn + "/" + std::to_string(lun);
}

json iscsi_info(Daemon& d, const std::string& name) {
    auto r = d.call("bdev_get_bdevs", {{"name", name}});
    if (!r.ok() || r.result.empty()) return json();
    return r.result[0]["driver_specific"]["iscsi"];
}

#define REQUIRE_TGT(t) \
    if (!(t).ok()) GTEST_SKIP() << (t).why();

}  // namespace

TEST(IscsiBdev, ReadsAndWritesReachTheLunAndDeleteRemovesIt) {
    const std::string dir = temp_dir();
    TgtServer tgt(dir);
    REQUIRE_TGT(tgt);
    const std::string lun = make_lun_file(dir, "lun.img");
    ASSERT_TRUE(tgt.add_target(1, kTarget, lun, "thin_provisioning=1")) << tgt.log();
    Daemon d({"--empty"}, dir);
    d.ok("bdev_iscsi_create",
         {{"name", "i0"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}, {"sessions", 2}});
    auto b = d.call("bdev_get_bdevs", {{"name", "i0"}});
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b.result[0]["block_size"], 512);
    EXPECT_EQ(b.result[0]["num_blocks"], kLunBytes / 512);
    json info = b.result[0]["driver_specific"]["iscsi"];
    EXPECT_EQ(info["target"], kTarget);
    EXPECT_EQ(info["lun"], 1);
    EXPECT_EQ(info["unmap"], true) << info.dump();
    ASSERT_EQ(info["sessions"].size(), 2u);
    EXPECT_TRUE(wait_until(
        [&] {
            json i = iscsi_info(d, "i0");
            return i["sessions"][0]["state"] == "ready" && i["sessions"][1]["state"] == "ready";
        },
        10))
        << iscsi_info(d, "i0").dump();

    // The data goes through NVMe/TCP -> bdev -> iSCSI -> tgt -> the LUN's file.
    const uint16_t port = free_tcp_port();
    export_over_nvmf(d, kNqn, "i0", port);
    IoSession s(port, kNqn);
    ASSERT_TRUE(s.up) << d.log();
    uint16_t cid = 1;
    std::vector<uint64_t> lbas = {0, 8, 4096, kLunBytes / 512 - 8};
    for (uint64_t lba : lbas) {
        auto w = write_incapsule(s.io, cid++, lba, random_bytes(4096, lba));
        ASSERT_TRUE(w && w->status.ok()) << "lba " << lba;
    }
    ASSERT_TRUE(flush_ns1(s.io, cid++));
    std::vector<uint8_t> got;
    for (uint64_t lba : lbas) {
        auto r = read(s.io, cid++, lba, 4096, &got);
        ASSERT_TRUE(r && r->status.ok());
        EXPECT_EQ(got, random_bytes(4096, lba)) << "lba " << lba;
        EXPECT_EQ(file_bytes(lun, lba * 512, 4096), random_bytes(4096, lba)) << "lba " << lba;
    }
    // A 128 KiB read spanning what was written and what was not.
    auto r = read(s.io, cid++, 0, 128 << 10, &got);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 4096), random_bytes(4096, 0));
    EXPECT_EQ(std::vector<uint8_t>(got.begin() + 4096, got.begin() + 8192), random_bytes(4096, 8));
    EXPECT_EQ(std::vector<uint8_t>(got.begin() + 8192, got.begin() + 12288),
              std::vector<uint8_t>(4096, 0));

    // Deallocate (UNMAP: tgt punches a hole in the file) and write zeroes (WRITE SAME, or
    // writes of zeroes when the LUN does not offer it).
    struct __attribute__((packed)) {
        uint32_t attr, nlb;
        uint64_t slba;
    } range{0, 8, 4096};
    auto dsm = sqe(nocstor::nvme::nvm_opc::kDatasetManagement, cid, 1);
    dsm.cdw11 = 1u << 2;
    set_incapsule(dsm, sizeof range);
    s.io.send_cmd(dsm, &range, sizeof range);
    auto u = s.io.wait_resp(cid++);
    ASSERT_TRUE(u && u->status.ok());
    auto wz = sqe(nocstor::nvme::nvm_opc::kWriteZeroes, cid, 1);
    wz.cdw10 = 8;
    wz.cdw12 = 7;
    set_transport(wz, 0);
    s.io.send_cmd(wz);
    auto z = s.io.wait_resp(cid++);
    ASSERT_TRUE(z && z->status.ok());
    for (uint64_t lba : {4096ull, 8ull}) {
        auto rr = read(s.io, cid++, lba, 4096, &got);
        ASSERT_TRUE(rr && rr->status.ok());
        EXPECT_EQ(got, std::vector<uint8_t>(4096, 0)) << "lba " << lba;
        EXPECT_EQ(file_bytes(lun, lba * 512, 4096), std::vector<uint8_t>(4096, 0)) << "lba " << lba;
    }

    // save_config recreates it (with the module's options).
    auto cfg = d.ok("save_config");
    const std::string text = cfg.dump();
    EXPECT_NE(text.find("bdev_iscsi_create"), std::string::npos);
    EXPECT_NE(text.find("bdev_iscsi_set_options"), std::string::npos);

    d.ok("nvmf_delete_subsystem", {{"nqn", kNqn}});
    d.ok("bdev_iscsi_delete", {{"name", "i0"}});
    EXPECT_FALSE(d.call("bdev_get_bdevs", {{"name", "i0"}}).ok());
    auto again = d.call("bdev_iscsi_delete", {{"name", "i0"}});
    EXPECT_FALSE(again.ok());
    EXPECT_NE(again.message.find("no iSCSI bdev"), std::string::npos) << again.message;
}

TEST(IscsiBdev, BadInputIsRefusedWithAClearErrorAndNothingIsCreated) {
    const std::string dir = temp_dir();
    TgtServer tgt(dir);
    REQUIRE_TGT(tgt);
    ASSERT_TRUE(tgt.add_target(1, kTarget, make_lun_file(dir, "lun.img"))) << tgt.log();
    Daemon d({"--empty"}, dir);
    struct Case {
        json params;
        std::string expect;  // in the error message
    };
    const uint16_t closed_port = free_tcp_port();
    const std::vector<Case> cases = {
        {{{"name", "x"}, {"initiator_iqn", kInitiator}, {"url", "http://127.0.0.1/iqn/1"}},
         "iscsi://"},
        {{{"name", "x"}, {"initiator_iqn", "not-an-iqn"}, {"url", url(tgt)}}, "initiator_iqn"},
        {{{"name", "x"},
          {"initiator_iqn", kInitiator},
          {"url", "iscsi://" + tgt.portal() + "/" + kTarget}},
         "bad url"},
        {{{"name", "x"},
          {"initiator_iqn", kInitiator},
          {"url", "iscsi://127.0.0.1:" + std::to_string(closed_port) + "/" + kTarget + "/1"}},
         "Connection refused"},
        {{{"name", "x"}, {"initiator_iqn", kInitiator}, {"url", url(tgt, kTarget + "-nope")}},
         "Target not found"},
        {{{"name", "x"}, {"initiator_iqn", kInitiator}, {"url", url(tgt, kTarget, 0)}},
         "not a disk"},
        {{{"name", "x"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}, {"data_digest", true}},
         "data digest"},
        {{{"name", "x"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}, {"sessions", 0}},
         "sessions"},
        {{{"name", "x"}, {"url", url(tgt)}}, "initiator_iqn"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.params.dump());
        auto r = d.call("bdev_iscsi_create", c.params);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.message.find(c.expect), std::string::npos) << r.message;
    }
    EXPECT_TRUE(d.ok("bdev_get_bdevs").empty());
    EXPECT_FALSE(d.call("bdev_iscsi_set_options", {{"timeout_sec", -1}}).ok());
    EXPECT_FALSE(d.call("bdev_iscsi_set_options", {{"timeout_sec", "x"}}).ok());
    // Still working after all that.
    d.ok("bdev_iscsi_create", {{"name", "ok"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}});
    EXPECT_FALSE(d.call("bdev_iscsi_create",
                        {{"name", "ok"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}})
                     .ok());
    EXPECT_TRUE(d.alive());
}

TEST(IscsiBdev, ChapAndHeaderDigests) {
    const std::string dir = temp_dir();
    TgtServer tgt(dir);
    REQUIRE_TGT(tgt);
    ASSERT_TRUE(tgt.add_target(1, kTarget, make_lun_file(dir, "lun.img"))) << tgt.log();
    ASSERT_TRUE(tgt.add_chap(1, "alice", "secretsecret12"));
    // Offered by tgt only when told (checked with a capture: both sides then say CRC32C).
    ASSERT_TRUE(tgt.set_param(1, "HeaderDigest", "CRC32C,None"));
    Daemon d({"--empty"}, dir);
    auto no_creds = d.call("bdev_iscsi_create",
                           {{"name", "a"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}});
    EXPECT_FALSE(no_creds.ok());
    EXPECT_NE(no_creds.message.find("Authentication failure"), std::string::npos)
        << no_creds.message;
    auto wrong =
        d.call("bdev_iscsi_create", {{"name", "a"},
                                     {"initiator_iqn", kInitiator},
                                     {"url", url(tgt, kTarget, 1, "alice%wrongwrong12@")}});
    EXPECT_FALSE(wrong.ok());
    EXPECT_NE(wrong.message.find("Authentication failure"), std::string::npos) << wrong.message;
    d.ok("bdev_iscsi_create", {{"name", "a"},
                               {"initiator_iqn", kInitiator},
                               {"url", url(tgt, kTarget, 1, "alice%secretsecret12@")},
                               {"header_digest", true}});
    json info = iscsi_info(d, "a");
    EXPECT_EQ(info["url"].get<std::string>().find("secretsecret12"), std::string::npos)
        << "bdev_get_bdevs shows the CHAP secret: " << info.dump();
    EXPECT_EQ(info["header_digest"], true);
    const uint16_t port = free_tcp_port();
    export_over_nvmf(d, kNqn, "a", port);
    IoSession s(port, kNqn);
    ASSERT_TRUE(s.up);
    auto w = write_incapsule(s.io, 1, 64, random_bytes(8192, 7));
    ASSERT_TRUE(w && w->status.ok());
    std::vector<uint8_t> got;
    auto r = read(s.io, 2, 64, 8192, &got);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(got, random_bytes(8192, 7));
}

TEST(IscsiBdev, SessionsReconnectWhenTheTargetRestartsAndNoAcknowledgedWriteIsLost) {
    const std::string dir = temp_dir();
    TgtServer tgt(dir);
    REQUIRE_TGT(tgt);
    const std::string lun = make_lun_file(dir, "lun.img");
    ASSERT_TRUE(tgt.add_target(1, kTarget, lun)) << tgt.log();
    Daemon d({"--empty"}, dir);
    d.ok("bdev_iscsi_create",
         {{"name", "i0"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}, {"sessions", 2}});
    const uint16_t port = free_tcp_port();
    export_over_nvmf(d, kNqn, "i0", port);
    IoSession s(port, kNqn);
    ASSERT_TRUE(s.up);
    uint16_t cid = 1;
    constexpr int kSlots = 64;
    for (int round = 0; round < 2; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        // Writes in flight while the target dies and comes back 1.5 s later.
        std::thread back([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            tgt.kill_hard();
            std::this_thread::sleep_for(std::chrono::milliseconds(1500));
            EXPECT_TRUE(tgt.restart()) << tgt.why();
        });
        for (int i = 0; i < kSlots; ++i) {
            const uint64_t lba = uint64_t(i) * 16;
            auto w = write_incapsule(s.io, cid++, lba, random_bytes(4096, lba * 10 + round));
            ASSERT_TRUE(w && w->status.ok()) << "slot " << i << "\n" << d.log();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        back.join();
        ASSERT_TRUE(flush_ns1(s.io, cid++));
        std::vector<uint8_t> got;
        for (int i = 0; i < kSlots; ++i) {
            const uint64_t lba = uint64_t(i) * 16;
            auto r = read(s.io, cid++, lba, 4096, &got);
            ASSERT_TRUE(r && r->status.ok());
            EXPECT_EQ(got, random_bytes(4096, lba * 10 + round)) << "slot " << i;
            EXPECT_EQ(file_bytes(lun, lba * 512, 4096), random_bytes(4096, lba * 10 + round));
        }
    }
    json info = iscsi_info(d, "i0");
    EXPECT_GE(info["sessions"][0]["connection_losses"].get<int>(), 1) << info.dump();
    EXPECT_EQ(info["sessions"][0]["state"], "ready") << info.dump();
}

TEST(IscsiBdev, IoFailsAfterTheTimeoutWhileTheTargetIsAwayAndWorksWhenItReturns) {
    const std::string dir = temp_dir();
    TgtServer tgt(dir);
    REQUIRE_TGT(tgt);
    ASSERT_TRUE(tgt.add_target(1, kTarget, make_lun_file(dir, "lun.img"))) << tgt.log();
    Daemon d({"--empty"}, dir);
    d.ok("bdev_iscsi_set_options", {{"timeout_sec", 2}});
    d.ok("bdev_iscsi_create", {{"name", "i0"}, {"initiator_iqn", kInitiator}, {"url", url(tgt)}});
    const uint16_t port = free_tcp_port();
    export_over_nvmf(d, kNqn, "i0", port);
    IoSession s(port, kNqn);
    ASSERT_TRUE(s.up);
    tgt.kill_hard();
    const auto t0 = std::chrono::steady_clock::now();
    auto w = write_incapsule(s.io, 1, 0, random_bytes(4096, 1));
    const auto waited = std::chrono::steady_clock::now() - t0;
    ASSERT_TRUE(w.has_value()) << "no answer within 5 s";
    EXPECT_FALSE(w->status.ok()) << "a write was acknowledged with the target gone";
    EXPECT_GE(waited, std::chrono::milliseconds(1500));
    ASSERT_TRUE(tgt.restart());
    EXPECT_TRUE(
        wait_until([&] { return iscsi_info(d, "i0")["sessions"][0]["state"] == "ready"; }, 15))
        << iscsi_info(d, "i0").dump();
    auto w2 = write_incapsule(s.io, 2, 0, random_bytes(4096, 2));
    ASSERT_TRUE(w2 && w2->status.ok());
    EXPECT_GE(iscsi_info(d, "i0")["sessions"][0]["timed_out_ios"].get<int>(), 1);
}
