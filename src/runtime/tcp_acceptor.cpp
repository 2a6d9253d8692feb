#include "runtime/tcp_acceptor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/reactor.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor {

TcpAcceptor::TcpAcceptor(std::string kind, std::string what, std::string host, uint16_t port,
                         OnAccept on_accept)
    : kind_(std::move(kind)),
      what_(std::move(what)),
      host_(std::move(host)),
      port_(port),
      on_accept_(std::move(on_accept)) {
    if (host_.size() >= 2 && host_.front() == '[' && host_.back() == ']')
        host_ = host_.substr(1, host_.size() - 2);
}

TcpAcceptor::~TcpAcceptor() {
    if (poller_) thread_->unregister_poller(poller_);
    if (resume_poller_) thread_->unregister_poller(resume_poller_);
    if (fd_ >= 0) {
        if (thread_ && thread_->reactor()) thread_->reactor()->remove_interrupt_fd(fd_);
        ::close(fd_);
    }
}

std::string TcpAcceptor::address() const {
    const bool v6 = host_.find(':') != std::string::npos;
    return (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

int TcpAcceptor::open(std::string* err) {
    sockaddr_storage ss{};
    socklen_t len;
    const bool v6 = host_.find(':') != std::string::npos;
    if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port_);
        if (inet_pton(AF_INET6, host_.c_str(), &a->sin6_addr) != 1) {
            *err = "bad IPv6 address " + host_;
            return -EINVAL;
        }
        len = sizeof(sockaddr_in6);
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port_);
        if (inet_pton(AF_INET, host_.c_str(), &a->sin_addr) != 1) {
            *err = "bad IPv4 address " + host_ + " (a numeric address is needed)";
            return -EINVAL;
        }
        len = sizeof(sockaddr_in);
    }
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        *err = std::string("socket: ") + strerror(errno);
        return -errno;
    }
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6) setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd_, 512) != 0) {
        const int e = errno;
        *err = "cannot listen on " + address() + ": " + strerror(e);
        ::close(fd_);
        fd_ = -1;
        return -e;
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
    bound_port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    thread_ = Thread::current();
    guard_ = std::make_unique<AcceptGuard>(kind_, what_ + " " + address());
    thread_->reactor()->add_interrupt_fd(fd_, EPOLLIN);
    poller_ =
        thread_->register_poller(kind_ + "_accept_" + address(), [this] { return accept_poll(); });
    // The component is the acceptor's kind (NOC_INFO caches one logger per call site).
    component_logger(kind_)->info("{} listening on {}", what_, address());
    return 0;
}

int TcpAcceptor::accept_poll() {
    int n = 0;
    for (int i = 0; i < 32; ++i) {
        const AcceptGuard::Result r = guard_->accept(fd_, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (r.kind == AcceptGuard::Kind::kShed) {
            ++n;
            continue;
        }
        if (r.kind == AcceptGuard::Kind::kPause) pause_accepting();
        if (r.kind != AcceptGuard::Kind::kAccepted) break;
        ++n;
        int one = 1;
        setsockopt(r.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        on_accept_(r.fd);
    }
    return n;
}

void TcpAcceptor::pause_accepting() {
    if (resume_poller_) return;
    thread_->reactor()->modify_interrupt_fd(fd_, 0);
    thread_->pause_poller(poller_);
    resume_poller_ = thread_->register_poller(
        kind_ + "_accept_resume",
        [this] {
            if (guard_->paused(now_ns())) return 0;
            thread_->reactor()->modify_interrupt_fd(fd_, EPOLLIN);
            thread_->resume_poller(poller_);
            thread_->unregister_poller(resume_poller_);
            resume_poller_ = nullptr;
            return 1;
        },
        AcceptGuard::kPauseNs / 1000);
}

}  // namespace nocstor
