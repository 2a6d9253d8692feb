// A listening TCP socket served by a poller of the thread that opens it (the control thread):
// non-blocking accepts in batches, TCP_NODELAY on each new socket, which goes to on_accept; the
// listening fd is a reactor interrupt fd, so a sleeping reactor wakes on a new connection. When
// the process runs out of file descriptors, AcceptGuard sheds or pauses (util/accept_guard.h).
// The NVMe/TCP listeners and the iSCSI portals are built on it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/thread.h"
#include "util/accept_guard.h"

namespace nocstor {

class TcpAcceptor {
  public:
    using OnAccept = std::function<void(int fd)>;
    // kind: metrics and poller names ("nvmf", "iscsi"); what: for the log ("NVMe/TCP");
    // host: a numeric IPv4 or IPv6 address (brackets allowed).
    TcpAcceptor(std::string kind, std::string what, std::string host, uint16_t port,
                OnAccept on_accept);
    ~TcpAcceptor();  // stops accepting and closes the socket (same thread as open)
    TcpAcceptor(const TcpAcceptor&) = delete;
    TcpAcceptor& operator=(const TcpAcceptor&) = delete;

    // Binds and listens; 0 or -errno with *err.
    int open(std::string* err);
    uint16_t bound_port() const { return bound_port_; }
    // host:port, IPv6 in brackets.
    std::string address() const;

  private:
    int accept_poll();
    // Out of file descriptors and nothing could be shed: stop watching the socket (so that the
    // reactor can sleep) and look again after AcceptGuard::kPauseNs.
    void pause_accepting();

    std::string kind_, what_, host_;
    uint16_t port_;
    OnAccept on_accept_;
    int fd_ = -1;
    uint16_t bound_port_ = 0;
    Thread* thread_ = nullptr;
    Poller* poller_ = nullptr;
    Poller* resume_poller_ = nullptr;
    std::unique_ptr<AcceptGuard> guard_;
};

}  // namespace nocstor
