// TcpConn over a TLS 1.3 secure channel: ciphertext from the socket goes into the session's
// buffer, plaintext comes out into the same places a plain receive would put it (a large PDU's
// pool buffer, else the staging buffer) and the PDU parser never knows the difference. On the
// way out the TX queue is gathered into full records (TlsSession::writev: one SSL_write per
// 16 KiB rather than per iovec), then the ciphertext goes out with TlsSession::send_to().
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "nvmf/poll_group.h"
#include "nvmf/tcp_conn.h"
#include "util/log.h"

namespace nocstor::nvmf {

namespace {

constexpr size_t kRecord = 16 * 1024;  // TLS's largest record
constexpr int kMaxRecvPerPoll = 8;

uint8_t* plaintext_staging() {
    static thread_local std::unique_ptr<uint8_t[]> buf;
    if (!buf) buf = std::make_unique<uint8_t[]>(kRecord);
    return buf.get();
}

}  // namespace

// Names the host when the client got as far as a known PSK identity (a wrong key then fails
// the binder check).
void TcpConn::log_tls_failure() {
    ++pg_->stats().tls_failures;
    security::TlsCipher cipher;
    std::string host, sub;
    if (security::parse_psk_identity(tls_->identity(), &cipher, &host, &sub))
        NOC_WARN("nvmf",
                 "conn {}: TLS with host {} for {} failed: {} (do the host's and the "
                 "target's PSKs match?)",
                 id_, host, sub, tls_->error());
    else
        NOC_WARN("nvmf", "conn {}: {}", id_, tls_->error());
}

void TcpConn::use_tls(std::unique_ptr<security::TlsSession> s) {
    tls_ = std::move(s);
}

// Hands every byte of plaintext the session has to the PDU parser.
void TcpConn::drain_tls() {
    uint8_t* buf = plaintext_staging();
    while (!closed_) {
        iovec iov[2];
        const int cnt = recv_iov(iov, buf, kRecord);
        const long n = tls_->read(iov[0].iov_base, iov[0].iov_len);
        if (n > 0) {
            received(size_t(n), iov, cnt);
            continue;
        }
        if (n == security::TlsSession::kClosed) {
            close("peer closed the TLS session");
        } else if (n == security::TlsSession::kFailed) {
            log_tls_failure();
            flush_tls();  // the alert, if OpenSSL made one
            close("TLS failure");
        }
        return;
    }
}

int TcpConn::on_readable_tls() {
    int work = 0;
    for (int i = 0; i < kMaxRecvPerPoll && !closed_; ++i) {
        const std::span<uint8_t> room = tls_->rx_space();
        if (room.empty()) break;  // cannot happen while drain_tls empties the session
        const ssize_t n = ::recv(fd_, room.data(), room.size(), MSG_DONTWAIT);
        if (n == 0) {
            close(draining_ ? "terminated" : "peer closed the connection");
            break;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) close(strerror(errno));
            break;
        }
        work += int(n);
        tls_->rx_commit(size_t(n));
        const bool was_established = tls_->established();
        drain_tls();
        if (!was_established && tls_->established() && !closed_) {
            ++pg_->stats().tls_established;
            NOC_INFO("nvmf", "conn {}: TLS secure channel up ({}, identity '{}')", id_,
                     tls_->cipher(), tls_->identity());
        }
        if (size_t(n) < room.size()) break;
    }
    // Handshake messages (and nothing else comes from reading) leave now.
    if (!closed_) flush_tls();
    return work;
}

int TcpConn::flush_tls() {
    int work = 0;
    while (!closed_) {
        // Plaintext of the TX queue into the session, a record's worth at a time.
        long put = 0;
        if (tx_pending() && tls_->established()) {
            iovec iov[kMaxTxIov];
            size_t total = 0;
            put = tls_->writev(iov, tx_iov(iov, kMaxTxIov, &total));
            if (put < 0) {
                log_tls_failure();
                close("TLS failure");
                return work;
            }
            if (put > 0) tx_sent(size_t(put));
        }
        size_t sent = 0;
        const int rc = tls_->send_to(fd_, &sent);
        work += int(sent);
        if (rc < 0) {
            close(strerror(-rc));
            return work;
        }
        if (rc > 0) {
            want_write(true);
            return work;
        }
        if (put == 0) break;  // nothing more went in: the queue is empty or the handshake runs
    }
    want_write(false);
    tx_idle();
    return work;
}

}  // namespace nocstor::nvmf
