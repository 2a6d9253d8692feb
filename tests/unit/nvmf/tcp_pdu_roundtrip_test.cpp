// Builder -> receiver round trips for every PDU type, digests on and off, in every chunking.
#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

#include "nvmf/tcp_pdu.h"
#include "pdu_test_util.h"

namespace nocstor::nvmf::tcp {
namespace {

using testing::append_pdu;
using testing::feed_in_pieces;
using testing::pattern;
using testing::random_sizes;
using testing::RecordingHandler;

struct Chunking {
    const char* name;
    std::vector<size_t> sizes;  // empty: random
};

class RoundTrip : public ::testing::TestWithParam<std::tuple<bool, bool, int>> {
  protected:
    bool hdgst() const { return std::get<0>(GetParam()); }
    bool ddgst() const { return std::get<1>(GetParam()); }
    // 0 = one chunk, 1 = byte by byte, 2.. = random chunkings with that seed.
    std::vector<size_t> sizes(size_t total) const {
        const int mode = std::get<2>(GetParam());
        if (mode == 0) return {total};
        if (mode == 1) return {1};
        return random_sizes(static_cast<uint32_t>(mode), 97);
    }
    TxFormat fmt() const { return {hdgst(), ddgst(), 0}; }
};

// Host -> target: ICReq, Connect-like capsule with in-capsule data, capsule without data,
// two H2CData, and a TermReq.
TEST_P(RoundTrip, TargetReceivesEveryH2CPdu) {
    std::vector<uint8_t> stream;
    uint8_t hdr[kMaxTxHeaderBytes];

    size_t n = build_icreq(hdr, {0, hdgst(), ddgst(), 0});
    ASSERT_EQ(n, 128u);
    append_pdu(stream, hdr, n);

    nvme::SubmissionQueueEntry sqe{};
    sqe.opcode = nvme::admin_opc::kFabrics;
    sqe.flags = nvme::kSqeFlagsPsdtSgl;
    sqe.cid = 0x1234;
    sqe.nsid = nvme::fctype::kConnect;
    sqe.sgl1.length = 1024;
    sqe.sgl1.set_type(nvme::sgl_type::kDataBlock, nvme::sgl_subtype::kOffset);
    sqe.cdw10 = 0xA5A5A5A5;
    const auto connect_data = pattern(1024, 3);
    n = build_capsule_cmd(hdr, sqe, 1024, fmt());
    EXPECT_EQ(n, 72u + (hdgst() ? 4 : 0));
    append_pdu(stream, hdr, n, connect_data, fmt());

    nvme::SubmissionQueueEntry read{};
    read.opcode = nvme::nvm_opc::kRead;
    read.cid = 7;
    read.sgl1.id = nvme::kSglIdTransportDataBlock;
    n = build_capsule_cmd(hdr, read, 0, fmt());
    append_pdu(stream, hdr, n);

    const auto d1 = pattern(4096, 11), d2 = pattern(777, 13);
    n = build_h2c_data(hdr, {9, 0x55, 0, 4096, false, false}, fmt());
    append_pdu(stream, hdr, n, d1, fmt());
    n = build_h2c_data(hdr, {9, 0x55, 4096, 777, true, false}, fmt());
    append_pdu(stream, hdr, n, d2, fmt());

    uint8_t bad_header[72];
    std::memset(bad_header, 0x42, sizeof bad_header);
    uint8_t term[152];
    n = build_term_req(term, Role::kHost, Fes::kInvalidHeaderField, 3, bad_header, 72);
    append_pdu(stream, term, n);

    PduReceiver rx(Role::kTarget);
    RecordingHandler h(&rx, {hdgst(), ddgst(), 0});
    EXPECT_EQ(feed_in_pieces(rx, stream, sizes(stream.size()), h), stream.size());
    ASSERT_FALSE(rx.failed()) << "fes " << static_cast<int>(rx.error().fes) << " fei "
                              << rx.error().fei;
    ASSERT_EQ(h.pdus.size(), 6u);
    EXPECT_EQ(h.completed, 6u);
    EXPECT_TRUE(rx.at_pdu_boundary());
    EXPECT_TRUE(rx.ic_done());

    EXPECT_EQ(h.pdus[0].type, PduType::kICReq);
    const auto* icreq = reinterpret_cast<const ICReqPdu*>(h.pdus[0].header.data());
    EXPECT_EQ(icreq->dgst, (hdgst() ? 1 : 0) | (ddgst() ? 2 : 0));

    EXPECT_EQ(h.pdus[1].type, PduType::kCapsuleCmd);
    const auto* cmd = reinterpret_cast<const CapsuleCmdPdu*>(h.pdus[1].header.data());
    EXPECT_EQ(cmd->sqe.cid, 0x1234);
    EXPECT_EQ(cmd->sqe.cdw10, 0xA5A5A5A5u);
    EXPECT_EQ(cmd->sqe.sgl1.id, nvme::kSglIdInCapsuleOffset);
    EXPECT_EQ(h.pdus[1].data, connect_data);
    EXPECT_TRUE(h.pdus[1].data_digest_ok);

    EXPECT_EQ(h.pdus[2].type, PduType::kCapsuleCmd);
    EXPECT_TRUE(h.pdus[2].data.empty());

    EXPECT_EQ(h.pdus[3].type, PduType::kH2CData);
    const auto* data = reinterpret_cast<const DataPdu*>(h.pdus[4].header.data());
    EXPECT_EQ(data->cccid, 9);
    EXPECT_EQ(data->ttag, 0x55);
    EXPECT_EQ(data->datao, 4096u);
    EXPECT_EQ(data->datal, 777u);
    EXPECT_TRUE(data->ch.flags & pdu_flags::kLastPdu);
    EXPECT_FALSE(reinterpret_cast<const DataPdu*>(h.pdus[3].header.data())->ch.flags &
                 pdu_flags::kLastPdu);
    EXPECT_EQ(h.pdus[3].data, d1);
    EXPECT_EQ(h.pdus[4].data, d2);

    EXPECT_EQ(h.pdus[5].type, PduType::kH2CTermReq);
    const auto* t = reinterpret_cast<const TermReqPdu*>(h.pdus[5].header.data());
    EXPECT_EQ(t->fes, 1);
    EXPECT_EQ(uint32_t{t->fei}, 3u);
    EXPECT_EQ(h.pdus[5].data, std::vector<uint8_t>(bad_header, bad_header + 72));
}

// Target -> host: ICResp, R2T, C2HData (plain, then LAST+SUCCESS), CapsuleResp, TermReq.
TEST_P(RoundTrip, HostReceivesEveryC2HPdu) {
    std::vector<uint8_t> stream;
    uint8_t hdr[kMaxTxHeaderBytes];
    size_t n = build_icresp(hdr, {0, hdgst(), ddgst(), 131072});
    append_pdu(stream, hdr, n);
    n = build_r2t(hdr, {3, 17, 8192, 65536}, fmt());
    EXPECT_EQ(n, 24u + (hdgst() ? 4 : 0));
    append_pdu(stream, hdr, n);
    const auto d1 = pattern(5000, 1), d2 = pattern(3, 2);
    n = build_c2h_data(hdr, {4, 0, 0, 5000, false, false}, fmt());
    append_pdu(stream, hdr, n, d1, fmt());
    n = build_c2h_data(hdr, {4, 0, 5000, 3, true, true}, fmt());
    append_pdu(stream, hdr, n, d2, fmt());
    nvme::CompletionQueueEntry cqe{};
    cqe.cid = 3;
    cqe.dw0 = 0xDEADBEEF;
    cqe.status = nvme::Status::generic(nvme::sc::kLbaOutOfRange, true);
    n = build_capsule_resp(hdr, cqe, fmt());
    append_pdu(stream, hdr, n);
    uint8_t term[152];
    n = build_term_req(term, Role::kTarget, Fes::kHeaderDigestError, 99, hdr, 24);
    append_pdu(stream, term, n);

    PduReceiver rx(Role::kHost);
    RecordingHandler h(&rx, {hdgst(), ddgst(), 0});
    EXPECT_EQ(feed_in_pieces(rx, stream, sizes(stream.size()), h), stream.size());
    ASSERT_FALSE(rx.failed()) << "fes " << static_cast<int>(rx.error().fes) << " fei "
                              << rx.error().fei;
    ASSERT_EQ(h.pdus.size(), 6u);

    const auto* icresp = reinterpret_cast<const ICRespPdu*>(h.pdus[0].header.data());
    EXPECT_EQ(icresp->maxh2cdata, 131072u);
    const auto* r2t = reinterpret_cast<const R2TPdu*>(h.pdus[1].header.data());
    EXPECT_EQ(r2t->cccid, 3);
    EXPECT_EQ(r2t->ttag, 17);
    EXPECT_EQ(r2t->r2to, 8192u);
    EXPECT_EQ(r2t->r2tl, 65536u);
    EXPECT_EQ(h.pdus[2].data, d1);
    EXPECT_EQ(h.pdus[3].data, d2);
    const auto* last = reinterpret_cast<const DataPdu*>(h.pdus[3].header.data());
    EXPECT_EQ(last->ch.flags & (pdu_flags::kLastPdu | pdu_flags::kSuccess),
              pdu_flags::kLastPdu | pdu_flags::kSuccess);
    EXPECT_EQ(last->ttag, 0);
    const auto* rsp = reinterpret_cast<const CapsuleRespPdu*>(h.pdus[4].header.data());
    EXPECT_EQ(rsp->cqe.cid, 3);
    EXPECT_EQ(rsp->cqe.dw0, 0xDEADBEEFu);
    EXPECT_EQ(rsp->cqe.status.sc(), nvme::sc::kLbaOutOfRange);
    EXPECT_TRUE(rsp->cqe.status.dnr());
    EXPECT_EQ(h.pdus[5].type, PduType::kC2HTermReq);
    const auto* t = reinterpret_cast<const TermReqPdu*>(h.pdus[5].header.data());
    EXPECT_EQ(t->fes, 3);
    EXPECT_EQ(uint32_t{t->fei}, 0u) << "FEI is reserved for a header digest error";
    EXPECT_EQ(h.pdus[5].data.size(), 24u);
}

// Zero-copy receive (recvmsg straight into the request's buffer) must deliver exactly what the
// copying path delivers, digest verdicts included, in any chunking.
TEST_P(RoundTrip, DirectReceiveMatchesCopyingReceive) {
    std::vector<uint8_t> stream;
    uint8_t hdr[kMaxTxHeaderBytes];
    append_pdu(stream, hdr, build_icreq(hdr, {0, hdgst(), ddgst(), 0}));
    nvme::SubmissionQueueEntry w{};
    w.opcode = nvme::nvm_opc::kWrite;
    w.cid = 3;
    w.sgl1.length = 8192;
    w.sgl1.set_type(nvme::sgl_type::kDataBlock, nvme::sgl_subtype::kOffset);
    append_pdu(stream, hdr, build_capsule_cmd(hdr, w, 8192, fmt()), pattern(8192, 5), fmt());
    append_pdu(stream, hdr, build_h2c_data(hdr, {4, 1, 0, 40000, false, false}, fmt()),
               pattern(40000, 9), fmt());
    const size_t corrupt_at = stream.size() + 100;  // inside the next PDU's data
    append_pdu(stream, hdr, build_h2c_data(hdr, {4, 1, 40000, 777, true, false}, fmt()),
               pattern(777, 1), fmt());
    nvme::SubmissionQueueEntry r{};
    r.opcode = nvme::nvm_opc::kRead;
    r.cid = 8;
    append_pdu(stream, hdr, build_capsule_cmd(hdr, r, 0, fmt()));
    if (ddgst()) stream[corrupt_at] ^= 0xFF;  // that PDU must fail its digest on both paths

    PduReceiver copy_rx(Role::kTarget), direct_rx(Role::kTarget);
    RecordingHandler copy_h(&copy_rx, {hdgst(), ddgst(), 0});
    RecordingHandler direct_h(&direct_rx, {hdgst(), ddgst(), 0});
    const auto chunks = sizes(stream.size());
    ASSERT_EQ(feed_in_pieces(copy_rx, stream, chunks, copy_h), stream.size());
    ASSERT_EQ(feed_direct_in_pieces(direct_rx, stream, chunks, direct_h), stream.size());
    ASSERT_FALSE(direct_rx.failed());
    EXPECT_TRUE(direct_rx.at_pdu_boundary());
    ASSERT_EQ(direct_h.completed, 5u);
    ASSERT_EQ(copy_h.pdus.size(), direct_h.pdus.size());
    for (size_t i = 0; i < copy_h.pdus.size(); ++i) {
        EXPECT_EQ(copy_h.pdus[i].type, direct_h.pdus[i].type) << i;
        EXPECT_EQ(copy_h.pdus[i].data, direct_h.pdus[i].data) << i;
        EXPECT_EQ(copy_h.pdus[i].data_digest_ok, direct_h.pdus[i].data_digest_ok) << i;
    }
    EXPECT_EQ(direct_h.pdus[2].data, pattern(40000, 9));
    EXPECT_EQ(direct_h.pdus[3].data_digest_ok, !ddgst());
}

INSTANTIATE_TEST_SUITE_P(DigestsAndChunkings, RoundTrip,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(0, 1, 2, 3, 4, 5, 6)));

TEST(PduBuilder, DigestsLandWhereTheSpecPutsThem) {
    uint8_t hdr[kMaxTxHeaderBytes];
    const TxFormat fmt{true, true, 0};
    const size_t n = build_c2h_data(hdr, {1, 0, 0, 16, true, false}, fmt);
    ASSERT_EQ(n, 28u);
    CommonHeader ch;
    std::memcpy(&ch, hdr, sizeof ch);
    EXPECT_EQ(ch.hlen, 24);
    EXPECT_EQ(ch.pdo, 28);
    EXPECT_EQ(ch.plen, 28u + 16 + 4);
    EXPECT_EQ(ch.flags & (pdu_flags::kHdgst | pdu_flags::kDdgst),
              pdu_flags::kHdgst | pdu_flags::kDdgst);
    EXPECT_EQ(load_digest(hdr + 24), crc32c(hdr, 24));

    // A PDU without data never claims a data digest and has PDO 0.
    const size_t m = build_r2t(hdr, {1, 2, 0, 512}, fmt);
    std::memcpy(&ch, hdr, sizeof ch);
    EXPECT_EQ(m, 28u);
    EXPECT_EQ(ch.pdo, 0);
    EXPECT_EQ(ch.plen, 28u);
    EXPECT_EQ(ch.flags & pdu_flags::kDdgst, 0);
}

TEST(PduBuilder, DataAlignedToPeerPdaIsPaddedAndParsed) {
    uint8_t hdr[kMaxTxHeaderBytes];
    std::memset(hdr, 0xCC, sizeof hdr);
    const TxFormat fmt{true, true, 7};  // 32-byte alignment
    const auto data = pattern(100, 5);
    const size_t n = build_c2h_data(hdr, {1, 0, 0, 100, true, false}, fmt);
    ASSERT_EQ(n, 32u);
    EXPECT_EQ(hdr[28], 0) << "padding is zeroed";
    EXPECT_EQ(hdr[31], 0);

    std::vector<uint8_t> stream;
    uint8_t ic[128];
    append_pdu(stream, ic, build_icresp(ic, {0, true, true, 65536}));
    append_pdu(stream, hdr, n, data, fmt);
    PduReceiver rx(Role::kHost);
    RecordingHandler h(&rx, {true, true, 7});
    testing::feed_all(rx, stream, h);
    ASSERT_FALSE(rx.failed());
    ASSERT_EQ(h.pdus.size(), 2u);
    EXPECT_EQ(h.pdus[1].data, data);
    EXPECT_TRUE(h.pdus[1].data_digest_ok);
}

TEST(PduBuilder, TermReqClipsTheOffendingHeaderTo128Bytes) {
    uint8_t big[200];
    for (size_t i = 0; i < sizeof big; ++i) big[i] = static_cast<uint8_t>(i);
    uint8_t out[kMaxTxHeaderBytes];
    const size_t n = build_term_req(out, Role::kTarget, Fes::kUnsupportedParameter, 8, big, 200);
    ASSERT_EQ(n, 152u);
    const auto* t = reinterpret_cast<const TermReqPdu*>(out);
    EXPECT_EQ(t->ch.pdu_type, static_cast<uint8_t>(PduType::kC2HTermReq));
    EXPECT_EQ(t->ch.hlen, 24);
    EXPECT_EQ(t->ch.plen, 152u);
    EXPECT_EQ(t->ch.flags, 0) << "TermReq is never digested";
    EXPECT_EQ(t->fes, 6);
    EXPECT_EQ(uint32_t{t->fei}, 8u);
    EXPECT_EQ(std::memcmp(out + 24, big, 128), 0);

    // And a host accepts it (TermReq is legal before the IC exchange too).
    PduReceiver rx(Role::kHost);
    RecordingHandler h;
    EXPECT_EQ(rx.feed(out, n, h), n);
    ASSERT_FALSE(rx.failed());
    ASSERT_EQ(h.pdus.size(), 1u);
    EXPECT_EQ(h.pdus[0].data, std::vector<uint8_t>(big, big + 128));
}

}  // namespace
}  // namespace nocstor::nvmf::tcp
