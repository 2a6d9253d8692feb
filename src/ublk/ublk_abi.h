// The ublk driver's user ABI (linux/ublk_cmd.h) plus what Debian 12's 6.1 headers lack: the
// ioctl-encoded command opcodes (UBLK_F_CMD_IOCTL_ENCODE, the only ones a kernel built without
// CONFIG_BLKDEV_UBLK_LEGACY_OPCODES accepts), GET_FEATURES and the newer feature bits. The
// values are the kernel's ABI, see Documentation/block/ublk.rst.
#pragma once

#include <linux/ublk_cmd.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace nocstor::ublk {

constexpr uint32_t kCmdGetFeatures = 0x13;

constexpr uint64_t kFeatureCmdIoctlEncode = 1ULL << 6;
constexpr uint64_t kFeatureUserCopy = 1ULL << 7;

// Control commands: ioctl-encoded where the kernel announced it (the queries as _IOR, the
// rest as _IOWR, as the kernel's UBLK_U_CMD_* are), the bare number otherwise.
inline uint32_t ctrl_op(uint32_t nr, bool ioctl_encode) {
    if (!ioctl_encode) return nr;
    const bool query = nr == UBLK_CMD_GET_QUEUE_AFFINITY || nr == UBLK_CMD_GET_DEV_INFO ||
                       nr == UBLK_CMD_GET_PARAMS || nr == kCmdGetFeatures;
    return query ? uint32_t(_IOR('u', nr, struct ublksrv_ctrl_cmd))
                 : uint32_t(_IOWR('u', nr, struct ublksrv_ctrl_cmd));
}
inline uint32_t io_op(uint32_t nr, bool ioctl_encode) {
    return ioctl_encode ? uint32_t(_IOWR('u', nr, struct ublksrv_io_cmd)) : nr;
}

static_assert(sizeof(ublksrv_ctrl_cmd) == 32, "ublksrv_ctrl_cmd is 32 bytes in the kernel ABI");
static_assert(sizeof(ublksrv_io_cmd) == 16, "ublksrv_io_cmd is 16 bytes in the kernel ABI");
static_assert(sizeof(ublksrv_io_desc) == 24, "ublksrv_io_desc is 24 bytes in the kernel ABI");
static_assert(sizeof(ublksrv_ctrl_dev_info) == 64, "ublksrv_ctrl_dev_info is 64 bytes");

// The character device of device `id` and its block device.
inline constexpr const char* kControlPath = "/dev/ublk-control";
inline constexpr const char* kCharPrefix = "/dev/ublkc";
inline constexpr const char* kBlockPrefix = "/dev/ublkb";

// Bytes of one queue's I/O descriptor array in the char device's mmap space.
inline size_t desc_area_bytes(uint32_t depth) {
    const size_t page = 4096;
    return (depth * sizeof(ublksrv_io_desc) + page - 1) / page * page;
}

const char* state_name(uint16_t state);

}  // namespace nocstor::ublk
