// A listening TCP socket on the control thread. A poller accepts (non-blocking, the fd is also
// a reactor interrupt fd so a sleeping control reactor wakes on a new connection) and hands
// each socket, with TCP_NODELAY set, to the least-loaded poll group by message.
#pragma once

#include <cstdint>
#include <string>

#include "nvmf/subsystem.h"
#include "runtime/thread.h"

namespace nocstor::nvmf {

class NvmfTarget;

class TcpListener {
  public:
    TcpListener(NvmfTarget* target, ListenAddress addr, uint32_t id);
    ~TcpListener();  // stops accepting and closes the socket (control thread)

    // Binds and listens; 0 or -errno with *err.
    int open(std::string* err);
    uint16_t bound_port() const { return bound_port_; }
    const ListenAddress& addr() const { return addr_; }

  private:
    int accept_poll();

    NvmfTarget* target_;
    ListenAddress addr_;
    uint32_t id_;
    int fd_ = -1;
    uint16_t bound_port_ = 0;
    Thread* thread_ = nullptr;
    Poller* poller_ = nullptr;
};

}  // namespace nocstor::nvmf
