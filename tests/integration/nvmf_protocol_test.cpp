// NVMe/TCP protocol tests against the in-process target over real TCP on 127.0.0.1.
#include <gtest/gtest.h>

#include <thread>

#include "nvmf_host.h"
#include "nvmf_host_cmds.h"
#include "nvmf_test_env.h"

using namespace nocstor;
using namespace nocstor::nvmf;
using namespace nocstor::nvmf::testing;
namespace sc = nocstor::nvme::sc;

namespace {

// Write through R2T, answering with H2CData PDUs of `chunk` bytes.
std::optional<nvme::CompletionQueueEntry> write_r2t(TestHost& h, uint16_t cid, uint64_t lba,
                                                    const std::vector<uint8_t>& d, uint32_t chunk) {
    auto s = sqe(nvme::nvm_opc::kWrite, cid, 1);
    s.cdw10 = static_cast<uint32_t>(lba);
    s.cdw12 = static_cast<uint32_t>(d.size() / 512 - 1);
    set_transport(s, static_cast<uint32_t>(d.size()));
    h.send_cmd(s);
    auto p = h.recv();
    if (!p || p->type != PduType::kR2T) return std::nullopt;
    const auto& r2t = p->as<R2TPdu>();
    EXPECT_EQ(r2t.cccid, cid);
    EXPECT_EQ(r2t.r2to, 0u);
    EXPECT_EQ(r2t.r2tl, d.size());
    for (uint32_t off = 0; off < d.size(); off += chunk) {
        const uint32_t n = std::min<uint32_t>(chunk, static_cast<uint32_t>(d.size()) - off);
        h.send_h2c(cid, r2t.ttag, off, d.data() + off, n, off + n == d.size());
    }
    return h.wait_resp(cid);
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 9));
    return v;
}

class NvmfProtocol : public ::testing::TestWithParam<bool> {};  // param: digests on

}  // namespace

