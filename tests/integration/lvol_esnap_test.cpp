// Clones of an external bdev (bdev_lvol_clone_bdev) through the daemon: the clone exported over
// NVMe/TCP reads the external bdev's data and keeps its own writes, the external file is never
// written, a restart with the external bdev configured brings the clone back healthy, and a
// start without it leaves the clone degraded until the bdev is created again. A golden image
// served by another node over NVMe/TCP: the node lost, the clone is degraded; back, healthy.
#include "daemon_env.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:esnap";
constexpr uint64_t kExtBytes = 3ull << 20;  // three 1 MiB clusters
constexpr uint64_t kMiB = 1ull << 20;

std::vector<uint8_t> pattern(uint64_t n, uint64_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937_64 g(seed);
    for (size_t i = 0; i < n; i += 8) {
        const uint64_t x = g();
        std::memcpy(v.data() + i, &x, 8);
    }
    return v;
}

void write_file(const std::string& path, const std::vector<uint8_t>& data, uint64_t size) {
    int fd = open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, off_t(size)), 0);
    if (!data.empty()) {
        ASSERT_EQ(pwrite(fd, data.data(), data.size(), 0), ssize_t(data.size()));
    }
    close(fd);
}

std::vector<uint8_t> read_file(const std::string& path, uint64_t n) {
    std::vector<uint8_t> v(n);
    int fd = open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(pread(fd, v.data(), n, 0), ssize_t(n));
    close(fd);
    return v;
}

json lvol(Daemon& d, const std::string& name) {
    for (const auto& l : d.ok("bdev_lvol_get_lvols", json::object()))
        if (l["name"] == name) return l;
    return {};
}

std::vector<uint8_t> slice(const std::vector<uint8_t>& v, uint64_t off, uint64_t n) {
    return {v.begin() + long(off), v.begin() + long(off + n)};
}

// Reads `bytes` at byte `off` of namespace 1 (512-byte blocks); nullopt on an error status.
std::optional<std::vector<uint8_t>> ns_read(IoSession& s, uint16_t& cid, uint64_t off,
                                            uint32_t bytes) {
    std::vector<uint8_t> got;
    auto r = read(s.io, cid++, off / 512, bytes, &got);
    if (!r || !r->status.ok()) return std::nullopt;
    return got;
}

