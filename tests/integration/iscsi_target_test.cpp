// The iSCSI target with a real initiator (libiscsi) over TCP on 127.0.0.1: discovery, login
// (CHAP one-way and mutual, digests), data written and read back, the CmdSN window under many
// outstanding commands, access control, bad input on the wire (one connection refused, the
// others unaffected), and save_config bringing the target back after a restart.
#include "daemon_env.h"
#include "interop_util.h"
#include "iscsi_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

const std::string kTarget = "iqn.2026-12.io.nocstor:disk1";

// Malloc0 (64 MiB, 512 B blocks) as LUN 0 of kTarget on 127.0.0.1:port.
void serve(Daemon& d, uint16_t port, const json& target_extra = json::object(),
           const std::vector<std::string>& initiators = {"ANY"}) {
    d.ok("bdev_malloc_create", {{"name", "Malloc0"}, {"num_blocks", 131072}, {"block_size", 512}});
    d.ok("iscsi_create_portal_group",
         {{"tag", 1}, {"portals", {{{"host", "127.0.0.1"}, {"port", std::to_string(port)}}}}});
    d.ok("iscsi_create_initiator_group",
         {{"tag", 1}, {"initiators", initiators}, {"netmasks", {"127.0.0.0/8"}}});
    json p = {{"name", kTarget},
              {"alias_name", "disk one"},
              {"pg_ig_maps", {{{"pg_tag", 1}, {"ig_tag", 1}}}},
              {"luns", {{{"bdev_name", "Malloc0"}, {"lun_id", 0}}}},
              {"queue_depth", 32}};
    p.update(target_extra);
    d.ok("iscsi_create_target_node", p);
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t((i * 131 + seed * 7 + (i >> 9)) & 0xff);
    return v;
}

std::string portal(uint16_t port) {
    return "127.0.0.1:" + std::to_string(port);
}

int raw_connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// Reads until the peer closes (true) or the 5 s timeout (false); keeps what arrived.
bool read_until_closed(int fd, std::vector<uint8_t>* got) {
    uint8_t buf[4096];
    for (;;) {
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) return true;
        if (n < 0) return errno == ECONNRESET;
        got->insert(got->end(), buf, buf + n);
    }
}

IscsiLogin chap(std::string user, std::string secret, std::string tuser = "",
                std::string tsecret = "") {
    IscsiLogin l;
    l.user = std::move(user);
    l.secret = std::move(secret);
    l.tuser = std::move(tuser);
    l.tsecret = std::move(tsecret);
    return l;
}

IscsiLogin as(std::string initiator) {
    IscsiLogin l;
    l.initiator = std::move(initiator);
    return l;
}

}  // namespace

TEST(IscsiTarget, DiscoveryLoginWriteReadBackAndCapacity) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    serve(d, port);
    auto found = iscsi_discover(portal(port));
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].first, kTarget);
    EXPECT_EQ(found[0].second, portal(port) + ",1");

    IscsiClient c(portal(port), kTarget, 0);
    ASSERT_TRUE(c.ok()) << c.error() << "\n" << d.log();
    uint64_t blocks = 0;
    uint32_t bs = 0;
    ASSERT_EQ(c.capacity(&blocks, &bs), SCSI_STATUS_GOOD);
    EXPECT_EQ(blocks, 131072u);
    EXPECT_EQ(bs, 512u);
    // Sizes that take immediate data only, one R2T, and several R2Ts with Data-In split over
    // several PDUs (1 MiB: the maximum transfer).
    uint64_t lba = 0;
    for (size_t len :
         {size_t(512), size_t(4096), size_t(65536), size_t(300 * 1024), size_t(1 << 20)}) {
        const auto data = pattern(len, uint32_t(len));
        ASSERT_EQ(c.write(lba, data, 512), SCSI_STATUS_GOOD) << len;
        std::vector<uint8_t> back;
        ASSERT_EQ(c.read(lba, uint32_t(len), 512, &back), SCSI_STATUS_GOOD) << len;
        EXPECT_TRUE(back == data) << "data of a " << len << "-byte write did not read back";
        lba += len / 512 + 7;
    }
    EXPECT_EQ(c.sync_cache(), SCSI_STATUS_GOOD);
    // Beyond the end: CHECK CONDITION, ILLEGAL REQUEST / LBA OUT OF RANGE.
    std::vector<uint8_t> back;
    EXPECT_EQ(c.read(131072 - 1, 1024, 512, &back), SCSI_STATUS_CHECK_CONDITION);
    EXPECT_EQ(c.last_sense(), uint32_t(SCSI_SENSE_ILLEGAL_REQUEST) << 16 | 0x2100);

    const std::string metrics = http_request(d.http_port(), "GET", "/metrics").body;
    EXPECT_NE(metrics.find("nocstor_iscsi_logins_total{poll_group=\"0\"} 2"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("nocstor_iscsi_connections{poll_group=\"0\"} 1"), std::string::npos);
    auto conns = d.ok("iscsi_get_connections");
    ASSERT_GE(conns.size(), 1u);
    bool mine = false;
    for (const auto& cj : conns)
        mine |= cj["target_node_name"] == kTarget && cj["commands"].get<uint64_t>() >= 10;
    EXPECT_TRUE(mine) << conns.dump();
}

