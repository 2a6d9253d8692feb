// kill -9 loop on a raid6 array with a superblock over files: every round writes through
// NVMe/TCP, flushes, leaves more writes in flight (some rounds with a rebuild running), and kills
// the daemon without warning. The next start assembles the array from its superblocks, resyncs
// the dirty regions (or resumes the rebuild); then everything that was flushed reads back, the
// writes that were in flight read back whole-sector old or new, and a scrub finds the parity
// right.
#include "daemon_env.h"
#include "interop_util.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <random>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:raidcrash";
constexpr int kMembers = 5;
constexpr uint64_t kMemberBytes = 9ull << 20;        // 1 MiB metadata + 8 MiB data
constexpr uint32_t kIo = 4096;                       // bytes per write
constexpr uint64_t kSlots = 3 * (8ull << 20) / kIo;  // 4 KiB slots of the array (3 data members)

std::vector<uint8_t> content(uint64_t slot, uint32_t version) {
    return random_bytes(kIo, slot * 1000003 + version);
}

// The raid's entry once it is whole and no process runs (or an empty object on timeout). A
// member that was being added when the daemon died may not have its superblock yet: then the
// array comes up without it and it is added again, as an administrator would.
json wait_raid_idle(Daemon& d, int timeout_ms = 30000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    json last;
    while (std::chrono::steady_clock::now() < end) {
        auto r = d.call("bdev_raid_get_bdevs", {{"category", "all"}});
        if (r.ok() && r.result.size() == 1) {
            last = r.result[0];
            if (last["state"] != "configuring" && !last.contains("process")) {
                if (last["state"] == "online") return last;
                for (const auto& m : last["base_bdevs_list"])
                    if (m["is_configured"] == false)
                        d.ok("bdev_raid_add_base_bdev", {{"raid_bdev", "R"}, {"base_bdev", "D3"}});
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "raid not idle: " << last.dump() << "\n" << d.log();
    return json::object();
}

void send_write(TestHost& h, uint16_t cid, uint64_t slot, const std::vector<uint8_t>& data) {
    send_write_incapsule(h, cid, slot * (kIo / 512), data);
}

bool flush(TestHost& h, uint16_t cid) {
    return flush_ns1(h, cid);
}

struct Session : IoSession {
    explicit Session(uint16_t port) : IoSession(port, kNqn) {}
};

TEST(RaidCrash, KillNineLoopKeepsFlushedDataAndParity) {
    const std::string dir = temp_dir();
    const std::string cfg = dir + "/nocstor.json";
    const uint16_t port = free_tcp_port();
    const std::vector<std::string> args = {"-c", cfg, "--persist"};
    std::vector<std::string> files;
    for (int i = 0; i < kMembers; ++i) {
        files.push_back(dir + "/disk" + std::to_string(i));
        int fd = open(files.back().c_str(), O_CREAT | O_RDWR, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(ftruncate(fd, off_t(kMemberBytes)), 0);
        close(fd);
    }
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        for (int i = 0; i < kMembers; ++i)
            d.ok("bdev_uring_create", {{"name", "D" + std::to_string(i)},
                                       {"filename", files[size_t(i)]},
                                       {"block_size", 512}});
        d.ok("bdev_raid_set_options", {{"process_window_size_kb", 256}});
        d.ok("bdev_raid_create", {{"name", "R"},
                                  {"raid_level", "raid6"},
                                  {"strip_size_kb", 16},
                                  {"superblock", true},
                                  {"bitmap_region_kb", 512},
                                  {"base_bdevs", {"D0", "D1", "D2", "D3", "D4"}}});
        d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "R"}}}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kNqn},
              {"listen_address",
               {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
        ASSERT_FALSE(wait_raid_idle(d).empty());
        kill(d.pid(), SIGKILL);  // even the first stop is a crash
        d.stop();
    }

    std::mt19937_64 rng(20261129);
    std::map<uint64_t, uint32_t> durable;  // slot -> version on disk for sure (0: zeros)
    uint32_t version = 0;
    const int rounds = 4;
    for (int round = 0; round < rounds; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        Daemon d(args, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        json e = wait_raid_idle(d);
        ASSERT_FALSE(e.empty());
        // What the last round left: flushed data whole, parity consistent.
        Session s(port);
        ASSERT_TRUE(s.up) << d.log();
        uint16_t cid = 1;
        std::vector<uint8_t> got;
        for (const auto& [slot, v] : durable) {
            auto r = read(s.io, cid++, slot * (kIo / 512), kIo, &got);
            ASSERT_TRUE(r && r->status.ok());
            ASSERT_EQ(got, v ? content(slot, v) : std::vector<uint8_t>(kIo, 0))
                << "slot " << slot << " version " << v;
        }
        d.ok("bdev_raid_start_scrub", {{"name", "R"}});
        e = wait_raid_idle(d);
        EXPECT_EQ(e["last_scrub_mismatches"], 0) << e.dump();

        // This round: writes, a flush (these must survive), more writes left in flight.
        ++version;
        for (int i = 0; i < 40; ++i) {
            const uint64_t slot = rng() % kSlots;
            send_write(s.io, cid, slot, content(slot, version));
            auto r = s.io.wait_resp(cid++);
            ASSERT_TRUE(r && r->status.ok());
            durable[slot] = version;
        }
        ASSERT_TRUE(flush(s.io, cid++));
        if (round % 2 == 1) {
            // A rebuild is running when the crash comes: a member is replaced by itself.
            d.ok("bdev_raid_set_options", {{"process_max_bandwidth_mb_sec", 20}});
            d.ok("bdev_raid_remove_base_bdev", {{"name", "D3"}});
            d.ok("bdev_raid_add_base_bdev", {{"raid_bdev", "R"}, {"base_bdev", "D3"}});
        } else {
            d.ok("bdev_raid_set_options", {{"process_max_bandwidth_mb_sec", 0}});
        }
        ++version;
        std::vector<uint64_t> inflight;
        for (int i = 0; i < 24; ++i) {
            uint64_t slot = rng() % kSlots;
            if (durable.count(slot)) continue;  // in-flight writes go where nothing is promised
            send_write(s.io, cid++, slot, content(slot, version));
            inflight.push_back(slot);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        kill(d.pid(), SIGKILL);
        d.stop();

        // Read back in the next round: each in-flight slot holds, sector by sector, zeros (it
        // was never written) or the new data.
        Daemon check(args, dir);
        ASSERT_TRUE(check.alive()) << check.log();
        ASSERT_FALSE(wait_raid_idle(check).empty());
        Session c(port);
        ASSERT_TRUE(c.up);
        const std::vector<uint8_t> zeros(kIo, 0);
        for (uint64_t slot : inflight) {
            auto r = read(c.io, cid++, slot * (kIo / 512), kIo, &got);
            ASSERT_TRUE(r && r->status.ok());
            const auto now = content(slot, version);
            for (uint32_t off = 0; off < kIo; off += 512) {
                const bool old_sector = std::memcmp(got.data() + off, zeros.data(), 512) == 0;
                const bool new_sector = std::memcmp(got.data() + off, now.data() + off, 512) == 0;
                EXPECT_TRUE(old_sector || new_sector) << "slot " << slot << " sector " << off / 512;
            }
            durable[slot] = std::memcmp(got.data(), now.data(), kIo) == 0 ? version : 0;
            if (durable[slot] == 0 && got != zeros) {
                // Torn across sectors (allowed): make it definite for the next rounds.
                send_write(c.io, cid, slot, zeros);
                auto w = c.io.wait_resp(cid++);
                ASSERT_TRUE(w && w->status.ok());
            }
        }
        ASSERT_TRUE(flush(c.io, cid++));
        kill(check.pid(), SIGKILL);
        check.stop();
    }
    Daemon d(args, dir);
    json e = wait_raid_idle(d);
    ASSERT_FALSE(e.empty());
    EXPECT_TRUE(d.log().find("not stopped cleanly") != std::string::npos) << d.log();
    EXPECT_EQ(d.stop(), 0);
    // After a clean stop the offline checker agrees: metadata and redundancy consistent.
    std::string cmd = std::string(NOCSTOR_BIN_DIR) + "/nocstor-raid check";
    for (const auto& f : files) cmd += " " + f;
    int rc = 0;
    const std::string out = run_command(cmd + " 2>&1", &rc);
    EXPECT_EQ(rc, 0) << out;
}

}  // namespace
