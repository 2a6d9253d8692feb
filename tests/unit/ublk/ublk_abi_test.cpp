// The ublk ABI values we define ourselves because Debian 12's headers predate them: they must be
// the kernel's (include/uapi/linux/ublk_cmd.h of 6.12), or every command fails with -EOPNOTSUPP.
#include <gtest/gtest.h>

#include "ublk/ublk_abi.h"

using namespace nocstor::ublk;

TEST(UblkAbi, IoctlEncodedControlOpcodesAreTheKernels) {
    EXPECT_EQ(ctrl_op(UBLK_CMD_ADD_DEV, true), 0xc0207504u);       // UBLK_U_CMD_ADD_DEV
    EXPECT_EQ(ctrl_op(UBLK_CMD_DEL_DEV, true), 0xc0207505u);       // UBLK_U_CMD_DEL_DEV
    EXPECT_EQ(ctrl_op(UBLK_CMD_START_DEV, true), 0xc0207506u);     // UBLK_U_CMD_START_DEV
    EXPECT_EQ(ctrl_op(UBLK_CMD_STOP_DEV, true), 0xc0207507u);      // UBLK_U_CMD_STOP_DEV
    EXPECT_EQ(ctrl_op(UBLK_CMD_SET_PARAMS, true), 0xc0207508u);    // UBLK_U_CMD_SET_PARAMS
    EXPECT_EQ(ctrl_op(UBLK_CMD_GET_DEV_INFO, true), 0x80207502u);  // _IOR: a query
    EXPECT_EQ(ctrl_op(UBLK_CMD_GET_PARAMS, true), 0x80207509u);    // _IOR
    EXPECT_EQ(ctrl_op(kCmdGetFeatures, true), 0x80207513u);        // UBLK_U_CMD_GET_FEATURES
    EXPECT_EQ(ctrl_op(UBLK_CMD_START_USER_RECOVERY, true), 0xc0207510u);
    EXPECT_EQ(ctrl_op(UBLK_CMD_END_USER_RECOVERY, true), 0xc0207511u);
}

TEST(UblkAbi, IoOpcodesAndLegacyNumbers) {
    EXPECT_EQ(io_op(UBLK_IO_FETCH_REQ, true), 0xc0107520u);             // UBLK_U_IO_FETCH_REQ
    EXPECT_EQ(io_op(UBLK_IO_COMMIT_AND_FETCH_REQ, true), 0xc0107521u);  // ..._COMMIT_AND_FETCH_REQ
    // Kernels without UBLK_F_CMD_IOCTL_ENCODE take the bare numbers.
    EXPECT_EQ(io_op(UBLK_IO_FETCH_REQ, false), 0x20u);
    EXPECT_EQ(ctrl_op(UBLK_CMD_ADD_DEV, false), 0x04u);
}

TEST(UblkAbi, DescriptorAreaIsWholePages) {
    EXPECT_EQ(desc_area_bytes(1), 4096u);
    EXPECT_EQ(desc_area_bytes(128), 4096u);  // 128 x 24 bytes
    EXPECT_EQ(desc_area_bytes(256), 8192u);
    // Queue q's descriptors start at q x this in the char device's mmap space.
    EXPECT_EQ(desc_area_bytes(UBLK_MAX_QUEUE_DEPTH), 98304u);
    EXPECT_STREQ(state_name(UBLK_S_DEV_QUIESCED), "quiesced");
}