TEST_P(NvmfProtocol, AdminBringUpIdentifyAndIo) {
    TargetEnv env;
    const bool dg = GetParam();
    TestHost admin(env.port());
    const uint16_t cntlid = bring_up_admin(admin, dg, dg);
    ASSERT_NE(cntlid, 0);

    auto cap = prop_get(admin, nvme::prop::kCap, true);
    ASSERT_TRUE(cap && cap->status.ok());
    const uint64_t capv = cap->dw0 | (uint64_t{cap->dw1} << 32);
    EXPECT_EQ(nvme::cap::mqes(capv), 127);
    auto vs = prop_get(admin, nvme::prop::kVs, false);
    ASSERT_TRUE(vs);
    EXPECT_EQ(vs->dw0, nvme::make_version(1, 3));
    auto csts = prop_get(admin, nvme::prop::kCsts, false);
    ASSERT_TRUE(csts);
    EXPECT_EQ(csts->dw0 & 1, 1u);

    std::vector<uint8_t> data;
    auto id = identify(admin, nvme::cns::kController, 0, &data);
    ASSERT_TRUE(id && id->status.ok());
    ASSERT_EQ(data.size(), 4096u);
    const auto* ic = reinterpret_cast<const nvme::IdentifyController*>(data.data());
    EXPECT_EQ(ic->cntlid, cntlid);
    EXPECT_EQ(std::string(ic->subnqn), kTestNqn);
    EXPECT_EQ(ic->sqes, 0x66);
    EXPECT_EQ(ic->cqes, 0x44);
    EXPECT_NE(ic->kas, 0);
    EXPECT_TRUE(ic->sgls & 1);
    EXPECT_EQ(ic->cntrltype, nvme::kCntrlTypeIo);
    EXPECT_GE(ic->ioccsz, 4u);

    id = identify(admin, nvme::cns::kNamespace, 1, &data);
    ASSERT_TRUE(id && id->status.ok());
    const auto* ns = reinterpret_cast<const nvme::IdentifyNamespace*>(data.data());
    EXPECT_EQ(ns->nsze, (64ull << 20) / 512);
    EXPECT_EQ(ns->lbaf[0].lbads, 9);
    id = identify(admin, nvme::cns::kNamespace, 5, &data);  // inactive: zeroes
    ASSERT_TRUE(id && id->status.ok());
    EXPECT_EQ(reinterpret_cast<const nvme::IdentifyNamespace*>(data.data())->nsze, 0u);
    id = identify(admin, nvme::cns::kActiveNamespaceList, 0, &data);
    ASSERT_TRUE(id && id->status.ok());
    EXPECT_EQ(reinterpret_cast<const uint32_t*>(data.data())[0], 1u);
    EXPECT_EQ(reinterpret_cast<const uint32_t*>(data.data())[1], 0u);
    id = identify(admin, nvme::cns::kNamespaceIdDescriptorList, 1, &data);
    ASSERT_TRUE(id && id->status.ok());
    EXPECT_EQ(data[0], nvme::nidt::kEui64);

    // Unknown admin opcode.
    admin.send_cmd(sqe(0x01 /* Create I/O SQ */, 9));
    auto bad = admin.wait_resp(9);
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status.sc(), sc::kInvalidOpcode);

    // I/O queue on its own connection (maybe another poll group).
    TestHost io(env.port());
    ASSERT_TRUE(bring_up_io(io, cntlid, 1, dg, dg));

    const auto a = pattern(4096, 1);
    auto w = write_incapsule(io, 1, 8, a);
    ASSERT_TRUE(w && w->status.ok());
    std::vector<uint8_t> got;
    auto r = read(io, 2, 8, 4096, &got);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(got, a);

    const auto b = pattern(128 * 1024, 3);
    w = write_r2t(io, 3, 1000, b, 24 * 1024);  // several H2CData for one R2T
    ASSERT_TRUE(w && w->status.ok());
    r = read(io, 4, 1000, 128 * 1024, &got);
    ASSERT_TRUE(r && r->status.ok());
    ASSERT_EQ(got.size(), b.size());
    size_t first_diff = 0;
    while (first_diff < b.size() && got[first_diff] == b[first_diff]) ++first_diff;
    EXPECT_EQ(first_diff, b.size());

    // Write Zeroes, then the range reads as zeroes.
    auto s = sqe(nvme::nvm_opc::kWriteZeroes, 5, 1);
    s.cdw10 = 1000;
    s.cdw12 = 7;
    set_transport(s, 0);
    io.send_cmd(s);
    r = io.wait_resp(5);
    ASSERT_TRUE(r && r->status.ok());
    r = read(io, 6, 1000, 4096, &got);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(got, std::vector<uint8_t>(4096, 0));

    // DSM deallocate (ranges in capsule), Flush.
    struct __attribute__((packed)) {
        uint32_t attr, nlb;
        uint64_t slba;
    } range{0, 8, 8};
    s = sqe(nvme::nvm_opc::kDatasetManagement, 7, 1);
    s.cdw10 = 0;
    s.cdw11 = 1u << 2;
    set_incapsule(s, sizeof range);
    io.send_cmd(s, &range, sizeof range);
    r = io.wait_resp(7);
    ASSERT_TRUE(r && r->status.ok());
    s = sqe(nvme::nvm_opc::kFlush, 8, 1);
    io.send_cmd(s);
    r = io.wait_resp(8);
    ASSERT_TRUE(r && r->status.ok());

    // Errors: LBA out of range, bad namespace, bad opcode.
    r = read(io, 9, (64ull << 20) / 512, 4096, &got);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status.sc(), sc::kLbaOutOfRange);
    s = sqe(nvme::nvm_opc::kRead, 10, 9);
    set_transport(s, 512);
    io.send_cmd(s);
    r = io.wait_resp(10);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status.sc(), sc::kInvalidNamespaceOrFormat);
    io.send_cmd(sqe(0x7E, 11, 1));
    r = io.wait_resp(11);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status.sc(), sc::kInvalidOpcode);
}

