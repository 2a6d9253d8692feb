#include "iscsi/portal_listener.h"

#include <unistd.h>

#include "iscsi/poll_group.h"
#include "iscsi/target.h"
#include "util/log.h"

namespace nocstor::iscsi_tgt {

PortalListener::PortalListener(IscsiTarget* target, Portal portal, uint32_t id)
    : target_(target),
      portal_(std::move(portal)),
      id_(id),
      acceptor_("iscsi", "iSCSI", portal_.host, portal_.port, [this](int fd) { hand_over(fd); }) {}

PortalListener::~PortalListener() {
    if (acceptor_.bound_port()) NOC_INFO("iscsi", "iSCSI portal {} closed", portal_.to_string());
}

void PortalListener::hand_over(int fd) {
    IscsiPollGroup* pg = target_->pick_poll_group();
    if (!pg) {
        ::close(fd);
        return;
    }
    const uint32_t lid = id_;
    pg->thread()->send([pg, fd, lid] { pg->add_connection(fd, lid); });
}

}  // namespace nocstor::iscsi_tgt
