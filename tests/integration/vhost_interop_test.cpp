// QEMU guests with a vhost-user-blk-pci disk on a nocstor controller (../shared/interop's
// vhost-user-blk.sh; skipped cleanly without it or without qemu-system-x86_64): a read-only
// controller; nocstor killed with SIGKILL and started again from its configuration file while
// the guest's fio runs, which must finish and verify; and use case 3, where the stock virtio-blk
// driver with two queues runs every step of the harness (fio verify, flush, discard, write
// zeroes, multiqueue) on a thin lvol over a mirror of two remote NVMe/TCP namespaces.
#include "daemon_env.h"
#include "interop_util.h"

#include <fstream>
#include <iostream>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

std::string harness() {
    return std::string(NOCSTOR_SOURCE_DIR) + "/../shared/interop/vhost-user-blk.sh";
}

bool harness_usable(std::string* why) {
    if (access(harness().c_str(), X_OK) != 0) {
        *why = "no " + harness();
        return false;
    }
    if (!have_tool("qemu-system-x86_64")) {
        *why = "qemu-system-x86_64 is not installed";
        return false;
    }
    return true;
}

std::string run_harness(const std::string& args, int* rc) {
    const std::string out = run_command(harness() + " " + args + " 2>&1", rc);
    std::cout << out.substr(out.size() > 6000 ? out.size() - 6000 : 0) << std::endl;
    return out;
}

}  // namespace

TEST(VhostKernelInterop, ReadOnlyDiskRefusesGuestWrites) {
    std::string why;
    if (!harness_usable(&why)) GTEST_SKIP() << why;
    Daemon d({"--empty"});
    d.ok("bdev_malloc_create", {{"name", "Disk0"}, {"num_blocks", 65536}, {"block_size", 4096}});
    const std::string sock = d.dir() + "/ro.sock";
    d.ok("vhost_create_blk_controller",
         {{"ctrlr", sock}, {"dev_name", "Disk0"}, {"readonly", true}});
    int rc = 0;
    const std::string out =
        run_harness("-q --readonly --queues 1 --no-mq --fio-size 16M " + sock, &rc);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find(" 0 failed"), std::string::npos);
    EXPECT_NE(out.find("PASS: read-only"), std::string::npos);
}

TEST(VhostKernelInterop, GuestIoSurvivesKillMinusNineAndRestart) {
    std::string why;
    if (!harness_usable(&why)) GTEST_SKIP() << why;
    const std::string dir = temp_dir();
    const std::string file = dir + "/disk.img";
    ASSERT_EQ(truncate(file.c_str(), 256 << 20) == 0 ||
                  (std::ofstream(file).good() && truncate(file.c_str(), 256 << 20) == 0),
              true);
    const std::string sock = dir + "/vub.sock";
    const json config = {
        {"subsystems",
         {{{"subsystem", "bdev"},
           {"config",
            {{{"method", "bdev_uring_create"},
              {"params", {{"name", "Disk0"}, {"filename", file}, {"block_size", 512}}}},
             // Slow writes, so that requests are in flight when the process dies.
             {{"method", "bdev_delay_create"},
              {"params",
               {{"base_bdev_name", "Disk0"},
                {"name", "Slow0"},
                {"avg_read_latency", 100},
                {"p99_read_latency", 200},
                {"avg_write_latency", 5000},
                {"p99_write_latency", 8000}}}}}}},
          {{"subsystem", "vhost_blk"},
           {"config",
            {{{"method", "vhost_create_blk_controller"},
              {"params", {{"ctrlr", sock}, {"dev_name", "Slow0"}}}}}}}}}};
    std::ofstream(dir + "/config.json") << config.dump(2);
    // (Re)starts nocstor from the configuration file and returns once it serves again.
    std::ofstream(dir + "/start.sh")
        << "#!/bin/bash\n"
        << "D=" << dir << "\n"
        << "if [ -f $D/pid ]; then kill -9 $(cat $D/pid) 2>/dev/null\n"
        << "  for i in $(seq 100); do kill -0 $(cat $D/pid) 2>/dev/null || break; sleep 0.05; "
           "done; fi\n"
        << ": > $D/nocstor.log\n"
        << "setsid " << NOCSTOR_BIN_DIR << "/nocstor -c $D/config.json -r $D/rpc.sock --no-http "
        << "--clusters '0:control:0;1:data:0' --idle-sleep-us 200 >> $D/nocstor.log 2>&1 "
           "< /dev/null &\n"
        << "echo $! > $D/pid\n"
        << "for i in $(seq 400); do grep -q 'nocstor is ready' $D/nocstor.log && exit 0; "
           "sleep 0.05; done\n"
        << "echo 'nocstor did not start'; cat $D/nocstor.log; exit 1\n";
    int rc = 0;
    run_command("bash " + dir + "/start.sh 2>&1", &rc);
    ASSERT_EQ(rc, 0);
    const std::string out = run_harness(
        "-q --reconnect-only --reconnect-size 32M --on-midrun 'bash " + dir + "/start.sh' " + sock,
        &rc);
    std::string log;
    if (FILE* f = fopen((dir + "/nocstor.log").c_str(), "r")) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0) log.append(buf, n);
        fclose(f);
    }
    run_command("kill $(cat " + dir + "/pid) 2>/dev/null; sleep 0.5", &rc);
    EXPECT_NE(out.find("PASS: reconnect-midrun"), std::string::npos) << log;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << log;
    // The restarted process took the region over and resubmitted what was in flight.
    EXPECT_NE(log.find("inflight region handed over"), std::string::npos) << log;
    EXPECT_NE(log.find("resubmitting"), std::string::npos) << log;
}

