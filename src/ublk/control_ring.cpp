#include "ublk/control_ring.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "runtime/reactor.h"
#include "runtime/thread.h"
#include "util/log.h"

namespace nocstor::ublk {

namespace {

constexpr unsigned kEntries = 32;

void prep(io_uring_sqe* sqe, int fd, uint32_t op, const ublksrv_ctrl_cmd& cmd, uint64_t id) {
    std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // a SQE128 slot
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd;
    sqe->cmd_op = op;
    std::memcpy(sqe->cmd, &cmd, sizeof(cmd));
    sqe->user_data = id;
}

}  // namespace

const char* state_name(uint16_t state) {
    switch (state) {
        case UBLK_S_DEV_DEAD:
            return "dead";
        case UBLK_S_DEV_LIVE:
            return "live";
        case UBLK_S_DEV_QUIESCED:
            return "quiesced";
        default:
            return "unknown";
    }
}

std::unique_ptr<ControlRing> ControlRing::open(int* rc, std::string* err) {
    std::unique_ptr<ControlRing> c(new ControlRing());
    c->fd_ = ::open(kControlPath, O_RDWR | O_CLOEXEC);
    if (c->fd_ < 0) {
        *rc = errno == ENOENT ? -ENODEV : -errno;
        *err = errno == ENOENT
                   ? fmt::format(
                         "{} does not exist: the kernel has no ublk driver (modprobe "
                         "ublk_drv; Linux 6.0 or later with CONFIG_BLK_DEV_UBLK)",
                         kControlPath)
                   : fmt::format("cannot open {}: {}", kControlPath, std::strerror(errno));
        return nullptr;
    }
    // Deferred task work, as the queues' rings (ublk_queue.cpp says why).
    int r = io_uring_queue_init(kEntries, &c->ring_,
                                IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER |
                                    IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
    c->deferred_ = r == 0;
    if (r == -EINVAL) r = io_uring_queue_init(kEntries, &c->ring_, IORING_SETUP_SQE128);
    if (r < 0) {
        *rc = r;
        *err = std::string("io_uring with 128-byte SQEs: ") + std::strerror(-r);
        return nullptr;
    }
    c->ring_ok_ = true;
    // GET_FEATURES (Linux 6.5+) tells whether the ioctl-encoded opcodes are understood; a
    // kernel without it only has the bare ones. Synchronous: it answers at once.
    ublksrv_ctrl_cmd cmd{};
    cmd.dev_id = UINT32_MAX;
    cmd.addr = reinterpret_cast<uint64_t>(&c->features_);
    cmd.len = sizeof(c->features_);
    prep(io_uring_get_sqe(&c->ring_), c->fd_, ctrl_op(kCmdGetFeatures, true), cmd, 0);
    io_uring_cqe* cqe = nullptr;
    r = io_uring_submit_and_wait(&c->ring_, 1);
    if (r >= 0) r = io_uring_wait_cqe(&c->ring_, &cqe);
    if (r < 0) {
        *rc = r;
        *err = std::string("ublk GET_FEATURES: ") + std::strerror(-r);
        return nullptr;
    }
    if (cqe->res < 0) c->features_ = 0;  // an older driver: bare opcodes, no recovery query
    io_uring_cqe_seen(&c->ring_, cqe);
    c->efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd_ < 0 || io_uring_register_eventfd(&c->ring_, c->efd_) < 0) {
        *rc = -EIO;
        *err = "cannot register an eventfd with the ublk control ring";
        return nullptr;
    }
    Thread* t = Thread::current();
    c->reactor_ = t->reactor();
    if (c->reactor_ && !c->reactor_->add_interrupt_fd(c->efd_)) c->reactor_ = nullptr;
    ControlRing* self = c.get();
    c->poller_ = t->register_poller("ublk_control", [self] { return self->poll(); });
    *rc = 0;
    return c;
}

ControlRing::~ControlRing() {
    if (poller_) Thread::current()->unregister_poller(poller_);
    if (reactor_ && efd_ >= 0) reactor_->remove_interrupt_fd(efd_);
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (efd_ >= 0) ::close(efd_);
    if (fd_ >= 0) ::close(fd_);
}

void ControlRing::submit(uint32_t nr, const ublksrv_ctrl_cmd& cmd, std::function<void(int)> done) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) return done(-EBUSY);
    const uint64_t id = next_id_++;
    prep(sqe, fd_, ctrl_op(nr, ioctl_encode()), cmd, id);
    const int r = io_uring_submit(&ring_);
    if (r < 0) return done(r);
    pending_.emplace(id, std::move(done));
}

int ControlRing::poll() {
    if (pending_.empty()) return 0;
    if (deferred_ && (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN))
        io_uring_get_events(&ring_);
    int n = 0;
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
        const uint64_t id = cqe->user_data;
        const int res = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        ++n;
        auto it = pending_.find(id);
        if (it == pending_.end()) continue;
        auto done = std::move(it->second);
        pending_.erase(it);
        done(res);
    }
    if (n || deferred_) {
        uint64_t v;
        ssize_t r = ::read(efd_, &v, sizeof(v));
        (void)r;
    }
    return n;
}

}  // namespace nocstor::ublk
