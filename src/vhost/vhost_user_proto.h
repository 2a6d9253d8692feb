// The vhost-user protocol's wire format (QEMU docs/interop/vhost-user.rst) and the virtio-blk
// and split-virtqueue layouts (virtio 1.1, sections 2.6 and 5.2) that a vhost-user-blk server
// needs. Everything is little-endian; nocstor runs on little-endian hosts only (x86-64, arm64).
#pragma once

#include <cstddef>
#include <cstdint>

namespace nocstor::vhost {

// --- vhost-user requests (front-end → back-end) ---
enum class Req : uint32_t {
    GetFeatures = 1,
    SetFeatures = 2,
    SetOwner = 3,
    ResetOwner = 4,
    SetMemTable = 5,
    SetLogBase = 6,
    SetLogFd = 7,
    SetVringNum = 8,
    SetVringAddr = 9,
    SetVringBase = 10,
    GetVringBase = 11,
    SetVringKick = 12,
    SetVringCall = 13,
    SetVringErr = 14,
    GetProtocolFeatures = 15,
    SetProtocolFeatures = 16,
    GetQueueNum = 17,
    SetVringEnable = 18,
    SendRarp = 19,
    NetSetMtu = 20,
    SetBackendReqFd = 21,
    IotlbMsg = 22,
    SetVringEndian = 23,
    GetConfig = 24,
    SetConfig = 25,
    GetInflightFd = 31,
    SetInflightFd = 32,
    ResetDevice = 34,
    GetMaxMemSlots = 36,
    SetStatus = 39,
    GetStatus = 40,
};
const char* req_name(uint32_t req);

// Header flags.
constexpr uint32_t kVersionMask = 0x3;
constexpr uint32_t kVersion = 0x1;
constexpr uint32_t kFlagReply = 0x4;
constexpr uint32_t kFlagNeedReply = 0x8;

// Feature bits (virtio + vhost-user).
constexpr uint64_t bit(unsigned n) {
    return uint64_t(1) << n;
}
constexpr unsigned kBlkSizeMax = 1, kBlkSegMax = 2, kBlkRo = 5, kBlkBlkSize = 6, kBlkFlush = 9,
                   kBlkTopology = 10, kBlkConfigWce = 11, kBlkMq = 12, kBlkDiscard = 13,
                   kBlkWriteZeroes = 14;
constexpr unsigned kRingIndirectDesc = 28, kRingEventIdx = 29, kProtocolFeatures = 30,
                   kVersion1 = 32;

// Protocol feature bits.
constexpr unsigned kPfMq = 0, kPfReplyAck = 3, kPfBackendReq = 5, kPfConfig = 9,
                   kPfInflightShmfd = 12, kPfResetDevice = 13, kPfStatus = 16;

// --- back-end → front-end requests, on the channel SET_BACKEND_REQ_FD hands over ---
constexpr uint32_t kBackendConfigChangeMsg = 2;  // the config space changed: re-read it

// u64 payload of SET_VRING_KICK/CALL/ERR: queue index in the low byte, no fd when this is set.
constexpr uint64_t kVringNoFd = 0x100;

constexpr size_t kMaxMemRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
constexpr size_t kMaxFds = 8;
constexpr uint32_t kMaxQueues = 64;
constexpr uint32_t kMaxQueueSize = 1024;

struct MsgHeader {
    uint32_t request;
    uint32_t flags;
    uint32_t size;  // payload bytes that follow
};
static_assert(sizeof(MsgHeader) == 12);

struct VringState {
    uint32_t index;
    uint32_t num;
};

struct VringAddr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;  // the front-end's virtual address (ring addresses use these)
    uint64_t mmap_offset;
};

struct MemTable {
    uint32_t nregions;
    uint32_t padding;
    MemRegion regions[kMaxMemRegions];
};

constexpr size_t kConfigSpaceMax = 256;
struct ConfigMsg {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t region[kConfigSpaceMax];
};
constexpr size_t kConfigHeaderSize = 12;

struct InflightMsg {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
};
static_assert(sizeof(InflightMsg) == 24);

// The largest payload any request carries (the memory table).
constexpr size_t kMaxPayload = sizeof(MemTable) > sizeof(ConfigMsg) ? sizeof(MemTable)
                                                                    : sizeof(ConfigMsg);

// --- split virtqueue ---
struct VringDesc {
    uint64_t addr;  // guest physical
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
constexpr uint16_t kUsedNoNotify = 1;      // used->flags: the device asks for no kicks
constexpr uint16_t kAvailNoInterrupt = 1;  // avail->flags: the driver asks for no interrupts

struct VringAvail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];  // then used_event (EVENT_IDX)
};
struct VringUsedElem {
    uint32_t id;
    uint32_t len;
};
struct VringUsed {
    uint16_t flags;
    uint16_t idx;
    VringUsedElem ring[];  // then avail_event (EVENT_IDX)
};

// --- virtio-blk ---
constexpr uint32_t kBlkTIn = 0, kBlkTOut = 1, kBlkTFlush = 4, kBlkTGetId = 8, kBlkTDiscard = 11,
                   kBlkTWriteZeroes = 13;
constexpr uint8_t kBlkSOk = 0, kBlkSIoErr = 1, kBlkSUnsupp = 2;
constexpr uint32_t kBlkIdBytes = 20;
constexpr uint32_t kSectorSize = 512;  // virtio-blk addresses in 512-byte sectors always

struct BlkOutHdr {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
};
static_assert(sizeof(BlkOutHdr) == 16);

struct BlkDiscardWz {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;  // bit 0: unmap (WRITE_ZEROES may deallocate)
};
static_assert(sizeof(BlkDiscardWz) == 16);

#pragma pack(push, 1)
struct BlkConfig {
    uint64_t capacity;  // 512-byte sectors
    uint32_t size_max;
    uint32_t seg_max;
    uint16_t cylinders;
    uint8_t heads;
    uint8_t sectors;
    uint32_t blk_size;
    uint8_t physical_block_exp;
    uint8_t alignment_offset;
    uint16_t min_io_size;
    uint32_t opt_io_size;
    uint8_t writeback;
    uint8_t unused0;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
};
#pragma pack(pop)
static_assert(sizeof(BlkConfig) == 60);
constexpr size_t kBlkConfigWritebackOffset = offsetof(BlkConfig, writeback);

// --- the inflight region (QEMU's VuVirtqInflight for split rings) ---
struct InflightDesc {
    uint8_t inflight;
    uint8_t padding[5];
    uint16_t next;
    uint64_t counter;
};
static_assert(sizeof(InflightDesc) == 16);
struct InflightQueue {
    uint64_t features;
    uint16_t version;
    uint16_t desc_num;
    uint16_t last_batch_head;
    uint16_t used_idx;
    InflightDesc desc[];
};
constexpr uint16_t kInflightVersion = 1;
// Bytes of one queue's part of the region (as libvhost-user computes it).
constexpr uint64_t inflight_queue_bytes(uint16_t queue_size) {
    return (sizeof(InflightDesc) * queue_size + sizeof(uint16_t) + 63) & ~uint64_t(63);
}

}  // namespace nocstor::vhost
