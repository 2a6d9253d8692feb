#include "iscsi/portal_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "iscsi/poll_group.h"
#include "iscsi/target.h"
#include "runtime/reactor.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::iscsi_tgt {

PortalListener::PortalListener(IscsiTarget* target, Portal portal, uint32_t id)
    : target_(target), portal_(std::move(portal)), id_(id) {}

PortalListener::~PortalListener() {
    if (poller_) thread_->unregister_poller(poller_);
    if (resume_poller_) thread_->unregister_poller(resume_poller_);
    if (fd_ >= 0) {
        if (thread_ && thread_->reactor()) thread_->reactor()->remove_interrupt_fd(fd_);
        ::close(fd_);
        NOC_INFO("iscsi", "iSCSI portal {} closed", portal_.to_string());
    }
}

int PortalListener::open(std::string* err) {
    std::string host = portal_.host;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    sockaddr_storage ss{};
    socklen_t len;
    const bool v6 = host.find(':') != std::string::npos;
    if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(portal_.port);
        if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) {
            *err = "bad IPv6 address " + host;
            return -EINVAL;
        }
        len = sizeof(sockaddr_in6);
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(portal_.port);
        if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) {
            *err = "bad IPv4 address " + host + " (portals take numeric addresses)";
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
        *err = "cannot listen on " + portal_.to_string() + ": " + strerror(e);
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
    guard_ = std::make_unique<AcceptGuard>("iscsi", "iSCSI " + portal_.to_string());
    thread_->reactor()->add_interrupt_fd(fd_, EPOLLIN);
    poller_ = thread_->register_poller("iscsi_accept_" + portal_.to_string(),
                                       [this] { return accept_poll(); });
    NOC_INFO("iscsi", "iSCSI listening on {}", portal_.to_string());
    return 0;
}

int PortalListener::accept_poll() {
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
        IscsiPollGroup* pg = target_->pick_poll_group();
        if (!pg) {
            ::close(r.fd);
            continue;
        }
        const uint32_t lid = id_;
        const int fd = r.fd;
        pg->thread()->send([pg, fd, lid] { pg->add_connection(fd, lid); });
    }
    return n;
}

void PortalListener::pause_accepting() {
    if (resume_poller_) return;
    thread_->reactor()->modify_interrupt_fd(fd_, 0);
    thread_->pause_poller(poller_);
    resume_poller_ = thread_->register_poller(
        "iscsi_accept_resume",
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

}  // namespace nocstor::iscsi_tgt
