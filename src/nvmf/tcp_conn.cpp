#include "nvmf/tcp_conn.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nvmf/auth.h"
#include "nvmf/commands.h"
#include "nvmf/controller.h"
#include "nvmf/limits.h"
#include "nvmf/poll_group.h"
#include "nvmf/uring_sock.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::nvmf {

using namespace tcp;
using nvme::Status;

namespace {
constexpr size_t kStagingSize = 64 * 1024;
constexpr int kMaxRecvPerPoll = 8;
constexpr size_t kDirectRecvMin = 1024;  // below this a copy is cheaper than a second iovec
constexpr uint64_t kDrainTimeoutNs = 200'000'000;  // after a TermReq

// Per-thread receive staging buffer: every connection of a poll group shares it, since a
// connection consumes all it received before the next one runs.
thread_local std::unique_ptr<uint8_t[]> t_staging;
uint8_t* staging() {
    if (!t_staging) t_staging = std::make_unique<uint8_t[]>(kStagingSize);
    return t_staging.get();
}
}  // namespace

TcpConn::TcpConn(PollGroup* pg, int fd, uint64_t id, uint32_t listener_id)
    : pg_(pg),
      fd_(fd),
      id_(id),
      listener_id_(listener_id),
      created_ns_(now_ns()),
      rx_(Role::kTarget, RxLimits{kInCapsuleDataSize, kMaxH2CData}),
      reqs_(std::make_unique<Request[]>(kRequestsPerConn)) {
    for (uint32_t i = kRequestsPerConn; i-- > 0;) {
        Request& r = reqs_[i];
        r.conn = this;
        r.index = static_cast<uint16_t>(i);
        r.next = free_head_;
        free_head_ = &r;
    }
}

TcpConn::~TcpConn() {
    if (fd_ >= 0) ::close(fd_);
}

void TcpConn::set_admin(Controller* c, PgSubsystem* s, uint16_t cntlid, uint16_t sq_entries) {
    connected_ = true;
    ctrl_ = c;
    subsys_ = s;
    cntlid_ = cntlid;
    qid_ = 0;
    sq_entries_ = sq_entries;
}

void TcpConn::set_io(PgSubsystem* s, uint16_t cntlid, uint16_t qid, uint16_t sq_entries) {
    connected_ = true;
    subsys_ = s;
    cntlid_ = cntlid;
    qid_ = qid;
    sq_entries_ = sq_entries;
}

// ---------------------------------------------------------------------------------------------
// Receive
// ---------------------------------------------------------------------------------------------

int TcpConn::recv_iov(iovec iov[2], uint8_t* staging, size_t staging_len) const {
    int cnt = 0;
    if (!draining_) {
        // Large PDU data (H2CData, big in-capsule writes) goes straight into its pool buffer;
        // whatever follows it lands in the staging buffer. One receive either way.
        const std::span<uint8_t> direct = rx_.direct_span();
        if (direct.size() >= kDirectRecvMin) iov[cnt++] = {direct.data(), direct.size()};
    }
    iov[cnt++] = {staging, staging_len};
    return cnt;
}

void TcpConn::received(size_t n, const iovec* iov, int iovcnt) {
    if (closed_ || draining_) return;  // after a TermReq input is only drained
    if (iovcnt == 2) {
        const size_t d = std::min(n, iov[0].iov_len);
        rx_.direct_received(d);
        n -= d;
    }
    consume(static_cast<const uint8_t*>(iov[iovcnt - 1].iov_base), n);
}

int TcpConn::on_readable() {
    if (tls_) return on_readable_tls();
    int work = 0;
    uint8_t* buf = staging();
    for (int i = 0; i < kMaxRecvPerPoll && !closed_; ++i) {
        iovec iov[2];
        const int cnt = recv_iov(iov, buf, kStagingSize);
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(cnt);
        const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
        if (n == 0) {
            close(draining_ ? "terminated" : "peer closed the connection");
            break;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) close(strerror(errno));
            break;
        }
        work += static_cast<int>(n);
        received(static_cast<size_t>(n), iov, cnt);
        if (static_cast<size_t>(n) < iov[0].iov_len + (cnt == 2 ? iov[1].iov_len : 0)) break;
    }
    return work;
}

