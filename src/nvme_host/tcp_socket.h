// Non-blocking TCP client sockets for the initiator: connect is started here and finished by
// the qpair's poller (connect_result()), so no reactor ever blocks on the network.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "nvme_host/transport_id.h"
#include "security/tls_session.h"

namespace nocstor::nvme_host {

class TcpSocket {
  public:
    TcpSocket() = default;
    ~TcpSocket() { close(); }
    TcpSocket(const TcpSocket&) = delete;
    TcpSocket& operator=(const TcpSocket&) = delete;

    // Starts a non-blocking connect to a numeric address. 0 (connected or in progress) or
    // -errno with *err.
    int start_connect(AddressFamily family, const std::string& addr, const std::string& port,
                      std::string* err);
    // 1 connected, 0 still in progress, -errno failed.
    int connect_result();
    // >0 bytes, 0 would block, -errno on error (-ECONNRESET for an orderly close by the peer).
    ssize_t recv(void* buf, size_t len);
    ssize_t recvv(iovec* iov, int iovcnt);  // same results as recv()
    ssize_t sendv(const iovec* iov, int iovcnt);
    void close();

    // From now on every byte goes through this TLS session (tcp_socket_tls.cpp): recvv/sendv
    // take and give plaintext, the handshake runs inside them, and TLS failures come back as
    // -EKEYREJECTED (handshake) or -EPROTO with tls_error() saying why.
    void use_tls(std::unique_ptr<security::TlsSession> s);
    bool tls() const { return tls_ != nullptr; }
    bool tls_established() const;
    const std::string& tls_error() const;
    // Ciphertext the kernel did not take yet (wait for EPOLLOUT), or input already buffered
    // in the session (call recvv again without waiting for the socket).
    bool output_pending();
    bool input_buffered() const;
    // Sends pending ciphertext; 0 or -errno.
    int flush_output();
    int fd() const { return fd_; }

  private:
    ssize_t recv_tls(iovec* iov, int iovcnt);
    ssize_t send_tls(const iovec* iov, int iovcnt);
    ssize_t tls_result(long n) const;

    int fd_ = -1;
    bool connected_ = false;
    std::unique_ptr<security::TlsSession> tls_;
    bool tls_input_ = false;              // the last read may have left plaintext behind
};

}  // namespace nocstor::nvme_host
