// kill -9 loop on a write-back cache over two files (the cache device and the core), served
// over NVMe/TCP: every round checks that each write acknowledged before a completed Flush reads
// back through the re-attached cache (the daemon's configuration has no cache entry: examine
// finds the cache on its device and re-attaches it), writes and flushes more, then starts more
// writes and kills the daemon without warning. At the end a flush writes every dirty line
// back, and the core file alone holds everything; the offline checker then finds no dirty
// line.
#include "daemon_env.h"
#include "interop_util.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <random>
#include <thread>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:cachecrash";
constexpr uint32_t kIo = 4096;
constexpr uint64_t kCoreBytes = 32ull << 20;
constexpr uint64_t kCacheBytes = 8ull << 20;  // ~1,500 lines of 4 KiB: reads evict clean lines
constexpr uint64_t kSlots = kCoreBytes / kIo;

std::vector<uint8_t> content(uint64_t slot, uint32_t version) {
    return random_bytes(kIo, slot * 1000003 + version);
}

void make_file(const std::string& path, uint64_t bytes) {
    int fd = open(path.c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, off_t(bytes)), 0);
    close(fd);
}

bool wait_cache(Daemon& d) {
    for (int i = 0; i < 500; ++i) {
        auto r = d.call("bdev_ocf_get_bdevs", json::object());
        if (r.ok() && r.result.size() == 1) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace

TEST(CacheCrash, KillNineLoopKeepsEveryFlushedWriteAndTheCacheReattaches) {
    const std::string dir = temp_dir();
    const std::string cfg = dir + "/nocstor.json";
    const std::string fast = dir + "/fast", slow = dir + "/slow";
    const uint16_t port = free_tcp_port();
    const std::vector<std::string> args = {"-c", cfg, "--persist"};
    make_file(fast, kCacheBytes);
    make_file(slow, kCoreBytes);
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        d.ok("bdev_uring_create", {{"name", "fast"}, {"filename", fast}, {"block_size", 512}});
        d.ok("bdev_uring_create", {{"name", "slow"}, {"filename", slow}, {"block_size", 512}});
        d.ok("bdev_ocf_create", {{"name", "c0"},
                                 {"mode", "wb"},
                                 {"cache_line_size", 4},
                                 {"cache_bdev_name", "fast"},
                                 {"core_bdev_name", "slow"}});
        d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "c0"}}}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kNqn},
              {"listen_address",
               {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
        kill(d.pid(), SIGKILL);
        d.stop();
    }
    std::mt19937_64 rng(20261130);
    std::map<uint64_t, uint32_t> durable;  // slot -> version acknowledged and flushed
    std::vector<uint64_t> inflight;
    uint32_t version = 0, inflight_version = 0;
    const std::vector<uint8_t> zeros(kIo, 0);
    uint16_t cid = 1;
    const std::string checker = std::string(NOCSTOR_BIN_DIR) + "/nocstor-cache-check";
    const bool have_checker = access(checker.c_str(), X_OK) == 0;
    const int rounds = 20;
    for (int round = 0; round < rounds; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        if (have_checker) {  // the offline checker agrees with every cut point
            int rc = 0;
            const std::string out = run_command(checker + " " + fast + " 2>&1", &rc);
            ASSERT_EQ(rc, 0) << out;
        }
        Daemon d(args, dir);
        ASSERT_TRUE(d.alive()) << d.log();
        ASSERT_TRUE(wait_cache(d)) << d.log();
        // Even rounds: the background cleaner writes lines back as soon as they are 5 ms old
        // (cleaning in flight at the kill); odd rounds: dirty lines stay.
        d.ok("bdev_ocf_set_cleaning",
             {{"name", "c0"}, {"policy", round % 2 ? "nop" : "alru"}, {"stale_ms", 5}});
        IoSession s(port, kNqn);
        ASSERT_TRUE(s.up) << d.log();
        std::vector<uint8_t> got;
        // The writes cut by the last kill: each sector old or new; then made definite.
        for (uint64_t slot : inflight) {
            auto r = read(s.io, cid++, slot * (kIo / 512), kIo, &got);
            ASSERT_TRUE(r && r->status.ok());
            const auto old = durable.count(slot) ? content(slot, durable[slot]) : zeros;
            const auto now = content(slot, inflight_version);
            for (uint32_t off = 0; off < kIo; off += 512) {
                const bool o = std::memcmp(got.data() + off, old.data() + off, 512) == 0;
                const bool n = std::memcmp(got.data() + off, now.data() + off, 512) == 0;
                EXPECT_TRUE(o || n) << "slot " << slot << " sector " << off / 512;
            }
            send_write_incapsule(s.io, cid, slot * (kIo / 512), old);
            auto w = s.io.wait_resp(cid++);
            ASSERT_TRUE(w && w->status.ok());
        }
        inflight.clear();
        ASSERT_TRUE(flush_ns1(s.io, cid++));
        // Everything promised so far.
        for (const auto& [slot, v] : durable) {
            auto r = read(s.io, cid++, slot * (kIo / 512), kIo, &got);
            ASSERT_TRUE(r && r->status.ok());
            ASSERT_EQ(got, content(slot, v)) << "slot " << slot << " version " << v;
        }
        // Some reads of never-written slots (zeros; they fill and evict lines).
        for (int i = 0; i < 32; ++i) {
            const uint64_t slot = rng() % kSlots;
            if (durable.count(slot)) continue;
            auto r = read(s.io, cid++, slot * (kIo / 512), kIo, &got);
            ASSERT_TRUE(r && r->status.ok());
            ASSERT_EQ(got, zeros) << "slot " << slot;
        }
        ++version;
        for (int i = 0; i < 16; ++i) {
            const uint64_t slot = rng() % kSlots;
            send_write_incapsule(s.io, cid, slot * (kIo / 512), content(slot, version));
            auto r = s.io.wait_resp(cid++);
            ASSERT_TRUE(r && r->status.ok()) << d.log();
            durable[slot] = version;
        }
        ASSERT_TRUE(flush_ns1(s.io, cid++));
        // Writes in flight at the kill (to slots nothing else is promised for this round).
        inflight_version = ++version;
        for (int i = 0; i < 8; ++i) {
            const uint64_t slot = rng() % kSlots;
            if (std::find(inflight.begin(), inflight.end(), slot) != inflight.end()) continue;
            send_write_incapsule(s.io, cid++, slot * (kIo / 512), content(slot, version));
            inflight.push_back(slot);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        kill(d.pid(), SIGKILL);
        d.stop();
    }
    // A flush writes every dirty line back; the core file then holds everything promised.
    {
        Daemon d(args, dir);
        ASSERT_TRUE(wait_cache(d)) << d.log();
        d.ok("bdev_ocf_set_cleaning", {{"name", "c0"}, {"policy", "nop"}});
        IoSession s(port, kNqn);
        ASSERT_TRUE(s.up);
        std::vector<uint8_t> got;
        for (uint64_t slot : inflight) {  // the last round's cut writes: made definite
            const auto old = durable.count(slot) ? content(slot, durable[slot]) : zeros;
            send_write_incapsule(s.io, cid, slot * (kIo / 512), old);
            auto w = s.io.wait_resp(cid++);
            ASSERT_TRUE(w && w->status.ok());
        }
        auto st = d.call("bdev_ocf_get_stats", {{"name", "c0"}});
        ASSERT_TRUE(st.ok());
        EXPECT_GT(st.result["usage"]["dirty"]["count"].get<uint64_t>(), 0u) << st.result.dump();
        d.ok("bdev_ocf_flush_start", {{"name", "c0"}});
        bool done = false;
        for (int i = 0; i < 1000 && !done; ++i) {
            auto r = d.call("bdev_ocf_flush_status", {{"name", "c0"}});
            ASSERT_TRUE(r.ok());
            done = r.result["in_progress"] == false && r.result["dirty_lines"] == 0;
            if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ASSERT_TRUE(done);
        EXPECT_EQ(d.call("bdev_ocf_flush_status", {{"name", "c0"}}).result["status"], 0);
        d.stop();
    }
    if (have_checker) {
        int rc = 0;
        const std::string out = run_command(checker + " --json " + fast + " 2>&1", &rc);
        ASSERT_EQ(rc, 0) << out;
        const json j = json::parse(out);
        EXPECT_EQ(j["dirty_lines"], 0) << out;
        EXPECT_EQ(j["clean"], true) << out;
        EXPECT_GT(j["mapped_lines"].get<uint64_t>(), 0u) << out;
    }
    int fd = open(slow.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> got(kIo);
    for (const auto& [slot, v] : durable) {
        ASSERT_EQ(pread(fd, got.data(), kIo, off_t(slot * kIo)), ssize_t(kIo));
        ASSERT_EQ(got, content(slot, v)) << "core file, slot " << slot;
    }
    close(fd);
}
