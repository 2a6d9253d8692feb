// libFuzzer target: random bytes, in random chunk sizes, into a PduReceiver (target role, or
// host role when options bit 7 is set).
// Input layout: byte 0 = options, byte 1 = chunking seed, rest = the TCP stream.
//   options bit 0: header digest, bit 1: data digest, bit 2: start after a valid IC PDU,
//   bit 3: discard data, bit 4: pause after each PDU, bits 5-6: rx PDA 0/1/3/7,
//   bit 7: host role.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "nvmf/tcp_pdu.h"

// The component libraries are built without -fsanitize=fuzzer/address/undefined (only this
// target gets them), so the codec is compiled into this file to get coverage feedback and
// sanitizer checks inside the parser. The archive copies are then never pulled in.
#include "nvmf/tcp_pdu.cpp"  // NOLINT(bugprone-suspicious-include)
#include "util/crc32c.cpp"   // NOLINT(bugprone-suspicious-include)

using namespace nocstor::nvmf::tcp;

namespace {

class FuzzHandler : public PduHandler {
  public:
    FuzzHandler(PduReceiver& rx, Negotiated n, bool discard, bool pause)
        : rx_(rx), negotiated_(n), discard_(discard), pause_(pause) {}

    DataDestination on_header(const PduHeader& h) override {
        if (h.hlen() != h.bytes().size() || h.hlen() > kMaxHeaderLength) abort();
        if (h.type() == PduType::kCapsuleCmd && h.data_length() > 8192) abort();
        if ((h.type() == PduType::kH2CData || h.type() == PduType::kC2HData) &&
            h.data_length() > 16384) {
            abort();
        }
        if (discard_) return DataDestination::discard();
        // Two pieces, smaller than the data at times, to exercise the drop path.
        iov_[0] = {buf_, 100};
        iov_[1] = {buf_ + 100, sizeof buf_ - 100};
        return DataDestination::into(iov_, 2);
    }

    AfterPdu on_pdu_complete(const PduHeader& h, bool) override {
        if (h.type() == PduType::kICReq || h.type() == PduType::kICResp) {
            rx_.set_negotiated(negotiated_);
        }
        return pause_ ? AfterPdu::kPause : AfterPdu::kContinue;
    }

  private:
    PduReceiver& rx_;
    Negotiated negotiated_;
    bool discard_;
    bool pause_;
    uint8_t buf_[6000];
    iovec iov_[2];
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const uint8_t options = data[0];
    uint32_t rng = data[1] * 2654435761u + 1;
    data += 2;
    size -= 2;

    static constexpr uint8_t kPdas[4] = {0, 1, 3, 7};
    const Negotiated n{(options & 1) != 0, (options & 2) != 0, kPdas[(options >> 5) & 3]};
    const Role role = (options & 0x80) ? Role::kHost : Role::kTarget;
    PduReceiver rx(role, RxLimits{8192, 16384});
    FuzzHandler handler(rx, n, (options & 8) != 0, (options & 16) != 0);

    if (options & 4) {
        uint8_t ic[128];
        const size_t len = role == Role::kTarget
                               ? build_icreq(ic, {0, n.hdgst, n.ddgst, 0})
                               : build_icresp(ic, {n.rx_pda, n.hdgst, n.ddgst, 16384});
        if (rx.feed(ic, len, handler) != len || rx.failed()) abort();
    }

    size_t pos = 0;
    while (pos < size && !rx.failed()) {
        rng = rng * 1103515245u + 12345u;
        size_t chunk = 1 + (rng >> 16) % 300;
        if (chunk > size - pos) chunk = size - pos;
        const size_t used = rx.feed(data + pos, chunk, handler);
        if (used > chunk) abort();
        if (used == 0 && !rx.failed() && chunk > 0) abort();  // no progress without an error
        pos += used;
    }
    if (rx.failed()) {
        const auto fes = static_cast<uint16_t>(rx.error().fes);
        if (fes < 1 || fes > 6) abort();
        if (rx.error_header().size() > kTermReqMaxHeaderCopy) abort();
        uint8_t term[kMaxTxHeaderBytes];
        const size_t len = build_term_req(term, role, rx.error().fes, rx.error().fei,
                                          rx.error_header().data(), rx.error_header().size());
        if (len < 24 || len > 152) abort();
    }
    return 0;
}