TEST(IscsiTarget, ManyOutstandingCommandsStayInsideTheCmdSnWindow) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    serve(d, port);  // queue depth 32
    IscsiLogin digests;
    digests.header_digest = true;
    IscsiClient c(portal(port), kTarget, 0, digests);
    ASSERT_TRUE(c.ok()) << c.error();
    // 300 writes at once: libiscsi sends what MaxCmdSN allows and the rest as slots open.
    EXPECT_EQ(c.burst_write(1000, 300, 512, 0x5a), 300);
    std::vector<uint8_t> back;
    ASSERT_EQ(c.read(1000, 300 * 512, 512, &back), SCSI_STATUS_GOOD);
    EXPECT_EQ(std::count(back.begin(), back.end(), 0x5a), 300 * 512);
    auto conns = d.ok("iscsi_get_connections");
    ASSERT_EQ(conns.size(), 1u);
    EXPECT_TRUE(conns[0]["header_digest"].get<bool>());
}

TEST(IscsiTarget, ChapOneWayAndMutualAndWrongSecretsRefused) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    d.ok("iscsi_create_auth_group", {{"tag", 1},
                                     {"secrets",
                                      {{{"user", "alice"},
                                        {"secret", "alice-secret-1"},
                                        {"muser", "target1"},
                                        {"msecret", "target-secret-1"}}}}});
    serve(d, port, {{"require_chap", true}, {"chap_group", 1}});
    {
        IscsiClient none(portal(port), kTarget, 0);
        EXPECT_FALSE(none.ok()) << "login without CHAP must be refused";
    }
    {
        IscsiClient bad(portal(port), kTarget, 0, chap("alice", "wrong-secret-1"));
        EXPECT_FALSE(bad.ok());
    }
    {
        IscsiClient good(portal(port), kTarget, 0, chap("alice", "alice-secret-1"));
        ASSERT_TRUE(good.ok()) << good.error();
        EXPECT_EQ(good.write(0, pattern(4096, 1), 512), SCSI_STATUS_GOOD);
    }
    d.ok("iscsi_target_node_set_auth",
         {{"name", kTarget}, {"require_chap", true}, {"mutual_chap", true}, {"chap_group", 1}});
    {
        IscsiClient one_way(portal(port), kTarget, 0, chap("alice", "alice-secret-1"));
        EXPECT_FALSE(one_way.ok()) << "mutual CHAP is required now";
    }
    {
        IscsiClient wrong_target_secret(
            portal(port), kTarget, 0, chap("alice", "alice-secret-1", "target1", "not-the-secret"));
        EXPECT_FALSE(wrong_target_secret.ok()) << "the initiator must refuse a wrong target";
    }
    IscsiClient mutual(portal(port), kTarget, 0,
                       chap("alice", "alice-secret-1", "target1", "target-secret-1"));
    ASSERT_TRUE(mutual.ok()) << mutual.error();
    std::vector<uint8_t> back;
    ASSERT_EQ(mutual.read(0, 4096, 512, &back), SCSI_STATUS_GOOD);
    EXPECT_TRUE(back == pattern(4096, 1));
    EXPECT_NE(d.log().find("CHAP authentication failed for user 'alice'"), std::string::npos);
    // Discovery sessions with their own CHAP requirement.
    d.ok("iscsi_set_discovery_auth", {{"require_chap", true}, {"chap_group", 1}});
    EXPECT_TRUE(iscsi_discover(portal(port)).empty());
    EXPECT_TRUE(iscsi_discover(portal(port), chap("alice", "wrong-secret-1")).empty());
    EXPECT_EQ(iscsi_discover(portal(port), chap("alice", "alice-secret-1")).size(), 1u);
    // The portal group's own discovery settings take precedence over the global ones.
    d.ok("iscsi_portal_group_set_auth", {{"tag", 1}, {"disable_chap", true}});
    EXPECT_EQ(iscsi_discover(portal(port)).size(), 1u);
    EXPECT_EQ(d.ok("iscsi_get_portal_groups")[0]["disable_chap"], true);
}