// Feeds received bytes to the PDU parser; called once even for 0 bytes so that a PDU whose
// data arrived by direct receive completes.
void TcpConn::consume(const uint8_t* buf, size_t n) {
    size_t off = 0;
    do {
        off += rx_.feed(buf + off, n - off, *this);
        if (rx_.failed()) {
            const auto hdr = rx_.error_header();
            send_term_req(rx_.error().fes, rx_.error().fei, hdr.data(), hdr.size());
            return;
        }
    } while (off < n && !closed_ && !draining_);
}

Request* TcpConn::alloc_request() {
    Request* r = free_head_;
    if (!r) return nullptr;
    free_head_ = r->next;
    r->next = nullptr;
    r->incapsule = r->buffer_failed = r->ddgst_error = r->external = r->r2t_queued = false;
    r->icd_len = r->data_len = r->h2c_next = 0;
    r->buf = Buffer{};
    r->after_data = nullptr;
    r->ns = nullptr;
    r->range_idx = 0;
    r->sub_status = Status::success();
    r->submit = nullptr;
    r->rsp = {};
    return r;
}

DataDestination TcpConn::on_header(const PduHeader& h) {
    switch (h.type()) {
        case PduType::kICReq:
        case PduType::kH2CTermReq:
            return DataDestination::discard();
        case PduType::kCapsuleCmd:
            return on_capsule_header(h);
        case PduType::kH2CData:
            return on_h2c_header(h);
        default:
            return DataDestination::fail(Fes::kInvalidHeaderField, fei::kPduType);
    }
}

DataDestination TcpConn::on_capsule_header(const PduHeader& h) {
    Request* r = alloc_request();
    if (!r) {
        // More commands outstanding than the queue has entries.
        NOC_WARN("nvmf", "conn {}: queue overflow", id_);
        return DataDestination::fail(Fes::kPduSequenceError, 0);
    }
    cur_ = r;
    r->cmd = h.as<CapsuleCmdPdu>().sqe;
    r->state = ReqState::RecvCapsule;
    const uint32_t len = h.data_length();
    if (len == 0) return DataDestination::discard();
    r->icd_len = len;
    r->incapsule = true;
    if (!get_buffer(r, len)) {
        r->buffer_failed = true;
        return DataDestination::discard();
    }
    r->h2c_iov = {r->buf.data, len};
    return DataDestination::into(&r->h2c_iov, 1);
}

DataDestination TcpConn::on_h2c_header(const PduHeader& h) {
    const auto& d = h.as<DataPdu>();
    if (d.ttag >= kRequestsPerConn) {
        return DataDestination::fail(Fes::kInvalidHeaderField, offsetof(DataPdu, ttag));
    }
    Request* r = &reqs_[d.ttag];
    if (r->state != ReqState::AwaitH2C || r->tx_kind != TxKind::R2T || r->r2t_queued) {
        return DataDestination::fail(Fes::kPduSequenceError, 0);
    }
    if (d.cccid != r->cmd.cid) {
        return DataDestination::fail(Fes::kInvalidHeaderField, offsetof(DataPdu, cccid));
    }
    if (d.datao != r->h2c_next || uint64_t{d.datao} + d.datal > r->data_len) {
        return DataDestination::fail(Fes::kDataOutOfRange, 0);
    }
    cur_ = r;
    r->h2c_iov = {r->buf.data + d.datao, d.datal};
    return DataDestination::into(&r->h2c_iov, 1);
}

