// Receiver rejections: each malformed header yields the FES/FEI a TermReq must carry.
#include <gtest/gtest.h>

#include <cstring>

#include "nvmf/tcp_pdu.h"
#include "pdu_test_util.h"

namespace nocstor::nvmf::tcp {
namespace {

using testing::append_pdu;
using testing::feed_all;
using testing::pattern;
using testing::RecordingHandler;

// A target receiver that has completed the IC exchange with the given digests.
struct TargetAfterIc {
    explicit TargetAfterIc(bool hdgst = false, bool ddgst = false, RxLimits limits = {})
        : rx(Role::kTarget, limits), h(&rx, {hdgst, ddgst, 0}), fmt{hdgst, ddgst, 0} {
        uint8_t ic[128];
        const size_t n = build_icreq(ic, {0, hdgst, ddgst, 0});
        EXPECT_EQ(rx.feed(ic, n, h), n);
        EXPECT_TRUE(rx.ic_done());
    }
    PduReceiver rx;
    RecordingHandler h;
    TxFormat fmt;
};

struct HostAfterIc {
    explicit HostAfterIc(bool hdgst = false, bool ddgst = false)
        : rx(Role::kHost), h(&rx, {hdgst, ddgst, 0}), fmt{hdgst, ddgst, 0} {
        uint8_t ic[128];
        const size_t n = build_icresp(ic, {0, hdgst, ddgst, 65536});
        EXPECT_EQ(rx.feed(ic, n, h), n);
    }
    PduReceiver rx;
    RecordingHandler h;
    TxFormat fmt;
};

std::vector<uint8_t> h2c_data_pdu(uint32_t len, const TxFormat& fmt, uint16_t cccid = 1) {
    uint8_t hdr[kMaxTxHeaderBytes];
    std::vector<uint8_t> s;
    append_pdu(s, hdr, build_h2c_data(hdr, {cccid, 1, 0, len, true, false}, fmt), pattern(len, 9),
               fmt);
    return s;
}

std::vector<uint8_t> capsule(uint32_t incapsule, const TxFormat& fmt) {
    uint8_t hdr[kMaxTxHeaderBytes];
    nvme::SubmissionQueueEntry sqe{};
    sqe.opcode = nvme::nvm_opc::kWrite;
    std::vector<uint8_t> s;
    append_pdu(s, hdr, build_capsule_cmd(hdr, sqe, incapsule, fmt), pattern(incapsule, 1), fmt);
    return s;
}

void expect_error(const PduReceiver& rx, Fes fes, uint32_t fei) {
    ASSERT_TRUE(rx.failed());
    EXPECT_EQ(rx.error().fes, fes);
    EXPECT_EQ(rx.error().fei, fei);
}

TEST(PduReceiverErrors, HeaderDigestCorruptionIsFes3) {
    TargetAfterIc t(true, false);
    auto s = capsule(0, t.fmt);
    s[72] ^= 0x01;  // first byte of the header digest
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kHeaderDigestError, 0);
    EXPECT_EQ(t.h.pdus.size(), 1u) << "only the ICReq reached the handler";
    // The TermReq gets the header without its digest.
    EXPECT_EQ(t.rx.error_header().size(), 72u);
}

TEST(PduReceiverErrors, CorruptedHeaderFieldUnderDigestIsFes3) {
    TargetAfterIc t(true, false);
    auto s = capsule(0, t.fmt);
    s[20] ^= 0x80;  // inside the SQE
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kHeaderDigestError, 0);
}

TEST(PduReceiverErrors, DataDigestCorruptionIsReportedAndStreamContinues) {
    TargetAfterIc t(false, true);
    auto s = h2c_data_pdu(1000, t.fmt);
    s.back() ^= 0xFF;  // data digest
    const auto good = h2c_data_pdu(10, t.fmt, 2);
    s.insert(s.end(), good.begin(), good.end());
    EXPECT_EQ(feed_all(t.rx, s, t.h), s.size());
    EXPECT_FALSE(t.rx.failed());
    ASSERT_EQ(t.h.pdus.size(), 3u);
    EXPECT_FALSE(t.h.pdus[1].data_digest_ok);
    EXPECT_TRUE(t.h.pdus[2].data_digest_ok);
    EXPECT_EQ(t.rx.data_digest_errors(), 1u);
}

TEST(PduReceiverErrors, CorruptedDataIsCaughtByDigestEvenWhenDiscarded) {
    TargetAfterIc t(false, true);
    t.h.discard_data = true;
    auto s = h2c_data_pdu(64, t.fmt);
    s[24 + 5] ^= 0x10;
    feed_all(t.rx, s, t.h);
    ASSERT_EQ(t.h.pdus.size(), 2u);
    EXPECT_FALSE(t.h.pdus[1].data_digest_ok);
}

TEST(PduReceiverErrors, WrongHlenIsFes1AtHlen) {
    TargetAfterIc t;
    auto s = capsule(0, t.fmt);
    s[2] = 24;
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kHlen);
    EXPECT_EQ(t.rx.error_header().size(), 8u);
    EXPECT_EQ(std::memcmp(t.rx.error_header().data(), s.data(), 8), 0);
}