TEST(IscsiTarget, InitiatorGroupsDecideWhoLogsInAndWhatDiscoverySees) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    serve(d, port, json::object(), {"iqn.2026-12.io.nocstor:allowed"});
    IscsiClient denied(portal(port), kTarget, 0);
    EXPECT_FALSE(denied.ok());
    EXPECT_TRUE(iscsi_discover(portal(port)).empty());
    IscsiClient allowed(portal(port), kTarget, 0, as("iqn.2026-12.io.nocstor:allowed"));
    EXPECT_TRUE(allowed.ok()) << allowed.error();
    EXPECT_EQ(iscsi_discover(portal(port), as("iqn.2026-12.io.nocstor:allowed")).size(), 1u);
    IscsiClient unknown(portal(port), "iqn.2026-12.io.nocstor:nope", 0);
    EXPECT_FALSE(unknown.ok());
    EXPECT_NE(d.log().find("no such target"), std::string::npos);
}

TEST(IscsiTarget, MalformedPdusCloseOnlyThatConnection) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    serve(d, port);
    IscsiClient c(portal(port), kTarget, 0);
    ASSERT_TRUE(c.ok()) << c.error();
    // 1. A SCSI command before login.
    {
        int fd = raw_connect(port);
        uint8_t bhs[48] = {0x01, 0x80};
        ASSERT_EQ(send(fd, bhs, sizeof bhs, 0), 48);
        std::vector<uint8_t> got;
        EXPECT_TRUE(read_until_closed(fd, &got));
        close(fd);
    }
    // 2. A login whose data segment claims 16 MiB.
    {
        int fd = raw_connect(port);
        uint8_t bhs[48] = {0x43, 0x87};
        bhs[5] = 0xff;
        bhs[6] = 0xff;
        bhs[7] = 0xff;
        ASSERT_EQ(send(fd, bhs, sizeof bhs, 0), 48);
        std::vector<uint8_t> got;
        EXPECT_TRUE(read_until_closed(fd, &got));
        close(fd);
    }
    // 3. A login with malformed text: a Login Response with status class 2 (initiator error).
    {
        int fd = raw_connect(port);
        const char text[] = "NoEqualsSign";
        uint8_t pdu[48 + 12] = {0x43, 0x87};
        pdu[7] = sizeof text - 1;
        std::memcpy(pdu + 48, text, sizeof text - 1);
        ASSERT_EQ(send(fd, pdu, sizeof pdu, 0), ssize_t(sizeof pdu));
        std::vector<uint8_t> got;
        EXPECT_TRUE(read_until_closed(fd, &got));
        ASSERT_GE(got.size(), 48u);
        EXPECT_EQ(got[0] & 0x3f, 0x23);  // Login Response
        EXPECT_EQ(got[36], 0x02);        // status class: initiator error
        close(fd);
    }
    // 4. A peer that disconnects in the middle of a PDU.
    {
        int fd = raw_connect(port);
        uint8_t half[20] = {0x43, 0x87};
        ASSERT_EQ(send(fd, half, sizeof half, 0), 20);
        close(fd);
    }
    // The logged-in session still works.
    const auto data = pattern(8192, 9);
    EXPECT_EQ(c.write(64, data, 512), SCSI_STATUS_GOOD);
    std::vector<uint8_t> back;
    EXPECT_EQ(c.read(64, 8192, 512, &back), SCSI_STATUS_GOOD);
    EXPECT_TRUE(back == data);
    EXPECT_TRUE(d.alive());
}