INSTANTIATE_TEST_SUITE_P(Digests, NvmfProtocol, ::testing::Bool());

TEST(NvmfTarget, ConnectRejectsBadHostAndUnknownSubsystem) {
    TargetEnvOptions o;
    o.allow_any_host = false;
    TargetEnv env(o);
    {
        TestHost h(env.port());
        ASSERT_TRUE(h.ic());
        auto c = connect(h, 0, 0xFFFF);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->status.sct(), nvme::sct::kCommandSpecific);
        EXPECT_EQ(c->status.sc(), nvme::sc_cmd::kConnectInvalidHost);
    }
    {
        TestHost h(env.port());
        ASSERT_TRUE(h.ic());
        auto c = connect(h, 0, 0xFFFF, "nqn.2024-01.io.nocstor:nope");
        ASSERT_TRUE(c);
        EXPECT_EQ(c->status.sc(), nvme::sc_cmd::kConnectInvalidParameters);
        EXPECT_EQ(c->dw0 & 0xFFFF, 256u);      // IPO: SUBNQN
        EXPECT_EQ((c->dw0 >> 16) & 0xFF, 1u);  // IATTR: data
    }
    EXPECT_EQ(
        env.call([&](DoneFn d) { env.target().add_host(kTestNqn, kTestHostNqn, nullptr, d); }), 0);
    TestHost h(env.port());
    EXPECT_NE(bring_up_admin(h), 0);
    // An I/O Connect naming an unknown controller.
    TestHost io(env.port());
    ASSERT_TRUE(io.ic());
    auto c = connect(io, 1, 0x7777);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status.sc(), nvme::sc_cmd::kConnectInvalidParameters);
}

// SPDK's spdk_nvme_perf / spdk_nvme_identify send an empty HOSTNQN unless given one: an
// anonymous host may connect where any host may, and is refused (Invalid Host) elsewhere.
TEST(NvmfTarget, EmptyHostNqnIsAnAnonymousHost) {
    TargetEnv env;
    {
        TestHost h(env.port());
        ASSERT_TRUE(h.ic());
        auto c = connect(h, 0, 0xFFFF, kTestNqn, "");
        ASSERT_TRUE(c);
        EXPECT_TRUE(c->status.ok())
            << "sct " << int(c->status.sct()) << " sc " << int(c->status.sc());
    }
    {
        TestHost h(env.port());
        ASSERT_TRUE(h.ic());
        auto c = connect(h, 0, 0xFFFF, ::nocstor::nvme::kDiscoveryNqn, "");
        ASSERT_TRUE(c);
        EXPECT_TRUE(c->status.ok());
    }
    EXPECT_EQ(env.call([&](DoneFn d) { env.target().set_allow_any_host(kTestNqn, false, d); }), 0);
    EXPECT_EQ(
        env.call([&](DoneFn d) { env.target().add_host(kTestNqn, kTestHostNqn, nullptr, d); }), 0);
    TestHost h(env.port());
    ASSERT_TRUE(h.ic());
    auto c = connect(h, 0, 0xFFFF, kTestNqn, "");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status.sc(), nvme::sc_cmd::kConnectInvalidHost);
    // Longer than an NQN may be (223 bytes), and unterminated: Invalid Parameters at HOSTNQN.
    TestHost h2(env.port());
    ASSERT_TRUE(h2.ic());
    auto l = connect(h2, 0, 0xFFFF, kTestNqn, std::string(256, 'n'));
    ASSERT_TRUE(l);
    EXPECT_EQ(l->status.sc(), nvme::sc_cmd::kConnectInvalidParameters);
    EXPECT_EQ(l->dw0 & 0xFFFF, 512u);  // IPO: HOSTNQN
}

