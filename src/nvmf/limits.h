// Fixed limits this target advertises (CAP, Identify, ICResp) and sizes its tables with.
#pragma once

#include <cstdint>

namespace nocstor::nvmf {

inline constexpr uint32_t kMaxQueueEntries = 128;                   // CAP.MQES + 1, also MAXCMD
inline constexpr uint32_t kRequestsPerConn = kMaxQueueEntries + 8;  // + slack for AERs in flight
inline constexpr uint32_t kInCapsuleDataSize = 8192;                // admin, fabrics and I/O
inline constexpr uint32_t kMaxH2CData = 128 * 1024;                 // ICResp MAXH2CDATA
inline constexpr uint32_t kMaxDataTransfer = 128 * 1024;            // one pool buffer
inline constexpr uint8_t kMdts = 5;                                 // 2^5 * 4 KiB = 128 KiB
inline constexpr uint16_t kMaxIoQueues = 64;                        // per controller
inline constexpr uint8_t kAerl = 3;                                 // 0-based: 4 AERs held
inline constexpr uint16_t kKeepAliveGranularity100ms = 10;          // KAS
inline constexpr uint8_t kCapTimeout500ms = 20;                     // CAP.TO: 10 s
inline constexpr uint32_t kMaxDsmRanges = 256;

}  // namespace nocstor::nvmf