TEST(LvolEsnapDaemon, CloneOfABdevOverNvmfRestartsHealthyOrDegraded) {
    const std::string dir = temp_dir();
    const std::string disk = dir + "/disk", ext = dir + "/ext";
    const std::vector<uint8_t> ext_data = pattern(kExtBytes, 77);
    write_file(disk, {}, 64 * kMiB);
    write_file(ext, ext_data, kExtBytes);
    const uint16_t port = free_tcp_port();
    const std::vector<std::string> args = {"-c", dir + "/nocstor.json", "--persist"};
    const std::vector<uint8_t> mine = pattern(4096, 5);
    const uint64_t mine_at = 2 * kMiB + 8192;
    std::string ext_uuid;
    {
        std::vector<std::string> first = args;
        first.push_back("--empty");
        Daemon d(first, dir);
        d.ok("bdev_uring_create", {{"name", "D0"}, {"filename", disk}, {"block_size", 512}});
        d.ok("bdev_uring_create", {{"name", "E0"}, {"filename", ext}, {"block_size", 512}});
        ext_uuid = d.ok("bdev_get_bdevs", {{"name", "E0"}})[0]["uuid"];
        d.ok("bdev_lvol_create_lvstore",
             {{"bdev_name", "D0"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
        const json uuid = d.ok("bdev_lvol_clone_bdev",
                               {{"bdev", "E0"}, {"lvs_name", "lvs"}, {"clone_name", "ec"}});
        ASSERT_TRUE(uuid.is_string());
        EXPECT_EQ(uuid.get<std::string>().size(), 36u);
        json l = lvol(d, "ec");
        EXPECT_EQ(l["is_esnap_clone"], true);
        EXPECT_EQ(l["is_degraded"], false);
        EXPECT_EQ(l["external_snapshot_name"], ext_uuid);
        EXPECT_EQ(l["num_clusters"], 3);
        auto b = d.ok("bdev_get_bdevs", {{"name", "lvs/ec"}});
        ASSERT_EQ(b.size(), 1u);
        EXPECT_EQ(b[0]["driver_specific"]["lvol"]["esnap_clone"], true);
        // The bad input is refused with a clear message.
        auto r = d.call("bdev_lvol_clone_bdev",
                        {{"bdev", "nope"}, {"lvs_name", "lvs"}, {"clone_name", "x"}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("no bdev"), std::string::npos) << r.message;
        d.ok("bdev_lvol_create", {{"lvs_name", "lvs"}, {"lvol_name", "thick"}, {"size_in_mib", 4}});
        r = d.call("bdev_lvol_set_parent_bdev",
                   {{"lvol_name", "lvs/thick"}, {"parent_name", "E0"}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("thin"), std::string::npos) << r.message;
        r = d.call("bdev_lvol_set_parent", {{"lvol_name", "lvs/ec"}, {"parent_name", "lvs/thick"}});
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.message.find("snapshot"), std::string::npos) << r.message;

        d.ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
        d.ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "lvs/ec"}}}});
        d.ok("nvmf_subsystem_add_listener",
             {{"nqn", kNqn},
              {"listen_address",
               {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
        IoSession s(port, kNqn);
        ASSERT_TRUE(s.up) << d.log();
        uint16_t cid = 1;
        auto got = ns_read(s, cid, kMiB + 4096, 8192);
        ASSERT_TRUE(got);
        EXPECT_EQ(*got, slice(ext_data, kMiB + 4096, 8192)) << "an unwritten cluster";
        got = ns_read(s, cid, kExtBytes - 4096, 4096);
        ASSERT_TRUE(got);
        EXPECT_EQ(*got, slice(ext_data, kExtBytes - 4096, 4096));
        auto w = write_incapsule(s.io, cid++, mine_at / 512, mine);
        ASSERT_TRUE(w && w->status.ok());
        ASSERT_TRUE(flush_ns1(s.io, cid++));
        got = ns_read(s, cid, mine_at - 4096, 12288);
        ASSERT_TRUE(got);
        EXPECT_EQ(slice(*got, 0, 4096), slice(ext_data, mine_at - 4096, 4096));
        EXPECT_EQ(slice(*got, 4096, 4096), mine);
        EXPECT_EQ(slice(*got, 8192, 4096), slice(ext_data, mine_at + 4096, 4096));
        EXPECT_EQ(lvol(d, "ec")["num_allocated_clusters"], 1);
        EXPECT_EQ(d.stop(), 0);
    }
    EXPECT_EQ(read_file(ext, kExtBytes), ext_data) << "the external bdev was never written";

    // Restart: the store and E0 come back from the saved configuration; the clone is healthy.
    Daemon d(args, dir);
    ASSERT_TRUE(d.alive()) << d.log();
    d.ok("bdev_wait_for_examine", json::object());
    json l = lvol(d, "ec");
    ASSERT_FALSE(l.is_null()) << d.log();
    EXPECT_EQ(l["is_degraded"], false);
    EXPECT_EQ(l["external_snapshot_name"], ext_uuid);
    IoSession s(port, kNqn);
    ASSERT_TRUE(s.up) << d.log();
    uint16_t cid = 1;
    auto got = ns_read(s, cid, 0, 8192);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, slice(ext_data, 0, 8192));
    got = ns_read(s, cid, mine_at, 4096);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, mine);

    EXPECT_EQ(d.stop(), 0);

    // Started without E0 (taken out of the saved configuration): the clone is there, degraded;
    // its data fails, its own cluster reads. E0 created again with its UUID: healthy, no
    // restart. (The management refuses to delete a claimed bdev, so a hot-remove is the unit
    // test's part.)
    {
        std::ifstream in(dir + "/nocstor.json");
        json cfg = json::parse(in);
        for (auto& sub : cfg["subsystems"]) {
            if (sub["subsystem"] != "bdev") continue;
            json kept = json::array();
            for (auto& c : sub["config"])
                if (!(c["method"] == "bdev_uring_create" && c["params"]["name"] == "E0"))
                    kept.push_back(c);
            ASSERT_EQ(kept.size() + 1, sub["config"].size()) << sub.dump();
            sub["config"] = kept;
        }
        std::ofstream(dir + "/nocstor.json") << cfg.dump(2);
    }
    Daemon d2(args, dir);
    ASSERT_TRUE(d2.alive()) << d2.log();
    d2.ok("bdev_wait_for_examine", json::object());
    l = lvol(d2, "ec");
    ASSERT_FALSE(l.is_null()) << "registered and listed although degraded\n" << d2.log();
    EXPECT_EQ(l["is_degraded"], true);
    IoSession s2(port, kNqn);
    ASSERT_TRUE(s2.up) << d2.log();
    EXPECT_FALSE(ns_read(s2, cid, 0, 4096)) << "never zeros for missing data";
    got = ns_read(s2, cid, mine_at, 4096);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, mine);
    d2.ok("bdev_uring_create",
          {{"name", "E0"}, {"filename", ext}, {"block_size", 512}, {"uuid", ext_uuid}});
    EXPECT_EQ(lvol(d2, "ec")["is_degraded"], false);
    got = ns_read(s2, cid, 4096, 4096);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, slice(ext_data, 4096, 4096));
    EXPECT_EQ(d.stop(), 0);
}