TEST(NvmfTarget, DiscoveryLogAndAerOnNamespaceAdd) {
    TargetEnv env;
    TestHost d(env.port());
    ASSERT_NE(bring_up_admin(d, false, false, 0, nvme::kDiscoveryNqn), 0);
    auto s = sqe(nvme::admin_opc::kGetLogPage, 3);
    const uint32_t len = 4096;
    s.cdw10 = nvme::log_page::kDiscovery | ((len / 4 - 1) << 16);
    set_transport(s, len);
    std::vector<uint8_t> log;
    d.send_cmd(s);
    auto r = d.wait_resp(3, &log);
    ASSERT_TRUE(r && r->status.ok());
    const auto* hdr = reinterpret_cast<const nvme::DiscoveryLogHeader*>(log.data());
    ASSERT_EQ(hdr->numrec, 2u);  // the subsystem + the current discovery subsystem
    const auto* e = reinterpret_cast<const nvme::DiscoveryLogEntry*>(log.data() + 1024);
    EXPECT_EQ(std::string(e->subnqn), kTestNqn);
    EXPECT_EQ(e->trtype, nvme::trtype::kTcp);
    EXPECT_EQ(e[1].subtype, nvme::subtype::kCurrentDiscovery);
    // A read at an offset returns the entries only.
    s.cid = 4;
    s.cdw10 = nvme::log_page::kDiscovery | ((1024 / 4 - 1) << 16);
    s.cdw12 = 1024;
    set_transport(s, 1024);
    d.send_cmd(s);
    r = d.wait_resp(4, &log);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(std::string(reinterpret_cast<const nvme::DiscoveryLogEntry*>(log.data())->subnqn),
              kTestNqn);
    // Discovery controllers refuse I/O-only admin commands.
    d.send_cmd(sqe(nvme::admin_opc::kAbort, 5));
    r = d.wait_resp(5);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status.sc(), sc::kInvalidOpcode);

    // AER on namespace add.
    TestHost a(env.port());
    ASSERT_NE(bring_up_admin(a), 0);
    auto sf = sqe(nvme::admin_opc::kSetFeatures, 20);
    sf.cdw10 = nvme::feature::kAsyncEventConfig;
    sf.cdw11 = nvme::kOaesNamespaceAttributeNotices;
    a.send_cmd(sf);
    ASSERT_TRUE(a.wait_resp(20));
    a.send_cmd(sqe(nvme::admin_opc::kAsyncEventRequest, 21));
    ASSERT_EQ(env.create_malloc("Malloc1", 2048), 0);
    EXPECT_EQ(env.add_ns("Malloc1"), 2u);
    r = a.wait_resp(21);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(r->dw0, nvme::make_async_event(nvme::aer_type::kNotice, 0, 4));
    auto gl = sqe(nvme::admin_opc::kGetLogPage, 22);
    gl.cdw10 = nvme::log_page::kChangedNamespaceList | ((4096 / 4 - 1) << 16);
    set_transport(gl, 4096);
    a.send_cmd(gl);
    r = a.wait_resp(22, &log);
    ASSERT_TRUE(r && r->status.ok());
    EXPECT_EQ(reinterpret_cast<const uint32_t*>(log.data())[0], 2u);
}

TEST(NvmfTarget, KeepAliveTimeoutTearsDownController) {
    TargetEnv env;
    TestHost a(env.port());
    const uint16_t cntlid = bring_up_admin(a, false, false, 300);
    ASSERT_NE(cntlid, 0);
    TestHost io(env.port());
    ASSERT_TRUE(bring_up_io(io, cntlid, 1));
    // Silence: both queues are closed after KATO.
    EXPECT_TRUE(a.wait_closed(3000));
    EXPECT_TRUE(io.wait_closed(3000));
    std::vector<ControllerInfo> ctrls{ControllerInfo{}};
    env.wait_async([&](std::function<void()> d) {
        env.target().list_controllers("", [&, d](std::vector<ControllerInfo> v) {
            ctrls = std::move(v);
            d();
        });
    });
    EXPECT_TRUE(ctrls.empty());
}

