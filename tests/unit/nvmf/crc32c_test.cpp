#include "nvmf/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace nocstor::nvmf {
namespace {

TEST(Crc32c, KnownVector) {
    EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
    EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Crc32c, ThirtyTwoZeroBytes) {
    // RFC 3720 (iSCSI) B.4 test vector: 32 bytes of zeroes.
    const std::vector<uint8_t> zeros(32, 0);
    EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
    const std::vector<uint8_t> ones(32, 0xFF);
    EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Crc32c, StreamingMatchesOneShot) {
    std::vector<uint8_t> buf(10000);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 31 + 7);
    const uint32_t whole = crc32c(buf.data(), buf.size());
    for (size_t split : {size_t{0}, size_t{1}, size_t{3}, size_t{4095}, size_t{9999}}) {
        Crc32c c;
        c.update(buf.data(), split);
        c.update(buf.data() + split, buf.size() - split);
        EXPECT_EQ(c.value(), whole) << "split at " << split;
        // A finished value used as seed continues the computation.
        EXPECT_EQ(crc32c(buf.data() + split, buf.size() - split, crc32c(buf.data(), split)), whole);
    }
    iovec iov[3] = {{buf.data(), 100}, {buf.data() + 100, 0}, {buf.data() + 100, 9900}};
    EXPECT_EQ(crc32c_iov(iov, 3), whole);
}

TEST(Crc32c, DigestBytesAreLittleEndian) {
    uint8_t out[4];
    store_digest(out, 0xE3069283u);
    EXPECT_EQ(out[0], 0x83);
    EXPECT_EQ(out[3], 0xE3);
    EXPECT_EQ(load_digest(out), 0xE3069283u);
}

}  // namespace
}  // namespace nocstor::nvmf
