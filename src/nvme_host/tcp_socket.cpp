#include "nvme_host/tcp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace nocstor::nvme_host {

int TcpSocket::start_connect(AddressFamily family, const std::string& addr, const std::string& port,
                             std::string* err) {
    close();
    uint16_t p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p == 0) {
        *err = fmt::format("bad port '{}'", port);
        return -EINVAL;
    }
    sockaddr_storage ss{};
    socklen_t len = 0;
    const int af = family == AddressFamily::kIpv6 ? AF_INET6 : AF_INET;
    if (af == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(p);
        if (inet_pton(AF_INET, addr.c_str(), &sin->sin_addr) != 1) {
            *err = fmt::format("'{}' is not an IPv4 address", addr);
            return -EINVAL;
        }
        len = sizeof(*sin);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(p);
        if (inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr) != 1) {
            *err = fmt::format("'{}' is not an IPv6 address", addr);
            return -EINVAL;
        }
        len = sizeof(*sin6);
    }
    fd_ = ::socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        int e = errno;
        *err = fmt::format("socket: {}", strerror(e));
        return -e;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
        connected_ = true;
        return 0;
    }
    if (errno == EINPROGRESS) return 0;
    int e = errno;
    *err = fmt::format("connect {}:{}: {}", addr, port, strerror(e));
    close();
    return -e;
}

int TcpSocket::connect_result() {
    if (fd_ < 0) return -ENOTCONN;
    if (connected_) return 1;
    int soerr = 0;
    socklen_t l = sizeof soerr;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0) return -errno;
    if (soerr != 0) return -soerr;
    // No error yet: connected only once the peer address is known.
    sockaddr_storage ss;
    l = sizeof ss;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &l) == 0) {
        connected_ = true;
        return 1;
    }
    return errno == ENOTCONN ? 0 : -errno;
}

ssize_t TcpSocket::recv(void* buf, size_t len) {
    ssize_t n = ::recv(fd_, buf, len, 0);
    if (n > 0) return n;
    if (n == 0) return -ECONNRESET;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -errno;
}

ssize_t TcpSocket::recvv(iovec* iov, int iovcnt) {
    if (tls_) return recv_tls(iov, iovcnt);
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = size_t(iovcnt);
    ssize_t n = ::recvmsg(fd_, &m, 0);
    if (n > 0) return n;
    if (n == 0) return -ECONNRESET;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -errno;
}

ssize_t TcpSocket::sendv(const iovec* iov, int iovcnt) {
    if (tls_) return send_tls(iov, iovcnt);
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = size_t(iovcnt);
    ssize_t n = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -errno;
}

void TcpSocket::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    connected_ = false;
    tls_.reset();
    tls_input_ = false;
}

}  // namespace nocstor::nvme_host
