// The connection's byte streams: receive (staging buffer, or straight into a command's buffers
// for large Data-Out segments), the PDU framing state machine with digests, and the send FIFO
// turned into gather sendmsg calls.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "iscsi/conn.h"
#include "iscsi/login_state.h"
#include "iscsi/poll_group.h"
#include "modules/iov_util.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::iscsi_tgt {

namespace {

constexpr uint32_t kStagingSize = 64 * 1024;
constexpr uint32_t kDirectMin = 4096;  // Data-Out segments at least this big skip the staging
constexpr uint32_t kLoginTextMax = 64 * 1024;
constexpr int kMaxTxIov = 64;

std::string sock_name(int fd, bool peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                        : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (rc != 0) return "?";
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    }
    return buf;
}

// CRC32C register over `len` bytes of iovecs starting at `off`.
uint32_t crc_iov(uint32_t state, const iovec* iov, int cnt, uint32_t off, uint32_t len) {
    iovec part[scsi::Task::kMaxIov];
    const int n = iov_slice(iov, cnt, off, len, part, scsi::Task::kMaxIov);
    for (int i = 0; i < n; ++i) state = crc32c_update(state, part[i].iov_base, part[i].iov_len);
    return state;
}

}  // namespace

// --- OutPdu ---

int OutPdu::to_iov(uint32_t skip, iovec* out, int max) const {
    int n = 0;
    auto add = [&](const void* base, uint32_t len) {
        if (len == 0) return true;
        if (skip >= len) {
            skip -= len;
            return true;
        }
        if (n == max) return false;
        out[n++] = {const_cast<uint8_t*>(static_cast<const uint8_t*>(base)) + skip,
                    size_t(len - skip)};
        skip = 0;
        return true;
    };
    if (!add(hdr, hlen)) return -1;
    uint32_t off = src_off, left = dlen;
    for (int i = 0; i < srccnt && left; ++i) {
        const uint32_t l = uint32_t(src[i].iov_len);
        if (off >= l) {
            off -= l;
            continue;
        }
        const uint32_t take = std::min(l - off, left);
        if (!add(static_cast<const uint8_t*>(src[i].iov_base) + off, take)) return -1;
        left -= take;
        off = 0;
    }
    if (!add(trailer, tlen)) return -1;
    return n;
}

void OutPdu::finalize(bool hd, bool dd) {
    hlen = kBhsLen;
    if (hd) {
        const uint32_t crc = header_digest(hdr, kBhsLen);
        std::memcpy(hdr + kBhsLen, &crc, 4);
        hlen += kDigestLen;
    }
    const uint32_t pad = pad4(dlen) - dlen;
    std::memset(trailer, 0, sizeof trailer);
    tlen = uint8_t(pad);
    if (dd && dlen) {
        uint32_t st = crc_iov(kCrc32cInitial, src, srccnt, src_off, dlen);
        if (pad) st = crc32c_update(st, trailer, pad);
        const uint32_t crc = st ^ kCrc32cFinalXor;
        std::memcpy(trailer + pad, &crc, 4);
        tlen += kDigestLen;
    }
}

// --- Conn basics ---

Conn::Conn(IscsiPollGroup* pg, int fd, uint64_t id, uint32_t listener_id)
    : pg_(pg), fd_(fd), id_(id), listener_id_(listener_id), created_ns_(now_ns()) {
    peer_addr_ = sock_name(fd, true);
    local_addr_ = sock_name(fd, false);
    staging_.reset(new uint8_t[kStagingSize]);
    last_rx_ns_ = created_ns_;
    login_ = std::make_unique<LoginState>();
    if (const ListenerRef* l = pg->snapshot().listener(listener_id)) pg_tag_ = l->pg_tag;
    for (auto& c : ctl_) c.kind = TxItem::Kind::Ctl;
}

Conn::~Conn() {
    if (fd_ >= 0) ::close(fd_);
}

