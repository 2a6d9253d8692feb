// NVMe base and NVMe over Fabrics wire definitions (NVMe 1.4/2.0, NVMe-oF 1.1).
//
// Every struct here is the exact on-the-wire / in-memory layout of a spec data structure:
// packed, sized with static_assert, key offsets checked with offsetof. Multi-byte fields are
// little-endian on the wire; the host is assumed little-endian (x86-64, arm64), so fields are
// read and written directly. The static_assert below refuses to build anywhere else.
#pragma once

#include <cstddef>
#include <cstdint>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "nocstor assumes a little-endian host");

namespace nocstor::nvme {

// ---------------------------------------------------------------------------------------------
// Opcodes
// ---------------------------------------------------------------------------------------------
namespace admin_opc {
inline constexpr uint8_t kDeleteIoSq = 0x00;
inline constexpr uint8_t kCreateIoSq = 0x01;
inline constexpr uint8_t kGetLogPage = 0x02;
inline constexpr uint8_t kDeleteIoCq = 0x04;
inline constexpr uint8_t kCreateIoCq = 0x05;
inline constexpr uint8_t kIdentify = 0x06;
inline constexpr uint8_t kAbort = 0x08;
inline constexpr uint8_t kSetFeatures = 0x09;
inline constexpr uint8_t kGetFeatures = 0x0A;
inline constexpr uint8_t kAsyncEventRequest = 0x0C;
inline constexpr uint8_t kNamespaceManagement = 0x0D;
inline constexpr uint8_t kFirmwareCommit = 0x10;
inline constexpr uint8_t kFirmwareImageDownload = 0x11;
inline constexpr uint8_t kDeviceSelfTest = 0x14;
inline constexpr uint8_t kNamespaceAttachment = 0x15;
inline constexpr uint8_t kKeepAlive = 0x18;
inline constexpr uint8_t kDirectiveSend = 0x19;
inline constexpr uint8_t kDirectiveReceive = 0x1A;
inline constexpr uint8_t kDoorbellBufferConfig = 0x7C;
inline constexpr uint8_t kFabrics = 0x7F;
inline constexpr uint8_t kFormatNvm = 0x80;
inline constexpr uint8_t kSecuritySend = 0x81;
inline constexpr uint8_t kSecurityReceive = 0x82;
inline constexpr uint8_t kSanitize = 0x84;
}  // namespace admin_opc

namespace nvm_opc {
inline constexpr uint8_t kFlush = 0x00;
inline constexpr uint8_t kWrite = 0x01;
inline constexpr uint8_t kRead = 0x02;
inline constexpr uint8_t kWriteUncorrectable = 0x04;
inline constexpr uint8_t kCompare = 0x05;
inline constexpr uint8_t kWriteZeroes = 0x08;
inline constexpr uint8_t kDatasetManagement = 0x09;
inline constexpr uint8_t kVerify = 0x0C;
inline constexpr uint8_t kReservationRegister = 0x0D;
inline constexpr uint8_t kReservationReport = 0x0E;
inline constexpr uint8_t kReservationAcquire = 0x11;
inline constexpr uint8_t kReservationRelease = 0x15;
inline constexpr uint8_t kFabrics = 0x7F;  // fabrics commands are legal on I/O queues too
}  // namespace nvm_opc

// Fabrics command type (byte 4 of a fabrics SQE).
namespace fctype {
inline constexpr uint8_t kPropertySet = 0x00;
inline constexpr uint8_t kConnect = 0x01;
inline constexpr uint8_t kPropertyGet = 0x04;
inline constexpr uint8_t kAuthSend = 0x05;
inline constexpr uint8_t kAuthReceive = 0x06;
inline constexpr uint8_t kDisconnect = 0x08;
}  // namespace fctype

// ---------------------------------------------------------------------------------------------
// SGL descriptor (16 bytes) and the submission queue entry (64 bytes)
// ---------------------------------------------------------------------------------------------
namespace sgl_type {  // descriptor type, high nibble of byte 15
inline constexpr uint8_t kDataBlock = 0x0;
inline constexpr uint8_t kBitBucket = 0x1;
inline constexpr uint8_t kSegment = 0x2;
inline constexpr uint8_t kLastSegment = 0x3;
inline constexpr uint8_t kKeyedDataBlock = 0x4;
inline constexpr uint8_t kTransportDataBlock = 0x5;
}  // namespace sgl_type

namespace sgl_subtype {  // low nibble of byte 15
inline constexpr uint8_t kAddress = 0x0;
inline constexpr uint8_t kOffset = 0x1;
inline constexpr uint8_t kTransport = 0xA;
}  // namespace sgl_subtype

// Whole identifier byte for the two SGL1 forms NVMe/TCP uses.
inline constexpr uint8_t kSglIdTransportDataBlock = 0x5A;  // data moved by R2T/C2HData
inline constexpr uint8_t kSglIdInCapsuleOffset = 0x01;     // data block, offset: in-capsule

struct __attribute__((packed)) SglDescriptor {
    uint64_t address;
    uint32_t length;
    uint8_t reserved[3];
    uint8_t id;  // bits 7:4 type, 3:0 subtype

    uint8_t type() const { return id >> 4; }
    uint8_t subtype() const { return id & 0x0F; }
    void set_type(uint8_t type, uint8_t subtype) {
        id = static_cast<uint8_t>((type << 4) | (subtype & 0x0F));
    }
};
static_assert(sizeof(SglDescriptor) == 16);
static_assert(offsetof(SglDescriptor, id) == 15);

// PSDT, bits 7:6 of SQE byte 1.
inline constexpr uint8_t kPsdtPrp = 0x0;
inline constexpr uint8_t kPsdtSglMptrContiguous = 0x1;
inline constexpr uint8_t kPsdtSglMptrSgl = 0x2;
inline constexpr uint8_t kSqeFlagsPsdtSgl = 0x40;  // flags byte value fabrics hosts send

struct __attribute__((packed)) SubmissionQueueEntry {
    uint8_t opcode;
    uint8_t flags;  // bits 1:0 FUSE, bits 7:6 PSDT
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2;
    uint32_t cdw3;
    uint64_t mptr;
    SglDescriptor sgl1;  // DPTR; PRP forms are never used over fabrics
    uint32_t cdw10;
    uint32_t cdw11;
    uint32_t cdw12;
    uint32_t cdw13;
    uint32_t cdw14;
    uint32_t cdw15;

