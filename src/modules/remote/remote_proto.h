// The remote bdev's wire format on the NoC: NocDescriptor (runtime/noc.h, one 64-byte
// NVMe-SQE-shaped slot) with these conventions.
//
//   request    X -> Y  opcode (NVMe I/O opcode, or kOpReset / kOpAbort), cid = X's request slot,
//                      user_ctx = slot generation | slot, target_id = the export on Y, slba/nlb,
//                      data as arena offsets: up to two segments inline (buf_off/buf_len), more
//                      through kNocFlagSglIndirect (buf_off[0] -> NocSge[iov_cnt] in the arena)
//   completion Y -> X  the request echoed with kNocFlagCompletion, status = IoStatus, result =
//                      the NVMe status (sct << 8 | sc) when status is IoStatus::NvmeError
//   abort      X -> Y  kOpAbort, cid/user_ctx of the request to abort; Y answers the aborted
//                      request (status Aborted) if it had not reached the base bdev yet, and
//                      sends nothing for the abort itself
#pragma once

#include "bdev/bdev_io.h"
#include "runtime/noc.h"

#include <cstdint>

namespace nocstor::remote {

inline constexpr uint8_t kOpReset = 0xc1;  // reset the export's base bdev
inline constexpr uint8_t kOpAbort = 0xc2;  // abort request (cid, user_ctx)
// Y -> X, unanswered: the base of export target_id now has slba blocks (Y in another process).
inline constexpr uint8_t kOpResized = 0xc3;

// NVMe generic status "Namespace Not Ready" (DNR clear): the owner's process is down; a host
// may retry, and the I/O succeeds again once the process is back.
inline constexpr uint8_t kScNamespaceNotReady = 0x82;

// Segments an indirect SGL may have; a request with more is bounced through one buffer.
inline constexpr uint32_t kMaxSegments = 64;

inline uint8_t opcode_of(IoType t) {
    switch (t) {
        case IoType::Read:
            return kNocOpRead;
        case IoType::Write:
            return kNocOpWrite;
        case IoType::Flush:
            return kNocOpFlush;
        case IoType::Unmap:
            return kNocOpDsm;
        case IoType::WriteZeroes:
            return kNocOpWriteZeroes;
        default:
            return kOpReset;
    }
}

inline bool has_data(uint8_t opcode) {
    return opcode == kNocOpRead || opcode == kNocOpWrite;
}

inline uint64_t make_ctx(uint32_t gen, uint32_t slot) {
    return uint64_t(gen) << 32 | slot;
}

}  // namespace nocstor::remote
