// NVMe/TCP connection deadlines and caps (idle sockets never keep a host out), and commands a
// fabrics target must refuse whatever their opcode (PRP data pointers, fused operations).
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "nvmf_host.h"
#include "nvmf_host_cmds.h"
#include "nvmf_test_env.h"

using namespace nocstor;
using namespace nocstor::nvmf;
using namespace nocstor::nvmf::testing;
namespace sc = nocstor::nvme::sc;

namespace {

uint64_t total(const TargetStats& s, uint64_t TargetStats::Group::*field) {
    uint64_t n = 0;
    for (const auto& g : s.poll_groups) n += g.*field;
    return n;
}

TEST(NvmfLimits, SocketWithoutIcReqIsClosedAtTheDeadline) {
    TargetEnvOptions o;
    o.icreq_timeout_ms = 300;
    TargetEnv env(o);
    TestHost silent(env.port());
    ASSERT_TRUE(silent.ok());
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(silent.wait_closed(3000));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
    EXPECT_EQ(total(env.stats(), &TargetStats::Group::icreq_timeouts), 1u);
    // A host that does its ICReq in time is not affected by that deadline.
    TestHost h(env.port());
    EXPECT_NE(bring_up_admin(h), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::vector<uint8_t> data;
    auto r = identify(h, nvme::cns::kController, 0, &data);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->status.ok());
}

TEST(NvmfLimits, IcReqWithoutConnectIsClosedAtTheDeadline) {
    TargetEnvOptions o;
    o.connect_timeout_ms = 400;
    TargetEnv env(o);
    TestHost h(env.port());
    ASSERT_TRUE(h.ic());
    EXPECT_TRUE(h.wait_closed(3000));
    EXPECT_EQ(total(env.stats(), &TargetStats::Group::connect_timeouts), 1u);
}

// More idle sockets than the cap on unconnected connections: a real host still gets in at once,
// because the oldest silent socket makes room.
TEST(NvmfLimits, IdleSocketsBeyondTheCapDoNotKeepAHostOut) {
    TargetEnvOptions o;
    o.max_unconnected = 8;
    o.icreq_timeout_ms = 60'000;  // the cap, not the deadline, must let the host in
    TargetEnv env(o);
    std::vector<std::unique_ptr<TestHost>> idle;
    for (int i = 0; i < 40; ++i) {
        idle.push_back(std::make_unique<TestHost>(env.port()));
        ASSERT_TRUE(idle.back()->ok());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto start = std::chrono::steady_clock::now();
    TestHost h(env.port());
    const uint16_t cntlid = bring_up_admin(h);
    EXPECT_NE(cntlid, 0);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    TestHost q(env.port());
    EXPECT_TRUE(bring_up_io(q, cntlid, 1));
    const TargetStats s = env.stats();
    EXPECT_GE(total(s, &TargetStats::Group::unconnected_evicted), 32u);
    EXPECT_LE(total(s, &TargetStats::Group::unconnected), 8u);
    size_t closed = 0;
    for (auto& c : idle) closed += c->wait_closed(100);
    EXPECT_GE(closed, 32u);
}

TEST(NvmfLimits, PrpDataPointerAndFusedCommandsAreRejected) {
    TargetEnv env;
    TestHost h(env.port());
    ASSERT_NE(bring_up_admin(h), 0);
    std::vector<uint8_t> data;
    for (uint8_t flags : {uint8_t{0x00} /* PSDT 00b: PRP */, uint8_t{0x80} /* PSDT 10b */,
                          uint8_t{0x41} /* fused, first */, uint8_t{0x42} /* fused, second */}) {
        auto s = sqe(nvme::admin_opc::kIdentify, 9, 0);
        s.flags = flags;
        s.cdw10 = nvme::cns::kController;
        set_transport(s, 4096);
        h.send_cmd(s);
        data.clear();
        auto r = h.wait_resp(9, &data);
        ASSERT_TRUE(r) << "flags " << int(flags);
        EXPECT_EQ(r->status.sct(), nvme::sct::kGeneric) << "flags " << int(flags);
        EXPECT_EQ(r->status.sc(), sc::kInvalidField) << "flags " << int(flags);
        EXPECT_TRUE(r->status.dnr());
        EXPECT_TRUE(data.empty()) << "no data may be sent for a refused command";
    }
    // The connection stays usable.
    auto r = identify(h, nvme::cns::kController, 0, &data);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->status.ok());
}

}  // namespace