TEST(IscsiTarget, BadRpcParametersAreRefusedWithClearErrors) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    serve(d, port);
    auto r = d.call("iscsi_create_target_node", {{"name", "bad name!"},
                                                 {"alias_name", ""},
                                                 {"pg_ig_maps", json::array()},
                                                 {"luns", {{{"bdev_name", "Malloc0"}}}},
                                                 {"queue_depth", 8}});
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("not a valid iSCSI name"), std::string::npos) << r.message;
    r = d.call("iscsi_create_target_node", {{"name", "disk9"},
                                            {"alias_name", ""},
                                            {"pg_ig_maps", {{{"pg_tag", 7}, {"ig_tag", 1}}}},
                                            {"luns", {{{"bdev_name", "Malloc0"}}}},
                                            {"queue_depth", 8}});
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("no portal group 7"), std::string::npos) << r.message;
    r = d.call(
        "iscsi_create_portal_group",
        {{"tag", 2}, {"portals", {{{"host", "127.0.0.1"}, {"port", std::to_string(port)}}}}});
    EXPECT_FALSE(r.ok());
    r = d.call("iscsi_create_initiator_group",
               {{"tag", 5}, {"initiators", {"ANY"}}, {"netmasks", {"300.1.1.1/8"}}});
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("bad netmask"), std::string::npos) << r.message;
    r = d.call("iscsi_delete_portal_group", {{"tag", 1}});
    EXPECT_FALSE(r.ok());  // in use by the target
    r = d.call("iscsi_create_portal_group", {{"tag", 3}, {"portals", "nope"}});
    EXPECT_FALSE(r.ok());
    r = d.call("iscsi_set_options", {{"max_connections_per_session", 4}});
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(d.alive());
}

TEST(IscsiTarget, SaveConfigBringsTheTargetBackAfterARestart) {
    const std::string dir = temp_dir();
    const std::string cfg = dir + "/config.json";
    const uint16_t port = free_tcp_port();
    {
        Daemon d({"--config", cfg, "--persist"}, dir);
        d.ok("iscsi_set_options",
             {{"node_base", "iqn.2026-12.io.nocstor"}, {"nop_in_interval", 5}});
        d.ok("iscsi_create_auth_group",
             {{"tag", 3}, {"secrets", {{{"user", "bob"}, {"secret", "bob-secret-123"}}}}});
        d.ok("iscsi_set_discovery_auth", {{"chap_group", 3}});
        d.ok("bdev_malloc_create",
             {{"name", "Malloc9"}, {"num_blocks", 8192}, {"block_size", 4096}});
        d.ok("iscsi_create_portal_group",
             {{"tag", 1}, {"portals", {{{"host", "127.0.0.1"}, {"port", std::to_string(port)}}}}});
        d.ok("iscsi_create_initiator_group",
             {{"tag", 2}, {"initiators", {"ANY"}}, {"netmasks", {"ANY"}}});
        d.ok("iscsi_create_target_node", {{"name", "vol9"},
                                          {"alias_name", "nine"},
                                          {"pg_ig_maps", {{{"pg_tag", 1}, {"ig_tag", 2}}}},
                                          {"luns", {{{"bdev_name", "Malloc9"}, {"lun_id", 3}}}},
                                          {"queue_depth", 16}});
    }
    Daemon d({"--config", cfg, "--persist"}, dir);
    auto nodes = d.ok("iscsi_get_target_nodes");
    ASSERT_EQ(nodes.size(), 1u) << d.log();
    EXPECT_EQ(nodes[0]["name"], "iqn.2026-12.io.nocstor:vol9");
    EXPECT_EQ(nodes[0]["luns"][0]["lun_id"], 3);
    EXPECT_EQ(d.ok("iscsi_get_options")["nop_in_interval"], 5);
    EXPECT_EQ(d.ok("iscsi_get_auth_groups")[0]["secrets"][0]["user"], "bob");
    IscsiClient c(portal(port), "iqn.2026-12.io.nocstor:vol9", 3);
    ASSERT_TRUE(c.ok()) << c.error() << "\n" << d.log();
    EXPECT_EQ(c.write(1, pattern(8192, 3), 4096), SCSI_STATUS_GOOD);
}