AfterPdu TcpConn::on_pdu_complete(const PduHeader& h, bool digest_ok) {
    switch (h.type()) {
        case PduType::kICReq:
            on_icreq(h);
            break;
        case PduType::kH2CTermReq: {
            const auto& t = h.as<TermReqPdu>();
            NOC_INFO("nvmf", "conn {}: host terminated the connection (FES {}, FEI {})", id_, t.fes,
                     t.fei);
            close("H2CTermReq");
            return AfterPdu::kPause;
        }
        case PduType::kCapsuleCmd: {
            Request* r = cur_;
            cur_ = nullptr;
            ++commands_;
            ++pg_->stats().commands;
            sqhd_ = static_cast<uint16_t>((sqhd_ + 1) % sq_entries_);
            if (!digest_ok) {
                complete(r, Status::generic(nvme::sc::kTransientTransportError));
            } else if (r->buffer_failed) {
                complete(r, Status::generic(nvme::sc::kInternalError));
            } else {
                dispatch(r);
            }
            break;
        }
        case PduType::kH2CData:
            on_h2c_complete(digest_ok);
            break;
        default:
            break;
    }
    return closed_ ? AfterPdu::kPause : AfterPdu::kContinue;
}

void TcpConn::on_icreq(const PduHeader& h) {
    const auto& ic = h.as<ICReqPdu>();
    icreq_received_ = true;
    const bool hd = ic.dgst & kIcDigestHeader;
    const bool dd = ic.dgst & kIcDigestData;
    rx_.set_negotiated(Negotiated{hd, dd, 0});
    txf_ = TxFormat{hd, dd, ic.hpda};
    ctl_len_ = static_cast<uint32_t>(build_icresp(ctl_, ICRespParams{0, hd, dd, kMaxH2CData}));
    ctl_off_ = 0;
    pg_->mark_dirty(this);
}

void TcpConn::on_h2c_complete(bool digest_ok) {
    Request* r = cur_;
    cur_ = nullptr;
    if (!r) return;
    r->h2c_next += static_cast<uint32_t>(r->h2c_iov.iov_len);
    if (!digest_ok) r->ddgst_error = true;
    if (r->h2c_next < r->data_len) return;
    if (r->ddgst_error) {
        complete(r, Status::generic(nvme::sc::kTransientTransportError));
        return;
    }
    r->state = ReqState::Executing;
    r->after_data(r);
}

void TcpConn::require_auth(std::unique_ptr<QueueAuth> a) {
    auth_ = std::move(a);
    restart_auth_clock();
}

void TcpConn::restart_auth_clock() {
    auth_started_ns_ = now_ns();
}

bool TcpConn::auth_pending() const {
    return auth_ && !auth_->authenticated();
}

void TcpConn::dispatch(Request* r) {
    r->state = ReqState::Executing;
    r->rsp.cid = r->cmd.cid;
    // Over fabrics PSDT must be 01b (SGL, metadata pointer to one contiguous buffer); PRPs
    // cannot describe host memory here. Fused operations are not supported. (Linux's nvmet
    // answers both the same way.)
    if (r->cmd.psdt() != nvme::kPsdtSglMptrContiguous || r->cmd.fuse() != 0) {
        complete(r, Status::generic(nvme::sc::kInvalidField, true));
        return;
    }
    if (r->cmd.opcode == nvme::admin_opc::kFabrics) {
        fabrics_command(r);
    } else if (auth_pending()) {
        complete(r, Status::command_specific(nvme::sc_cmd::kAuthenticationRequired, true));
    } else if (!connected_) {
        complete(r, Status::generic(nvme::sc::kCommandSequenceError, true));
    } else if (qid_ == 0) {
        admin_command(r);
    } else {
        io_command(r);
    }
}

// ---------------------------------------------------------------------------------------------
// Data transfer
// ---------------------------------------------------------------------------------------------

bool TcpConn::get_buffer(Request* r, uint32_t len) {
    if (len == 0) return true;
    r->buf =
        pg_->buffers().get(len <= pg_->buffers_small_size() ? BufClass::Small : BufClass::Large);
    return static_cast<bool>(r->buf);
}

