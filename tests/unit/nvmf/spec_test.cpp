#include "nvmf/spec.h"

#include <gtest/gtest.h>

namespace nocstor::nvme {
namespace {

TEST(NvmeStatus, FieldsRoundTrip) {
    const Status s = Status::command_specific(sc_cmd::kConnectInvalidHost, true).with_phase(true);
    EXPECT_TRUE(s.phase());
    EXPECT_EQ(s.sct(), sct::kCommandSpecific);
    EXPECT_EQ(s.sc(), sc_cmd::kConnectInvalidHost);
    EXPECT_TRUE(s.dnr());
    EXPECT_FALSE(s.ok());
    EXPECT_TRUE(Status::success().with_phase(true).ok());
    EXPECT_EQ(Status::media(sc_media::kUnrecoveredReadError).raw, (2 << 9) | (0x81 << 1));
}

TEST(NvmeProperties, CapCcCstsHelpers) {
    const uint64_t c = cap::make(127, 30);
    EXPECT_EQ(cap::mqes(c), 127);
    EXPECT_EQ(cap::timeout(c), 30);
    EXPECT_TRUE(c & cap::kCqr);
    EXPECT_TRUE(c & cap::kCssNvm);
    EXPECT_EQ(cap::mpsmin(c), 0);
    const uint32_t cc_value = 0x00460001;  // Linux: EN, IOSQES 6, IOCQES 4
    EXPECT_TRUE(cc::en(cc_value));
    EXPECT_EQ(cc::iosqes(cc_value), 6);
    EXPECT_EQ(cc::iocqes(cc_value), 4);
    EXPECT_EQ(cc::shn(0x4000), cc::kShnNormal);
    EXPECT_EQ(csts::make(true, false, csts::kShstComplete), 0x9u);
    EXPECT_EQ(make_version(1, 3), 0x00010300u);
}

TEST(NvmeSqe, ReadWriteAndSglAccessors) {
    SubmissionQueueEntry sqe{};
    sqe.cdw10 = 0x89ABCDEF;
    sqe.cdw11 = 0x01234567;
    sqe.cdw12 = (1u << 30) | 7;
    sqe.flags = kSqeFlagsPsdtSgl;
    sqe.sgl1.id = kSglIdTransportDataBlock;
    EXPECT_EQ(rw_slba(sqe), 0x0123456789ABCDEFull);
    EXPECT_EQ(rw_nlb(sqe), 8u);
    EXPECT_TRUE(rw_fua(sqe));
    EXPECT_EQ(sqe.psdt(), kPsdtSglMptrContiguous);
    EXPECT_EQ(sqe.sgl1.type(), sgl_type::kTransportDataBlock);
    EXPECT_EQ(sqe.sgl1.subtype(), sgl_subtype::kTransport);
    EXPECT_EQ(sqe.cdw(12), sqe.cdw12);
}

TEST(NvmeLog, GetLogPageLength) {
    SubmissionQueueEntry sqe{};
    sqe.cdw10 = (1023u << 16) | log_page::kDiscovery;  // NUMDL 0-based
    sqe.cdw11 = 0;
    EXPECT_EQ(get_log_lid(sqe), log_page::kDiscovery);
    EXPECT_EQ(get_log_length_bytes(sqe), 4096u);
}

}  // namespace
}  // namespace nocstor::nvme
