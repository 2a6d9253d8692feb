// NVMe/TCP PDU codec (NVMe/TCP transport spec 1.0): wire structs, a streaming zero-allocation
// receiver that validates headers and scatters data, and builders for every PDU.
//
// Pure code: no sockets, threads, exceptions or heap use. Multi-byte fields are little-endian;
// the host is assumed little-endian (see nvmf/spec.h).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "nvmf/crc32c.h"
#include "nvmf/spec.h"

namespace nocstor::nvmf::tcp {

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------
enum class PduType : uint8_t {
    kICReq = 0x00,
    kICResp = 0x01,
    kH2CTermReq = 0x02,
    kC2HTermReq = 0x03,
    kCapsuleCmd = 0x04,
    kCapsuleResp = 0x05,
    kH2CData = 0x06,
    kC2HData = 0x07,
    kR2T = 0x09,
};

namespace pdu_flags {
inline constexpr uint8_t kHdgst = 1u << 0;    // header digest follows the header
inline constexpr uint8_t kDdgst = 1u << 1;    // data digest follows the data
inline constexpr uint8_t kLastPdu = 1u << 2;  // H2CData/C2HData: last PDU of the transfer
inline constexpr uint8_t kSuccess = 1u << 3;  // C2HData: command done, no CapsuleResp follows
}  // namespace pdu_flags

// Fatal Error Status of a TermReq.
enum class Fes : uint16_t {
    kNone = 0,
    kInvalidHeaderField = 1,  // FEI = byte offset of the field in the PDU header
    kPduSequenceError = 2,
    kHeaderDigestError = 3,
    kDataOutOfRange = 4,
    kDataLimitExceeded = 5,
    kUnsupportedParameter = 6,  // FEI = byte offset of the ICReq/ICResp field
};

inline constexpr uint16_t kPfv10 = 0;  // PDU format version 1.0
inline constexpr uint8_t kDigestLength = 4;
inline constexpr uint8_t kMaxPda = 31;                // HPDA/CPDA range
inline constexpr uint32_t kMinMaxH2CData = 4096;      // smallest legal ICResp MAXH2CDATA
inline constexpr size_t kTermReqMaxHeaderCopy = 128;  // offending header bytes in a TermReq
inline constexpr uint8_t kIcDigestHeader = 1u << 0;   // ICReq/ICResp DGST field
inline constexpr uint8_t kIcDigestData = 1u << 1;

struct __attribute__((packed)) CommonHeader {
    uint8_t pdu_type;
    uint8_t flags;
    uint8_t hlen;
    uint8_t pdo;
    uint32_t plen;
};
static_assert(sizeof(CommonHeader) == 8);

// Byte offsets of the common header fields, used as FEI values.
namespace fei {
inline constexpr uint32_t kPduType = 0;
inline constexpr uint32_t kFlags = 1;
inline constexpr uint32_t kHlen = 2;
inline constexpr uint32_t kPdo = 3;
inline constexpr uint32_t kPlen = 4;
}  // namespace fei

struct __attribute__((packed)) ICReqPdu {
    CommonHeader ch;
    uint16_t pfv;
    uint8_t hpda;
    uint8_t dgst;
    uint32_t maxr2t;  // 0-based
    uint8_t reserved[112];
};
static_assert(sizeof(ICReqPdu) == 128);
static_assert(offsetof(ICReqPdu, hpda) == 10 && offsetof(ICReqPdu, maxr2t) == 12);

struct __attribute__((packed)) ICRespPdu {
    CommonHeader ch;
    uint16_t pfv;
    uint8_t cpda;
    uint8_t dgst;
    uint32_t maxh2cdata;  // bytes
    uint8_t reserved[112];
};
static_assert(sizeof(ICRespPdu) == 128);
static_assert(offsetof(ICRespPdu, cpda) == 10 && offsetof(ICRespPdu, maxh2cdata) == 12);

struct __attribute__((packed)) TermReqPdu {
    CommonHeader ch;
    uint16_t fes;
    uint32_t fei;
    uint8_t reserved[10];
};
static_assert(sizeof(TermReqPdu) == 24);
static_assert(offsetof(TermReqPdu, fei) == 10);

struct __attribute__((packed)) CapsuleCmdPdu {
    CommonHeader ch;
    nvme::SubmissionQueueEntry sqe;
};
static_assert(sizeof(CapsuleCmdPdu) == 72);

struct __attribute__((packed)) CapsuleRespPdu {
    CommonHeader ch;
    nvme::CompletionQueueEntry cqe;
};
static_assert(sizeof(CapsuleRespPdu) == 24);

// H2CData and C2HData share one layout; TTAG is reserved in C2HData.
struct __attribute__((packed)) DataPdu {
    CommonHeader ch;
    uint16_t cccid;
    uint16_t ttag;
    uint32_t datao;
    uint32_t datal;
    uint8_t reserved[4];
};
static_assert(sizeof(DataPdu) == 24);
static_assert(offsetof(DataPdu, datao) == 12 && offsetof(DataPdu, datal) == 16);

struct __attribute__((packed)) R2TPdu {
    CommonHeader ch;
    uint16_t cccid;
    uint16_t ttag;
    uint32_t r2to;
    uint32_t r2tl;
    uint8_t reserved[4];
};
static_assert(sizeof(R2TPdu) == 24);
static_assert(offsetof(R2TPdu, r2to) == 12 && offsetof(R2TPdu, r2tl) == 16);

inline constexpr size_t kMaxHeaderLength = 128;  // ICReq/ICResp
// Largest header area a builder writes before the data: HLEN + header digest + padding for
// the largest PDA (alignment 128). Size TX header buffers with this.
inline constexpr size_t kMaxTxHeaderBytes = 256;

// The HLEN each PDU type must carry; 0 for an unknown type.
uint8_t expected_hlen(uint8_t pdu_type);

// ---------------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------------

// Which end is receiving: the target accepts host-to-controller PDUs, the host the reverse.
enum class Role : uint8_t { kTarget, kHost };

struct RxLimits {
    uint32_t max_incapsule_data = 8192;  // CapsuleCmd data (target role)
    uint32_t max_data_pdu = 128 * 1024;  // DATAL of one H2CData (MAXH2CDATA) / C2HData
};

// Settings agreed in the ICReq/ICResp exchange. rx_pda is the PDU data alignment this end
// asked the peer for (target: the CPDA it sent; host: the HPDA it sent).
struct Negotiated {
    bool hdgst = false;
    bool ddgst = false;
    uint8_t rx_pda = 0;
};

struct RxError {
    Fes fes = Fes::kNone;
    uint32_t fei = 0;
};

// A received, validated PDU header (HLEN bytes), valid until the next PDU starts.
class PduHeader {
  public:
    PduHeader(const uint8_t* bytes, uint32_t data_length) : bytes_(bytes), data_len_(data_length) {}