    uint8_t fuse() const { return flags & 0x3; }
    uint8_t psdt() const { return flags >> 6; }
    // Fabrics commands carry FCTYPE in byte 4 (where NSID would be).
    uint8_t fabrics_type() const { return static_cast<uint8_t>(nsid & 0xFF); }
    // cdw(10) .. cdw(15) by number, for code that indexes dwords.
    uint32_t cdw(unsigned n) const {
        switch (n) {
            case 10:
                return cdw10;
            case 11:
                return cdw11;
            case 12:
                return cdw12;
            case 13:
                return cdw13;
            case 14:
                return cdw14;
            case 15:
                return cdw15;
            default:
                return 0;
        }
    }
};
static_assert(sizeof(SubmissionQueueEntry) == 64);
static_assert(offsetof(SubmissionQueueEntry, nsid) == 4);
static_assert(offsetof(SubmissionQueueEntry, mptr) == 16);
static_assert(offsetof(SubmissionQueueEntry, sgl1) == 24);
static_assert(offsetof(SubmissionQueueEntry, cdw10) == 40);
static_assert(offsetof(SubmissionQueueEntry, cdw15) == 60);

// NVM read/write field helpers.
inline uint64_t rw_slba(const SubmissionQueueEntry& sqe) {
    return (static_cast<uint64_t>(sqe.cdw11) << 32) | sqe.cdw10;
}
inline uint32_t rw_nlb(const SubmissionQueueEntry& sqe) {  // number of blocks, 1-based
    return (sqe.cdw12 & 0xFFFF) + 1;
}
inline bool rw_fua(const SubmissionQueueEntry& sqe) {
    return (sqe.cdw12 >> 30) & 1;
}

// ---------------------------------------------------------------------------------------------
// Completion queue entry (16 bytes) and status
// ---------------------------------------------------------------------------------------------
namespace sct {  // status code type
inline constexpr uint8_t kGeneric = 0x0;
inline constexpr uint8_t kCommandSpecific = 0x1;
inline constexpr uint8_t kMediaError = 0x2;
inline constexpr uint8_t kPath = 0x3;
inline constexpr uint8_t kVendor = 0x7;
}  // namespace sct

namespace sc {  // generic command status (SCT 0)
inline constexpr uint8_t kSuccess = 0x00;
inline constexpr uint8_t kInvalidOpcode = 0x01;
inline constexpr uint8_t kInvalidField = 0x02;
inline constexpr uint8_t kCommandIdConflict = 0x03;
inline constexpr uint8_t kDataTransferError = 0x04;
inline constexpr uint8_t kAbortedPowerLoss = 0x05;
inline constexpr uint8_t kInternalError = 0x06;
inline constexpr uint8_t kAbortRequested = 0x07;
inline constexpr uint8_t kAbortedSqDeletion = 0x08;
inline constexpr uint8_t kAbortedFailedFused = 0x09;
inline constexpr uint8_t kAbortedMissingFused = 0x0A;
inline constexpr uint8_t kInvalidNamespaceOrFormat = 0x0B;
inline constexpr uint8_t kCommandSequenceError = 0x0C;
inline constexpr uint8_t kInvalidSglSegmentDescriptor = 0x0D;
inline constexpr uint8_t kInvalidNumberOfSglDescriptors = 0x0E;
inline constexpr uint8_t kDataSglLengthInvalid = 0x0F;
inline constexpr uint8_t kMetadataSglLengthInvalid = 0x10;
inline constexpr uint8_t kSglDescriptorTypeInvalid = 0x11;
inline constexpr uint8_t kSglOffsetInvalid = 0x16;
inline constexpr uint8_t kHostIdInconsistentFormat = 0x18;
inline constexpr uint8_t kKeepAliveExpired = 0x19;
inline constexpr uint8_t kKeepAliveInvalid = 0x1A;
inline constexpr uint8_t kNamespaceWriteProtected = 0x20;
inline constexpr uint8_t kCommandInterrupted = 0x21;
inline constexpr uint8_t kTransientTransportError = 0x22;
// NVM command set generic status
inline constexpr uint8_t kLbaOutOfRange = 0x80;
inline constexpr uint8_t kCapacityExceeded = 0x81;
inline constexpr uint8_t kNamespaceNotReady = 0x82;
inline constexpr uint8_t kReservationConflict = 0x83;
inline constexpr uint8_t kFormatInProgress = 0x84;
}  // namespace sc

namespace sc_cmd {  // command specific status (SCT 1)
inline constexpr uint8_t kCompletionQueueInvalid = 0x00;
inline constexpr uint8_t kInvalidQueueIdentifier = 0x01;
inline constexpr uint8_t kInvalidQueueSize = 0x02;
inline constexpr uint8_t kAbortCommandLimitExceeded = 0x03;
inline constexpr uint8_t kAsyncEventRequestLimitExceeded = 0x05;
inline constexpr uint8_t kInvalidFirmwareSlot = 0x06;
inline constexpr uint8_t kInvalidFirmwareImage = 0x07;
inline constexpr uint8_t kInvalidLogPage = 0x09;
inline constexpr uint8_t kInvalidFormat = 0x0A;
inline constexpr uint8_t kFeatureIdNotSaveable = 0x0D;
inline constexpr uint8_t kFeatureNotChangeable = 0x0E;
inline constexpr uint8_t kFeatureNotNamespaceSpecific = 0x0F;
// Fabrics command specific (NVMe-oF)
inline constexpr uint8_t kConnectIncompatibleFormat = 0x80;
inline constexpr uint8_t kConnectControllerBusy = 0x81;
inline constexpr uint8_t kConnectInvalidParameters = 0x82;
inline constexpr uint8_t kConnectRestartDiscovery = 0x83;
inline constexpr uint8_t kConnectInvalidHost = 0x84;
inline constexpr uint8_t kInvalidQueueType = 0x85;
inline constexpr uint8_t kDiscoverRestart = 0x90;
inline constexpr uint8_t kAuthenticationRequired = 0x91;
// NVM command set specific
inline constexpr uint8_t kConflictingAttributes = 0x80;
inline constexpr uint8_t kInvalidProtectionInformation = 0x81;
inline constexpr uint8_t kWriteToReadOnlyRange = 0x82;
}  // namespace sc_cmd

namespace sc_media {  // media and data integrity errors (SCT 2)
inline constexpr uint8_t kWriteFault = 0x80;
inline constexpr uint8_t kUnrecoveredReadError = 0x81;
inline constexpr uint8_t kGuardCheckError = 0x82;
inline constexpr uint8_t kApplicationTagCheckError = 0x83;
inline constexpr uint8_t kReferenceTagCheckError = 0x84;
inline constexpr uint8_t kCompareFailure = 0x85;
inline constexpr uint8_t kAccessDenied = 0x86;
inline constexpr uint8_t kDeallocatedOrUnwrittenBlock = 0x87;
}  // namespace sc_media

// The 16-bit status field: bit 0 phase, 8:1 SC, 11:9 SCT, 13:12 CRD, 14 M, 15 DNR.
struct Status {
    uint16_t raw;  // no initializer: keeps Status POD so it packs into CQEs

