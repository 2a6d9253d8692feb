// Non-blocking TCP client sockets for the initiator: connect is started here and finished by
// the qpair's poller (connect_result()), so no reactor ever blocks on the network.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "nvme_host/transport_id.h"

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
    int fd() const { return fd_; }

  private:
    int fd_ = -1;
    bool connected_ = false;
};

}  // namespace nocstor::nvme_host