void Conn::close(const char* reason) {
    if (closed_) return;
    closed_ = true;
    if (phase_ == ConnPhase::FullFeature || !initiator_.empty()) {
        NOC_INFO("iscsi", "connection {} from {} ({}{}{}) closed: {}", id_, peer_addr_,
                 initiator_.empty() ? "?" : initiator_, discovery_ ? ", discovery" : "",
                 target_name_.empty() ? "" : " -> " + target_name_, reason);
    } else {
        NOC_INFO("iscsi", "connection {} from {} closed: {}", id_, peer_addr_, reason);
    }
    ::shutdown(fd_, SHUT_RDWR);
    // The I_T nexus is gone: so is its RESERVE(6).
    if (node_)
        for (const auto& l : node_->luns) scsi::release_reservation(*l, nexus_);
    for (TxItem* it = tx_head_; it; it = it->next) it->in_tx = false;
    for (auto& c : ctl_) c.in_use = false;
    // Tasks not executing go at once; executing ones when their bdev I/O comes back.
    for (uint32_t i = 0; i < ntasks_; ++i) {
        ConnTask* t = &tasks_[i];
        if (t->state != ConnTask::State::Free && t->state != ConnTask::State::Executing) {
            free_task(t);
        }
    }
    tx_head_ = tx_tail_ = nullptr;
    tx_off_ = 0;
}

void Conn::fatal(const char* why) {
    NOC_WARN("iscsi", "connection {} from {} ({}): protocol error: {}", id_, peer_addr_,
             initiator_.empty() ? "?" : initiator_, why);
    close(why);
}

void Conn::want_write(bool on) {
    if (on == epollout_ || closed_) return;
    epollout_ = on;
    pg_->watch(this, on);
}

uint32_t Conn::max_cmd_sn() const {
    if (phase_ != ConnPhase::FullFeature) return exp_cmd_sn_;
    const uint32_t free_slots = outstanding_ < queue_depth_ ? queue_depth_ - outstanding_ : 0;
    return exp_cmd_sn_ - 1 + free_slots;
}

void Conn::put_sns(uint8_t* h, uint32_t stat_sn) const {
    put32(h + off::kStatSn, stat_sn);
    put32(h + off::kExpCmdSn, exp_cmd_sn_);
    put32(h + off::kMaxCmdSn, max_cmd_sn());
}

// --- receive ---