void TcpConn::with_data(Request* r, uint32_t len, bool host_to_ctrl, ReqFn next) {
    const nvme::SglDescriptor& sgl = r->cmd.sgl1;
    r->after_data = next;
    r->data_len = len;
    if (r->incapsule) {
        if (sgl.id != nvme::kSglIdInCapsuleOffset) {
            complete(r, Status::generic(nvme::sc::kSglDescriptorTypeInvalid, true));
        } else if (sgl.address != 0) {
            complete(r, Status::generic(nvme::sc::kSglOffsetInvalid, true));
        } else if (!host_to_ctrl || sgl.length != r->icd_len || len != r->icd_len) {
            complete(r, Status::generic(nvme::sc::kDataSglLengthInvalid, true));
        } else {
            next(r);
        }
        return;
    }
    if (len == 0) {
        next(r);
        return;
    }
    if (sgl.id != nvme::kSglIdTransportDataBlock) {
        complete(r, Status::generic(nvme::sc::kSglDescriptorTypeInvalid, true));
        return;
    }
    if (sgl.length != len) {
        complete(r, Status::generic(nvme::sc::kDataSglLengthInvalid, true));
        return;
    }
    if (len > kMaxDataTransfer) {
        complete(r, Status::generic(nvme::sc::kInvalidField, true));
        return;
    }
    r->tx_kind = host_to_ctrl ? TxKind::R2T : TxKind::Final;
    if (!get_buffer(r, len)) {
        r->state = ReqState::WaitBuffer;
        if (wait_tail_) {
            wait_tail_->next = r;
        } else {
            wait_head_ = r;
        }
        wait_tail_ = r;
        r->next = nullptr;
        return;
    }
    start_transfer(r);
}

void TcpConn::start_transfer(Request* r) {
    if (r->tx_kind != TxKind::R2T) {
        r->state = ReqState::Executing;
        r->after_data(r);
        return;
    }
    // One R2T for the whole transfer (we never have more than one outstanding per command,
    // which honours any MAXR2T); the host may split it into several H2CData PDUs.
    r->state = ReqState::AwaitH2C;
    r->h2c_next = 0;
    const size_t n = build_r2t(r->data_hdr, R2TParams{r->cmd.cid, r->index, 0, r->data_len}, txf_);
    r->tx_iov[0] = {r->data_hdr, n};
    r->tx_niov = 1;
    r->tx_bytes = static_cast<uint32_t>(n);
    r->r2t_queued = true;
    queue_tx(r);
}

void TcpConn::retry_waiting() {
    while (wait_head_ && !closed_) {
        Request* r = wait_head_;
        const uint32_t len = r->data_len;
        if (!get_buffer(r, len)) return;
        wait_head_ = r->next;
        if (!wait_head_) wait_tail_ = nullptr;
        r->next = nullptr;
        start_transfer(r);
    }
}

// ---------------------------------------------------------------------------------------------
// Completion and transmit
// ---------------------------------------------------------------------------------------------

void TcpConn::complete(Request* r, Status status) {
    if (closed_) {
        release(r);
        return;
    }
    r->rsp.cid = r->cmd.cid;
    r->rsp.sqid = qid_;
    r->rsp.sqhd = sqhd_;
    r->rsp.status = status;
    const size_t n = build_capsule_resp(r->resp_hdr, r->rsp, txf_);
    r->tx_iov[0] = {r->resp_hdr, n};
    r->tx_niov = 1;
    r->tx_bytes = static_cast<uint32_t>(n);
    r->tx_kind = TxKind::Final;
    queue_tx(r);
}

void TcpConn::complete_c2h(Request* r, uint32_t bytes) {
    if (closed_) {
        release(r);
        return;
    }
    if (bytes == 0) {
        complete(r, Status::success());
        return;
    }
    r->rsp.cid = r->cmd.cid;
    r->rsp.sqid = qid_;
    r->rsp.sqhd = sqhd_;
    r->rsp.status = Status::success();
    const size_t h =
        build_c2h_data(r->data_hdr, DataPduParams{r->cmd.cid, 0, 0, bytes, true, false}, txf_);
    uint8_t n = 0;
    r->tx_iov[n++] = {r->data_hdr, h};
    r->tx_iov[n++] = {r->buf.data, bytes};
    uint32_t total = static_cast<uint32_t>(h) + bytes;
    if (sends_data_digest(txf_, bytes)) {
        store_digest(r->ddgst, data_digest(&r->tx_iov[1], 1));
        r->tx_iov[n++] = {r->ddgst, kDigestLength};
        total += kDigestLength;
    }
    const size_t rh = build_capsule_resp(r->resp_hdr, r->rsp, txf_);
    r->tx_iov[n++] = {r->resp_hdr, rh};
    r->tx_niov = n;
    r->tx_bytes = total + static_cast<uint32_t>(rh);
    r->tx_kind = TxKind::Final;
    queue_tx(r);
}

