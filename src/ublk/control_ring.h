// The ublk control device (/dev/ublk-control) driven through a SQE128 io_uring on the control
// thread. Commands run asynchronously: the kernel executes them in an io-wq worker (START_DEV
// waits there until every queue has fetched its requests), and their completions come back
// through the ring's eventfd, a reactor interrupt fd, so the control thread never blocks on
// them. Control thread only.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "ublk/ublk_abi.h"

namespace nocstor {
struct Poller;
class Reactor;
}  // namespace nocstor

namespace nocstor::ublk {

class ControlRing {
  public:
    // Opens the control device and reads the driver's features. nullptr with *rc (-ENODEV when
    // the ublk_drv module is not loaded) and *err.
    static std::unique_ptr<ControlRing> open(int* rc, std::string* err);
    ~ControlRing();
    ControlRing(const ControlRing&) = delete;
    ControlRing& operator=(const ControlRing&) = delete;

    uint64_t features() const { return features_; }
    bool ioctl_encode() const { return features_ & kFeatureCmdIoctlEncode; }
    // Commands still waiting for the kernel.
    size_t pending() const { return pending_.size(); }

    // Sends command `nr` (UBLK_CMD_*); done(res) runs later on this thread with the kernel's
    // result (0 or -errno). What cmd.addr points to must stay valid until then.
    void submit(uint32_t nr, const ublksrv_ctrl_cmd& cmd, std::function<void(int)> done);

  private:
    ControlRing() = default;
    int poll();

    int fd_ = -1;
    int efd_ = -1;
    io_uring ring_{};
    bool ring_ok_ = false;
    bool deferred_ = false;  // DEFER_TASKRUN: completions run when we ask for events
    uint64_t features_ = 0;
    Reactor* reactor_ = nullptr;
    Poller* poller_ = nullptr;
    uint64_t next_id_ = 1;
    std::map<uint64_t, std::function<void(int)>> pending_;
};

}  // namespace nocstor::ublk
