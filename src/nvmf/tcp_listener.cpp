#include "nvmf/tcp_listener.h"

#include "nvmf/poll_group.h"
#include "nvmf/target.h"

namespace nocstor::nvmf {

TcpListener::TcpListener(NvmfTarget* target, ListenAddress addr, uint32_t id, int cluster,
                         bool secure)
    : target_(target),
      addr_(std::move(addr)),
      id_(id),
      cluster_(cluster),
      secure_(secure),
      acceptor_("nvmf", "NVMe/TCP", addr_.traddr, addr_.port, [this](int fd) { hand_over(fd); }) {}

void TcpListener::hand_over(int fd) {
    // A bound listener's cluster; otherwise the cluster that owns the namespaces, so that their
    // I/O does not leave it (docs/remote.md, "Listeners bound to a cluster").
    const int cluster = cluster_ >= 0 ? cluster_ : target_->namespace_owner_cluster(id_);
    PollGroup* pg = target_->pick_poll_group(cluster);
    const uint32_t lid = id_;
    const bool secure = secure_;
    pg->thread()->send([pg, fd, lid, secure] { pg->add_connection(fd, lid, secure); });
}

}  // namespace nocstor::nvmf