void TcpConn::queue_tx(Request* r) {
    if (draining_) {  // nothing may follow a TermReq
        if (r->tx_kind == TxKind::Final) release(r);
        return;
    }
    if (r->tx_kind == TxKind::Final) r->state = ReqState::Sending;
    r->next = nullptr;
    if (tx_tail_) {
        tx_tail_->next = r;
    } else {
        tx_head_ = r;
    }
    tx_tail_ = r;
    pg_->mark_dirty(this);
}

void TcpConn::tx_done(Request* r) {
    if (r->tx_kind == TxKind::Final) {
        release(r);
    } else {
        r->r2t_queued = false;  // an R2T stays AwaitH2C: its H2CData completes it
    }
}

int TcpConn::tx_iov(iovec* iov, int max, size_t* bytes) const {
    int cnt = 0;
    size_t total = 0;
    if (ctl_off_ < ctl_len_) {
        iov[cnt++] = {const_cast<uint8_t*>(ctl_) + ctl_off_, ctl_len_ - ctl_off_};
        total += ctl_len_ - ctl_off_;
    }
    uint32_t skip = tx_off_;
    for (Request* r = tx_head_; r && cnt < max; r = r->next) {
        if (cnt + r->tx_niov > max && cnt > 0) break;
        for (uint8_t i = 0; i < r->tx_niov && cnt < max; ++i) {
            iovec v = r->tx_iov[i];
            if (skip >= v.iov_len) {
                skip -= static_cast<uint32_t>(v.iov_len);
                continue;
            }
            v.iov_base = static_cast<uint8_t*>(v.iov_base) + skip;
            v.iov_len -= skip;
            skip = 0;
            iov[cnt++] = v;
            total += v.iov_len;
        }
    }
    if (!tx_head_ && term_off_ < term_len_ && cnt < max) {  // the TermReq goes last
        iov[cnt++] = {const_cast<uint8_t*>(term_) + term_off_, term_len_ - term_off_};
        total += term_len_ - term_off_;
    }
    *bytes = total;
    return cnt;
}

void TcpConn::tx_sent(size_t n) {
    if (ctl_off_ < ctl_len_) {
        const size_t c = std::min<size_t>(n, ctl_len_ - ctl_off_);
        ctl_off_ += static_cast<uint32_t>(c);
        n -= c;
    }
    while (n > 0 && tx_head_) {
        Request* r = tx_head_;
        const size_t rem = r->tx_bytes - tx_off_;
        if (n < rem) {
            tx_off_ += static_cast<uint32_t>(n);
            n = 0;
            break;
        }
        n -= rem;
        tx_off_ = 0;
        tx_head_ = r->next;
        if (!tx_head_) tx_tail_ = nullptr;
        r->next = nullptr;
        tx_done(r);
    }
    if (!tx_head_ && n > 0)
        term_off_ += static_cast<uint32_t>(std::min<size_t>(n, term_len_ - term_off_));
}

void TcpConn::tx_idle() {
    if (draining_ && !closed_ && !tx_pending()) {
        ::shutdown(fd_, SHUT_WR);  // the TermReq is out: FIN after it
    }
}

