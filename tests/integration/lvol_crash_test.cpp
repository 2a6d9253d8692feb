// kill -9 loop on an lvstore over a file: every round verifies what earlier rounds made durable,
// writes to a thin lvol through NVMe/TCP (first writes allocate clusters), flushes, then starts
// a metadata operation (snapshot, clone, snapshot delete/merge, clone delete, resize, inflate or
// decouple of the written lvol) and more writes and kills the daemon without warning. After each
// kill the offline checker finds the store consistent; the next start reopens it (journal replay),
// every lvol is back, every write acknowledged before a completed Flush reads back, and the writes
// in flight read back whole sectors, old or new.
#include "daemon_env.h"
#include "interop_util.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:lvolcrash";
constexpr uint64_t kFileBytes = 96ull << 20;
constexpr uint32_t kIo = 4096;
constexpr uint64_t kVolMiB = 16;
constexpr uint64_t kSlots = (kVolMiB << 20) / kIo;

std::vector<uint8_t> content(uint64_t slot, uint32_t version) {
    return random_bytes(kIo, slot * 1000003 + version);
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

// The lvols of the store by name (waits until "vol" is there).
std::map<std::string, json> wait_lvols(Daemon& d) {
    std::map<std::string, json> out;
    for (int i = 0; i < 500; ++i) {
        out.clear();
        auto r = d.call("bdev_lvol_get_lvols", json::object());
        if (r.ok())
            for (const auto& l : r.result) out[l["name"].get<std::string>()] = l;
        if (out.count("vol")) return out;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "lvol vol did not come back\n" << d.log();
    return out;
}

// One metadata operation chosen from the store's shape, as an (method, params) pair.
std::pair<std::string, json> churn(const std::map<std::string, json>& lvols, int round,
                                   std::mt19937_64& rng, uint64_t vol_mib) {
    std::vector<std::string> snaps, clones;
    for (const auto& [name, l] : lvols) {
        if (l["is_snapshot"] == true) snaps.push_back(name);
        if (name != "vol" && l["is_clone"] == true && l["is_snapshot"] == false)
            clones.push_back(name);
    }
    if (!clones.empty()) return {"bdev_lvol_delete", {{"name", "lvs/" + clones.front()}}};
    if (round % 5 == 4)
        return {"bdev_lvol_resize", {{"name", "lvs/vol"}, {"size_in_mib", vol_mib + 1}}};
    // vol copies clusters from its chain a cluster at a time, the kill cuts that short.
    if (round % 5 == 2) {
        const auto vol = lvols.find("vol");
        const bool is_clone = vol != lvols.end() && vol->second["is_clone"] == true;
        return {is_clone && rng() % 2 ? "bdev_lvol_decouple_parent" : "bdev_lvol_inflate",
                {{"name", "lvs/vol"}}};
    }
    if (snaps.size() >= 2) return {"bdev_lvol_delete", {{"name", "lvs/" + snaps.front()}}};
    if (snaps.size() == 1 && rng() % 2)
        return {"bdev_lvol_clone",
                {{"snapshot_name", "lvs/" + snaps.front()},
                 {"clone_name", "c" + std::to_string(round)}}};
    return {"bdev_lvol_snapshot",
            {{"lvol_name", "lvs/vol"}, {"snapshot_name", "s" + std::to_string(round)}}};
}

TEST(LvolCrash, KillNineLoopKeepsFlushedDataAndMetadata) {
    const std::string dir = temp_dir();
    const std::string cfg = dir + "/nocstor.json";
    const std::string file = dir + "/disk";
    const uint16_t port = free_tcp_port();
    const std::vector<std::string> args = {"-c", cfg, "--persist"};
    {
        int fd = open(file.c_str(), O_CREAT | O_RDWR, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(ftruncate(fd, off_t(kFileBytes)), 0);
        close(fd);
    }
    const std::string checker = std::string(NOCSTOR_BIN_DIR) + "/nocstor-lvs-check";
    const bool have_checker = access(checker.c_str(), X_OK) == 0;
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        d.ok("bdev_uring_create", {{"name", "D0"}, {"filename", file}, {"block_size", 512}});
        d.ok("bdev_lvol_create_lvstore",
             {{"bdev_name", "D0"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
        d.ok("bdev_lvol_create", {{"lvs_name", "lvs"},
                                  {"lvol_name", "vol"},
                                  {"size_in_mib", kVolMiB},
                                  {"thin_provision", true}});
        d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "lvs/vol"}}}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kNqn},
              {"listen_address",
               {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
        kill(d.pid(), SIGKILL);
        d.stop();
    }

    std::mt19937_64 rng(20261129);
    std::map<uint64_t, uint32_t> durable;  // slot -> version on disk for sure (0: zeros)
    std::set<std::string> names_before;
    uint64_t vol_mib = kVolMiB;
    uint32_t version = 0;
    std::atomic<int> ops_done{0};  // metadata operations that answered before the kill
    std::map<std::string, int> kinds;
    const int rounds = 50;
    for (int round = 0; round < rounds; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        if (have_checker) {
            int rc = 0;
            const std::string out = run_command(checker + " " + file + " 2>&1", &rc);
            ASSERT_EQ(rc, 0) << out;
        }
        Daemon d(args, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        auto lvols = wait_lvols(d);
        ASSERT_TRUE(lvols.count("vol"));
        vol_mib = lvols["vol"]["num_clusters"].get<uint64_t>();
        // Every lvol whose creation was acknowledged is still there (an operation cut by the
        // kill may or may not have happened).
        for (const auto& n : names_before) EXPECT_TRUE(lvols.count(n)) << n << " vanished";
        Session s(port);
        ASSERT_TRUE(s.up) << d.log();
        uint16_t cid = 1;
        std::vector<uint8_t> got;
        const std::vector<uint8_t> zeros(kIo, 0);
        // What the last rounds promised.
        for (const auto& [slot, v] : durable) {
            auto r = read(s.io, cid++, slot * (kIo / 512), kIo, &got);
            ASSERT_TRUE(r && r->status.ok());
            ASSERT_EQ(got, v ? content(slot, v) : zeros) << "slot " << slot << " version " << v;
        }
        // The in-flight writes of the last round: whole sectors, old (zeros) or new.
        // (Tracked through `pending` below.)

        // This round: writes (first writes allocate), a flush (these must survive).
        ++version;
        for (int i = 0; i < 12; ++i) {
            const uint64_t slot = rng() % kSlots;
            send_write(s.io, cid, slot, content(slot, version));
            auto r = s.io.wait_resp(cid++);
            ASSERT_TRUE(r && r->status.ok()) << d.log();
            durable[slot] = version;
        }
        ASSERT_TRUE(flush(s.io, cid++));
        // The store's shape now: every lvol in it must come back.
        names_before.clear();
        for (const auto& [n, l] : wait_lvols(d)) names_before.insert(n);
        // A metadata operation and more writes race the kill.
        auto [method, params] = churn(lvols, round, rng, vol_mib);
        ++kinds[method];
        std::thread op([&d, &ops_done, method = method, params = params] {
            if (d.call(method, params).ok()) ++ops_done;
        });
        ++version;
        std::vector<uint64_t> inflight;
        for (int i = 0; i < 8; ++i) {
            uint64_t slot = rng() % kSlots;
            if (durable.count(slot)) continue;  // in-flight writes go where nothing is promised
            send_write(s.io, cid++, slot, content(slot, version));
            inflight.push_back(slot);
        }
        // Metadata commits wait for the file to sync (milliseconds): some answer, some are cut.
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 40000));
        kill(d.pid(), SIGKILL);
        op.join();
        d.stop();
        // A deleted lvol may be gone; one being created may appear. Names that exist after the
        // operation are checked in the next round, not these.
        if (method == "bdev_lvol_delete")
            names_before.erase(params["name"].get<std::string>().substr(4));

        if (have_checker) {
            int rc = 0;
            const std::string out = run_command(checker + " " + file + " 2>&1", &rc);
            ASSERT_EQ(rc, 0) << out;
        }
        Daemon check(args, dir);
        ASSERT_TRUE(check.alive()) << check.log();
        wait_lvols(check);
        Session c(port);
        ASSERT_TRUE(c.up) << check.log();
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
                send_write(c.io, cid, slot, zeros);  // torn across sectors: make it definite
                auto w = c.io.wait_resp(cid++);
                ASSERT_TRUE(w && w->status.ok());
            }
        }
        ASSERT_TRUE(flush(c.io, cid++));
        kill(check.pid(), SIGKILL);
        check.stop();
    }
    // The loop did churn: operations of every kind, many answered before their kill.
    EXPECT_GE(kinds.size(), 4u);
    EXPECT_GE(ops_done.load(), rounds / 4);
    // A clean stop at the end: the store is marked clean and the checker agrees.
    Daemon d(args, dir);
    auto final_lvols = wait_lvols(d);
    std::string shape;
    for (const auto& [n, l] : final_lvols) shape += n + " ";
    RecordProperty("lvols", shape);
    RecordProperty("operations_answered", ops_done.load());
    EXPECT_EQ(d.stop(), 0);
    if (have_checker) {
        int rc = 0;
        const std::string out = run_command(checker + " --verbose " + file + " 2>&1", &rc);
        EXPECT_EQ(rc, 0) << out;
        EXPECT_NE(out.find("clean"), std::string::npos) << out;
    }
}

}  // namespace