TEST(PduReceiverErrors, PlenBelowHeaderIsFes1AtPlen) {
    TargetAfterIc t;
    auto s = capsule(0, t.fmt);
    s[4] = 40;
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kPlen);
}

TEST(PduReceiverErrors, PlenWithDataOnDatalessTypeIsRejected) {
    HostAfterIc host;
    uint8_t hdr[kMaxTxHeaderBytes];
    build_r2t(hdr, {1, 1, 0, 4096}, host.fmt);
    hdr[3] = 24;  // PDO as if data followed
    hdr[4] = 24 + 8;
    std::vector<uint8_t> s(hdr, hdr + 24);
    s.resize(32, 0);
    feed_all(host.rx, s, host.h);
    expect_error(host.rx, Fes::kInvalidHeaderField, fei::kPlen);
}

TEST(PduReceiverErrors, BadPdoWithDataIsFes1AtPdo) {
    TargetAfterIc t;
    auto s = capsule(512, t.fmt);
    ASSERT_EQ(s[3], 72);
    s[3] = 76;  // CPDA 0: data must start right after the header
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kPdo);
}

TEST(PduReceiverErrors, ZeroPdoWithDataIsFes1AtPdo) {
    TargetAfterIc t;
    auto s = capsule(512, t.fmt);
    s[3] = 0;
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kPdo);
}

TEST(PduReceiverErrors, GarbagePdoWithoutDataIsRejected) {
    TargetAfterIc t;
    auto s = capsule(0, t.fmt);
    s[3] = 13;
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kPdo);
}

TEST(PduReceiverErrors, UnknownTypeIsFes1AtType) {
    TargetAfterIc t;
    auto s = capsule(0, t.fmt);
    s[0] = 0x08;
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kPduType);
}

TEST(PduReceiverErrors, H2CTypeOnHostSideIsRejected) {
    HostAfterIc host;
    const auto s = capsule(0, host.fmt);
    feed_all(host.rx, s, host.h);
    expect_error(host.rx, Fes::kInvalidHeaderField, fei::kPduType);
}

TEST(PduReceiverErrors, C2HTypeOnTargetSideIsRejected) {
    TargetAfterIc t;
    uint8_t hdr[kMaxTxHeaderBytes];
    const size_t n = build_r2t(hdr, {1, 1, 0, 1}, t.fmt);
    t.rx.feed(hdr, n, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kPduType);
}

TEST(PduReceiverErrors, PduBeforeIcIsSequenceError) {
    PduReceiver rx(Role::kTarget);
    RecordingHandler h;
    const auto s = capsule(0, {});
    feed_all(rx, s, h);
    expect_error(rx, Fes::kPduSequenceError, 0);
    EXPECT_TRUE(h.pdus.empty());
}

TEST(PduReceiverErrors, SecondIcReqIsSequenceError) {
    TargetAfterIc t;
    uint8_t ic[128];
    t.rx.feed(ic, build_icreq(ic, {}), t.h);
    expect_error(t.rx, Fes::kPduSequenceError, 0);
}

TEST(PduReceiverErrors, IcReqPlenMustBe128) {
    PduReceiver rx(Role::kTarget);
    RecordingHandler h;
    uint8_t ic[160] = {};
    build_icreq(ic, {});
    ic[4] = 160;
    rx.feed(ic, sizeof ic, h);
    expect_error(rx, Fes::kInvalidHeaderField, fei::kPlen);
}

TEST(PduReceiverErrors, IcReqWithDigestFlagIsRejected) {
    PduReceiver rx(Role::kTarget);
    RecordingHandler h;
    uint8_t ic[128];
    build_icreq(ic, {0, true, true, 0});
    ic[1] = pdu_flags::kHdgst;
    rx.feed(ic, sizeof ic, h);
    expect_error(rx, Fes::kInvalidHeaderField, fei::kFlags);
}

TEST(PduReceiverErrors, IcReqUnsupportedPfvIsFes6) {
    PduReceiver rx(Role::kTarget);
    RecordingHandler h;
    uint8_t ic[128];
    build_icreq(ic, {});
    ic[8] = 1;
    rx.feed(ic, sizeof ic, h);
    expect_error(rx, Fes::kUnsupportedParameter, 8);
    EXPECT_EQ(rx.error_header().size(), 128u);
}

TEST(PduReceiverErrors, IcRespMaxH2CDataTooSmall) {
    PduReceiver rx(Role::kHost);
    RecordingHandler h;
    uint8_t ic[128];
    build_icresp(ic, {0, false, false, 1024});
    rx.feed(ic, sizeof ic, h);
    expect_error(rx, Fes::kInvalidHeaderField, offsetof(ICRespPdu, maxh2cdata));
}

TEST(PduReceiverErrors, MissingHeaderDigestFlagWhenNegotiated) {
    TargetAfterIc t(true, false);
    auto s = capsule(0, {});  // built without digests
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kFlags);
}

TEST(PduReceiverErrors, UnexpectedHeaderDigestFlag) {
    TargetAfterIc t(false, false);
    const auto s = capsule(0, {true, false, 0});
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kFlags);
}

