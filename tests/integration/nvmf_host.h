// A minimal NVMe/TCP host for protocol tests: blocking socket, hand-built PDUs (tcp_pdu.h
// builders), responses parsed by the host-role PduReceiver. Every wait is bounded.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "nvmf/spec.h"
#include "nvmf/tcp_pdu.h"

namespace nocstor::nvmf::testing {

using namespace nocstor::nvmf::tcp;

struct HostPdu {
    PduType type;
    std::vector<uint8_t> hdr;
    std::vector<uint8_t> data;
    bool digest_ok = true;
    template <class T>
    const T& as() const {
        return *reinterpret_cast<const T*>(hdr.data());
    }
};

class TestHost : public PduHandler {
  public:
    explicit TestHost(uint16_t port) : rx_(Role::kHost, RxLimits{8192, 1u << 20}) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~TestHost() override {
        if (fd_ >= 0) ::close(fd_);
    }
    bool ok() const { return connected_; }
    const TxFormat& fmt() const { return fmt_; }

    void send_raw(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        while (n > 0) {
            const ssize_t w = ::send(fd_, b, n, MSG_NOSIGNAL);
            if (w <= 0) return;
            b += w;
            n -= static_cast<size_t>(w);
        }
    }

    // ICReq/ICResp. Returns the ICResp (empty optional on failure).
    std::optional<HostPdu> ic(bool hdgst = false, bool ddgst = false) {
        uint8_t buf[128];
        const size_t n = build_icreq(buf, ICReqParams{0, hdgst, ddgst, 0});
        send_raw(buf, n);
        auto p = recv();
        if (!p || p->type != PduType::kICResp) return std::nullopt;
        fmt_ = TxFormat{hdgst, ddgst, 0};
        rx_.set_negotiated(Negotiated{hdgst, ddgst, 0});
        return p;
    }

    void send_cmd(const nvme::SubmissionQueueEntry& sqe, const void* icd = nullptr,
                  uint32_t len = 0) {
        uint8_t hdr[kMaxTxHeaderBytes];
        const size_t h = build_capsule_cmd(hdr, sqe, len, fmt_);
        std::vector<uint8_t> out(hdr, hdr + h);
        append_data(out, icd, len);
        send_raw(out.data(), out.size());
    }

    void send_h2c(uint16_t cccid, uint16_t ttag, uint32_t off, const void* data, uint32_t len,
                  bool last) {
        uint8_t hdr[kMaxTxHeaderBytes];
        const size_t h =
            build_h2c_data(hdr, DataPduParams{cccid, ttag, off, len, last, false}, fmt_);
        std::vector<uint8_t> out(hdr, hdr + h);
        append_data(out, data, len);
        send_raw(out.data(), out.size());
    }

    // Next PDU, or nullopt on timeout / close / receive error.
    std::optional<HostPdu> recv(int timeout_ms = 5000) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (complete_ == 0) {
            if (rx_.failed() || closed_) return std::nullopt;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            uint8_t buf[65536];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                closed_ = true;
                break;
            }
            size_t off = 0;
            while (off < static_cast<size_t>(n) && !rx_.failed()) {
                off += rx_.feed(buf + off, static_cast<size_t>(n) - off, *this);
            }
        }
        if (complete_ == 0) return std::nullopt;
        HostPdu p = std::move(pdus_.front());
        pdus_.pop_front();
        --complete_;
        return p;
    }

    // Waits for the CapsuleResp of `cid`, gathering C2HData into *data.
    std::optional<nvme::CompletionQueueEntry> wait_resp(uint16_t cid,
                                                        std::vector<uint8_t>* data = nullptr) {
        for (int i = 0; i < 1000; ++i) {
            auto p = recv();
            if (!p) return std::nullopt;
            if (p->type == PduType::kC2HData && data) {
                const auto& d = p->as<DataPdu>();
                if (data->size() < d.datao + d.datal) data->resize(d.datao + d.datal);
                std::memcpy(data->data() + d.datao, p->data.data(), d.datal);
                continue;
            }
            if (p->type == PduType::kCapsuleResp) {
                const auto cqe = p->as<CapsuleRespPdu>().cqe;
                if (cqe.cid == cid) return cqe;
                others.push_back(cqe);
            }
        }
        return std::nullopt;
    }

    // True once the target closed the connection (EOF) within the timeout.
    bool wait_closed(int timeout_ms = 3000) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (!closed_ && std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            uint8_t buf[65536];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                closed_ = true;
                break;
            }
            size_t off = 0;
            while (off < static_cast<size_t>(n) && !rx_.failed()) {
                off += rx_.feed(buf + off, static_cast<size_t>(n) - off, *this);
            }
        }
        return closed_;
    }

    std::deque<HostPdu> pdus_;                       // the last one may still be receiving its data
    size_t complete_ = 0;                            // fully received PDUs at the front of pdus_
    std::vector<nvme::CompletionQueueEntry> others;  // responses seen while waiting for another

  private:
    void append_data(std::vector<uint8_t>& out, const void* data, uint32_t len) {
        if (len == 0) return;
        const auto* d = static_cast<const uint8_t*>(data);
        out.insert(out.end(), d, d + len);
        if (sends_data_digest(fmt_, len)) {
            iovec v{const_cast<void*>(data), len};
            uint8_t dg[4];
            store_digest(dg, data_digest(&v, 1));
            out.insert(out.end(), dg, dg + 4);
        }
    }

    DataDestination on_header(const PduHeader& h) override {
        HostPdu p{h.type(), {h.bytes().begin(), h.bytes().end()}, {}, true};
        p.data.resize(h.data_length());
        pdus_.push_back(std::move(p));
        if (h.data_length() == 0) return DataDestination::discard();
        iov_ = {pdus_.back().data.data(), pdus_.back().data.size()};
        return DataDestination::into(&iov_, 1);
    }
    AfterPdu on_pdu_complete(const PduHeader&, bool digest_ok) override {
        pdus_.back().digest_ok = digest_ok;
        ++complete_;
        return AfterPdu::kContinue;
    }

    int fd_ = -1;
    bool connected_ = false;
    bool closed_ = false;
    PduReceiver rx_;
    TxFormat fmt_;
    iovec iov_{};
};

// SQE helpers.
inline nvme::SubmissionQueueEntry sqe(uint8_t opcode, uint16_t cid, uint32_t nsid = 0) {
    nvme::SubmissionQueueEntry s{};
    s.opcode = opcode;
    s.flags = nvme::kSqeFlagsPsdtSgl;
    s.cid = cid;
    s.nsid = nsid;
    s.sgl1.id = nvme::kSglIdTransportDataBlock;
    return s;
}
inline void set_incapsule(nvme::SubmissionQueueEntry& s, uint32_t len) {
    s.sgl1.id = nvme::kSglIdInCapsuleOffset;
    s.sgl1.address = 0;
    s.sgl1.length = len;
}
inline void set_transport(nvme::SubmissionQueueEntry& s, uint32_t len) {
    s.sgl1.id = nvme::kSglIdTransportDataBlock;
    s.sgl1.address = 0;
    s.sgl1.length = len;
}

}  // namespace nocstor::nvmf::testing
