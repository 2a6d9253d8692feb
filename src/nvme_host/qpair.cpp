#include "nvme_host/qpair.h"

#include <sys/epoll.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nvmf/auth_messages.h"
#include "runtime/reactor.h"
#include "runtime/runtime.h"
#include "runtime/thread.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::nvme_host {

using namespace nvmf::tcp;
namespace tcp = nvmf::tcp;

namespace {
constexpr size_t kRxBufBytes = 128 * 1024;
constexpr size_t kDirectRecvMin = 1024;  // below this a copy is cheaper than a second iovec
constexpr size_t kTxIovs = 2 * NvmeTcpQpair::kMaxIovs + 64;
constexpr uint64_t kTimerPeriodUs = 20'000;

enum class PduKind : uint8_t { kNone, kCapsule, kH2C };
}  // namespace

struct NvmeTcpQpair::Request {
    nvme::SubmissionQueueEntry sqe{};
    const iovec* iov = nullptr;
    uint32_t iovcnt = 0;
    uint32_t len = 0;
    DataDir dir = DataDir::kNone;
    bool incapsule = false;
    bool active = false;
    bool in_tx = false;
    bool cmd_sent = false;
    bool r2t_active = false;
    NvmeCmdCb cb = nullptr;
    void* arg = nullptr;
    uint64_t deadline_ns = 0;
    uint32_t c2h_got = 0;   // read data received (next DATAO expected)
    uint32_t h2c_sent = 0;  // write data sent (in-capsule or H2CData)
    uint32_t r2t_end = 0;   // end of the data the current R2T asked for
    uint16_t ttag = 0;
    uint16_t gen = 0;
    // The PDU being sent: header, then data [pdu_off, pdu_off + pdu_len), then data digest.
    PduKind pdu = PduKind::kNone;
    uint32_t hdr_len = 0;
    uint32_t pdu_off = 0;
    uint32_t pdu_len = 0;
    uint32_t pdu_sent = 0;
    bool pdu_ddgst = false;
    uint8_t ddgst[4] = {};
    Request* tx_next = nullptr;
    alignas(8) uint8_t hdr[kMaxTxHeaderBytes] = {};

    uint32_t pdu_total() const { return hdr_len + pdu_len + (pdu_ddgst ? 4u : 0u); }
};

int iov_slice(const iovec* iov, uint32_t iovcnt, size_t off, size_t len, iovec* out,
              size_t out_max) {
    size_t n = 0;
    for (uint32_t i = 0; i < iovcnt && len > 0; ++i) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        if (n == out_max) return -1;
        const size_t take = std::min(iov[i].iov_len - off, len);
        out[n++] = {static_cast<uint8_t*>(iov[i].iov_base) + off, take};
        len -= take;
        off = 0;
    }
    return len == 0 ? int(n) : -1;
}

NvmeTcpQpair::NvmeTcpQpair(QpairOptions opts)
    : opts_(std::move(opts)),
      rx_(Role::kHost, RxLimits{0, opts_.max_c2h_pdu}),
      rx_buf_(kRxBufBytes),
      rx_slice_(kMaxIovs),
      tx_iov_(kTxIovs) {
    if (opts_.depth == 0) opts_.depth = 1;
    reqs_ = std::make_unique<Request[]>(opts_.depth);
    free_.reserve(opts_.depth);
    for (int i = int(opts_.depth) - 1; i >= 0; --i) free_.push_back(uint16_t(i));
    while ((1u << cid_bits_) < opts_.depth) ++cid_bits_;
}

NvmeTcpQpair::~NvmeTcpQpair() {
    disconnect();
}

// ---------------------------------------------------------------------------------------------
// Connection setup
// ---------------------------------------------------------------------------------------------
void NvmeTcpQpair::connect(ConnectDone done) {
    connect_done_ = std::move(done);
    thread_ = Thread::current();
    connect_deadline_ns_ = now_ns() + opts_.connect_timeout_us * 1000;
    std::string err;
    int rc = sock_.start_connect(opts_.trid.adrfam, opts_.trid.traddr, opts_.trid.trsvcid, &err);
    state_ = QpairState::kTcpConnect;
    if (thread_) {
        poller_ = thread_->register_poller(fmt::format("nvme_tcp_q{}", opts_.qid),
                                           [this] { return poll(); });
        timer_ = thread_->register_poller(
            fmt::format("nvme_tcp_q{}_timer", opts_.qid), [this] { return check_timeouts(); },
            kTimerPeriodUs);
    }
    if (rc == 0 && opts_.tls) {
        const security::TlsCipher c = security::cipher_for(opts_.tls->psk);
        const std::string& host = opts_.trid.hostnqn;
        const std::string& sub = opts_.trid.subnqn;
        auto s = security::TlsSession::client(security::psk_identity(c, host, sub),
                                              security::connection_psk(opts_.tls->psk, host, sub),
                                              c, &err);
        if (s)
            sock_.use_tls(std::move(s));
        else
            rc = -ENOMEM;
    }
    if (rc != 0) {
        fail(rc, err);
        return;
    }
    if (thread_ && thread_->reactor()) {
        fd_registered_ = thread_->reactor()->add_interrupt_fd(sock_.fd(), EPOLLIN | EPOLLOUT);
        writable_wanted_ = true;
    }
}

