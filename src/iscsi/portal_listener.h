// A listening TCP socket for one portal, on the control thread. A poller accepts (the fd is a
// reactor interrupt fd, so a sleeping control reactor wakes on a new connection), sets
// TCP_NODELAY and hands each socket to the least-loaded iSCSI poll group by message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "iscsi/target_config.h"
#include "runtime/thread.h"
#include "util/accept_guard.h"

namespace nocstor::iscsi_tgt {

class IscsiTarget;

class PortalListener {
  public:
    PortalListener(IscsiTarget* target, Portal portal, uint32_t id);
    ~PortalListener();

    int open(std::string* err);  // 0 or -errno with *err
    uint32_t id() const { return id_; }
    uint16_t bound_port() const { return bound_port_; }
    const Portal& portal() const { return portal_; }

  private:
    int accept_poll();
    void pause_accepting();

    IscsiTarget* target_;
    Portal portal_;
    uint32_t id_;
    int fd_ = -1;
    uint16_t bound_port_ = 0;
    Thread* thread_ = nullptr;
    Poller* poller_ = nullptr;
    Poller* resume_poller_ = nullptr;
    std::unique_ptr<AcceptGuard> guard_;
};

}  // namespace nocstor::iscsi_tgt