// The usual external parent: a golden image served by another node over NVMe/TCP. That node
// dies: once the controller is given up (ctrlr_loss_timeout_sec) its bdev is hot-removed and the
// clone is degraded (reads of the image fail, its own clusters read). The node back and the
// controller attached again, the clone is healthy with no restart.
TEST(LvolEsnapDaemon, GoldenImageOverNvmfLostAndBack) {
    const std::string dir_a = temp_dir(), img = dir_a + "/golden", cfg_a = dir_a + "/a.json";
    const std::vector<uint8_t> gold = pattern(kExtBytes, 91);
    write_file(img, gold, kExtBytes);
    const std::string kGold = "nqn.2024-01.io.nocstor:golden";
    const uint16_t port_a = free_tcp_port(), port_b = free_tcp_port();
    auto a = std::make_unique<Daemon>(std::vector<std::string>{"-c", cfg_a, "--persist", "--empty"},
                                      dir_a);
    ASSERT_TRUE(a->alive()) << a->log();
    a->ok("bdev_uring_create", {{"name", "G"}, {"filename", img}, {"block_size", 512}});
    export_over_nvmf(*a, kGold, "G", port_a);

    const std::string dir_b = temp_dir(), disk = dir_b + "/disk";
    write_file(disk, {}, 64 * kMiB);
    Daemon b({"--empty"}, dir_b);
    ASSERT_TRUE(b.alive()) << b.log();
    b.ok("bdev_uring_create", {{"name", "D0"}, {"filename", disk}, {"block_size", 512}});
    b.ok("bdev_lvol_create_lvstore",
         {{"bdev_name", "D0"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
    const json attach = {{"name", "Gold"},
                         {"trtype", "TCP"},
                         {"adrfam", "IPv4"},
                         {"traddr", "127.0.0.1"},
                         {"trsvcid", std::to_string(port_a)},
                         {"subnqn", kGold},
                         {"reconnect_delay_sec", 1},
                         {"ctrlr_loss_timeout_sec", 2},
                         {"fast_io_fail_timeout_sec", 0}};
    EXPECT_EQ(b.ok("bdev_nvme_attach_controller", attach), json::array({"Goldn1"}));
    b.ok("bdev_lvol_clone_bdev", {{"bdev", "Goldn1"}, {"lvs_name", "lvs"}, {"clone_name", "ec"}});
    export_over_nvmf(b, kNqn, "lvs/ec", port_b);
    IoSession s(port_b, kNqn);
    ASSERT_TRUE(s.up) << b.log();
    uint16_t cid = 1;
    const std::vector<uint8_t> mine = pattern(4096, 6);
    const uint64_t mine_at = 2 * kMiB + 4096;
    auto w = write_incapsule(s.io, cid++, mine_at / 512, mine);
    ASSERT_TRUE(w && w->status.ok());
    ASSERT_TRUE(flush_ns1(s.io, cid++));
    auto got = ns_read(s, cid, kMiB, 8192);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, slice(gold, kMiB, 8192));

    // The golden image's node dies without closing anything.
    kill(a->pid(), SIGKILL);
    a->stop();
    a.reset();
    EXPECT_TRUE(wait_until([&] { return lvol(b, "ec")["is_degraded"] == true; }, 30))
        << "the clone never noticed: " << lvol(b, "ec").dump() << "\n"
        << b.log();
    EXPECT_FALSE(b.call("bdev_get_bdevs", {{"name", "Goldn1"}}).ok()) << "hot-removed";
    EXPECT_FALSE(ns_read(s, cid, kMiB, 4096)) << "never zeros instead of the image";
    got = ns_read(s, cid, mine_at, 4096);
    ASSERT_TRUE(got) << "its own cluster reads";
    EXPECT_EQ(*got, mine);
    got = ns_read(s, cid, 2 * kMiB, 4096);
    ASSERT_TRUE(got) << "filled from the image at the first write";
    EXPECT_EQ(*got, slice(gold, 2 * kMiB, 4096));

    // The node comes back (its saved configuration), the controller is attached again.
    Daemon a2({"-c", cfg_a, "--persist"}, dir_a);
    ASSERT_TRUE(a2.alive()) << a2.log();
    b.ok("bdev_nvme_attach_controller", attach);
    EXPECT_TRUE(wait_until([&] { return lvol(b, "ec")["is_degraded"] == false; }, 10))
        << lvol(b, "ec").dump() << "\n"
        << b.log();
    got = ns_read(s, cid, kMiB, 8192);
    ASSERT_TRUE(got) << b.log();
    EXPECT_EQ(*got, slice(gold, kMiB, 8192));
    got = ns_read(s, cid, mine_at, 4096);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, mine);
    EXPECT_EQ(read_file(img, kExtBytes), gold) << "the image was never written";
    EXPECT_EQ(b.stop(), 0) << b.log();
    EXPECT_EQ(a2.stop(), 0) << a2.log();
}

}  // namespace