    static constexpr Status make(uint8_t sct_value, uint8_t sc_value, bool dnr = false) {
        return Status{
            static_cast<uint16_t>((sc_value << 1) | ((sct_value & 0x7) << 9) | (dnr ? 0x8000 : 0))};
    }
    static constexpr Status success() { return Status{}; }
    static constexpr Status generic(uint8_t sc_value, bool dnr = false) {
        return make(sct::kGeneric, sc_value, dnr);
    }
    static constexpr Status command_specific(uint8_t sc_value, bool dnr = false) {
        return make(sct::kCommandSpecific, sc_value, dnr);
    }
    static constexpr Status media(uint8_t sc_value, bool dnr = false) {
        return make(sct::kMediaError, sc_value, dnr);
    }

    constexpr bool phase() const { return raw & 1; }
    constexpr uint8_t sc() const { return static_cast<uint8_t>(raw >> 1); }
    constexpr uint8_t sct() const { return (raw >> 9) & 0x7; }
    constexpr uint8_t crd() const { return (raw >> 12) & 0x3; }
    constexpr bool more() const { return (raw >> 14) & 1; }
    constexpr bool dnr() const { return raw >> 15; }
    constexpr bool ok() const { return (raw & 0xFFFE) == 0; }
    constexpr Status with_phase(bool p) const {
        return Status{static_cast<uint16_t>((raw & 0xFFFE) | (p ? 1 : 0))};
    }
    friend constexpr bool operator==(Status a, Status b) = default;
};
static_assert(sizeof(Status) == 2);
static_assert(Status::generic(sc::kInvalidField, true).raw == 0x8004);
static_assert(Status::command_specific(sc_cmd::kConnectInvalidParameters).raw == 0x0304);

struct __attribute__((packed)) CompletionQueueEntry {
    uint32_t dw0;
    uint32_t dw1;
    uint16_t sqhd;
    uint16_t sqid;
    uint16_t cid;
    Status status;
};
static_assert(sizeof(CompletionQueueEntry) == 16);
static_assert(offsetof(CompletionQueueEntry, cid) == 12);
static_assert(offsetof(CompletionQueueEntry, status) == 14);

// ---------------------------------------------------------------------------------------------
// Fabrics commands: Connect, Property Get/Set
// ---------------------------------------------------------------------------------------------
inline constexpr uint16_t kCntlidDynamic = 0xFFFF;
inline constexpr size_t kNqnFieldSize = 256;
inline constexpr size_t kNqnMaxLength = 223;
inline constexpr char kDiscoveryNqn[] = "nqn.2014-08.org.nvmexpress.discovery";

struct __attribute__((packed)) ConnectCommand {
    uint8_t opcode;  // 0x7F
    uint8_t flags;
    uint16_t cid;
    uint8_t fctype;  // 0x01
    uint8_t reserved1[19];
    SglDescriptor sgl1;
    uint16_t recfmt;
    uint16_t qid;
    uint16_t sqsize;  // 0-based
    uint8_t cattr;    // bit 2: SQ flow control disabled
    uint8_t reserved2;
    uint32_t kato;  // ms
    uint8_t reserved3[12];
};
static_assert(sizeof(ConnectCommand) == 64);
static_assert(offsetof(ConnectCommand, fctype) == 4);
static_assert(offsetof(ConnectCommand, sgl1) == 24);
static_assert(offsetof(ConnectCommand, recfmt) == 40);
static_assert(offsetof(ConnectCommand, qid) == 42);
static_assert(offsetof(ConnectCommand, sqsize) == 44);
static_assert(offsetof(ConnectCommand, cattr) == 46);
static_assert(offsetof(ConnectCommand, kato) == 48);

inline constexpr uint8_t kConnectCattrSqFlowControlDisabled = 1u << 2;

struct __attribute__((packed)) ConnectData {
    uint8_t hostid[16];
    uint16_t cntlid;
    uint8_t reserved1[238];
    char subnqn[kNqnFieldSize];
    char hostnqn[kNqnFieldSize];
    uint8_t reserved2[256];
};
static_assert(sizeof(ConnectData) == 1024);
static_assert(offsetof(ConnectData, cntlid) == 16);
static_assert(offsetof(ConnectData, subnqn) == 256);
static_assert(offsetof(ConnectData, hostnqn) == 512);

// Connect response: dword0 on success = CNTLID | AUTHREQ << 16; on Invalid Parameters it names
// the bad field: IPO (byte offset) in bits 15:0, IATTR (0 = command, 1 = data) in bits 23:16.
struct __attribute__((packed)) ConnectResponse {
    union {
        struct __attribute__((packed)) {
            uint16_t cntlid;
            uint16_t authreq;
        } success;
        struct __attribute__((packed)) {
            uint16_t ipo;
            uint8_t iattr;
            uint8_t reserved;
        } invalid;
        uint32_t raw;
    } dw0;
    uint32_t dw1;
    uint16_t sqhd;
    uint16_t reserved;
    uint16_t cid;
    Status status;
};
static_assert(sizeof(ConnectResponse) == 16);
inline constexpr uint8_t kConnectIattrCommand = 0;
inline constexpr uint8_t kConnectIattrData = 1;

struct __attribute__((packed)) PropertySetCommand {
    uint8_t opcode;
    uint8_t flags;
    uint16_t cid;
    uint8_t fctype;  // 0x00
    uint8_t reserved1[35];
    uint8_t attrib;  // bit 0: 0 = 4-byte property, 1 = 8-byte
    uint8_t reserved2[3];
    uint32_t offset;
    uint64_t value;
    uint8_t reserved3[8];
};
static_assert(sizeof(PropertySetCommand) == 64);
static_assert(offsetof(PropertySetCommand, attrib) == 40);
static_assert(offsetof(PropertySetCommand, offset) == 44);
static_assert(offsetof(PropertySetCommand, value) == 48);

struct __attribute__((packed)) PropertyGetCommand {
    uint8_t opcode;
    uint8_t flags;
    uint16_t cid;
    uint8_t fctype;  // 0x04
    uint8_t reserved1[35];
    uint8_t attrib;
    uint8_t reserved2[3];
    uint32_t offset;
    uint8_t reserved3[16];
};
static_assert(sizeof(PropertyGetCommand) == 64);
static_assert(offsetof(PropertyGetCommand, offset) == 44);
// Property Get response: the value is in dword0 (4 bytes) or dword0..1 (8 bytes).

// ---------------------------------------------------------------------------------------------
// Controller properties (the fabrics view of the BAR registers)
// ---------------------------------------------------------------------------------------------
namespace prop {
inline constexpr uint32_t kCap = 0x00;  // 8 bytes
inline constexpr uint32_t kVs = 0x08;
inline constexpr uint32_t kIntms = 0x0C;
inline constexpr uint32_t kIntmc = 0x10;
inline constexpr uint32_t kCc = 0x14;
inline constexpr uint32_t kCsts = 0x1C;
inline constexpr uint32_t kNssr = 0x20;
inline constexpr uint32_t kNssrResetValue = 0x4E564D65;  // "NVMe"
}  // namespace prop

// CAP: MQES 15:0 (0-based), CQR 16, AMS 18:17, TO 31:24 (500 ms), DSTRD 35:32, NSSRS 36,
// CSS 44:37, BPS 45, MPSMIN 51:48, MPSMAX 55:52.
namespace cap {
inline constexpr uint64_t kCssNvm = 1ull << 37;
inline constexpr uint64_t kCqr = 1ull << 16;
constexpr uint64_t make(uint16_t mqes, uint8_t timeout_500ms, bool nssrs = false,
                        uint8_t mpsmin = 0, uint8_t mpsmax = 0) {
    return static_cast<uint64_t>(mqes) | kCqr | (static_cast<uint64_t>(timeout_500ms) << 24) |
           (nssrs ? (1ull << 36) : 0) | kCssNvm | (static_cast<uint64_t>(mpsmin & 0xF) << 48) |
           (static_cast<uint64_t>(mpsmax & 0xF) << 52);
}
constexpr uint16_t mqes(uint64_t c) {
    return static_cast<uint16_t>(c & 0xFFFF);
}
constexpr uint8_t timeout(uint64_t c) {
    return static_cast<uint8_t>((c >> 24) & 0xFF);
}
constexpr uint8_t dstrd(uint64_t c) {
    return (c >> 32) & 0xF;
}
constexpr uint8_t mpsmin(uint64_t c) {
    return (c >> 48) & 0xF;
}
constexpr uint8_t mpsmax(uint64_t c) {
    return (c >> 52) & 0xF;
}
}  // namespace cap

constexpr uint32_t make_version(uint16_t major, uint8_t minor, uint8_t tertiary = 0) {
    return (static_cast<uint32_t>(major) << 16) | (static_cast<uint32_t>(minor) << 8) | tertiary;
}

// CC: EN 0, CSS 6:4, MPS 10:7, AMS 13:11, SHN 15:14, IOSQES 19:16, IOCQES 23:20.
namespace cc {
inline constexpr uint32_t kEn = 1u << 0;
inline constexpr uint8_t kShnNone = 0;
inline constexpr uint8_t kShnNormal = 1;
inline constexpr uint8_t kShnAbrupt = 2;
constexpr bool en(uint32_t v) {
    return v & kEn;
}
constexpr uint8_t css(uint32_t v) {
    return (v >> 4) & 0x7;
}
constexpr uint8_t mps(uint32_t v) {
    return (v >> 7) & 0xF;
}
constexpr uint8_t ams(uint32_t v) {
    return (v >> 11) & 0x7;
}
constexpr uint8_t shn(uint32_t v) {
    return (v >> 14) & 0x3;
}
constexpr uint8_t iosqes(uint32_t v) {
    return (v >> 16) & 0xF;
}
constexpr uint8_t iocqes(uint32_t v) {
    return (v >> 20) & 0xF;
}
}  // namespace cc

// CSTS: RDY 0, CFS 1, SHST 3:2, NSSRO 4, PP 5.
namespace csts {
inline constexpr uint32_t kRdy = 1u << 0;
inline constexpr uint32_t kCfs = 1u << 1;
inline constexpr uint8_t kShstNormal = 0;
inline constexpr uint8_t kShstOccurring = 1;
inline constexpr uint8_t kShstComplete = 2;
constexpr uint32_t make(bool rdy, bool cfs, uint8_t shst) {
    return (rdy ? kRdy : 0) | (cfs ? kCfs : 0) | (static_cast<uint32_t>(shst & 0x3) << 2);
}
constexpr uint8_t shst(uint32_t v) {
    return (v >> 2) & 0x3;
}
}  // namespace csts

// ---------------------------------------------------------------------------------------------
// Identify
// ---------------------------------------------------------------------------------------------
namespace cns {
inline constexpr uint8_t kNamespace = 0x00;
inline constexpr uint8_t kController = 0x01;
inline constexpr uint8_t kActiveNamespaceList = 0x02;
inline constexpr uint8_t kNamespaceIdDescriptorList = 0x03;
inline constexpr uint8_t kNamespaceCsi = 0x05;
inline constexpr uint8_t kControllerCsi = 0x06;
inline constexpr uint8_t kActiveNamespaceListCsi = 0x07;
inline constexpr uint8_t kNamespaceIndependent = 0x08;
}  // namespace cns

struct __attribute__((packed)) PowerStateDescriptor {
    uint16_t mp;
    uint8_t reserved1;
    uint8_t flags;  // MXPS bit0, NOPS bit1
    uint32_t enlat;
    uint32_t exlat;
    uint8_t rrt;
    uint8_t rrl;
    uint8_t rwt;
    uint8_t rwl;
    uint16_t idlp;
    uint8_t ips;
    uint8_t reserved2;
    uint16_t actp;
    uint8_t apw_aps;
    uint8_t reserved3[9];
};
static_assert(sizeof(PowerStateDescriptor) == 32);

// OAES / Async Event Configuration bits.
inline constexpr uint32_t kOaesNamespaceAttributeNotices = 1u << 8;
inline constexpr uint32_t kOaesFirmwareActivationNotices = 1u << 9;
inline constexpr uint32_t kOaesAnaChangeNotices = 1u << 11;
inline constexpr uint32_t kOaesDiscoveryLogChangeNotices = 1u << 31;

inline constexpr uint8_t kCntrlTypeIo = 1;
inline constexpr uint8_t kCntrlTypeDiscovery = 2;
inline constexpr uint8_t kCntrlTypeAdmin = 3;

// ONCS bits.
inline constexpr uint16_t kOncsCompare = 1u << 0;
inline constexpr uint16_t kOncsWriteUncorrectable = 1u << 1;
inline constexpr uint16_t kOncsDatasetManagement = 1u << 2;
inline constexpr uint16_t kOncsWriteZeroes = 1u << 3;
inline constexpr uint16_t kOncsReservations = 1u << 5;
// LPA bits.
inline constexpr uint8_t kLpaSmartPerNamespace = 1u << 0;
inline constexpr uint8_t kLpaCommandsEffects = 1u << 1;
inline constexpr uint8_t kLpaExtendedData = 1u << 2;
// CMIC bits.
inline constexpr uint8_t kCmicMultiPort = 1u << 0;
inline constexpr uint8_t kCmicMultiController = 1u << 1;
inline constexpr uint8_t kCmicAna = 1u << 3;
// SGLS bits.
inline constexpr uint32_t kSglsSupportedNoAlign = 1u << 0;
inline constexpr uint32_t kSglsKeyedDataBlock = 1u << 2;
inline constexpr uint32_t kSglsOffset = 1u << 20;
// FCATT bit 0: 1 = static controller model; 0 = dynamic.
inline constexpr uint8_t kFcattStaticModel = 1u << 0;

struct __attribute__((packed)) IdentifyController {
    uint16_t vid;
    uint16_t ssvid;
    char sn[20];
    char mn[40];
    char fr[8];
    uint8_t rab;
    uint8_t ieee[3];
    uint8_t cmic;
    uint8_t mdts;
    uint16_t cntlid;
    uint32_t ver;
    uint32_t rtd3r;
    uint32_t rtd3e;
    uint32_t oaes;
    uint32_t ctratt;
    uint16_t rrls;
    uint8_t reserved102[9];
    uint8_t cntrltype;
    uint8_t fguid[16];
    uint16_t crdt1;
    uint16_t crdt2;
    uint16_t crdt3;
    uint8_t reserved134[119];
    uint8_t nvmsr;
    uint8_t vwci;
    uint8_t mec;
    // Admin command set attributes
    uint16_t oacs;
    uint8_t acl;
    uint8_t aerl;
    uint8_t frmw;
    uint8_t lpa;
    uint8_t elpe;
    uint8_t npss;
    uint8_t avscc;
    uint8_t apsta;
    uint16_t wctemp;
    uint16_t cctemp;
    uint16_t mtfa;
    uint32_t hmpre;
    uint32_t hmmin;
    uint8_t tnvmcap[16];
    uint8_t unvmcap[16];
    uint32_t rpmbs;
    uint16_t edstt;
    uint8_t dsto;
    uint8_t fwug;
    uint16_t kas;  // 100 ms units
    uint16_t hctma;
    uint16_t mntmt;
    uint16_t mxtmt;
    uint32_t sanicap;
    uint32_t hmminds;
    uint16_t hmmaxd;
    uint16_t nsetidmax;
    uint16_t endgidmax;
    uint8_t anatt;
    uint8_t anacap;
    uint32_t anagrpmax;
    uint32_t nanagrpid;
    uint32_t pels;
    uint16_t domainid;
    uint8_t reserved358[10];
    uint8_t megcap[16];
    uint8_t reserved384[128];
    // NVM command set attributes
    uint8_t sqes;
    uint8_t cqes;
    uint16_t maxcmd;
    uint32_t nn;
    uint16_t oncs;
    uint16_t fuses;
    uint8_t fna;
    uint8_t vwc;
    uint16_t awun;
    uint16_t awupf;
    uint8_t icsvscc;
    uint8_t nwpc;
    uint16_t acwu;
    uint16_t cdfs;
    uint32_t sgls;
    uint32_t mnan;
    uint8_t maxdna[16];
    uint32_t maxcna;
    uint8_t reserved564[204];
    char subnqn[256];
    uint8_t reserved1024[768];
    // NVMe over Fabrics attributes
    uint32_t ioccsz;  // 16-byte units, SQE included
    uint32_t iorcsz;  // 16-byte units
    uint16_t icdoff;  // 16-byte units
    uint8_t fcatt;
    uint8_t msdbd;
    uint16_t ofcs;
    uint8_t reserved1806[242];
    PowerStateDescriptor psd[32];
    uint8_t vendor_specific[1024];
};
static_assert(sizeof(IdentifyController) == 4096);
static_assert(offsetof(IdentifyController, sn) == 4);
static_assert(offsetof(IdentifyController, mn) == 24);
static_assert(offsetof(IdentifyController, fr) == 64);
static_assert(offsetof(IdentifyController, cmic) == 76);
static_assert(offsetof(IdentifyController, mdts) == 77);
static_assert(offsetof(IdentifyController, cntlid) == 78);
static_assert(offsetof(IdentifyController, ver) == 80);
static_assert(offsetof(IdentifyController, oaes) == 92);
static_assert(offsetof(IdentifyController, ctratt) == 96);
static_assert(offsetof(IdentifyController, cntrltype) == 111);
static_assert(offsetof(IdentifyController, fguid) == 112);
static_assert(offsetof(IdentifyController, oacs) == 256);
static_assert(offsetof(IdentifyController, aerl) == 259);
static_assert(offsetof(IdentifyController, frmw) == 260);
static_assert(offsetof(IdentifyController, lpa) == 261);
static_assert(offsetof(IdentifyController, elpe) == 262);
static_assert(offsetof(IdentifyController, tnvmcap) == 280);
static_assert(offsetof(IdentifyController, kas) == 320);
static_assert(offsetof(IdentifyController, anatt) == 342);
static_assert(offsetof(IdentifyController, anagrpmax) == 344);
static_assert(offsetof(IdentifyController, pels) == 352);
static_assert(offsetof(IdentifyController, sqes) == 512);
static_assert(offsetof(IdentifyController, cqes) == 513);
static_assert(offsetof(IdentifyController, maxcmd) == 514);
static_assert(offsetof(IdentifyController, nn) == 516);
static_assert(offsetof(IdentifyController, oncs) == 520);
static_assert(offsetof(IdentifyController, vwc) == 525);
static_assert(offsetof(IdentifyController, sgls) == 536);
static_assert(offsetof(IdentifyController, mnan) == 540);
static_assert(offsetof(IdentifyController, subnqn) == 768);
static_assert(offsetof(IdentifyController, ioccsz) == 1792);
static_assert(offsetof(IdentifyController, iorcsz) == 1796);
static_assert(offsetof(IdentifyController, icdoff) == 1800);
static_assert(offsetof(IdentifyController, fcatt) == 1802);
static_assert(offsetof(IdentifyController, msdbd) == 1803);
static_assert(offsetof(IdentifyController, ofcs) == 1804);
static_assert(offsetof(IdentifyController, psd) == 2048);
static_assert(offsetof(IdentifyController, vendor_specific) == 3072);

struct __attribute__((packed)) LbaFormat {
    uint16_t ms;    // metadata bytes per block
    uint8_t lbads;  // log2(block size)
    uint8_t rp;     // relative performance, bits 1:0
};
static_assert(sizeof(LbaFormat) == 4);

// NSFEAT bits.
inline constexpr uint8_t kNsfeatThinProvisioning = 1u << 0;
inline constexpr uint8_t kNsfeatNsAtomicFields = 1u << 1;
inline constexpr uint8_t kNsfeatDeallocatedErrors = 1u << 2;
inline constexpr uint8_t kNsfeatOptimalIoFields = 1u << 4;
// NMIC bit 0: namespace may be attached to several controllers.
inline constexpr uint8_t kNmicShared = 1u << 0;

struct __attribute__((packed)) IdentifyNamespace {
    uint64_t nsze;
    uint64_t ncap;
    uint64_t nuse;
    uint8_t nsfeat;
    uint8_t nlbaf;  // 0-based
    uint8_t flbas;  // bits 3:0 format index (low bits)
    uint8_t mc;
    uint8_t dpc;
    uint8_t dps;
    uint8_t nmic;
    uint8_t rescap;
    uint8_t fpi;
    uint8_t dlfeat;
    uint16_t nawun;
    uint16_t nawupf;
    uint16_t nacwu;
    uint16_t nabsn;
    uint16_t nabo;
    uint16_t nabspf;
    uint16_t noiob;
    uint8_t nvmcap[16];
    uint16_t npwg;
    uint16_t npwa;
    uint16_t npdg;
    uint16_t npda;
    uint16_t nows;
    uint16_t mssrl;
    uint32_t mcl;
    uint8_t msrc;
    uint8_t reserved81[11];
    uint32_t anagrpid;
    uint8_t reserved96[3];
    uint8_t nsattr;
    uint16_t nvmsetid;
    uint16_t endgid;
    uint8_t nguid[16];
    uint8_t eui64[8];
    LbaFormat lbaf[64];
    uint8_t reserved384[2688];
    uint8_t vendor_specific[1024];
};
static_assert(sizeof(IdentifyNamespace) == 4096);
static_assert(offsetof(IdentifyNamespace, nsfeat) == 24);
static_assert(offsetof(IdentifyNamespace, nlbaf) == 25);
static_assert(offsetof(IdentifyNamespace, flbas) == 26);
static_assert(offsetof(IdentifyNamespace, nmic) == 30);
static_assert(offsetof(IdentifyNamespace, nvmcap) == 48);
static_assert(offsetof(IdentifyNamespace, npwg) == 64);
static_assert(offsetof(IdentifyNamespace, anagrpid) == 92);
static_assert(offsetof(IdentifyNamespace, nsattr) == 99);
static_assert(offsetof(IdentifyNamespace, nguid) == 104);
static_assert(offsetof(IdentifyNamespace, eui64) == 120);
static_assert(offsetof(IdentifyNamespace, lbaf) == 128);

// Namespace identification descriptor (CNS 0x03): a 4-byte header, then NIDL bytes.
namespace nidt {
inline constexpr uint8_t kEui64 = 0x1;  // 8 bytes
inline constexpr uint8_t kNguid = 0x2;  // 16 bytes
inline constexpr uint8_t kUuid = 0x3;   // 16 bytes
inline constexpr uint8_t kCsi = 0x4;    // 1 byte
}  // namespace nidt

struct __attribute__((packed)) NamespaceIdDescriptorHeader {
    uint8_t nidt;
    uint8_t nidl;
    uint8_t reserved[2];
};
static_assert(sizeof(NamespaceIdDescriptorHeader) == 4);

inline constexpr uint8_t kCsiNvm = 0x00;

// ---------------------------------------------------------------------------------------------
// Log pages
// ---------------------------------------------------------------------------------------------
namespace log_page {
inline constexpr uint8_t kErrorInformation = 0x01;
inline constexpr uint8_t kSmartHealth = 0x02;
inline constexpr uint8_t kFirmwareSlot = 0x03;
inline constexpr uint8_t kChangedNamespaceList = 0x04;
inline constexpr uint8_t kCommandsSupportedEffects = 0x05;
inline constexpr uint8_t kDeviceSelfTest = 0x06;
inline constexpr uint8_t kTelemetryHost = 0x07;
inline constexpr uint8_t kTelemetryController = 0x08;
inline constexpr uint8_t kAsymmetricNamespaceAccess = 0x0C;
inline constexpr uint8_t kDiscovery = 0x70;
inline constexpr uint8_t kReservationNotification = 0x80;
inline constexpr uint8_t kSanitizeStatus = 0x81;
}  // namespace log_page

// Get Log Page field helpers: NUMD is 0-based dwords split over cdw10[31:16] and cdw11[15:0].
inline uint8_t get_log_lid(const SubmissionQueueEntry& sqe) {
    return sqe.cdw10 & 0xFF;
}
inline bool get_log_rae(const SubmissionQueueEntry& sqe) {
    return (sqe.cdw10 >> 15) & 1;
}
inline uint64_t get_log_length_bytes(const SubmissionQueueEntry& sqe) {
    uint64_t numd = (sqe.cdw10 >> 16) | (static_cast<uint64_t>(sqe.cdw11 & 0xFFFF) << 16);
    return (numd + 1) * 4;
}
inline uint64_t get_log_offset(const SubmissionQueueEntry& sqe) {
    return (static_cast<uint64_t>(sqe.cdw13) << 32) | sqe.cdw12;
}

struct __attribute__((packed)) SmartHealthLog {
    uint8_t critical_warning;
    uint16_t composite_temperature;  // Kelvin
    uint8_t available_spare;
    uint8_t available_spare_threshold;
    uint8_t percentage_used;
    uint8_t endurance_group_critical_warning;
    uint8_t reserved7[25];
    uint8_t data_units_read[16];  // 128-bit counters, little-endian
    uint8_t data_units_written[16];
    uint8_t host_read_commands[16];
    uint8_t host_write_commands[16];
    uint8_t controller_busy_time[16];
    uint8_t power_cycles[16];
    uint8_t power_on_hours[16];
    uint8_t unsafe_shutdowns[16];
    uint8_t media_errors[16];
    uint8_t num_error_info_log_entries[16];
    uint32_t warning_temp_time;
    uint32_t critical_temp_time;
    uint16_t temp_sensor[8];
    uint32_t thermal_mgmt_temp1_transition_count;
    uint32_t thermal_mgmt_temp2_transition_count;
    uint32_t thermal_mgmt_temp1_total_time;
    uint32_t thermal_mgmt_temp2_total_time;
    uint8_t reserved232[280];
};
static_assert(sizeof(SmartHealthLog) == 512);
static_assert(offsetof(SmartHealthLog, data_units_read) == 32);
static_assert(offsetof(SmartHealthLog, media_errors) == 160);
static_assert(offsetof(SmartHealthLog, warning_temp_time) == 192);
static_assert(offsetof(SmartHealthLog, temp_sensor) == 200);

struct __attribute__((packed)) FirmwareSlotLog {
    uint8_t afi;  // bits 2:0 active slot, bits 6:4 slot at next reset
    uint8_t reserved1[7];
    char frs[7][8];  // firmware revision per slot
    uint8_t reserved64[448];
};
static_assert(sizeof(FirmwareSlotLog) == 512);
static_assert(offsetof(FirmwareSlotLog, frs) == 8);

struct __attribute__((packed)) ErrorLogEntry {
    uint64_t error_count;
    uint16_t sqid;
    uint16_t cid;
    Status status;
    uint16_t error_location;  // byte 7:0 byte offset, 10:8 bit
    uint64_t lba;
    uint32_t nsid;
    uint8_t vendor_specific;
    uint8_t trtype;
    uint8_t reserved30[2];
    uint64_t command_specific;
    uint16_t trtype_specific;
    uint8_t reserved42[22];
};
static_assert(sizeof(ErrorLogEntry) == 64);
static_assert(offsetof(ErrorLogEntry, status) == 12);
static_assert(offsetof(ErrorLogEntry, lba) == 16);
static_assert(offsetof(ErrorLogEntry, command_specific) == 32);

// Changed namespace list: up to 1024 NSIDs; first entry 0xFFFFFFFF means "more than 1024".
struct __attribute__((packed)) ChangedNamespaceList {
    uint32_t nsid[1024];
};
static_assert(sizeof(ChangedNamespaceList) == 4096);

// Commands supported and effects: bit 0 CSUPP, 1 LBCC, 2 NCC, 3 NIC, 4 CCC, 18:16 CSE.
inline constexpr uint32_t kEffectCommandSupported = 1u << 0;
inline constexpr uint32_t kEffectLbaContentChange = 1u << 1;
inline constexpr uint32_t kEffectNamespaceCapabilityChange = 1u << 2;
inline constexpr uint32_t kEffectNamespaceInventoryChange = 1u << 3;
inline constexpr uint32_t kEffectControllerCapabilityChange = 1u << 4;

struct __attribute__((packed)) CommandsSupportedEffectsLog {
    uint32_t admin[256];
    uint32_t io[256];
    uint8_t reserved[2048];
};
static_assert(sizeof(CommandsSupportedEffectsLog) == 4096);
static_assert(offsetof(CommandsSupportedEffectsLog, io) == 1024);

// ---------------------------------------------------------------------------------------------
// Discovery log page (log id 0x70)
// ---------------------------------------------------------------------------------------------
namespace trtype {
inline constexpr uint8_t kRdma = 1;
inline constexpr uint8_t kFc = 2;
inline constexpr uint8_t kTcp = 3;
inline constexpr uint8_t kLoop = 254;
}  // namespace trtype

namespace adrfam {
inline constexpr uint8_t kIpv4 = 1;
inline constexpr uint8_t kIpv6 = 2;
}  // namespace adrfam

namespace subtype {
inline constexpr uint8_t kReferralDiscovery = 1;
inline constexpr uint8_t kNvm = 2;
inline constexpr uint8_t kCurrentDiscovery = 3;
}  // namespace subtype

// TREQ bits 1:0: 0 not specified, 1 secure channel required, 2 not required; bit 2 SQ flow
// control disable supported.
inline constexpr uint8_t kTreqNotSpecified = 0x0;
inline constexpr uint8_t kTreqSecureChannelRequired = 0x1;
inline constexpr uint8_t kTreqSecureChannelNotRequired = 0x2;
inline constexpr uint8_t kTreqSqFlowControlDisableSupported = 0x4;

// TCP security type in TSAS byte 0.
inline constexpr uint8_t kTcpSectypeNone = 0;
inline constexpr uint8_t kTcpSectypeTls12 = 1;
inline constexpr uint8_t kTcpSectypeTls13 = 2;

struct __attribute__((packed)) DiscoveryLogHeader {
    uint64_t genctr;
    uint64_t numrec;
    uint16_t recfmt;
    uint8_t reserved[1006];
};
static_assert(sizeof(DiscoveryLogHeader) == 1024);
static_assert(offsetof(DiscoveryLogHeader, recfmt) == 16);

struct __attribute__((packed)) DiscoveryLogEntry {
    uint8_t trtype;
    uint8_t adrfam;
    uint8_t subtype;
    uint8_t treq;
    uint16_t portid;
    uint16_t cntlid;
    uint16_t asqsz;
    uint16_t eflags;
    uint8_t reserved12[20];
    char trsvcid[32];  // space padded ASCII
    uint8_t reserved64[192];
    char subnqn[256];
    char traddr[256];  // space padded ASCII
    uint8_t tsas[256];
};
static_assert(sizeof(DiscoveryLogEntry) == 1024);
static_assert(offsetof(DiscoveryLogEntry, portid) == 4);
static_assert(offsetof(DiscoveryLogEntry, cntlid) == 6);
static_assert(offsetof(DiscoveryLogEntry, asqsz) == 8);
static_assert(offsetof(DiscoveryLogEntry, trsvcid) == 32);
static_assert(offsetof(DiscoveryLogEntry, subnqn) == 256);
static_assert(offsetof(DiscoveryLogEntry, traddr) == 512);
static_assert(offsetof(DiscoveryLogEntry, tsas) == 768);

// ---------------------------------------------------------------------------------------------
// Features
// ---------------------------------------------------------------------------------------------
namespace feature {
inline constexpr uint8_t kArbitration = 0x01;
inline constexpr uint8_t kPowerManagement = 0x02;
inline constexpr uint8_t kLbaRangeType = 0x03;
inline constexpr uint8_t kTemperatureThreshold = 0x04;
inline constexpr uint8_t kErrorRecovery = 0x05;
inline constexpr uint8_t kVolatileWriteCache = 0x06;
inline constexpr uint8_t kNumberOfQueues = 0x07;
inline constexpr uint8_t kInterruptCoalescing = 0x08;
inline constexpr uint8_t kInterruptVectorConfig = 0x09;
inline constexpr uint8_t kWriteAtomicity = 0x0A;
inline constexpr uint8_t kAsyncEventConfig = 0x0B;
inline constexpr uint8_t kAutonomousPowerStateTransition = 0x0C;
inline constexpr uint8_t kHostMemoryBuffer = 0x0D;
inline constexpr uint8_t kTimestamp = 0x0E;
inline constexpr uint8_t kKeepAliveTimer = 0x0F;
inline constexpr uint8_t kHostControlledThermalMgmt = 0x10;
inline constexpr uint8_t kHostBehaviorSupport = 0x16;
inline constexpr uint8_t kSoftwareProgressMarker = 0x80;
inline constexpr uint8_t kHostIdentifier = 0x81;
inline constexpr uint8_t kReservationNotificationMask = 0x82;
inline constexpr uint8_t kReservationPersistence = 0x83;
}  // namespace feature

// Get/Set Features: FID cdw10[7:0], SEL (get) cdw10[10:8], SV (set) cdw10[31].
inline uint8_t features_fid(const SubmissionQueueEntry& sqe) {
    return sqe.cdw10 & 0xFF;
}
inline uint8_t get_features_sel(const SubmissionQueueEntry& sqe) {
    return (sqe.cdw10 >> 8) & 7;
}

// ---------------------------------------------------------------------------------------------
// Asynchronous events: completion dword0 = type 2:0 | info 15:8 | log page 23:16
// ---------------------------------------------------------------------------------------------
namespace aer_type {
inline constexpr uint8_t kError = 0x0;
inline constexpr uint8_t kSmartHealth = 0x1;
inline constexpr uint8_t kNotice = 0x2;
inline constexpr uint8_t kIoCommandSpecific = 0x6;
inline constexpr uint8_t kVendor = 0x7;
}  // namespace aer_type

namespace aer_notice {
inline constexpr uint8_t kNamespaceAttributeChanged = 0x00;
inline constexpr uint8_t kFirmwareActivationStarting = 0x01;
inline constexpr uint8_t kTelemetryLogChanged = 0x02;
inline constexpr uint8_t kAnaChange = 0x03;
inline constexpr uint8_t kDiscoveryLogChange = 0xF0;
}  // namespace aer_notice

constexpr uint32_t make_async_event(uint8_t type, uint8_t info, uint8_t log_page_id) {
    return (type & 0x7u) | (static_cast<uint32_t>(info) << 8) |
           (static_cast<uint32_t>(log_page_id) << 16);
}
static_assert(make_async_event(aer_type::kNotice, aer_notice::kNamespaceAttributeChanged,
                               log_page::kChangedNamespaceList) == 0x00040002);

}  // namespace nocstor::nvme
