// iSCSI PDU layout (RFC 7143 section 11): the 48-byte Basic Header Segment, opcodes, the field
// offsets the target reads and writes, and big-endian accessors. Everything on the wire is
// big-endian except the CRC32C digests, which are sent as the bytes of the little-endian value
// (as Linux, libiscsi and SPDK do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "util/be_codec.h"

namespace nocstor::iscsi_tgt {

inline constexpr size_t kBhsLen = 48;
inline constexpr size_t kDigestLen = 4;
inline constexpr uint32_t kReservedTag = 0xffffffffu;

// Initiator opcodes.
enum class IOp : uint8_t {
    NopOut = 0x00,
    ScsiCmd = 0x01,
    TaskMgmt = 0x02,
    Login = 0x03,
    Text = 0x04,
    DataOut = 0x05,
    Logout = 0x06,
    Snack = 0x10,
};
// Target opcodes.
enum class TOp : uint8_t {
    NopIn = 0x20,
    ScsiRsp = 0x21,
    TaskMgmtRsp = 0x22,
    LoginRsp = 0x23,
    TextRsp = 0x24,
    DataIn = 0x25,
    LogoutRsp = 0x26,
    R2T = 0x31,
    AsyncMsg = 0x32,
    Reject = 0x3f,
};

enum class RejectReason : uint8_t {
    DataDigestError = 0x02,
    SnackReject = 0x03,
    ProtocolError = 0x04,
    CommandNotSupported = 0x05,
    ImmediateCommandReject = 0x06,
    TaskInProgress = 0x07,
    InvalidDataAck = 0x08,
    InvalidPduField = 0x09,
    OutOfResources = 0x0a,
    WaitingForLogout = 0x0c,
};

// Login response status (class << 8 | detail), RFC 7143 11.13.5.
enum LoginStatus : uint16_t {
    kLoginSuccess = 0x0000,
    kLoginInitiatorError = 0x0200,
    kLoginAuthFailed = 0x0201,
    kLoginForbidden = 0x0202,
    kLoginTargetNotFound = 0x0203,
    kLoginTargetRemoved = 0x0204,
    kLoginUnsupportedVersion = 0x0205,
    kLoginTooManyConnections = 0x0206,
    kLoginMissingParameter = 0x0207,
    kLoginCantIncludeInSession = 0x0208,
    kLoginSessionTypeUnsupported = 0x0209,
    kLoginSessionDoesNotExist = 0x020a,
    kLoginInvalidDuringLogin = 0x020b,
    kLoginTargetError = 0x0300,
    kLoginServiceUnavailable = 0x0301,
    kLoginOutOfResources = 0x0302,
};

// TMF functions and responses (RFC 7143 11.5 / 11.6).
enum TmfFunction : uint8_t {
    kTmfAbortTask = 1,
    kTmfAbortTaskSet = 2,
    kTmfClearAca = 3,
    kTmfClearTaskSet = 4,
    kTmfLunReset = 5,
    kTmfTargetWarmReset = 6,
    kTmfTargetColdReset = 7,
    kTmfTaskReassign = 8,
};
enum TmfResponse : uint8_t {
    kTmfComplete = 0,
    kTmfNoTask = 1,
    kTmfNoLun = 2,
    kTmfTaskAllegiant = 3,
    kTmfReassignUnsupported = 4,
    kTmfNotSupported = 5,
    kTmfAuthFailed = 6,
    kTmfRejected = 255,
};

// Byte offsets shared by most PDUs.
namespace off {
inline constexpr size_t kOpcode = 0;  // I bit 0x40 | opcode 0x3f
inline constexpr size_t kFlags = 1;   // F bit 0x80 and opcode specific
inline constexpr size_t kTotalAhs = 4;
inline constexpr size_t kDataSegLen = 5;  // 24 bits
inline constexpr size_t kLun = 8;
inline constexpr size_t kItt = 16;
inline constexpr size_t kTtt = 20;
inline constexpr size_t kCmdSn = 24;   // initiator PDUs
inline constexpr size_t kStatSn = 24;  // target PDUs
inline constexpr size_t kExpStatSn = 28;
inline constexpr size_t kExpCmdSn = 28;
inline constexpr size_t kMaxCmdSn = 32;
inline constexpr size_t kDataSn = 36;
inline constexpr size_t kBufferOffset = 40;
}  // namespace off

inline constexpr uint8_t kFinal = 0x80;
inline constexpr uint8_t kImmediate = 0x40;
// SCSI Command flags.
inline constexpr uint8_t kCmdRead = 0x40;
inline constexpr uint8_t kCmdWrite = 0x20;
// Login flags.
inline constexpr uint8_t kLoginTransit = 0x80;
inline constexpr uint8_t kLoginContinue = 0x40;
// Data-In flags.
inline constexpr uint8_t kDataInAck = 0x40;
inline constexpr uint8_t kDataInOverflow = 0x04;
inline constexpr uint8_t kDataInUnderflow = 0x02;
inline constexpr uint8_t kDataInStatus = 0x01;
// SCSI Response flags.
inline constexpr uint8_t kRspOverflow = 0x04;
inline constexpr uint8_t kRspUnderflow = 0x02;

using be::get16;
using be::get24;
using be::get32;
using be::get64;
using be::put16;
using be::put24;
using be::put32;
using be::put64;

// Serial number arithmetic (RFC 1982, 32 bits) for CmdSN / StatSN comparisons.
inline bool sn_lt(uint32_t a, uint32_t b) {
    return a != b && int32_t(a - b) < 0;
}
inline bool sn_le(uint32_t a, uint32_t b) {
    return a == b || sn_lt(a, b);
}

inline uint32_t pad4(uint32_t n) {
    return (n + 3) & ~3u;
}

// A received BHS, read field by field.
struct Bhs {
    const uint8_t* b;

    uint8_t opcode() const { return b[off::kOpcode] & 0x3f; }
    bool immediate() const { return b[off::kOpcode] & kImmediate; }
    uint8_t flags() const { return b[off::kFlags]; }
    bool final() const { return b[off::kFlags] & kFinal; }
    uint32_t ahs_len() const { return uint32_t(b[off::kTotalAhs]) * 4; }
    uint32_t data_len() const { return get24(b + off::kDataSegLen); }
    uint64_t lun_field() const { return get64(b + off::kLun); }
    uint32_t itt() const { return get32(b + off::kItt); }
    uint32_t ttt() const { return get32(b + off::kTtt); }
    uint32_t cmd_sn() const { return get32(b + off::kCmdSn); }
    uint32_t exp_stat_sn() const { return get32(b + off::kExpStatSn); }
    uint32_t data_sn() const { return get32(b + off::kDataSn); }
    uint32_t buffer_offset() const { return get32(b + off::kBufferOffset); }
    // SCSI Command.
    uint32_t expected_xfer_len() const { return get32(b + 20); }
    const uint8_t* cdb() const { return b + 32; }
};

// A LUN number from the 8-byte LUN field (SAM-2 single level: peripheral or flat addressing)
// and back. Values above 16383 do not fit and map to an invalid LUN.
uint32_t decode_lun(uint64_t field);
uint64_t encode_lun(uint32_t lun);

// CRC32C digest of the header (BHS + AHS) or of a data segment with its padding.
uint32_t header_digest(const uint8_t* hdr, size_t len);

}  // namespace nocstor::iscsi_tgt