// Malformed PDUs: each gets a C2HTermReq with the right FES and the connection closes, while
// another connection keeps working.
TEST(NvmfTarget, MalformedPdusGetTermReq) {
    TargetEnv env;
    TestHost good(env.port());
    const uint16_t cntlid = bring_up_admin(good);
    ASSERT_NE(cntlid, 0);

    struct Case {
        const char* name;
        bool ic_first;
        std::vector<uint8_t> bytes;
        Fes fes;
    };
    auto hdr = [](uint8_t type, uint8_t flags, uint8_t hlen, uint8_t pdo, uint32_t plen) {
        std::vector<uint8_t> v(hlen, 0);
        CommonHeader ch{type, flags, hlen, pdo, plen};
        std::memcpy(v.data(), &ch, sizeof ch);
        return v;
    };
    std::vector<Case> cases = {
        {"capsule before ICReq", false, hdr(0x04, 0, 72, 0, 72), Fes::kPduSequenceError},
        {"ICReq PLEN", false, hdr(0x00, 0, 128, 0, 100), Fes::kInvalidHeaderField},
        {"unknown type", true, hdr(0x0F, 0, 24, 0, 24), Fes::kInvalidHeaderField},
        {"C2H type from host", true, hdr(0x05, 0, 24, 0, 24), Fes::kInvalidHeaderField},
        {"capsule bad HLEN", true, hdr(0x04, 0, 24, 0, 24), Fes::kInvalidHeaderField},
        {"second ICReq", true, hdr(0x00, 0, 128, 0, 128), Fes::kPduSequenceError},
        {"digest flag not negotiated", true, hdr(0x04, 1, 72, 0, 76), Fes::kInvalidHeaderField},
        {"H2CData without R2T", true,
         [&] {
             auto v = hdr(0x06, 0, 24, 24, 24 + 512);
             const uint32_t datal = 512;
             std::memcpy(v.data() + offsetof(DataPdu, datal), &datal, 4);
             v.resize(24 + 512);
             return v;
         }(),
         Fes::kPduSequenceError},
        {"in-capsule data too large", true, hdr(0x04, 0, 72, 72, 72 + 65536),
         Fes::kDataLimitExceeded},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        TestHost h(env.port());
        ASSERT_TRUE(h.ok());
        if (c.ic_first) {
            ASSERT_TRUE(h.ic());
        }
        h.send_raw(c.bytes.data(), c.bytes.size());
        auto p = h.recv(3000);
        ASSERT_TRUE(p);
        ASSERT_EQ(p->type, PduType::kC2HTermReq);
        EXPECT_EQ(p->as<TermReqPdu>().fes, static_cast<uint16_t>(c.fes));
        EXPECT_TRUE(h.wait_closed(3000));
        // The other connection is unaffected.
        std::vector<uint8_t> data;
        auto r = identify(good, nvme::cns::kController, 0, &data);
        ASSERT_TRUE(r && r->status.ok());
    }
}

TEST(NvmfTarget, HostVanishingMidWriteFreesEverything) {
    TargetEnv env;
    for (int round = 0; round < 3; ++round) {
        TestHost a(env.port());
        const uint16_t cntlid = bring_up_admin(a);
        ASSERT_NE(cntlid, 0);
        auto io = std::make_unique<TestHost>(env.port());
        ASSERT_TRUE(bring_up_io(*io, cntlid, 1));
        for (uint16_t cid = 1; cid <= 16; ++cid) {
            auto s = sqe(nvme::nvm_opc::kWrite, cid, 1);
            s.cdw12 = 255;  // 128 KiB: R2T each
            set_transport(s, 128 * 1024);
            io->send_cmd(s);
        }
        const auto half = pattern(64 * 1024, 9);
        auto p = io->recv();
        ASSERT_TRUE(p && p->type == PduType::kR2T);
        io->send_h2c(p->as<R2TPdu>().cccid, p->as<R2TPdu>().ttag, 0, half.data(), 64 * 1024, false);
        io.reset();  // vanish mid-write
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    TestHost a(env.port());
    EXPECT_NE(bring_up_admin(a), 0);
}