void NvmeTcpQpair::send_icreq() {
    ICReqParams p;
    p.hpda = 0;
    p.hdgst = opts_.hdgst;
    p.ddgst = opts_.ddgst;
    p.maxr2t = 0;
    ic_len_ = build_icreq(ic_buf_, p);
    ic_sent_ = 0;
    state_ = QpairState::kIcExchange;
}

void NvmeTcpQpair::send_connect() {
    state_ = QpairState::kFabricConnect;
    std::memset(&connect_data_, 0, sizeof connect_data_);
    std::memcpy(connect_data_.hostid, opts_.hostid, 16);
    connect_data_.cntlid = opts_.cntlid;
    const std::string& subnqn =
        opts_.trid.subnqn.empty() ? std::string(nvme::kDiscoveryNqn) : opts_.trid.subnqn;
    std::memcpy(connect_data_.subnqn, subnqn.data(),
                std::min(subnqn.size(), nvme::kNqnFieldSize - 1));
    std::memcpy(connect_data_.hostnqn, opts_.trid.hostnqn.data(),
                std::min(opts_.trid.hostnqn.size(), nvme::kNqnFieldSize - 1));
    nvme::ConnectCommand c{};
    c.opcode = nvme::admin_opc::kFabrics;
    c.fctype = nvme::fctype::kConnect;
    c.recfmt = 0;
    c.qid = opts_.qid;
    c.sqsize = opts_.depth;  // 0-based: one spare entry beyond the commands we keep in flight
    c.cattr = 0;
    c.kato = opts_.qid == 0 ? opts_.kato_ms : 0;
    nvme::SubmissionQueueEntry sqe;
    std::memcpy(&sqe, &c, sizeof sqe);
    connect_iov_ = {&connect_data_, sizeof connect_data_};
    // Connect always travels in the capsule, whatever the queue's in-capsule size.
    int rc = submit_internal(sqe, DataDir::kHostToCtrl, &connect_iov_, 1, sizeof connect_data_,
                             &NvmeTcpQpair::connect_cpl, this, true);
    if (rc != 0) fail(rc, "cannot queue Connect");
}

void NvmeTcpQpair::connect_cpl(void* arg, const NvmeCpl& cpl) {
    auto* q = static_cast<NvmeTcpQpair*>(arg);
    if (cpl.transport_rc != 0) return;  // fail() reports it
    if (!cpl.cqe.status.ok()) {
        nvme::ConnectResponse resp;
        std::memcpy(&resp, &cpl.cqe, sizeof resp);
        q->fail(-ECONNREFUSED,
                fmt::format("Connect (qid {}) rejected: sct {:#x} sc {:#x} (iattr {} ipo {})",
                            q->opts_.qid, cpl.cqe.status.sct(), cpl.cqe.status.sc(),
                            unsigned(resp.dw0.invalid.iattr), unsigned(resp.dw0.invalid.ipo)));
        return;
    }
    q->cntlid_ = uint16_t(cpl.cqe.dw0 & 0xFFFF);
    const bool auth_required = ((cpl.cqe.dw0 >> 16) & 0x3) != 0;  // AUTHREQ: ATR / ASCR
    if (auth_required && !q->opts_.auth) {
        q->fail(-EACCES,
                fmt::format("the controller requires DH-HMAC-CHAP authentication of {} (qid {}): "
                            "give the host key (dhchap_key)",
                            q->opts_.trid.hostnqn, q->opts_.qid));
        return;
    }
    if (!auth_required && q->opts_.auth && q->opts_.auth->ctrl) {
        // We were told to check the controller's identity; it never offered to prove it.
        q->fail(-EACCES, fmt::format("the controller did not ask for DH-HMAC-CHAP (qid {}), so it "
                                     "cannot prove itself with the controller key "
                                     "(dhchap_ctrlr_key); is the host's key set on the target?",
                                     q->opts_.qid));
        return;
    }
    if (!auth_required) return q->become_ready();
    q->state_ = QpairState::kAuthenticate;
    const std::string& subnqn =
        q->opts_.trid.subnqn.empty() ? std::string(nvme::kDiscoveryNqn) : q->opts_.trid.subnqn;
    q->auth_ = std::make_unique<HostAuth>(q->opts_.auth, q->opts_.trid.hostnqn, subnqn,
                                          uint16_t(q->opts_.qid + 1));
    q->auth_->set_deferred_dh(true);
    q->auth_buf_ = q->auth_->negotiate();
    q->auth_send(false);
}

