#include "nvmf/tcp_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "nvmf/poll_group.h"
#include "nvmf/target.h"
#include "runtime/reactor.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::nvmf {

TcpListener::TcpListener(NvmfTarget* target, ListenAddress addr, uint32_t id, int cluster)
    : target_(target), addr_(std::move(addr)), id_(id), cluster_(cluster) {}

TcpListener::~TcpListener() {
    if (poller_) thread_->unregister_poller(poller_);
    if (resume_poller_) thread_->unregister_poller(resume_poller_);
    if (fd_ >= 0) {
        if (thread_ && thread_->reactor()) thread_->reactor()->remove_interrupt_fd(fd_);
        ::close(fd_);
    }
}

int TcpListener::open(std::string* err) {
    sockaddr_storage ss{};
    socklen_t len;
    const bool v6 = addr_.ipv6();
    if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(addr_.port);
        if (inet_pton(AF_INET6, addr_.traddr.c_str(), &a->sin6_addr) != 1) {
            *err = "bad IPv6 address " + addr_.traddr;
            return -EINVAL;
        }
        len = sizeof(sockaddr_in6);
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(addr_.port);
        if (inet_pton(AF_INET, addr_.traddr.c_str(), &a->sin_addr) != 1) {
            *err = "bad IPv4 address " + addr_.traddr;
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
        *err = "cannot listen on " + addr_.to_string() + ": " + strerror(e);
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
    guard_ = std::make_unique<AcceptGuard>("nvmf", "NVMe/TCP " + addr_.to_string());
    thread_->reactor()->add_interrupt_fd(fd_, EPOLLIN);
    poller_ = thread_->register_poller("nvmf_accept_" + addr_.to_string(),
                                       [this] { return accept_poll(); });
    NOC_INFO("nvmf", "NVMe/TCP listening on {}", addr_.to_string());
    return 0;
}

int TcpListener::accept_poll() {
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
        // A bound listener's cluster; otherwise the cluster that owns the namespaces, so that
        // their I/O does not leave it (docs/remote.md, "Listeners bound to a cluster").
        const int cluster = cluster_ >= 0 ? cluster_ : target_->namespace_owner_cluster(id_);
        PollGroup* pg = target_->pick_poll_group(cluster);
        const uint32_t lid = id_;
        const int fd = r.fd;
        pg->thread()->send([pg, fd, lid] { pg->add_connection(fd, lid); });
    }
    return n;
}

void TcpListener::pause_accepting() {
    if (resume_poller_) return;
    thread_->reactor()->modify_interrupt_fd(fd_, 0);
    thread_->pause_poller(poller_);
    resume_poller_ = thread_->register_poller(
        "nvmf_accept_resume",
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

}  // namespace nocstor::nvmf
