// A listening TCP socket on the control thread. A poller accepts (non-blocking, the fd is also
// a reactor interrupt fd so a sleeping control reactor wakes on a new connection) and hands
// each socket, with TCP_NODELAY set, to the least-loaded poll group by message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "nvmf/subsystem.h"
#include "runtime/thread.h"
#include "util/accept_guard.h"

namespace nocstor::nvmf {

class NvmfTarget;

class TcpListener {
  public:
    // cluster >= 0: accepted connections go to that cluster's poll groups.
    TcpListener(NvmfTarget* target, ListenAddress addr, uint32_t id, int cluster = -1);
    ~TcpListener();  // stops accepting and closes the socket (control thread)

    // Binds and listens; 0 or -errno with *err.
    int open(std::string* err);
    uint16_t bound_port() const { return bound_port_; }
    const ListenAddress& addr() const { return addr_; }

  private:
    int accept_poll();
    // Out of file descriptors and nothing could be shed: stop watching the socket (so that the
    // reactor can sleep) and look again after AcceptGuard::kPauseNs.
    void pause_accepting();

    NvmfTarget* target_;
    ListenAddress addr_;
    uint32_t id_;
    int cluster_ = -1;
    int fd_ = -1;
    uint16_t bound_port_ = 0;
    Thread* thread_ = nullptr;
    Poller* poller_ = nullptr;
    Poller* resume_poller_ = nullptr;
    std::unique_ptr<AcceptGuard> guard_;
};

}  // namespace nocstor::nvmf
