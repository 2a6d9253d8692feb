// Helpers shared by the NVMe/TCP PDU codec tests: a recording handler and stream feeders.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <vector>

#include "nvmf/tcp_pdu.h"

namespace nocstor::nvmf::tcp::testing {

struct ReceivedPdu {
    PduType type;
    std::vector<uint8_t> header;  // HLEN bytes
    std::vector<uint8_t> data;
    bool data_digest_ok = true;
};

// Records every PDU; scatters data over three uneven pieces to exercise the iovec walk. When
// it sees the IC PDU it applies `after_ic`, as a connection would after the IC exchange.
class RecordingHandler : public PduHandler {
  public:
    explicit RecordingHandler(PduReceiver* rx = nullptr, Negotiated after_ic = {})
        : rx_(rx), after_ic_(after_ic) {}

    DataDestination on_header(const PduHeader& h) override {
        ReceivedPdu p{h.type(), {h.bytes().begin(), h.bytes().end()}, {}, true};
        p.data.assign(h.data_length(), 0xEE);
        pdus.push_back(std::move(p));
        if (fail_next.fes != Fes::kNone) return DataDestination::fail(fail_next.fes, fail_next.fei);
        if (discard_data || h.data_length() == 0) return DataDestination::discard();
        uint8_t* base = pdus.back().data.data();
        const size_t n = pdus.back().data.size();
        const size_t a = n / 3, b = n / 2;
        iov_[0] = {base, a};
        iov_[1] = {base + a, b - a};
        iov_[2] = {base + b, n - b};
        return DataDestination::into(iov_, 3);
    }

    AfterPdu on_pdu_complete(const PduHeader& h, bool data_digest_ok) override {
        EXPECT_EQ(static_cast<uint8_t>(h.type()), static_cast<uint8_t>(pdus.back().type));
        pdus.back().data_digest_ok = data_digest_ok;
        ++completed;
        if (rx_ && (h.type() == PduType::kICReq || h.type() == PduType::kICResp)) {
            rx_->set_negotiated(after_ic_);
        }
        return pause_after_each ? AfterPdu::kPause : AfterPdu::kContinue;
    }

    std::vector<ReceivedPdu> pdus;
    size_t completed = 0;
    bool discard_data = false;
    bool pause_after_each = false;
    RxError fail_next;

  private:
    PduReceiver* rx_;
    Negotiated after_ic_;
    iovec iov_[3];
};

// Feeds the whole stream in pieces of the given sizes (cycled); stops at an error.
inline size_t feed_in_pieces(PduReceiver& rx, const std::vector<uint8_t>& s,
                             const std::vector<size_t>& sizes, PduHandler& h) {
    size_t pos = 0, i = 0;
    while (pos < s.size() && !rx.failed()) {
        const size_t n = std::min(sizes[i++ % sizes.size()], s.size() - pos);
        const size_t used = rx.feed(s.data() + pos, n, h);
        pos += used;
        if (used < n && !rx.failed()) continue;  // paused: hand over the rest next time
    }
    return pos;
}

// Like feed_in_pieces, but each piece is "received" the way a connection does it with recvmsg:
// first straight into direct_span() when it is at least `direct_min` bytes, the rest fed.
inline size_t feed_direct_in_pieces(PduReceiver& rx, const std::vector<uint8_t>& s,
                                    const std::vector<size_t>& sizes, PduHandler& h,
                                    size_t direct_min = 1) {
    size_t pos = 0, i = 0;
    while (pos < s.size() && !rx.failed()) {
        size_t n = std::min(sizes[i++ % sizes.size()], s.size() - pos);
        const std::span<uint8_t> d = rx.direct_span();
        if (d.size() >= direct_min) {
            const size_t direct = std::min(n, d.size());
            std::memcpy(d.data(), s.data() + pos, direct);
            rx.direct_received(direct);
            pos += direct;
            n -= direct;
        }
        size_t used = 0;
        do {  // once even for nothing: completes a PDU whose data came directly
            used += rx.feed(s.data() + pos + used, n - used, h);
        } while (used < n && !rx.failed());
        pos += used;
    }
    if (!rx.failed()) rx.feed(nullptr, 0, h);
    return pos;
}

inline size_t feed_all(PduReceiver& rx, const std::vector<uint8_t>& s, PduHandler& h) {
    return feed_in_pieces(rx, s, {s.size() == 0 ? 1 : s.size()}, h);
}

inline std::vector<size_t> random_sizes(uint32_t seed, size_t max_piece) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<size_t> d(1, max_piece);
    std::vector<size_t> v(64);
    for (auto& x : v) x = d(rng);
    return v;
}

// Appends a PDU: header area, data, and the data digest when the format asks for it.
inline void append_pdu(std::vector<uint8_t>& s, const uint8_t* hdr, size_t hdr_len,
                       const std::vector<uint8_t>& data = {}, const TxFormat& fmt = {}) {
    s.insert(s.end(), hdr, hdr + hdr_len);
    s.insert(s.end(), data.begin(), data.end());
    if (sends_data_digest(fmt, static_cast<uint32_t>(data.size()))) {
        iovec v{const_cast<uint8_t*>(data.data()), data.size()};
        uint8_t d[4];
        store_digest(d, data_digest(&v, 1));
        s.insert(s.end(), d, d + 4);
    }
}

inline std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
    return v;
}

}  // namespace nocstor::nvmf::tcp::testing
