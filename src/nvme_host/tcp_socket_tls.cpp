// The initiator's socket over a TLS 1.3 secure channel: plaintext in and out of the qpair as
// with a plain socket, ciphertext between the session and the kernel here.
#include <sys/socket.h>

#include <cerrno>

#include "nvme_host/tcp_socket.h"

namespace nocstor::nvme_host {

void TcpSocket::use_tls(std::unique_ptr<security::TlsSession> s) {
    tls_ = std::move(s);
}

bool TcpSocket::tls_established() const {
    return tls_ && tls_->established();
}

const std::string& TcpSocket::tls_error() const {
    static const std::string none;
    return tls_ ? tls_->error() : none;
}

bool TcpSocket::output_pending() {
    return tls_ && !tls_->tx_data().empty();
}

bool TcpSocket::input_buffered() const {
    return tls_ && tls_input_;
}

int TcpSocket::flush_output() {
    if (!tls_) return 0;
    const int rc = tls_->send_to(fd_);
    return rc < 0 ? rc : 0;
}

ssize_t TcpSocket::tls_result(long n) const {
    if (n == security::TlsSession::kClosed) return -ECONNRESET;
    return tls_->established() ? -EPROTO : -EKEYREJECTED;
}

ssize_t TcpSocket::recv_tls(iovec* iov, int) {
    for (;;) {
        const long n = tls_->read(iov[0].iov_base, iov[0].iov_len);
        if (n > 0) {
            tls_input_ = true;  // a full read may have left more records behind
            if (int rc = flush_output(); rc < 0) return rc;
            return n;
        }
        tls_input_ = false;
        if (n < 0) {
            flush_output();  // the alert, best effort
            return tls_result(n);
        }
        // The session wants ciphertext (and may have produced some: the handshake).
        if (int rc = flush_output(); rc < 0) return rc;
        const std::span<uint8_t> room = tls_->rx_space();
        if (room.empty()) return 0;
        const ssize_t got = ::recv(fd_, room.data(), room.size(), MSG_DONTWAIT);
        if (got == 0) return -ECONNRESET;
        if (got < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -errno;
        }
        tls_->rx_commit(size_t(got));
    }
}

ssize_t TcpSocket::send_tls(const iovec* iov, int iovcnt) {
    if (int rc = flush_output(); rc < 0) return rc;
    if (!tls_->tx_data().empty()) return 0;  // the kernel is full: wait for EPOLLOUT
    const long put = tls_->writev(iov, iovcnt);
    if (put < 0) {
        flush_output();
        return tls_result(put);
    }
    // 0 while the handshake is under way: its reply arrives by recvv.
    if (int rc = flush_output(); rc < 0) return rc;
    return put;
}

}  // namespace nocstor::nvme_host