    PduType type() const { return static_cast<PduType>(bytes_[0]); }
    uint8_t flags() const { return bytes_[1]; }
    uint8_t hlen() const { return bytes_[2]; }
    uint8_t pdo() const { return bytes_[3]; }
    uint32_t plen() const { return common().plen; }
    // Bytes of PDU data (no padding, no digest).
    uint32_t data_length() const { return data_len_; }
    bool has_flag(uint8_t f) const { return (flags() & f) != 0; }
    const CommonHeader& common() const { return as<CommonHeader>(); }
    std::span<const uint8_t> bytes() const { return {bytes_, hlen()}; }

    // The header as its PDU struct; T must match type(). The structs are packed: copy fields
    // out by value rather than binding references to them (they may be misaligned).
    template <class T>
    const T& as() const {
        return *reinterpret_cast<const T*>(bytes_);
    }

  private:
    const uint8_t* bytes_;
    uint32_t data_len_;
};

// What to do with the data of a PDU whose header was accepted.
struct DataDestination {
    const iovec* iov = nullptr;  // must stay valid until on_pdu_complete
    uint32_t iovcnt = 0;
    RxError error;  // fes != kNone: reject the PDU and stop the receiver

    // Data is dropped (still digest-checked). Also what a data-less PDU should answer.
    static DataDestination discard() { return {}; }
    // Data is scattered over iov in order; bytes beyond the total capacity are dropped.
    static DataDestination into(const iovec* iov, uint32_t iovcnt) { return {iov, iovcnt, {}}; }
    static DataDestination fail(Fes fes, uint32_t fei = 0) { return {nullptr, 0, {fes, fei}}; }
};

enum class AfterPdu : uint8_t { kContinue, kPause };

class PduHandler {
  public:
    virtual DataDestination on_header(const PduHeader& header) = 0;
    // data_digest_ok is false only when a data digest was present and did not match; the
    // stream is still in step, so the receiver carries on unless told to pause. kPause makes
    // feed() return right after this PDU (for instance after an ICReq, to renegotiate).
    virtual AfterPdu on_pdu_complete(const PduHeader& header, bool data_digest_ok) = 0;
    virtual ~PduHandler() = default;
};

// Incremental PDU parser for one connection. Feed it received bytes in any chunking.
class PduReceiver {
  public:
    explicit PduReceiver(Role role, RxLimits limits = {}) : role_(role), limits_(limits) {}

    // Digest and alignment settings for the PDUs after the IC exchange. Safe to call from
    // on_pdu_complete of the ICReq/ICResp: the next header is checked against the new values.
    void set_negotiated(const Negotiated& n) { negotiated_ = n; }
    void set_limits(const RxLimits& l) { limits_ = l; }
    const Negotiated& negotiated() const { return negotiated_; }

    // Consumes up to len bytes, calling the handler for each header and completed PDU.
    // Returns the bytes consumed: less than len after a pause or an error.
    size_t feed(const uint8_t* data, size_t len, PduHandler& handler);

    // Zero-copy receive. While PDU data is expected, the rest of the current destination
    // buffer (at most the data still to come); empty otherwise. A caller may receive straight
    // into it, report the bytes with direct_received(), then feed() what followed (possibly
    // nothing: feed(nullptr, 0) completes a PDU whose data is all in).
    std::span<uint8_t> direct_span() const;
    void direct_received(size_t n);