TEST(PduReceiverErrors, MissingDataDigestFlagOnDataPdu) {
    TargetAfterIc t(false, true);
    const auto s = h2c_data_pdu(16, {});
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kFlags);
}

TEST(PduReceiverErrors, H2CDataDatalMustMatchPlen) {
    TargetAfterIc t;
    auto s = h2c_data_pdu(100, t.fmt);
    s[16] = 99;
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, offsetof(DataPdu, datal));
}

TEST(PduReceiverErrors, H2CDataBeyondMaxH2CDataIsFes5) {
    TargetAfterIc t(false, false, {8192, 4096});
    const auto s = h2c_data_pdu(4100, t.fmt);
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kDataLimitExceeded, 0);
}

TEST(PduReceiverErrors, InCapsuleDataBeyondLimitIsFes5) {
    TargetAfterIc t(false, false, {1024, 65536});
    const auto ok = capsule(1024, t.fmt);
    EXPECT_EQ(feed_all(t.rx, ok, t.h), ok.size());
    EXPECT_FALSE(t.rx.failed());
    const auto s = capsule(1028, t.fmt);
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kDataLimitExceeded, 0);
}

TEST(PduReceiverErrors, R2TWithZeroLengthIsRejected) {
    HostAfterIc host;
    uint8_t hdr[kMaxTxHeaderBytes];
    const size_t n = build_r2t(hdr, {1, 1, 0, 0}, host.fmt);
    host.rx.feed(hdr, n, host.h);
    expect_error(host.rx, Fes::kInvalidHeaderField, offsetof(R2TPdu, r2tl));
}

TEST(PduReceiverErrors, C2HSuccessWithoutLastIsRejected) {
    HostAfterIc host;
    uint8_t hdr[kMaxTxHeaderBytes];
    std::vector<uint8_t> s;
    append_pdu(s, hdr, build_c2h_data(hdr, {1, 0, 0, 8, false, true}, host.fmt), pattern(8, 0));
    feed_all(host.rx, s, host.h);
    expect_error(host.rx, Fes::kInvalidHeaderField, fei::kFlags);
}

TEST(PduReceiverErrors, TermReqPlenAbove152IsRejected) {
    TargetAfterIc t;
    uint8_t term[kMaxTxHeaderBytes] = {};
    build_term_req(term, Role::kHost, Fes::kPduSequenceError, 0, term, 128);
    term[4] = 153;
    t.rx.feed(term, 153, t.h);
    expect_error(t.rx, Fes::kInvalidHeaderField, fei::kPlen);
}

TEST(PduReceiverErrors, HandlerRejectionStopsTheReceiver) {
    TargetAfterIc t;
    t.h.fail_next = {Fes::kDataOutOfRange, 0};
    auto s = h2c_data_pdu(64, t.fmt);
    const size_t used = feed_all(t.rx, s, t.h);
    EXPECT_EQ(used, 24u) << "stops right after the header";
    expect_error(t.rx, Fes::kDataOutOfRange, 0);
    EXPECT_EQ(t.rx.error_header().size(), 24u);
    // Nothing more is consumed once failed.
    EXPECT_EQ(t.rx.feed(s.data() + used, s.size() - used, t.h), 0u);
}

TEST(PduReceiver, PauseReturnsAfterEachPdu) {
    TargetAfterIc t;
    t.h.pause_after_each = true;
    auto s = capsule(0, t.fmt);
    const auto second = capsule(16, t.fmt);
    s.insert(s.end(), second.begin(), second.end());
    EXPECT_EQ(t.rx.feed(s.data(), s.size(), t.h), 72u);
    EXPECT_TRUE(t.rx.at_pdu_boundary());
    EXPECT_EQ(t.rx.feed(s.data() + 72, s.size() - 72, t.h), s.size() - 72);
    EXPECT_EQ(t.h.completed, 3u);
}

TEST(PduReceiver, DataBeyondDestinationIsDropped) {
    struct Small : PduHandler {
        uint8_t buf[10] = {};
        iovec iov{buf, sizeof buf};
        int done = 0;
        DataDestination on_header(const PduHeader&) override {
            return DataDestination::into(&iov, 1);
        }
        AfterPdu on_pdu_complete(const PduHeader&, bool) override {
            ++done;
            return AfterPdu::kContinue;
        }
    } h;
    PduReceiver rx(Role::kTarget);
    uint8_t ic[128];
    rx.feed(ic, build_icreq(ic, {}), h);
    const auto s = capsule(100, {});
    EXPECT_EQ(rx.feed(s.data(), s.size(), h), s.size());
    EXPECT_EQ(h.done, 2);
    EXPECT_EQ(std::memcmp(h.buf, s.data() + 72, 10), 0);
}

TEST(PduReceiver, ResetStartsOverBeforeIc) {
    TargetAfterIc t;
    t.rx.reset();
    EXPECT_FALSE(t.rx.ic_done());
    const auto s = capsule(0, {});
    feed_all(t.rx, s, t.h);
    expect_error(t.rx, Fes::kPduSequenceError, 0);
}

}  // namespace
}  // namespace nocstor::nvmf::tcp
