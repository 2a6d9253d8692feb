// A listening socket for one iSCSI portal on the control thread (runtime/tcp_acceptor.h
// accepts): each new socket goes by message to the least-loaded iSCSI poll group.
#pragma once

#include <cstdint>
#include <string>

#include "iscsi/target_config.h"
#include "runtime/tcp_acceptor.h"

namespace nocstor::iscsi_tgt {

class IscsiTarget;

class PortalListener {
  public:
    PortalListener(IscsiTarget* target, Portal portal, uint32_t id);
    ~PortalListener();

    int open(std::string* err) { return acceptor_.open(err); }  // 0 or -errno with *err
    uint32_t id() const { return id_; }
    uint16_t bound_port() const { return acceptor_.bound_port(); }
    const Portal& portal() const { return portal_; }

  private:
    void hand_over(int fd);

    IscsiTarget* target_;
    Portal portal_;
    uint32_t id_;
    TcpAcceptor acceptor_;
};

}  // namespace nocstor::iscsi_tgt