int TcpConn::flush() {
    if (uio_) {  // io_uring: one SENDMSG in flight carries the queue
        if (!closed_ && tx_pending()) pg_->uring()->send(this);
        return 0;
    }
    if (tls_) return flush_tls();
    int work = 0;
    while (!closed_ && tx_pending()) {
        iovec iov[kMaxTxIov];
        size_t total = 0;
        const int cnt = tx_iov(iov, kMaxTxIov, &total);
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(cnt);
        const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_write(true);
                return work;
            }
            close(strerror(errno));
            return work;
        }
        work += static_cast<int>(n);
        tx_sent(static_cast<size_t>(n));
        if (static_cast<size_t>(n) < total) {
            want_write(true);
            return work;
        }
    }
    want_write(false);
    tx_idle();
    return work;
}

void TcpConn::on_writable() {
    flush();
}

void TcpConn::want_write(bool on) {
    if (closed_ || uio_ || on == epollout_) return;
    epollout_ = on;
    pg_->watch(this, on);
}

void TcpConn::send_term_req(Fes fes, uint32_t fei, const uint8_t* hdr, size_t len) {
    NOC_INFO("nvmf", "conn {}: protocol error, sending C2HTermReq FES {} FEI {}", id_,
             static_cast<int>(fes), fei);
    ++pg_->stats().term_reqs_sent;
    // Whatever was queued is dropped: after a fatal error only the TermReq goes out. Bytes
    // already committed to the socket stay (a partly sent PDU, or everything an io_uring send
    // in flight carries), so that the TermReq never lands inside a PDU.
    size_t keep = tx_off_ > 0 ? 1 : 0;
    if (uio_ && uio_->send_inflight) keep = uio_->inflight_bytes;
    Request* kept_tail = nullptr;
    Request* r = tx_head_;
    for (size_t covered = 0; r && covered < keep; r = r->next) {
        covered += r->tx_bytes - (r == tx_head_ ? tx_off_ : 0);
        kept_tail = r;
    }
    while (r) {
        Request* next = r->next;
        r->next = nullptr;
        if (r->tx_kind == TxKind::Final) release(r);
        r = next;
    }
    if (kept_tail) {
        kept_tail->next = nullptr;
        tx_tail_ = kept_tail;
    } else {
        tx_head_ = tx_tail_ = nullptr;
        tx_off_ = 0;
    }
    term_len_ = static_cast<uint32_t>(build_term_req(term_, Role::kTarget, fes, fei, hdr, len));
    term_off_ = 0;
    draining_ = true;
    drain_deadline_ns_ = now_ns() + kDrainTimeoutNs;
    flush();
}

void TcpConn::release(Request* r) {
    if (r->buf) pg_->buffers().put(r->buf);
    r->buf = Buffer{};
    r->state = ReqState::Free;
    r->next = free_head_;
    free_head_ = r;
}

void TcpConn::begin_external(Request* r) {
    r->external = true;
    ++external_;
}

bool TcpConn::end_external(Request* r) {
    r->external = false;
    --external_;
    if (closed_) {
        release(r);
        return false;
    }
    return true;
}

void TcpConn::close(const char* reason) {
    if (closed_) return;
    NOC_DEBUG("nvmf", "conn {} (qid {}) closing: {}", id_, qid_, reason);
    closed_ = true;
    if (!uio_) pg_->unwatch(this);
    pg_->conn_closed(this);  // tears down the controller / detaches the I/O queue
    if (uio_ && uio_->ops > 0) {
        // The kernel may still write into a request's buffer (armed receive) or read the TX
        // queue (send in flight): shutdown ends both, and the last completion calls
        // release_all().
        ::shutdown(fd_, SHUT_RDWR);
        return;
    }
    release_all();
}

void TcpConn::release_all() {
    ::close(fd_);
    fd_ = -1;
    // Release everything that is not owned by an outstanding callback.
    for (uint32_t i = 0; i < kRequestsPerConn; ++i) {
        Request& r = reqs_[i];
        if (r.state != ReqState::Free && !r.external) release(&r);
    }
    tx_head_ = tx_tail_ = nullptr;
    wait_head_ = wait_tail_ = nullptr;
    cur_ = nullptr;
}

void TcpConn::use_uring(std::unique_ptr<UringConnIo> io) {
    uio_ = std::move(io);
}

}  // namespace nocstor::nvmf