TEST(IscsiTarget, NocstorctlExportsABdevInOneCommandAndListsIt) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    d.ok("bdev_malloc_create", {{"name", "Disk7"}, {"num_blocks", 16384}, {"block_size", 4096}});
    const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket();
    int rc = 0;
    std::string out =
        run_command(ctl + " iscsi export Disk7 iqn.2026-12.io.nocstor:disk7 --portal 127.0.0.1:" +
                        std::to_string(port) + " --chap host7:host7-secret-1 2>&1",
                    &rc);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("exported Disk7 as iqn.2026-12.io.nocstor:disk7 LUN 0"), std::string::npos)
        << out;
    IscsiClient c(portal(port), "iqn.2026-12.io.nocstor:disk7", 0, chap("host7", "host7-secret-1"));
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(c.write(3, pattern(8192, 7), 4096), SCSI_STATUS_GOOD);
    out = run_command(ctl + " iscsi targets 2>&1", &rc);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("0:Disk7"), std::string::npos) << out;
    EXPECT_NE(out.find("CHAP"), std::string::npos) << out;
    out = run_command(ctl + " iscsi connections 2>&1", &rc);
    EXPECT_NE(out.find("iqn.2026-12.io.nocstor:test-host"), std::string::npos) << out;
    // A second export on the same portal reuses its portal group.
    d.ok("bdev_malloc_create", {{"name", "Disk8"}, {"num_blocks", 16384}, {"block_size", 4096}});
    out = run_command(
        ctl + " iscsi export Disk8 disk8 --portal 127.0.0.1:" + std::to_string(port) + " 2>&1",
        &rc);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(d.ok("iscsi_get_portal_groups").size(), 1u);
    out = run_command(
        ctl + " iscsi export Nope disk9 --portal 127.0.0.1:" + std::to_string(port) + " 2>&1", &rc);
    EXPECT_NE(rc, 0);
    EXPECT_NE(out.find("cannot open bdev Nope"), std::string::npos) << out;
}

