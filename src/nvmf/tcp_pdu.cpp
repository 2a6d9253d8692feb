#include "nvmf/tcp_pdu.h"

#include <algorithm>
#include <cstring>

namespace nocstor::nvmf::tcp {
namespace {

constexpr uint32_t kCommonHeaderLength = sizeof(CommonHeader);
constexpr uint32_t kTermReqMaxPlen = sizeof(TermReqPdu) + kTermReqMaxHeaderCopy;

// Data of a PDU starts at a multiple of (PDA + 1) * 4 bytes; PDA 0 means right after the
// header (and its digest).
constexpr uint32_t data_offset(uint32_t header_total, uint8_t pda) {
    const uint32_t align = (static_cast<uint32_t>(pda) + 1) * 4;
    return (header_total + align - 1) / align * align;
}

bool is_ic(uint8_t type) {
    return type == static_cast<uint8_t>(PduType::kICReq) ||
           type == static_cast<uint8_t>(PduType::kICResp);
}

bool is_term_req(uint8_t type) {
    return type == static_cast<uint8_t>(PduType::kH2CTermReq) ||
           type == static_cast<uint8_t>(PduType::kC2HTermReq);
}

// PDU types the given receiver accepts at all.
bool legal_for(Role role, uint8_t type) {
    switch (static_cast<PduType>(type)) {
        case PduType::kICReq:
        case PduType::kH2CTermReq:
        case PduType::kCapsuleCmd:
        case PduType::kH2CData:
            return role == Role::kTarget;
        case PduType::kICResp:
        case PduType::kC2HTermReq:
        case PduType::kCapsuleResp:
        case PduType::kC2HData:
        case PduType::kR2T:
            return role == Role::kHost;
    }
    return false;
}

bool carries_data(uint8_t type) {
    return type == static_cast<uint8_t>(PduType::kCapsuleCmd) ||
           type == static_cast<uint8_t>(PduType::kH2CData) ||
           type == static_cast<uint8_t>(PduType::kC2HData);
}

}  // namespace

uint8_t expected_hlen(uint8_t pdu_type) {
    switch (static_cast<PduType>(pdu_type)) {
        case PduType::kICReq:
        case PduType::kICResp:
            return sizeof(ICReqPdu);
        case PduType::kH2CTermReq:
        case PduType::kC2HTermReq:
            return sizeof(TermReqPdu);
        case PduType::kCapsuleCmd:
            return sizeof(CapsuleCmdPdu);
        case PduType::kCapsuleResp:
            return sizeof(CapsuleRespPdu);
        case PduType::kH2CData:
        case PduType::kC2HData:
            return sizeof(DataPdu);
        case PduType::kR2T:
            return sizeof(R2TPdu);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// PduReceiver
// ---------------------------------------------------------------------------------------------

void PduReceiver::reset() {
    const Role role = role_;
    const RxLimits limits = limits_;
    *this = PduReceiver(role, limits);
}

std::span<const uint8_t> PduReceiver::error_header() const {
    size_t n = have_;
    // Past the common header HLEN was validated, so clip to it (drops the header digest).
    if (n > kCommonHeaderLength) n = std::min<size_t>(n, hdr_[2]);
    n = std::min(n, kTermReqMaxHeaderCopy);
    return {hdr_, n};
}

bool PduReceiver::fail(Fes fes, uint32_t fei) {
    error_ = {fes, fei};
    state_ = State::kFailed;
    return false;
}

// Runs once the 8-byte common header is in: everything needed to know how many bytes this
// PDU has and where they go.
bool PduReceiver::check_common_header() {
    CommonHeader ch;
    std::memcpy(&ch, hdr_, sizeof ch);
    const uint8_t type = ch.pdu_type;

    if (!legal_for(role_, type)) return fail(Fes::kInvalidHeaderField, fei::kPduType);
    // Before the IC exchange only the IC PDU (or a TermReq) may come; afterwards never again.
    if (!is_term_req(type) && is_ic(type) == ic_done_) return fail(Fes::kPduSequenceError, 0);
    if (ch.hlen != expected_hlen(type)) return fail(Fes::kInvalidHeaderField, fei::kHlen);

    const bool digestible = !is_ic(type) && !is_term_req(type);
    if (digestible) {
        if (((ch.flags & pdu_flags::kHdgst) != 0) != negotiated_.hdgst) {
            return fail(Fes::kInvalidHeaderField, fei::kFlags);
        }
    } else if (ch.flags & (pdu_flags::kHdgst | pdu_flags::kDdgst)) {
        return fail(Fes::kInvalidHeaderField, fei::kFlags);
    }
    pdu_hdgst_ = digestible && negotiated_.hdgst;
    pdu_ddgst_ = false;
    hdr_need_ = ch.hlen + (pdu_hdgst_ ? kDigestLength : 0);
    pad_left_ = 0;
    data_len_ = 0;

    if (is_ic(type)) {
        if (ch.plen != sizeof(ICReqPdu)) return fail(Fes::kInvalidHeaderField, fei::kPlen);
        if (ch.pdo != 0) return fail(Fes::kInvalidHeaderField, fei::kPdo);
        return true;
    }
    if (is_term_req(type)) {
        // PDO is reserved here: the offending header simply follows the 24-byte header.
        if (ch.plen < sizeof(TermReqPdu) || ch.plen > kTermReqMaxPlen) {
            return fail(Fes::kInvalidHeaderField, fei::kPlen);
        }
        data_len_ = ch.plen - sizeof(TermReqPdu);
        return true;
    }
    return check_data_placement(ch, carries_data(type));
}

bool PduReceiver::check_data_placement(const CommonHeader& ch, bool data_capable) {
    const uint32_t header_total = hdr_need_;
    if (ch.plen < header_total) return fail(Fes::kInvalidHeaderField, fei::kPlen);
    if (ch.plen == header_total) {
        // No data. PDO should be 0; a sender that fills in the would-be data offset is
        // tolerated. DDGSTF is meaningless without data but must not claim an unnegotiated
        // digest.
        if (ch.pdo != 0 && ch.pdo != header_total) return fail(Fes::kInvalidHeaderField, fei::kPdo);
        if ((ch.flags & pdu_flags::kDdgst) && !negotiated_.ddgst) {
            return fail(Fes::kInvalidHeaderField, fei::kFlags);
        }
        return true;
    }
    if (!data_capable) return fail(Fes::kInvalidHeaderField, fei::kPlen);
    if (((ch.flags & pdu_flags::kDdgst) != 0) != negotiated_.ddgst) {
        return fail(Fes::kInvalidHeaderField, fei::kFlags);
    }
    if (ch.pdo != data_offset(header_total, negotiated_.rx_pda)) {
        return fail(Fes::kInvalidHeaderField, fei::kPdo);
    }
    const uint64_t digest = negotiated_.ddgst ? kDigestLength : 0;
    if (uint64_t{ch.plen} <= ch.pdo + digest) return fail(Fes::kInvalidHeaderField, fei::kPlen);

    const uint32_t data_len = static_cast<uint32_t>(ch.plen - ch.pdo - digest);
    const uint32_t limit = ch.pdu_type == static_cast<uint8_t>(PduType::kCapsuleCmd)
                               ? limits_.max_incapsule_data
                               : limits_.max_data_pdu;
    if (data_len > limit) return fail(Fes::kDataLimitExceeded, 0);
    data_len_ = data_len;
    pad_left_ = ch.pdo - header_total;
    pdu_ddgst_ = negotiated_.ddgst;
    return true;
}

// Runs once HLEN bytes (and the header digest) are in.
bool PduReceiver::check_full_header() {
    const uint8_t hlen = hdr_[2];
    if (pdu_hdgst_ && crc32c(hdr_, hlen) != load_digest(hdr_ + hlen)) {
        return fail(Fes::kHeaderDigestError, 0);
    }
    const PduHeader h = header();
    switch (h.type()) {
        case PduType::kICReq: {
            const auto& ic = h.as<ICReqPdu>();
            if (ic.pfv != kPfv10) return fail(Fes::kUnsupportedParameter, offsetof(ICReqPdu, pfv));
            if (ic.hpda > kMaxPda) {
                return fail(Fes::kInvalidHeaderField, offsetof(ICReqPdu, hpda));
            }
            break;
        }
        case PduType::kICResp: {
            const auto& ic = h.as<ICRespPdu>();
            if (ic.pfv != kPfv10) {
                return fail(Fes::kUnsupportedParameter, offsetof(ICRespPdu, pfv));
            }
            if (ic.cpda > kMaxPda) {
                return fail(Fes::kInvalidHeaderField, offsetof(ICRespPdu, cpda));
            }
            if (ic.maxh2cdata < kMinMaxH2CData || ic.maxh2cdata % 4 != 0) {
                return fail(Fes::kInvalidHeaderField, offsetof(ICRespPdu, maxh2cdata));
            }
            break;
        }
        case PduType::kH2CData:
        case PduType::kC2HData: {
            const auto& d = h.as<DataPdu>();
            // DATAL must be non-zero and account for exactly the data the PDU carries.
            if (d.datal == 0 || d.datal != data_len_) {
                return fail(Fes::kInvalidHeaderField, offsetof(DataPdu, datal));
            }
            if (h.type() == PduType::kC2HData && h.has_flag(pdu_flags::kSuccess) &&
                !h.has_flag(pdu_flags::kLastPdu)) {
                return fail(Fes::kInvalidHeaderField, fei::kFlags);
            }
            break;
        }
        case PduType::kR2T:
            if (h.as<R2TPdu>().r2tl == 0) {
                return fail(Fes::kInvalidHeaderField, offsetof(R2TPdu, r2tl));
            }
            break;
        default:
            break;
    }
    return true;
}

void PduReceiver::start_data(const DataDestination& dest) {
    iov_ = dest.iov;
    iovcnt_ = dest.iov ? dest.iovcnt : 0;
    iov_idx_ = 0;
    iov_off_ = 0;
    data_left_ = data_len_;
    digest_have_ = 0;
    digest_ok_ = true;
    data_crc_.reset();
    if (pad_left_ > 0) {
        state_ = State::kPadding;
    } else if (data_left_ > 0) {
        state_ = State::kData;
    } else {
        state_ = State::kDataDigest;  // only reached for zero-length data: completes at once
    }
}

// Copies PDU data into the destination (dropping what does not fit) and digests it.
size_t PduReceiver::take_data(const uint8_t* data, size_t len) {
    const size_t n = std::min<size_t>(len, data_left_);
    if (pdu_ddgst_) data_crc_.update(data, n);
    size_t done = 0;
    while (done < n && iov_idx_ < iovcnt_) {
        const iovec& v = iov_[iov_idx_];
        const size_t room = v.iov_len - iov_off_;
        const size_t c = std::min(room, n - done);
        if (c > 0) std::memcpy(static_cast<uint8_t*>(v.iov_base) + iov_off_, data + done, c);
        done += c;
        iov_off_ += c;
        if (iov_off_ == v.iov_len) {
            ++iov_idx_;
            iov_off_ = 0;
        }
    }
    data_left_ -= static_cast<uint32_t>(n);
    return n;
}

std::span<uint8_t> PduReceiver::direct_span() const {
    if (state_ != State::kData || data_left_ == 0 || iov_idx_ >= iovcnt_) return {};
    const iovec& v = iov_[iov_idx_];
    const size_t n = std::min<size_t>(v.iov_len - iov_off_, data_left_);
    return {static_cast<uint8_t*>(v.iov_base) + iov_off_, n};
}

void PduReceiver::direct_received(size_t n) {
    const std::span<uint8_t> d = direct_span();
    if (n > d.size()) n = d.size();  // a caller bug must not run past the destination
    if (n == 0) return;
    if (pdu_ddgst_) data_crc_.update(d.data(), n);
    iov_off_ += n;
    if (iov_off_ == iov_[iov_idx_].iov_len) {
        ++iov_idx_;
        iov_off_ = 0;
    }
    data_left_ -= static_cast<uint32_t>(n);
}

AfterPdu PduReceiver::complete(PduHandler& handler) {
    const uint8_t type = hdr_[0];
    if (is_ic(type)) ic_done_ = true;
    if (!digest_ok_) ++data_digest_errors_;
    state_ = State::kCommonHeader;
    have_ = 0;
    // The header bytes stay in hdr_ until the next PDU's bytes arrive, so the view is valid.
    return handler.on_pdu_complete(header(), digest_ok_);
}

size_t PduReceiver::feed(const uint8_t* data, size_t len, PduHandler& handler) {
    size_t pos = 0;
    while (state_ != State::kFailed) {
        switch (state_) {
            case State::kCommonHeader:
            case State::kHeaderRest: {
                if (pos == len) return pos;
                const uint32_t want =
                    state_ == State::kCommonHeader ? kCommonHeaderLength : hdr_need_;
                const size_t n = std::min<size_t>(want - have_, len - pos);
                std::memcpy(hdr_ + have_, data + pos, n);
                have_ += static_cast<uint32_t>(n);
                pos += n;
                if (have_ < want) return pos;
                if (state_ == State::kCommonHeader) {
                    if (!check_common_header()) return pos;
                    state_ = State::kHeaderRest;  // every HLEN exceeds 8: more bytes follow
                    break;
                }
                if (!check_full_header()) return pos;
                const DataDestination dest = handler.on_header(header());
                if (dest.error.fes != Fes::kNone) {
                    fail(dest.error.fes, dest.error.fei);
                    return pos;
                }
                start_data(dest);
                break;
            }
            case State::kPadding: {
                if (pos == len) return pos;
                const size_t n = std::min<size_t>(pad_left_, len - pos);
                pad_left_ -= static_cast<uint32_t>(n);
                pos += n;
                if (pad_left_ == 0) state_ = State::kData;
                break;
            }
            case State::kData: {
                if (data_left_ > 0) {
                    if (pos == len) return pos;
                    pos += take_data(data + pos, len - pos);
                    if (data_left_ > 0) return pos;
                }
                state_ = State::kDataDigest;
                break;
            }
            case State::kDataDigest: {
                if (pdu_ddgst_) {
                    if (pos == len) return pos;
                    const size_t n = std::min<size_t>(kDigestLength - digest_have_, len - pos);
                    std::memcpy(digest_buf_ + digest_have_, data + pos, n);
                    digest_have_ += static_cast<uint32_t>(n);
                    pos += n;
                    if (digest_have_ < kDigestLength) return pos;
                    digest_ok_ = load_digest(digest_buf_) == data_crc_.value();
                }
                if (complete(handler) == AfterPdu::kPause) return pos;
                break;
            }
            case State::kFailed:
                break;
        }
    }
    return pos;
}

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------
namespace {

// Writes the common header of a PDU whose specific fields are already in out, then the
// header digest and the padding. Returns the bytes to send before the data.
size_t finish_header(uint8_t* out, PduType type, uint8_t hlen, uint8_t flags, uint32_t data_len,
                     const TxFormat& fmt) {
    const uint32_t header_total = hlen + (fmt.hdgst ? kDigestLength : 0);
    uint32_t pdo = 0;
    uint32_t plen = header_total;
    if (fmt.hdgst) flags |= pdu_flags::kHdgst;
    if (data_len > 0) {
        pdo = data_offset(header_total, fmt.pda);
        plen = pdo + data_len;
        if (fmt.ddgst) {
            flags |= pdu_flags::kDdgst;
            plen += kDigestLength;
        }
    }
    const CommonHeader ch{static_cast<uint8_t>(type), flags, hlen, static_cast<uint8_t>(pdo), plen};
    std::memcpy(out, &ch, sizeof ch);
    if (fmt.hdgst) store_digest(out + hlen, crc32c(out, hlen));
    if (pdo > header_total) std::memset(out + header_total, 0, pdo - header_total);
    return data_len > 0 ? pdo : header_total;
}

template <class T>
T* zeroed(uint8_t* out) {
    std::memset(out, 0, sizeof(T));
    return reinterpret_cast<T*>(out);
}

size_t build_data_pdu(uint8_t* out, PduType type, const DataPduParams& p, const TxFormat& fmt) {
    auto* pdu = zeroed<DataPdu>(out);
    pdu->cccid = p.cccid;
    pdu->ttag = type == PduType::kH2CData ? p.ttag : 0;
    pdu->datao = p.datao;
    pdu->datal = p.datal;
    uint8_t flags = p.last ? pdu_flags::kLastPdu : 0;
    if (type == PduType::kC2HData && p.success) flags |= pdu_flags::kSuccess;
    return finish_header(out, type, sizeof(DataPdu), flags, p.datal, fmt);
}

}  // namespace

size_t build_icreq(uint8_t* out, const ICReqParams& p) {
    auto* pdu = zeroed<ICReqPdu>(out);
    pdu->pfv = kPfv10;
    pdu->hpda = p.hpda;
    pdu->dgst = (p.hdgst ? kIcDigestHeader : 0) | (p.ddgst ? kIcDigestData : 0);
    pdu->maxr2t = p.maxr2t;
    return finish_header(out, PduType::kICReq, sizeof(ICReqPdu), 0, 0, TxFormat{});
}

size_t build_icresp(uint8_t* out, const ICRespParams& p) {
    auto* pdu = zeroed<ICRespPdu>(out);
    pdu->pfv = kPfv10;
    pdu->cpda = p.cpda;
    pdu->dgst = (p.hdgst ? kIcDigestHeader : 0) | (p.ddgst ? kIcDigestData : 0);
    pdu->maxh2cdata = p.maxh2cdata;
    return finish_header(out, PduType::kICResp, sizeof(ICRespPdu), 0, 0, TxFormat{});
}

size_t build_capsule_cmd(uint8_t* out, const nvme::SubmissionQueueEntry& sqe,
                         uint32_t incapsule_len, const TxFormat& fmt) {
    auto* pdu = zeroed<CapsuleCmdPdu>(out);
    pdu->sqe = sqe;
    return finish_header(out, PduType::kCapsuleCmd, sizeof(CapsuleCmdPdu), 0, incapsule_len, fmt);
}

size_t build_capsule_resp(uint8_t* out, const nvme::CompletionQueueEntry& cqe,
                          const TxFormat& fmt) {
    auto* pdu = zeroed<CapsuleRespPdu>(out);
    pdu->cqe = cqe;
    return finish_header(out, PduType::kCapsuleResp, sizeof(CapsuleRespPdu), 0, 0, fmt);
}

size_t build_h2c_data(uint8_t* out, const DataPduParams& p, const TxFormat& fmt) {
    return build_data_pdu(out, PduType::kH2CData, p, fmt);
}

size_t build_c2h_data(uint8_t* out, const DataPduParams& p, const TxFormat& fmt) {
    return build_data_pdu(out, PduType::kC2HData, p, fmt);
}

size_t build_r2t(uint8_t* out, const R2TParams& p, const TxFormat& fmt) {
    auto* pdu = zeroed<R2TPdu>(out);
    pdu->cccid = p.cccid;
    pdu->ttag = p.ttag;
    pdu->r2to = p.r2to;
    pdu->r2tl = p.r2tl;
    return finish_header(out, PduType::kR2T, sizeof(R2TPdu), 0, 0, fmt);
}

size_t build_term_req(uint8_t* out, Role sender, Fes fes, uint32_t fei, const uint8_t* header,
                      size_t header_len) {
    const size_t copy = std::min(header_len, kTermReqMaxHeaderCopy);
    auto* pdu = zeroed<TermReqPdu>(out);
    pdu->ch.pdu_type =
        static_cast<uint8_t>(sender == Role::kTarget ? PduType::kC2HTermReq : PduType::kH2CTermReq);
    pdu->ch.hlen = sizeof(TermReqPdu);
    pdu->ch.plen = static_cast<uint32_t>(sizeof(TermReqPdu) + copy);
    pdu->fes = static_cast<uint16_t>(fes);
    // FEI is defined only for these two; reserved (zero) otherwise.
    if (fes == Fes::kInvalidHeaderField || fes == Fes::kUnsupportedParameter) pdu->fei = fei;
    if (copy > 0) std::memmove(out + sizeof(TermReqPdu), header, copy);
    return sizeof(TermReqPdu) + copy;
}

}  // namespace nocstor::nvmf::tcp