int Conn::on_readable() {
    int work = 0;
    for (int iter = 0; iter < 16 && !closed_ && !rx_blocked_; ++iter) {
        ssize_t n;
        const uint32_t direct_left =
            sink_ == Sink::Task && rx_data_have_ < rx_task_len_ ? rx_task_len_ - rx_data_have_ : 0;
        if (rx_state_ == RxState::Data && staging_len_ == 0 && direct_left >= kDirectMin) {
            // Straight into the command's buffers.
            iovec iov[scsi::Task::kMaxIov];
            const scsi::Task& st = rx_task_->scsi;
            const int cnt = iov_slice(st.iov, st.iovcnt, rx_task_off_ + rx_data_have_, direct_left,
                                      iov, scsi::Task::kMaxIov);
            n = ::readv(fd_, iov, cnt);
            if (n > 0) {
                if (params_.data_digest && phase_ == ConnPhase::FullFeature) {
                    for (int i = 0, rem = int(n); i < cnt && rem > 0; ++i) {
                        const size_t l = std::min<size_t>(iov[i].iov_len, size_t(rem));
                        rx_crc_ = crc32c_update(rx_crc_, iov[i].iov_base, l);
                        rem -= int(l);
                    }
                }
                rx_data_have_ += uint32_t(n);
                stats_.bytes_read += uint64_t(n);
                work += int(n);
                if (rx_data_have_ == rx_data_len_) consume(nullptr, 0);  // to the trailer
                continue;
            }
        } else {
            n = ::recv(fd_, staging_.get() + staging_len_, kStagingSize - staging_len_, 0);
            if (n > 0) {
                staging_len_ += uint32_t(n);
                stats_.bytes_read += uint64_t(n);
                work += int(n);
                consume_staging();
                continue;
            }
        }
        if (n == 0) {
            close("closed by the initiator");
            break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        close(errno == ECONNRESET ? "connection reset by the initiator" : "receive error");
        break;
    }
    return work;
}

void Conn::consume_staging() {
    const size_t used = consume(staging_.get() + staging_off_, staging_len_ - staging_off_);
    staging_off_ += uint32_t(used);
    if (staging_off_ == staging_len_) {
        staging_off_ = staging_len_ = 0;
    } else if (staging_off_ > kStagingSize / 2) {
        std::memmove(staging_.get(), staging_.get() + staging_off_, staging_len_ - staging_off_);
        staging_len_ -= staging_off_;
        staging_off_ = 0;
    }
}

size_t Conn::consume(const uint8_t* p, size_t n) {
    size_t used = 0;
    for (;;) {
        if (closed_ || rx_blocked_) return used;
        const bool ffp = phase_ == ConnPhase::FullFeature;
        if (rx_state_ == RxState::Header) {
            if (used == n) return used;
            const uint32_t take =
                std::min<uint32_t>(rx_hdr_need_ - rx_hdr_have_, uint32_t(n - used));
            std::memcpy(rx_hdr_ + rx_hdr_have_, p + used, take);
            rx_hdr_have_ += take;
            used += take;
            if (rx_hdr_have_ == kBhsLen && rx_hdr_need_ == kBhsLen) {
                const uint32_t extra =
                    Bhs{rx_hdr_}.ahs_len() + (ffp && params_.header_digest ? kDigestLen : 0);
                rx_hdr_need_ += extra;
            }
            if (rx_hdr_have_ < rx_hdr_need_) continue;
            if (!header_complete()) return used;  // closed or blocked
            continue;
        }
        if (rx_state_ == RxState::Data) {
            const uint32_t take =
                std::min<uint32_t>(rx_data_len_ - rx_data_have_, uint32_t(n - used));
            const uint8_t* src = p + used;
            if (take) {
                if (ffp && params_.data_digest) rx_crc_ = crc32c_update(rx_crc_, src, take);
                if (sink_ == Sink::Text) {
                    rx_text_.insert(rx_text_.end(), src, src + take);
                } else if (sink_ == Sink::Task && rx_data_have_ < rx_task_len_) {
                    const uint32_t m = std::min(take, rx_task_len_ - rx_data_have_);
                    const scsi::Task& st = rx_task_->scsi;
                    iovec part[scsi::Task::kMaxIov];
                    const int k = iov_slice(st.iov, st.iovcnt, rx_task_off_ + rx_data_have_, m,
                                            part, scsi::Task::kMaxIov);
                    iov_copy_from_buf(part, k, src, m);
                }
                rx_data_have_ += take;
                used += take;
            }
            if (rx_data_have_ < rx_data_len_) return used;
            const uint32_t pad = pad4(rx_data_len_) - rx_data_len_;
            rx_trailer_need_ = pad + (ffp && params_.data_digest && rx_data_len_ ? kDigestLen : 0);
            rx_trailer_have_ = 0;
            rx_state_ = RxState::Trailer;
            continue;
        }
        // Trailer: padding, then the data digest.
        if (rx_trailer_have_ < rx_trailer_need_) {
            if (used == n) return used;
            const uint32_t take =
                std::min<uint32_t>(rx_trailer_need_ - rx_trailer_have_, uint32_t(n - used));
            std::memcpy(rx_trailer_ + rx_trailer_have_, p + used, take);
            rx_trailer_have_ += take;
            used += take;
            if (rx_trailer_have_ < rx_trailer_need_) return used;
        }
        const uint32_t pad = pad4(rx_data_len_) - rx_data_len_;
        if (ffp && params_.data_digest && rx_data_len_) {
            uint32_t st = rx_crc_;
            if (pad) st = crc32c_update(st, rx_trailer_, pad);
            uint32_t got;
            std::memcpy(&got, rx_trailer_ + pad, 4);
            if ((st ^ kCrc32cFinalXor) != got) {
                NOC_WARN("iscsi", "connection {} from {}: data digest error", id_, peer_addr_);
                send_reject(RejectReason::DataDigestError, rx_hdr_);
                closing_after_tx_ = true;
                rx_blocked_ = true;  // read nothing more
                pg_->mark_dirty(this);
                return used;
            }
        }
        pdu_complete();
    }
}

bool Conn::header_complete() {
    const Bhs h{rx_hdr_};
    const bool ffp = phase_ == ConnPhase::FullFeature;
    if (ffp && params_.header_digest) {
        const uint32_t len = kBhsLen + h.ahs_len();
        uint32_t got;
        std::memcpy(&got, rx_hdr_ + len, 4);
        if (header_digest(rx_hdr_, len) != got) {
            fatal("header digest error");
            return false;
        }
    }
    ++stats_.pdus_in;
    last_rx_ns_ = now_ns();
    nop_sent_ns_ = 0;
    rx_data_len_ = h.data_len();
    rx_data_have_ = 0;
    rx_crc_ = kCrc32cInitial;
    sink_ = Sink::Discard;
    rx_task_ = nullptr;
    rx_task_len_ = 0;
    const uint32_t limit = ffp ? params_.target_mrdsl : kLoginTextMax;
    const uint8_t opc = h.opcode();
    if (rx_data_len_ > std::max(limit, kLoginTextMax)) {
        fatal("data segment longer than MaxRecvDataSegmentLength");
        return false;
    }
    if (!ffp && opc != uint8_t(IOp::Login)) {
        fatal("PDU other than Login before the full feature phase");
        return false;
    }
    switch (IOp(opc)) {
        case IOp::Login:
            if (ffp) {
                send_reject(RejectReason::ProtocolError, rx_hdr_);
                break;
            }
            on_login_header(h);
            break;
        case IOp::Text:
        case IOp::NopOut:
            if (rx_data_len_ > limit) {
                fatal("data segment longer than MaxRecvDataSegmentLength");
                return false;
            }
            rx_text_.clear();
            sink_ = Sink::Text;
            break;
        case IOp::ScsiCmd:
            on_scsi_cmd_header(h);
            break;
        case IOp::DataOut:
            on_data_out_header(h);
            break;
        case IOp::Logout:
        case IOp::TaskMgmt:
        case IOp::Snack:
            break;
        default:
            break;
    }
    if (closed_) return false;
    if (rx_blocked_) return false;
    rx_state_ = RxState::Data;
    if (rx_data_len_ == 0) {
        rx_trailer_need_ = rx_trailer_have_ = 0;
        rx_state_ = RxState::Trailer;
    }
    return true;
}

void Conn::pdu_complete() {
    rx_state_ = RxState::Header;
    rx_hdr_have_ = 0;
    rx_hdr_need_ = kBhsLen;
    const Bhs h{rx_hdr_};
    switch (IOp(h.opcode())) {
        case IOp::Login:
            if (phase_ == ConnPhase::Login) handle_login();
            break;
        case IOp::Text:
            handle_text();
            break;
        case IOp::NopOut:
            handle_nop_out();
            break;
        case IOp::ScsiCmd:
            scsi_cmd_complete();
            break;
        case IOp::DataOut:
            data_out_complete();
            break;
        case IOp::Logout:
            handle_logout();
            break;
        case IOp::TaskMgmt:
            handle_tmf();
            break;
        case IOp::Snack:  // ErrorRecoveryLevel 0: no SNACK
            send_reject(RejectReason::ProtocolError, rx_hdr_);
            break;
        default:
            send_reject(RejectReason::CommandNotSupported, rx_hdr_);
            break;
    }
    sink_ = Sink::Discard;
    rx_task_ = nullptr;
}

// --- send ---

CtlPdu* Conn::alloc_ctl() {
    for (auto& c : ctl_) {
        if (!c.in_use) {
            c.in_use = true;
            c.next = nullptr;
            c.last = true;
            std::memset(c.pdu.hdr, 0, sizeof c.pdu.hdr);
            return &c;
        }
    }
    fatal("too many unanswered control PDUs");
    return nullptr;
}

void Conn::send_ctl(CtlPdu* c, const uint8_t* data, uint32_t len) {
    c->data.assign(data, data + len);
    c->iov = {c->data.data(), c->data.size()};
    c->pdu.src = &c->iov;
    c->pdu.srccnt = 1;
    c->pdu.src_off = 0;
    c->pdu.dlen = len;
    put24(c->pdu.hdr + off::kDataSegLen, len);
    const bool ffp = phase_ == ConnPhase::FullFeature || phase_ == ConnPhase::LoggingOut;
    c->pdu.finalize(ffp && params_.header_digest, ffp && params_.data_digest);
    queue_tx(c);
}

void Conn::send_reject(RejectReason reason, const uint8_t* bhs) {
    CtlPdu* c = alloc_ctl();
    if (!c) return;
    ++stats_.rejects;
    ++pg_->stats().rejects;
    uint8_t* h = c->pdu.hdr;
    h[0] = uint8_t(TOp::Reject);
    h[1] = kFinal;
    h[2] = uint8_t(reason);
    put32(h + off::kItt, kReservedTag);
    put_sns(h, stat_sn_++);
    send_ctl(c, bhs, kBhsLen);
}

void Conn::queue_tx(TxItem* item) {
    if (closed_) {
        tx_item_sent(item);
        return;
    }
    item->next = nullptr;
    item->in_tx = true;
    if (tx_tail_) {
        tx_tail_->next = item;
    } else {
        tx_head_ = item;
    }
    tx_tail_ = item;
    ++stats_.pdus_out;
    pg_->mark_dirty(this);
}

void Conn::tx_item_sent(TxItem* item) {
    if (item->kind == TxItem::Kind::Ctl) {
        static_cast<CtlPdu*>(item)->in_use = false;
        return;
    }
    auto* t = static_cast<ConnTask*>(item);
    if (t->state == ConnTask::State::Responding || t->aborted) {
        free_task(t);
    } else if (t->state == ConnTask::State::ChunkTx) {
        next_chunk(t);  // this chunk's Data-In left: read the next one
        run_task(t);
    }
    // An R2T went out: the task waits for Data-Out (state ReceivingData, unchanged).
}

int Conn::tx_iov(iovec* iov, int max) const {
    int n = 0;
    bool first = true;
    for (const TxItem* it = tx_head_; it && n < max; it = it->next) {
        const int k = it->pdu.to_iov(first ? tx_off_ : 0, iov + n, max - n);
        if (k < 0) {
            n = max;  // filled up: the rest next time
            break;
        }
        n += k;
        first = false;
        if (!it->last) break;  // its next PDU is built once this one is out
    }
    return n;
}

void Conn::tx_sent(size_t n) {
    stats_.bytes_written += n;
    while (n && tx_head_) {
        TxItem* it = tx_head_;
        const uint32_t left = it->pdu.total() - tx_off_;
        if (n < left) {
            tx_off_ += uint32_t(n);
            return;
        }
        n -= left;
        tx_off_ = 0;
        if (!it->last && it->kind == TxItem::Kind::Task) {
            build_task_pdu(static_cast<ConnTask*>(it));  // the next PDU, same place in the FIFO
            continue;
        }
        tx_head_ = it->next;
        if (!tx_head_) tx_tail_ = nullptr;
        it->in_tx = false;
        tx_item_sent(it);
    }
}

int Conn::flush() {
    if (closed_) return 0;
    int work = 0;
    while (tx_head_) {
        iovec iov[kMaxTxIov];
        // A PDU with an empty remainder (nothing left to send) is skipped by tx_sent(0).
        const int cnt = tx_iov(iov, kMaxTxIov);
        if (cnt <= 0) {
            tx_sent(tx_head_->pdu.total() - tx_off_);
            continue;
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = size_t(cnt);
        const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_write(true);
                return work;
            }
            if (errno == EINTR) continue;
            close("send error");
            return work;
        }
        ++work;
        tx_sent(size_t(n));
        if (closed_) return work;
    }
    want_write(false);
    if (closing_after_tx_) close("closed after the last response");
    return work;
}

void Conn::on_writable() {
    flush();
}

}  // namespace nocstor::iscsi_tgt
