// A listening NVMe/TCP socket on the control thread (runtime/tcp_acceptor.h accepts): each new
// socket goes by message to the least-loaded poll group of the listener's cluster.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "nvmf/subsystem.h"
#include "runtime/tcp_acceptor.h"

namespace nocstor::nvmf {

class NvmfTarget;

class TcpListener {
  public:
    // cluster >= 0: accepted connections go to that cluster's poll groups. secure: every
    // connection starts with a TLS 1.3 PSK handshake (NVMe/TCP secure channel).
    TcpListener(NvmfTarget* target, ListenAddress addr, uint32_t id, int cluster = -1,
                bool secure = false);

    // Binds and listens; 0 or -errno with *err.
    int open(std::string* err) { return acceptor_.open(err); }
    uint16_t bound_port() const { return acceptor_.bound_port(); }
    const ListenAddress& addr() const { return addr_; }
    bool secure() const { return secure_; }

  private:
    void hand_over(int fd);

    NvmfTarget* target_;
    ListenAddress addr_;
    uint32_t id_;
    int cluster_ = -1;
    bool secure_ = false;
    TcpAcceptor acceptor_;
};

}  // namespace nocstor::nvmf