void NvmeTcpQpair::become_ready() {
    state_ = QpairState::kReady;
    if (auth_) {
        NOC_DEBUG("nvme", "qid {}: authenticated (DH-HMAC-CHAP hmac({}), DH group {})", opts_.qid,
                  security::hash_name(auth_->hash()), security::dh_group_name(auth_->dh_group()));
        auth_.reset();
        security::wipe(auth_buf_);
    }
    if (connect_done_) {
        auto done = std::move(connect_done_);
        connect_done_ = nullptr;
        done(0, "");
    }
}

namespace {

// Commands whose data is an allocation length the controller may fill only partly:
// Authentication Receive returns the message, however long (SPDK's target sends just that, with
// SUCCESS in its C2HData). Everything else must transfer all its data to succeed.
bool may_return_less_sqe(const nvme::SubmissionQueueEntry& sqe) {
    const auto* b = reinterpret_cast<const uint8_t*>(&sqe);
    return b[0] == nvme::admin_opc::kFabrics && b[4] == nvme::fctype::kAuthReceive;
}

// AUTH_Send / AUTH_Receive: a fabrics command whose bytes 40-47 say which security protocol
// (DH-HMAC-CHAP) and how many bytes go or come.
nvme::SubmissionQueueEntry auth_command(uint8_t fctype, uint32_t len) {
    nvme::SubmissionQueueEntry sqe;
    std::memset(&sqe, 0, sizeof sqe);
    auto* b = reinterpret_cast<uint8_t*>(&sqe);
    b[0] = nvme::admin_opc::kFabrics;
    b[4] = fctype;
    nvmf::auth::CommandFields f{};
    f.spsp0 = nvmf::auth::kSpsp;
    f.spsp1 = nvmf::auth::kSpsp;
    f.secp = nvmf::auth::kSecpDhchap;
    f.length = len;
    std::memcpy(b + 40, &f, sizeof f);
    return sqe;
}

}  // namespace

void NvmeTcpQpair::auth_send(bool last) {
    auth_last_ = last;
    auth_iov_ = {auth_buf_.data(), auth_buf_.size()};
    const int rc = submit_internal(
        auth_command(nvme::fctype::kAuthSend, uint32_t(auth_buf_.size())), DataDir::kHostToCtrl,
        &auth_iov_, 1, uint32_t(auth_buf_.size()), &NvmeTcpQpair::auth_send_cpl, this, true);
    if (rc != 0) fail(rc, "cannot queue AUTH_Send");
}

void NvmeTcpQpair::auth_receive() {
    security::wipe(auth_buf_);
    auth_buf_.assign(HostAuth::kReceiveLength, 0);
    auth_iov_ = {auth_buf_.data(), auth_buf_.size()};
    const int rc = submit_internal(
        auth_command(nvme::fctype::kAuthReceive, uint32_t(auth_buf_.size())), DataDir::kCtrlToHost,
        &auth_iov_, 1, uint32_t(auth_buf_.size()), &NvmeTcpQpair::auth_receive_cpl, this, false);
    if (rc != 0) fail(rc, "cannot queue AUTH_Receive");
}

void NvmeTcpQpair::auth_send_cpl(void* arg, const NvmeCpl& cpl) {
    auto* q = static_cast<NvmeTcpQpair*>(arg);
    if (cpl.transport_rc != 0 || !q->auth_) return;  // fail() reports it
    if (!cpl.cqe.status.ok())
        return q->fail(-EACCES,
                       fmt::format("AUTH_Send (qid {}) refused: sct {:#x} sc {:#x}", q->opts_.qid,
                                   cpl.cqe.status.sct(), cpl.cqe.status.sc()));
    if (!q->auth_last_) return q->auth_receive();
    if (q->auth_->authenticated()) return q->become_ready();
    q->fail(-EACCES, fmt::format("DH-HMAC-CHAP (qid {}): {}", q->opts_.qid, q->auth_->error()));
}

void NvmeTcpQpair::auth_receive_cpl(void* arg, const NvmeCpl& cpl) {
    auto* q = static_cast<NvmeTcpQpair*>(arg);
    if (cpl.transport_rc != 0 || !q->auth_) return;
    if (!cpl.cqe.status.ok())
        return q->fail(
            -EACCES, fmt::format("AUTH_Receive (qid {}) refused: sct {:#x} sc {:#x}", q->opts_.qid,
                                 cpl.cqe.status.sct(), cpl.cqe.status.sc()));
    std::vector<uint8_t> out;
    const HostAuth::Next next = q->auth_->on_message(q->auth_buf_, &out);
    q->auth_next(next, std::move(out));
}