    bool failed() const { return state_ == State::kFailed; }
    const RxError& error() const { return error_; }
    // After an error: the offending PDU's header as received so far (at most 128 bytes), for
    // the TermReq.
    std::span<const uint8_t> error_header() const;

    bool ic_done() const { return ic_done_; }
    // True between PDUs (no partial PDU buffered).
    bool at_pdu_boundary() const { return state_ == State::kCommonHeader && have_ == 0; }
    uint64_t data_digest_errors() const { return data_digest_errors_; }

    void reset();

  private:
    enum class State : uint8_t {
        kCommonHeader,
        kHeaderRest,
        kPadding,
        kData,
        kDataDigest,
        kFailed
    };

    size_t take_header(const uint8_t* data, size_t len);
    bool check_common_header();
    bool check_full_header();
    bool check_data_placement(const CommonHeader& ch, bool data_capable);
    void start_data(const DataDestination& dest);
    size_t take_data(const uint8_t* data, size_t len);
    AfterPdu complete(PduHandler& handler);
    bool fail(Fes fes, uint32_t fei);
    PduHeader header() const { return PduHeader(hdr_, data_len_); }

    Role role_;
    RxLimits limits_;
    Negotiated negotiated_;
    State state_ = State::kCommonHeader;
    bool ic_done_ = false;
    bool pdu_hdgst_ = false;  // this PDU carries a header digest
    bool pdu_ddgst_ = false;  // this PDU carries a data digest
    bool digest_ok_ = true;
    RxError error_;
    uint32_t have_ = 0;      // header (+ header digest) bytes collected
    uint32_t hdr_need_ = 0;  // HLEN + header digest
    uint32_t pad_left_ = 0;
    uint32_t data_len_ = 0;
    uint32_t data_left_ = 0;
    uint32_t digest_have_ = 0;
    uint8_t digest_buf_[kDigestLength] = {};
    const iovec* iov_ = nullptr;
    uint32_t iovcnt_ = 0;
    uint32_t iov_idx_ = 0;
    size_t iov_off_ = 0;
    Crc32c data_crc_;
    uint64_t data_digest_errors_ = 0;
    alignas(8) uint8_t hdr_[kMaxHeaderLength + kDigestLength] = {};
};

// ---------------------------------------------------------------------------------------------
// Building (into caller buffers of at least kMaxTxHeaderBytes)
// ---------------------------------------------------------------------------------------------

// How this end must send: digests as negotiated, data aligned as the peer asked (target: the
// host's HPDA; host: the controller's CPDA).
struct TxFormat {
    bool hdgst = false;
    bool ddgst = false;
    uint8_t pda = 0;
};

struct ICReqParams {
    uint8_t hpda = 0;
    bool hdgst = false;
    bool ddgst = false;
    uint32_t maxr2t = 0;  // 0-based
};

struct ICRespParams {
    uint8_t cpda = 0;
    bool hdgst = false;
    bool ddgst = false;
    uint32_t maxh2cdata = 0;
};

struct DataPduParams {
    uint16_t cccid = 0;
    uint16_t ttag = 0;  // H2CData only
    uint32_t datao = 0;
    uint32_t datal = 0;
    bool last = false;
    bool success = false;  // C2HData only
};

struct R2TParams {
    uint16_t cccid = 0;
    uint16_t ttag = 0;
    uint32_t r2to = 0;
    uint32_t r2tl = 0;
};

// Each builder writes the header, its digest (if on) and the zeroed padding up to PDO, sets
// PLEN to cover the data that follows and its digest, and returns the bytes written, i.e. where
// the data starts. The caller sends those bytes, then the data, then (when
// sends_data_digest() is true) the 4-byte digest from data_digest().
size_t build_icreq(uint8_t* out, const ICReqParams& p);
size_t build_icresp(uint8_t* out, const ICRespParams& p);
size_t build_capsule_cmd(uint8_t* out, const nvme::SubmissionQueueEntry& sqe,
                         uint32_t incapsule_len, const TxFormat& fmt);
size_t build_capsule_resp(uint8_t* out, const nvme::CompletionQueueEntry& cqe, const TxFormat& fmt);
size_t build_h2c_data(uint8_t* out, const DataPduParams& p, const TxFormat& fmt);
size_t build_c2h_data(uint8_t* out, const DataPduParams& p, const TxFormat& fmt);
size_t build_r2t(uint8_t* out, const R2TParams& p, const TxFormat& fmt);
// H2C or C2H TermReq carrying up to 128 bytes of the offending header; never digested.
// Returns the whole PDU length (24 + copied bytes); out needs 152 bytes.
size_t build_term_req(uint8_t* out, Role sender, Fes fes, uint32_t fei, const uint8_t* header,
                      size_t header_len);

inline bool sends_data_digest(const TxFormat& fmt, uint32_t data_len) {
    return fmt.ddgst && data_len > 0;
}
inline uint32_t data_digest(const iovec* iov, size_t iovcnt) {
    return crc32c_iov(iov, iovcnt);
}

}  // namespace nocstor::nvmf::tcp
