#include "runtime/polled_ring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/reactor.h"

namespace nocstor {

PolledRing::~PolledRing() {
    close();
}

int PolledRing::init(unsigned entries, unsigned extra_flags, Reactor* reactor, const char** what) {
    const char* dummy;
    if (!what) what = &dummy;
    *what = "io_uring_queue_init";
    int rc = io_uring_queue_init(entries, &ring_,
                                 extra_flags | IORING_SETUP_SINGLE_ISSUER |
                                     IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
    deferred_ = rc == 0;
    if (rc == -EINVAL) rc = io_uring_queue_init(entries, &ring_, extra_flags);  // before 6.1
    if (rc < 0) return rc;
    ok_ = true;
    *what = "eventfd";
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) return -errno;
    *what = "io_uring_register_eventfd";
    rc = io_uring_register_eventfd(&ring_, efd_);
    if (rc < 0) return rc;
    if (reactor && reactor->add_interrupt_fd(efd_)) reactor_ = reactor;
    return 0;
}

void PolledRing::close() {
    if (efd_ >= 0 && reactor_) reactor_->remove_interrupt_fd(efd_);
    reactor_ = nullptr;
    if (ok_) io_uring_queue_exit(&ring_);  // cancels anything still in flight
    ok_ = false;
    if (efd_ >= 0) ::close(efd_);
    efd_ = -1;
    unsubmitted_ = 0;
}

io_uring_sqe* PolledRing::get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe && unsubmitted_) {
        submit();
        sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe) ++unsubmitted_;
    return sqe;
}

int PolledRing::submit() {
    // Deferred task work waits for us to enter the kernel; the kernel raises IORING_SQ_TASKRUN
    // (and the eventfd) when there is some.
    const bool taskrun =
        deferred_ && (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
    if (taskrun) efd_dirty_ = true;
    if (!unsubmitted_) {
        if (taskrun) io_uring_get_events(&ring_);
        return 0;
    }
    const int r = taskrun ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
    if (r > 0) unsubmitted_ -= unsigned(r) < unsubmitted_ ? unsigned(r) : unsubmitted_;
    return r;
}

int PolledRing::end_pass(int work) {
    if (work != 0 || !efd_dirty_) return work;
    uint64_t v;
    ssize_t r = ::read(efd_, &v, sizeof(v));
    (void)r;
    efd_dirty_ = false;
    // The kernel signals before we clear: look again, or a completion posted in between
    // would wait for the next unrelated wake-up.
    const bool taskrun =
        deferred_ && (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
    if (taskrun || io_uring_cq_ready(&ring_)) {
        efd_dirty_ = true;
        return 1;
    }
    return 0;
}

}  // namespace nocstor