void NvmeTcpQpair::auth_next(HostAuth::Next next, std::vector<uint8_t> out) {
    NvmeTcpQpair* q = this;
    switch (next) {
        case HostAuth::Next::kSend:
        case HostAuth::Next::kSendEnd: {
            const bool last = next == HostAuth::Next::kSendEnd;
            security::wipe(q->auth_buf_);
            q->auth_buf_ = std::move(out);
            return q->auth_send(last);
        }
        case HostAuth::Next::kReceive:
            return q->auth_receive();
        case HostAuth::Next::kDone:
            return q->become_ready();
        case HostAuth::Next::kFailed:
            return q->fail(
                -EACCES, fmt::format("DH-HMAC-CHAP (qid {}): {}", q->opts_.qid, q->auth_->error()));
        case HostAuth::Next::kNeedDh: {
            // The exponentiations run on the control thread, not on this (data) thread.
            Thread* helper = Runtime::offload_thread();
            auto work = std::make_shared<HostAuth::DhWork>(q->auth_->dh_work());
            if (!helper) {
                work->run();
                std::vector<uint8_t> o;
                const HostAuth::Next n = q->auth_->finish_dh(std::move(*work), &o);
                return q->auth_next(n, std::move(o));
            }
            Thread* home = Thread::current();
            std::weak_ptr<int> alive = q->life_;
            helper->send([work, home, alive, q] {
                work->run();
                home->send([work, alive, q] {
                    if (alive.expired() || !q->auth_) return;  // the qpair went away meanwhile
                    std::vector<uint8_t> o;
                    const HostAuth::Next n = q->auth_->finish_dh(std::move(*work), &o);
                    q->auth_next(n, std::move(o));
                });
            });
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Submission
// ---------------------------------------------------------------------------------------------
int NvmeTcpQpair::submit(const nvme::SubmissionQueueEntry& sqe, DataDir dir, const iovec* iov,
                         int iovcnt, uint32_t len, NvmeCmdCb cb, void* arg) {
    if (state_ != QpairState::kReady) return -ENOTCONN;
    return submit_internal(sqe, dir, iov, iovcnt, len, cb, arg, false);
}

int NvmeTcpQpair::submit_internal(const nvme::SubmissionQueueEntry& sqe, DataDir dir,
                                  const iovec* iov, int iovcnt, uint32_t len, NvmeCmdCb cb,
                                  void* arg, bool force_incapsule) {
    if (iovcnt < 0 || uint32_t(iovcnt) > kMaxIovs) return -EINVAL;
    if (dir == DataDir::kNone) len = 0;
    if (len > 0) {
        size_t total = 0;
        for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
        if (total < len) return -EINVAL;
    }
    if (free_.empty()) return -EAGAIN;
    const uint16_t idx = free_.back();
    free_.pop_back();
    Request* r = &reqs_[idx];
    r->sqe = sqe;
    r->gen = uint16_t(r->gen + 1);
    r->sqe.cid = uint16_t(idx | (uint32_t(r->gen) << cid_bits_));
    r->sqe.flags = uint8_t((r->sqe.flags & 0x3) | nvme::kSqeFlagsPsdtSgl);
    r->iov = iov;
    r->iovcnt = uint32_t(iovcnt);
    r->len = len;
    r->dir = dir;
    r->cb = cb;
    r->arg = arg;
    r->active = true;
    r->cmd_sent = false;
    r->r2t_active = false;
    r->c2h_got = 0;
    r->h2c_sent = 0;
    r->r2t_end = 0;
    r->deadline_ns = opts_.command_timeout_us ? now_ns() + opts_.command_timeout_us * 1000 : 0;
    r->incapsule =
        dir == DataDir::kHostToCtrl && len > 0 && (force_incapsule || len <= opts_.incapsule_max);
    auto& sgl = r->sqe.sgl1;
    std::memset(&sgl, 0, sizeof sgl);
    sgl.length = len;
    sgl.id = r->incapsule ? nvme::kSglIdInCapsuleOffset : nvme::kSglIdTransportDataBlock;
    ++outstanding_;
    ++stats_.commands;
    if (r->incapsule) ++stats_.incapsule_writes;
    build_capsule(r);
    enqueue_tx(r);
    return 0;
}

void NvmeTcpQpair::build_capsule(Request* r) {
    const uint32_t data = r->incapsule ? r->len : 0;
    r->pdu = PduKind::kCapsule;
    r->hdr_len = uint32_t(build_capsule_cmd(r->hdr, r->sqe, data, tx_fmt_));
    r->pdu_off = 0;
    r->pdu_len = data;
    r->pdu_sent = 0;
    r->pdu_ddgst = sends_data_digest(tx_fmt_, data);
    if (r->pdu_ddgst) {
        iovec* s = tx_iov_.data();
        int n = iov_slice(r->iov, r->iovcnt, 0, data, s, kMaxIovs);
        nvmf::store_digest(r->ddgst, data_digest(s, size_t(n)));
    }
}

// The next H2CData PDU of the current R2T: at most MAXH2CDATA bytes.
void NvmeTcpQpair::build_h2c(Request* r) {
    const uint32_t len = std::min(r->r2t_end - r->h2c_sent, maxh2cdata_);
    DataPduParams p;
    p.cccid = r->sqe.cid;
    p.ttag = r->ttag;
    p.datao = r->h2c_sent;
    p.datal = len;
    p.last = r->h2c_sent + len == r->r2t_end;
    r->pdu = PduKind::kH2C;
    r->hdr_len = uint32_t(build_h2c_data(r->hdr, p, tx_fmt_));
    r->pdu_off = r->h2c_sent;
    r->pdu_len = len;
    r->pdu_sent = 0;
    r->pdu_ddgst = sends_data_digest(tx_fmt_, len);
    if (r->pdu_ddgst) {
        iovec* s = tx_iov_.data();
        int n = iov_slice(r->iov, r->iovcnt, r->pdu_off, len, s, kMaxIovs);
        nvmf::store_digest(r->ddgst, data_digest(s, size_t(n)));
    }
    ++stats_.h2c_pdus;
}

void NvmeTcpQpair::enqueue_tx(Request* r) {
    r->in_tx = true;
    r->tx_next = nullptr;
    if (tx_tail_)
        tx_tail_->tx_next = r;
    else
        tx_head_ = r;
    tx_tail_ = r;
}

void NvmeTcpQpair::on_pdu_sent(Request* r) {
    if (r->pdu == PduKind::kCapsule) {
        r->cmd_sent = true;
        if (r->incapsule) r->h2c_sent = r->len;
    } else if (r->pdu == PduKind::kH2C) {
        r->h2c_sent += r->pdu_len;
        if (r->h2c_sent < r->r2t_end) {
            build_h2c(r);
            enqueue_tx(r);
            return;
        }
        r->r2t_active = false;
    }
    r->pdu = PduKind::kNone;
}

int NvmeTcpQpair::flush_tx() {
    int work = 0;
    if (sock_.tls()) {  // ciphertext left over from the last pass first
        if (int rc = sock_.flush_output(); rc < 0) {
            fail(rc, fmt::format("send failed: {}", strerror(-rc)));
            return 1;
        }
    }
    if (state_ == QpairState::kIcExchange && ic_sent_ < ic_len_) {
        iovec v{ic_buf_ + ic_sent_, ic_len_ - ic_sent_};
        ssize_t n = sock_.sendv(&v, 1);
        if (n < 0) {
            fail(int(n), "send ICReq failed");
            return 1;
        }
        ic_sent_ += size_t(n);
        stats_.bytes_sent += uint64_t(n);
        want_write(ic_sent_ < ic_len_ || sock_.output_pending());
        return n > 0;
    }
    while (tx_head_) {
        size_t cnt = 0;
        for (Request* r = tx_head_; r && cnt + r->iovcnt + 3 <= kTxIovs; r = r->tx_next) {
            uint32_t skip = r->pdu_sent;
            auto add = [&](void* base, size_t len) {
                if (len == 0) return;
                if (skip >= len) {
                    skip -= uint32_t(len);
                    return;
                }
                tx_iov_[cnt++] = {static_cast<uint8_t*>(base) + skip, len - skip};
                skip = 0;
            };
            add(r->hdr, r->hdr_len);
            if (r->pdu_len > 0) {
                iovec slice[kMaxIovs];
                int n = iov_slice(r->iov, r->iovcnt, r->pdu_off, r->pdu_len, slice, kMaxIovs);
                for (int i = 0; i < n; ++i) add(slice[i].iov_base, slice[i].iov_len);
            }
            if (r->pdu_ddgst) add(r->ddgst, 4);
        }
        ssize_t n = sock_.sendv(tx_iov_.data(), int(cnt));
        if (n < 0) {
            fail(int(n), fmt::format("send failed: {}", strerror(int(-n))));
            return work + 1;
        }
        if (n == 0) break;
        ++work;
        stats_.bytes_sent += uint64_t(n);
        size_t left = size_t(n);
        while (tx_head_ && left > 0) {
            Request* r = tx_head_;
            const uint32_t remain = r->pdu_total() - r->pdu_sent;
            if (left < remain) {
                r->pdu_sent += uint32_t(left);
                break;
            }
            left -= remain;
            tx_head_ = r->tx_next;
            if (!tx_head_) tx_tail_ = nullptr;
            r->in_tx = false;
            on_pdu_sent(r);
        }
        if (left == 0 && tx_head_ && tx_head_->pdu_sent > 0) break;  // short write: socket full
    }
    want_write(tx_head_ != nullptr || sock_.output_pending());
    return work;
}

void NvmeTcpQpair::want_write(bool on) {
    if (on == writable_wanted_ || !fd_registered_) return;
    writable_wanted_ = on;
    thread_->reactor()->modify_interrupt_fd(sock_.fd(), on ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
}

// ---------------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------------
NvmeTcpQpair::Request* NvmeTcpQpair::find(uint16_t cid) {
    const uint32_t idx = cid & ((1u << cid_bits_) - 1);
    if (idx >= opts_.depth) return nullptr;
    Request* r = &reqs_[idx];
    return r->active && r->sqe.cid == cid ? r : nullptr;
}

DataDestination NvmeTcpQpair::reject(Fes fes, uint32_t fei, std::string why) {
    last_error_ = std::move(why);
    return DataDestination::fail(fes, fei);
}

DataDestination NvmeTcpQpair::on_header(const PduHeader& h) {
    rx_req_ = nullptr;
    switch (h.type()) {
        case PduType::kICResp:
            if (state_ != QpairState::kIcExchange)
                return reject(Fes::kPduSequenceError, 0, "unexpected ICResp");
            return DataDestination::discard();
        case PduType::kC2HTermReq:
            return DataDestination::discard();
        case PduType::kCapsuleResp:
            return DataDestination::discard();
        case PduType::kC2HData: {
            const auto& d = h.as<DataPdu>();
            Request* r = find(d.cccid);
            if (!r || r->dir != DataDir::kCtrlToHost) {
                return reject(Fes::kInvalidHeaderField, offsetof(DataPdu, cccid),
                              fmt::format("C2HData for unknown or non-read command {}", d.cccid));
            }
            if (d.datao != r->c2h_got || uint64_t(d.datao) + d.datal > r->len) {
                return reject(Fes::kDataOutOfRange, 0,
                              fmt::format("C2HData offset {} length {} outside the read ({} of {})",
                                          d.datao, d.datal, r->c2h_got, r->len));
            }
            const int n =
                iov_slice(r->iov, r->iovcnt, d.datao, d.datal, rx_slice_.data(), rx_slice_.size());
            if (n < 0) return reject(Fes::kDataOutOfRange, 0, "C2HData beyond the buffers");
            rx_req_ = r;
            ++stats_.c2h_pdus;
            return DataDestination::into(rx_slice_.data(), uint32_t(n));
        }
        case PduType::kR2T: {
            const auto& t = h.as<R2TPdu>();
            Request* r = find(t.cccid);
            if (!r || r->dir != DataDir::kHostToCtrl || r->incapsule || !r->cmd_sent ||
                r->r2t_active) {
                return reject(Fes::kPduSequenceError, 0,
                              fmt::format("unexpected R2T for command {}", t.cccid));
            }
            if (t.r2to != r->h2c_sent || uint64_t(t.r2to) + t.r2tl > r->len) {
                return reject(Fes::kDataOutOfRange, 0,
                              fmt::format("R2T offset {} length {} outside the write ({} of {})",
                                          t.r2to, t.r2tl, r->h2c_sent, r->len));
            }
            rx_req_ = r;
            return DataDestination::discard();
        }
        default:
            return reject(Fes::kInvalidHeaderField, 0, "unexpected PDU type");
    }
}

AfterPdu NvmeTcpQpair::on_pdu_complete(const PduHeader& h, bool digest_ok) {
    if (!digest_ok) {
        fail(-EIO, "data digest mismatch");
        return AfterPdu::kPause;
    }
    switch (h.type()) {
        case PduType::kICResp: {
            const auto& ic = h.as<ICRespPdu>();
            const bool hd = ic.dgst & kIcDigestHeader, dd = ic.dgst & kIcDigestData;
            if (hd != opts_.hdgst || dd != opts_.ddgst) {
                fail(-EPROTO,
                     fmt::format("ICResp digests hdr={} data={} differ from the request", hd, dd));
                return AfterPdu::kPause;
            }
            maxh2cdata_ = ic.maxh2cdata;
            tx_fmt_ = TxFormat{opts_.hdgst, opts_.ddgst, ic.cpda};
            rx_.set_negotiated(Negotiated{opts_.hdgst, opts_.ddgst, 0});
            send_connect();
            return AfterPdu::kContinue;
        }
        case PduType::kC2HTermReq: {
            const auto& t = h.as<TermReqPdu>();
            fail(-ECONNRESET,
                 fmt::format("controller terminated the connection: C2HTermReq FES {} FEI {}",
                             t.fes, t.fei));
            return AfterPdu::kPause;
        }
        case PduType::kCapsuleResp: {
            const auto& resp = h.as<CapsuleRespPdu>();
            Request* r = find(resp.cqe.cid);
            if (!r) {
                fail(-EPROTO, fmt::format("completion for unknown command id {}", resp.cqe.cid));
                return AfterPdu::kPause;
            }
            if (r->in_tx || r->r2t_active) {
                fail(-EPROTO, fmt::format("completion for command {} while its data is still "
                                          "being sent",
                                          resp.cqe.cid));
                return AfterPdu::kPause;
            }
            NvmeCpl cpl;
            cpl.cqe = resp.cqe;
            if (cpl.cqe.status.ok() && r->dir == DataDir::kCtrlToHost && r->c2h_got != r->len &&
                !may_return_less_sqe(r->sqe)) {
                // A short read reported as success: never hand back a partly filled buffer.
                cpl.cqe.status = nvme::Status::generic(nvme::sc::kDataTransferError);
            }
            complete(r, cpl);
            return AfterPdu::kContinue;
        }
        case PduType::kC2HData: {
            Request* r = rx_req_;
            const auto& d = h.as<DataPdu>();
            r->c2h_got += d.datal;
            if (h.has_flag(pdu_flags::kSuccess)) {
                if (r->c2h_got != r->len && !may_return_less_sqe(r->sqe)) {
                    fail(-EPROTO, "C2HData SUCCESS before all the data");
                    return AfterPdu::kPause;
                }
                NvmeCpl cpl;
                cpl.cqe.cid = r->sqe.cid;
                cpl.cqe.sqid = opts_.qid;
                complete(r, cpl);
            }
            return AfterPdu::kContinue;
        }
        case PduType::kR2T: {
            Request* r = rx_req_;
            const auto& t = h.as<R2TPdu>();
            r->r2t_active = true;
            r->ttag = t.ttag;
            r->r2t_end = t.r2to + t.r2tl;
            ++stats_.r2t;
            build_h2c(r);
            enqueue_tx(r);
            return AfterPdu::kContinue;
        }
        default:
            return AfterPdu::kContinue;
    }
}

void NvmeTcpQpair::complete(Request* r, const NvmeCpl& cpl) {
    r->active = false;
    const NvmeCmdCb cb = r->cb;
    void* arg = r->arg;
    --outstanding_;
    free_.push_back(uint16_t(r - reqs_.get()));
    if (cb) cb(arg, cpl);
}

int NvmeTcpQpair::receive() {
    int work = 0;
    for (int i = 0; i < 8 && state_ != QpairState::kFailed && state_ != QpairState::kIdle; ++i) {
        // Large C2HData goes straight into the caller's buffer, what follows into rx_buf_.
        const std::span<uint8_t> direct = rx_.direct_span();
        iovec iov[2];
        int cnt = 0;
        if (direct.size() >= kDirectRecvMin) iov[cnt++] = {direct.data(), direct.size()};
        iov[cnt++] = {rx_buf_.data(), rx_buf_.size()};
        ssize_t n = sock_.recvv(iov, cnt);
        if (n == 0) break;
        if (n < 0) {
            fail(int(n), recv_error(n));
            return work + 1;
        }
        ++work;
        stats_.bytes_received += uint64_t(n);
        if (cnt == 2) {
            const size_t d = std::min(size_t(n), direct.size());
            rx_.direct_received(d);
            n -= ssize_t(d);
        }
        size_t off = 0;
        do {  // at least once: completes a PDU whose data all came by direct receive
            off += rx_.feed(rx_buf_.data() + off, size_t(n) - off, *this);
            if (rx_.failed()) {
                // Tell the controller why (best effort, never digested), then drop the link.
                uint8_t term[kTermReqMaxHeaderCopy + sizeof(TermReqPdu)];
                auto hdr = rx_.error_header();
                size_t tl = build_term_req(term, Role::kHost, rx_.error().fes, rx_.error().fei,
                                           hdr.data(), hdr.size());
                iovec v{term, tl};
                sock_.sendv(&v, 1);
                fail(-EPROTO, last_error_.empty() ? fmt::format("bad PDU from the target (FES {})",
                                                                uint16_t(rx_.error().fes))
                                                  : last_error_);
                return work;
            }
        } while (off < size_t(n) && state_ != QpairState::kFailed);
        if (size_t(n) < rx_buf_.size() && !sock_.input_buffered()) break;
    }
    return work;
}

std::string NvmeTcpQpair::recv_error(ssize_t n) const {
    if (n == -EKEYREJECTED)
        return "TLS handshake with the target failed (wrong or unknown PSK?): " + sock_.tls_error();
    if (n == -EPROTO && sock_.tls()) return "TLS: " + sock_.tls_error();
    if (n == -ECONNRESET)
        return sock_.tls() && !sock_.tls_established()
                   ? "the target closed the connection during the TLS handshake (not a secure "
                     "channel listener, or the PSK was refused)"
                   : "connection closed by the target";
    return fmt::format("recv: {}", strerror(int(-n)));
}

// ---------------------------------------------------------------------------------------------
// Polling, timeouts, failure
// ---------------------------------------------------------------------------------------------
int NvmeTcpQpair::poll() {
    int work = 0;
    switch (state_) {
        case QpairState::kIdle:
        case QpairState::kFailed:
            return 0;
        case QpairState::kTcpConnect: {
            int rc = sock_.connect_result();
            if (rc == 0) return 0;
            if (rc < 0) {
                fail(rc, fmt::format("connect to {}:{}: {}", opts_.trid.traddr, opts_.trid.trsvcid,
                                     strerror(-rc)));
                return 1;
            }
            send_icreq();
            work = 1;
            break;
        }
        default:
            break;
    }
    work += flush_tx();
    if (state_ != QpairState::kFailed) work += receive();
    if (state_ == QpairState::kReady || state_ == QpairState::kFabricConnect ||
        state_ == QpairState::kAuthenticate)
        work += flush_tx();
    return work;
}

int NvmeTcpQpair::check_timeouts() {
    if (state_ == QpairState::kIdle || state_ == QpairState::kFailed) return 0;
    const uint64_t now = now_ns();
    if (state_ != QpairState::kReady) {
        if (now > connect_deadline_ns_) fail(-ETIMEDOUT, "connect timed out");
        return 0;
    }
    if (opts_.command_timeout_us == 0 || outstanding_ == 0) return 0;
    for (uint32_t i = 0; i < opts_.depth; ++i) {
        const Request& r = reqs_[i];
        if (r.active && r.deadline_ns && now > r.deadline_ns) {
            fail(-ETIMEDOUT,
                 fmt::format("command {:#x} (opcode {:#x}) timed out", r.sqe.cid, r.sqe.opcode));
            return 1;
        }
    }
    return 0;
}

void NvmeTcpQpair::stop_pollers() {
    if (fd_registered_ && thread_ && thread_->reactor()) {
        thread_->reactor()->remove_interrupt_fd(sock_.fd());
    }
    fd_registered_ = false;
    writable_wanted_ = false;
    if (thread_) {
        if (poller_) thread_->unregister_poller(poller_);
        if (timer_) thread_->unregister_poller(timer_);
    }
    poller_ = timer_ = nullptr;
}

void NvmeTcpQpair::fail_all(int rc) {
    tx_head_ = tx_tail_ = nullptr;
    for (uint32_t i = 0; i < opts_.depth; ++i) {
        Request* r = &reqs_[i];
        r->in_tx = false;
        if (!r->active) continue;
        NvmeCpl cpl;
        cpl.transport_rc = rc;
        cpl.cqe.cid = r->sqe.cid;
        complete(r, cpl);
    }
}

void NvmeTcpQpair::fail(int rc, std::string why) {
    if (state_ == QpairState::kFailed || state_ == QpairState::kIdle) return;
    const bool was_ready = state_ == QpairState::kReady;
    state_ = QpairState::kFailed;
    last_error_ = std::move(why);
    NOC_DEBUG("nvme", "qpair {} to {}:{} failed: {}", opts_.qid, opts_.trid.traddr,
              opts_.trid.trsvcid, last_error_);
    stop_pollers();
    sock_.close();
    fail_all(rc);
    if (!was_ready && connect_done_) {
        auto done = std::move(connect_done_);
        connect_done_ = nullptr;
        done(rc, last_error_);
    } else if (was_ready && on_failure_) {
        auto cb = on_failure_;  // the callback may destroy nothing but may reset on_failure_
        cb(rc, last_error_);
    }
}

void NvmeTcpQpair::disconnect() {
    if (state_ == QpairState::kIdle) return;
    const bool failed = state_ == QpairState::kFailed;
    state_ = QpairState::kIdle;
    stop_pollers();
    sock_.close();
    if (!failed) fail_all(-ECANCELED);
    connect_done_ = nullptr;
}

}  // namespace nocstor::nvme_host