// Use case 3 from the configuration in the repo (configs/use-case-3-vhost.json): two namespaces
// of another nocstor over NVMe/TCP, mirrored (raid1), an lvol store on the mirror, a thin lvol
// served to a guest as its local disk.
TEST(VhostKernelInterop, UseCase3RemoteMirrorLvolIsAGuestsLocalDisk) {
    std::string why;
    if (!harness_usable(&why)) GTEST_SKIP() << why;
    Daemon a({"--empty"});
    const uint16_t port = free_tcp_port();
    a.ok("nvmf_create_transport", {{"trtype", "TCP"}});
    for (const char* n : {"a", "b"}) {
        const std::string bdev = std::string("M") + n;
        a.ok("bdev_malloc_create", {{"name", bdev}, {"num_blocks", 65536}, {"block_size", 4096}});
        export_over_nvmf(a, std::string("nqn.2026-12.io.nocstor:node-") + n, bdev, port);
    }
    std::ifstream in(std::string(NOCSTOR_SOURCE_DIR) + "/configs/use-case-3-vhost.json");
    ASSERT_TRUE(in.good());
    json cfg = json::parse(in);
    const std::string dir = temp_dir();
    const std::string sock = dir + "/vm1-disk.sock";
    for (auto& s : cfg["subsystems"])
        for (auto& c : s["config"]) {
            if (c["method"] == "bdev_nvme_attach_controller")
                c["params"]["trsvcid"] = std::to_string(port);
            if (c["method"] == "vhost_create_blk_controller") c["params"]["ctrlr"] = sock;
        }
    std::ofstream(dir + "/use-case-3.json") << cfg.dump(2);
    // Two data threads: the guest's two queues run on different reactors.
    Daemon b({"-c", dir + "/use-case-3.json", "--clusters", "0:control:0;1:data:0-1"}, dir);
    ASSERT_TRUE(b.alive()) << b.log();
    int rc = 0;
    const std::string out =
        run_harness("-q --queues 2 --expect-size 192M --fio-size 24M " + sock, &rc);
    EXPECT_EQ(rc, 0);
    // Every step qemu-storage-daemon passes in the harness's self-test (10 of 10).
    EXPECT_NE(out.find("10 passed, 0 failed, 0 skipped"), std::string::npos);
    const json c = b.ok("vhost_get_controllers")[0];
    EXPECT_GT(c["stats"]["bytes_written"].get<uint64_t>(), 48u << 20) << c.dump();
    EXPECT_GT(c["stats"]["discards"].get<uint64_t>(), 0u) << c.dump();
    EXPECT_GT(c["stats"]["write_zeroes"].get<uint64_t>(), 0u) << c.dump();
    // Both mirror legs got the guest's writes.
    for (const char* n : {"Ma", "Mb"}) {
        const json io = a.ok("bdev_get_iostat", {{"name", n}})["bdevs"][0];
        EXPECT_GT(io["bytes_written"].get<uint64_t>(), 48u << 20) << n << io.dump();
    }
}
