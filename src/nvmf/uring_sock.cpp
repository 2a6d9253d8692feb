#include "nvmf/uring_sock.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "nvmf/poll_group.h"
#include "runtime/reactor.h"
#include "runtime/thread.h"
#include "util/log.h"

namespace nocstor::nvmf {

namespace {
// user_data = connection pointer | operation (pointers are at least 8-byte aligned).
constexpr uint64_t kOpRecv = 0, kOpSend = 1, kOpMask = 7;
constexpr unsigned kReapBatch = 64;

uint64_t tag(TcpConn* c, uint64_t op) {
    return reinterpret_cast<uint64_t>(c) | op;
}
}  // namespace

UringSock::~UringSock() {
    if (ok_) io_uring_queue_exit(&ring_);
    if (efd_ >= 0) ::close(efd_);
}

int UringSock::init(unsigned entries, std::string* err) {
    // Completions run as task work when this thread next enters the kernel (it polls anyway)
    // instead of interrupting it with an IPI; the TASKRUN flag tells the poller to enter.
    int rc = io_uring_queue_init(
        entries, &ring_,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER);
    if (rc == -EINVAL) rc = io_uring_queue_init(entries, &ring_, 0);  // kernels before 6.0
    if (rc < 0) {
        *err = std::string("io_uring_queue_init: ") + std::strerror(-rc);
        return rc;
    }
    ok_ = true;
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) {
        rc = -errno;
        *err = std::string("eventfd: ") + std::strerror(-rc);
        return rc;
    }
    rc = io_uring_register_eventfd(&ring_, efd_);
    if (rc < 0) {
        *err = std::string("io_uring_register_eventfd: ") + std::strerror(-rc);
        return rc;
    }
    // While the reactor runs, completions are reaped by polling: no eventfd writes. It is
    // switched on only around a sleep (and the sleep vetoed if a completion slipped in).
    io_uring_cq_eventfd_toggle(&ring_, false);
    reactor_ = Thread::current()->reactor();
    reactor_->add_interrupt_fd(efd_, 0x001 /* EPOLLIN */);
    reactor_->add_sleep_hook(
        [this] {
            io_uring_cq_eventfd_toggle(&ring_, true);
            const unsigned pending_work = IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN;
            return prepared_ == 0 && io_uring_cq_ready(&ring_) == 0 && !pending_work;
        },
        [this] {
            io_uring_cq_eventfd_toggle(&ring_, false);
            uint64_t v;
            while (::read(efd_, &v, sizeof v) > 0) {
            }
        },
        this);
    return 0;
}

void UringSock::shutdown() {
    if (reactor_) {
        reactor_->remove_sleep_hook(this);
        reactor_->remove_interrupt_fd(efd_);
        reactor_ = nullptr;
    }
}

io_uring_sqe* UringSock::get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (!sqe) {  // SQ full: push the batch now
        io_uring_submit(&ring_);
        prepared_ = 0;
        sqe = io_uring_get_sqe(&ring_);
    }
    ++prepared_;
    return sqe;
}

void UringSock::add(TcpConn* c) {
    c->use_uring(std::make_unique<UringConnIo>());
    arm_recv(c);
}

void UringSock::arm_recv(TcpConn* c) {
    UringConnIo& io = *c->uring_io();
    io.rx_msg = {};
    io.rx_msg.msg_iov = io.rx_iov;
    io.rx_msg.msg_iovlen =
        static_cast<size_t>(c->recv_iov(io.rx_iov, io.staging.get(), UringConnIo::kStagingSize));
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_recvmsg(sqe, c->fd(), &io.rx_msg, 0);
    io_uring_sqe_set_data64(sqe, tag(c, kOpRecv));
    ++io.ops;
}

void UringSock::send(TcpConn* c) {
    UringConnIo& io = *c->uring_io();
    if (io.send_inflight || c->closed()) return;
    size_t bytes = 0;
    const int cnt = c->tx_iov(io.tx_iov, TcpConn::kMaxTxIov, &bytes);
    if (cnt == 0) return;
    io.tx_msg = {};
    io.tx_msg.msg_iov = io.tx_iov;
    io.tx_msg.msg_iovlen = static_cast<size_t>(cnt);
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_sendmsg(sqe, c->fd(), &io.tx_msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(c, kOpSend));
    io.send_inflight = true;
    io.inflight_bytes = bytes;
    ++io.ops;
}

void UringSock::submit() {
    if (prepared_ == 0) return;
    io_uring_submit(&ring_);
    prepared_ = 0;
}

int UringSock::poll() {
    submit();
    io_uring_cqe* cqes[kReapBatch];
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kReapBatch);
    for (unsigned i = 0; i < n; ++i) {
        const uint64_t ud = io_uring_cqe_get_data64(cqes[i]);
        const int res = cqes[i]->res;
        auto* c = reinterpret_cast<TcpConn*>(ud & ~kOpMask);
        if ((ud & kOpMask) == kOpRecv) {
            on_recv(c, res);
        } else {
            on_send(c, res);
        }
    }
    if (n > 0) io_uring_cq_advance(&ring_, n);
    return static_cast<int>(n);
}

void UringSock::on_recv(TcpConn* c, int res) {
    UringConnIo& io = *c->uring_io();
    if (!c->closed()) {
        if (res > 0) {
            c->received(static_cast<size_t>(res), io.rx_iov,
                        static_cast<int>(io.rx_msg.msg_iovlen));
        } else if (res == 0) {
            c->close(c->draining() ? "terminated" : "peer closed the connection");
        } else if (res != -EINTR && res != -EAGAIN && res != -ENOBUFS) {
            c->close(std::strerror(-res));
        }
        if (!c->closed()) {
            arm_recv(c);
            // Commands that completed at once queued responses: send them with this batch.
            if (c->tx_pending()) send(c);
        }
    }
    op_done(c);
}

void UringSock::on_send(TcpConn* c, int res) {
    UringConnIo& io = *c->uring_io();
    io.send_inflight = false;
    if (!c->closed()) {
        if (res > 0) {
            c->tx_sent(static_cast<size_t>(res));
        } else if (res != -EINTR && res != -EAGAIN && res != -ENOBUFS) {
            c->close(std::strerror(-res));
        }
        if (!c->closed()) {
            if (c->tx_pending()) {
                send(c);
            } else {
                c->tx_idle();
            }
        }
    }
    op_done(c);
}

void UringSock::op_done(TcpConn* c) {
    UringConnIo& io = *c->uring_io();
    --io.ops;
    if (c->closed() && io.ops == 0 && c->fd() >= 0) c->release_all();
}

}  // namespace nocstor::nvmf