TEST(IscsiTarget, LunAddedOrResizedReachesTheSessionAsAUnitAttention) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    serve(d, port);
    d.ok("bdev_malloc_create", {{"name", "Store"}, {"num_blocks", 16384}, {"block_size", 4096}});
    d.ok("bdev_lvol_create_lvstore",
         {{"bdev_name", "Store"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
    d.ok("bdev_lvol_create", {{"lvs_name", "lvs"}, {"lvol_name", "v"}, {"size_in_mib", 8}});
    IscsiClient c(portal(port), kTarget, 0);
    ASSERT_TRUE(c.ok()) << c.error();
    std::vector<uint8_t> back;
    ASSERT_EQ(c.read(0, 512, 512, &back), SCSI_STATUS_GOOD);
    d.ok("iscsi_target_node_add_lun", {{"name", kTarget}, {"bdev_name", "lvs/v"}, {"lun_id", 1}});
    // The next command: UNIT ATTENTION, REPORTED LUNS DATA HAS CHANGED; then normal again.
    EXPECT_EQ(c.read(0, 512, 512, &back), SCSI_STATUS_CHECK_CONDITION);
    EXPECT_EQ(c.last_sense(), uint32_t(SCSI_SENSE_UNIT_ATTENTION) << 16 | 0x3f0e);
    EXPECT_EQ(c.read(0, 512, 512, &back), SCSI_STATUS_GOOD);
    auto nodes = d.ok("iscsi_get_target_nodes");
    ASSERT_EQ(nodes[0]["luns"].size(), 2u);
    // The lvol grows: CAPACITY DATA HAS CHANGED, and LUN 1 reports the new size.
    IscsiClient c1(portal(port), kTarget, 1);
    ASSERT_TRUE(c1.ok()) << c1.error();
    uint64_t blocks = 0;
    uint32_t bs = 0;
    ASSERT_EQ(c1.capacity(&blocks, &bs), SCSI_STATUS_GOOD);
    EXPECT_EQ(blocks * bs, 8u << 20);
    d.ok("bdev_lvol_resize", {{"name", "lvs/v"}, {"size_in_mib", 16}});
    EXPECT_TRUE(wait_until(
        [&] {
            std::vector<uint8_t> b;
            return c1.read(0, 4096, 4096, &b) == SCSI_STATUS_CHECK_CONDITION &&
                   c1.last_sense() == (uint32_t(SCSI_SENSE_UNIT_ATTENTION) << 16 | 0x2a09);
        },
        5));
    ASSERT_EQ(c1.capacity(&blocks, &bs), SCSI_STATUS_GOOD);
    EXPECT_EQ(blocks * bs, 16u << 20);
}

namespace {

// Daemon B serves its bdev `bdev` as LUN 0 of iqn...:relay on 127.0.0.1:port.
void serve_relay(Daemon& b, uint16_t port, const std::string& bdev) {
    b.ok("iscsi_create_portal_group",
         {{"tag", 1}, {"portals", {{{"host", "127.0.0.1"}, {"port", std::to_string(port)}}}}});
    b.ok("iscsi_create_initiator_group",
         {{"tag", 1}, {"initiators", {"ANY"}}, {"netmasks", {"ANY"}}});
    b.ok("iscsi_create_target_node", {{"name", "iqn.2026-12.io.nocstor:relay"},
                                      {"alias_name", ""},
                                      {"pg_ig_maps", {{{"pg_tag", 1}, {"ig_tag", 1}}}},
                                      {"luns", {{{"bdev_name", bdev}, {"lun_id", 0}}}},
                                      {"queue_depth", 32}});
}

}  // namespace

// nocstor's iSCSI initiator bdev (issue 14) against nocstor's own target, without tgt or root:
// daemon A serves a RAM LUN; daemon B attaches it with bdev_iscsi (two sessions) and serves
// that bdev again on its own iSCSI target. Data written through B is read back from A.
TEST(IscsiTarget, NocstorIscsiBdevAgainstNocstorTargetChainsTwoDaemons) {
    Daemon a({"--empty"});
    const uint16_t port_a = free_tcp_port();
    serve(a, port_a);
    Daemon b({"--empty"});
    const uint16_t port_b = free_tcp_port();
    b.ok("bdev_iscsi_create",
         {{"name", "Remote0"},
          {"initiator_iqn", "iqn.2026-12.io.nocstor:daemon-b"},
          {"url", "iscsi://127.0.0.1:" + std::to_string(port_a) + "/" + kTarget + "/0"},
          {"sessions", 2}});
    serve_relay(b, port_b, "Remote0");
    IscsiClient via_b(portal(port_b), "iqn.2026-12.io.nocstor:relay", 0);
    ASSERT_TRUE(via_b.ok()) << via_b.error() << "\n" << b.log();
    uint64_t blocks = 0;
    uint32_t bs = 0;
    ASSERT_EQ(via_b.capacity(&blocks, &bs), SCSI_STATUS_GOOD);
    EXPECT_EQ(blocks, 131072u);
    const auto data = pattern(256 * 1024, 21);
    ASSERT_EQ(via_b.write(2048, data, 512), SCSI_STATUS_GOOD);
    EXPECT_EQ(via_b.burst_write(9000, 64, 512, 0x3c), 64);
    EXPECT_EQ(via_b.sync_cache(), SCSI_STATUS_GOOD);
    IscsiClient direct(portal(port_a), kTarget, 0);
    ASSERT_TRUE(direct.ok()) << direct.error();
    std::vector<uint8_t> back;
    ASSERT_EQ(direct.read(2048, uint32_t(data.size()), 512, &back), SCSI_STATUS_GOOD);
    EXPECT_TRUE(back == data);
    ASSERT_EQ(direct.read(9000, 64 * 512, 512, &back), SCSI_STATUS_GOOD);
    EXPECT_EQ(std::count(back.begin(), back.end(), 0x3c), 64 * 512);
}

// A LUN resized on the target: the iSCSI bdev hears CAPACITY DATA HAS CHANGED on its next I/O,
// reads the capacity again and resizes itself; what it is exported as follows.
TEST(IscsiTarget, IscsiBdevFollowsAResizedLun) {
    Daemon a({"--empty"});
    const uint16_t port_a = free_tcp_port();
    serve(a, port_a);
    a.ok("bdev_malloc_create", {{"name", "Store"}, {"num_blocks", 16384}, {"block_size", 4096}});
    a.ok("bdev_lvol_create_lvstore",
         {{"bdev_name", "Store"}, {"lvs_name", "lvs"}, {"cluster_sz", 1 << 20}});
    a.ok("bdev_lvol_create", {{"lvs_name", "lvs"}, {"lvol_name", "v"}, {"size_in_mib", 8}});
    a.ok("iscsi_target_node_add_lun", {{"name", kTarget}, {"bdev_name", "lvs/v"}, {"lun_id", 1}});
    Daemon b({"--empty"});
    const uint16_t port_b = free_tcp_port();
    b.ok("bdev_iscsi_create",
         {{"name", "Remote1"},
          {"initiator_iqn", "iqn.2026-12.io.nocstor:daemon-b"},
          {"url", "iscsi://127.0.0.1:" + std::to_string(port_a) + "/" + kTarget + "/1"}});
    serve_relay(b, port_b, "Remote1");
    IscsiClient via_b(portal(port_b), "iqn.2026-12.io.nocstor:relay", 0);
    ASSERT_TRUE(via_b.ok()) << via_b.error();
    uint64_t blocks = 0;
    uint32_t bs = 0;
    ASSERT_EQ(via_b.capacity(&blocks, &bs), SCSI_STATUS_GOOD);
    EXPECT_EQ(blocks * bs, 8u << 20);
    a.ok("bdev_lvol_resize", {{"name", "lvs/v"}, {"size_in_mib", 16}});
    // The next reads carry the unit attention through; B's bdev grows, and B's own target
    // reports the new capacity.
    EXPECT_TRUE(wait_until(
        [&] {
            std::vector<uint8_t> back;
            via_b.read(0, 4096, 4096, &back);
            return via_b.capacity(&blocks, &bs) == SCSI_STATUS_GOOD && blocks * bs == (16u << 20);
        },
        10))
        << b.log();
    auto info = b.ok("bdev_get_bdevs", {{"name", "Remote1"}});
    EXPECT_EQ(info[0]["num_blocks"].get<uint64_t>() * info[0]["block_size"].get<uint64_t>(),
              16u << 20);
    EXPECT_NE(b.log().find("now has 4096 blocks"), std::string::npos) << b.log();
}

namespace {

bool read_exact(int fd, uint8_t* p, size_t n) {
    while (n) {
        const ssize_t r = recv(fd, p, n, 0);
        if (r <= 0) return false;
        p += r;
        n -= size_t(r);
    }
    return true;
}

// One PDU from the target: its BHS and data segment (padding dropped).
bool read_pdu(int fd, uint8_t* bhs, std::string* data) {
    if (!read_exact(fd, bhs, 48)) return false;
    const uint32_t len = uint32_t(bhs[5]) << 16 | uint32_t(bhs[6]) << 8 | bhs[7];
    std::string d((len + 3) & ~3u, '\0');
    if (!read_exact(fd, reinterpret_cast<uint8_t*>(d.data()), d.size())) return false;
    d.resize(len);
    *data = d;
    return true;
}

void send_pdu(int fd, uint8_t op, uint8_t flags, uint32_t itt, uint32_t ttt, uint32_t cmd_sn,
              const std::string& text) {
    std::vector<uint8_t> p(48 + ((text.size() + 3) & ~size_t(3)), 0);
    p[0] = op;
    p[1] = flags;
    p[5] = uint8_t(text.size() >> 16);
    p[6] = uint8_t(text.size() >> 8);
    p[7] = uint8_t(text.size());
    p[8] = 0x80;
    p[13] = 0x01;
    for (int i = 0; i < 4; ++i) {
        p[size_t(16 + i)] = uint8_t(itt >> (24 - 8 * i));
        p[size_t(20 + i)] = uint8_t(ttt >> (24 - 8 * i));
        p[size_t(24 + i)] = uint8_t(cmd_sn >> (24 - 8 * i));
    }
    std::memcpy(p.data() + 48, text.data(), text.size());
    ASSERT_EQ(send(fd, p.data(), p.size(), 0), ssize_t(p.size()));
}

}  // namespace

// SendTargets longer than the initiator's MaxRecvDataSegmentLength comes in pieces (C bit and a
// target transfer tag; the initiator asks for each next piece), as RFC 7143 11.10 describes.
TEST(IscsiTarget, LongSendTargetsAnswersComeInPieces) {
    Daemon d({"--empty"});
    const uint16_t port = free_tcp_port();
    serve(d, port);
    for (int i = 0; i < 40; ++i)
        d.ok("iscsi_create_target_node",
             {{"name", "iqn.2026-12.io.nocstor:many-targets-" + std::to_string(i)},
              {"alias_name", ""},
              {"pg_ig_maps", {{{"pg_tag", 1}, {"ig_tag", 1}}}},
              {"luns", {{{"bdev_name", "Malloc0"}, {"lun_id", 0}}}},
              {"queue_depth", 4}});
    int fd = raw_connect(port);
    ASSERT_GE(fd, 0);
    using namespace std::string_literals;
    send_pdu(fd, 0x43, 0x87, 1, 0, 1,
             "InitiatorName=iqn.2026-12.io.nocstor:raw\0SessionType=Discovery\0"
             "MaxRecvDataSegmentLength=512\0"s);
    uint8_t bhs[48];
    std::string data;
    ASSERT_TRUE(read_pdu(fd, bhs, &data));
    ASSERT_EQ(bhs[0] & 0x3f, 0x23);
    ASSERT_EQ(bhs[36], 0) << "login refused";
    send_pdu(fd, 0x04, 0x80, 2, 0xffffffff, 1, "SendTargets=All\0"s);
    std::string all;
    int pieces = 0;
    uint32_t cmd_sn = 2;
    for (;;) {
        ASSERT_TRUE(read_pdu(fd, bhs, &data));
        ASSERT_EQ(bhs[0] & 0x3f, 0x24);
        ASSERT_LE(data.size(), 512u);
        all += data;
        ++pieces;
        if (bhs[1] & 0x80) break;  // F: the last piece
        ASSERT_TRUE(bhs[1] & 0x40);
        const uint32_t ttt =
            uint32_t(bhs[20]) << 24 | uint32_t(bhs[21]) << 16 | uint32_t(bhs[22]) << 8 | bhs[23];
        ASSERT_NE(ttt, 0xffffffffu);
        send_pdu(fd, 0x04, 0x80, 2, ttt, cmd_sn++, "");
        ASSERT_LT(pieces, 100);
    }
    close(fd);
    EXPECT_GT(pieces, 2);
    for (int i = 0; i < 40; ++i)
        EXPECT_NE(
            all.find("TargetName=iqn.2026-12.io.nocstor:many-targets-" + std::to_string(i) + '\0'),
            std::string::npos)
            << i;
    EXPECT_NE(all.find("TargetName=" + kTarget + '\0'), std::string::npos);
}
