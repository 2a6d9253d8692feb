// PolledRing: an io_uring driven by a reactor poller on one thread. Task work (the kernel's
// completion callbacks) is deferred to the ring where the kernel allows it (DEFER_TASKRUN,
// 6.1+): it runs only when the poller asks for events, never as ordinary task work of the
// thread. An eventfd registered with the ring wakes a sleeping reactor.
//
// Why deferred: Linux 6.12 can oops running a dying thread's ordinary io_uring task work after
// a SIGKILL (io_fallback_tw from do_exit), which kill -9 tests hit with the uring bdev and ublk.
#pragma once

#include <liburing.h>

namespace nocstor {

class Reactor;

class PolledRing {
  public:
    static constexpr unsigned kCqBatch = 64;

    PolledRing() = default;
    PolledRing(const PolledRing&) = delete;
    PolledRing& operator=(const PolledRing&) = delete;
    ~PolledRing();

    // Sets up the ring on the calling thread (the only one that may submit to it) with
    // `extra_flags` (e.g. IORING_SETUP_SQE128) and registers its eventfd with `reactor` when
    // given. 0 or -errno; `what` names the failing step.
    int init(unsigned entries, unsigned extra_flags, Reactor* reactor, const char** what);
    // Unregisters the eventfd from the reactor and closes the ring (cancelling what is in
    // flight). Safe to call twice.
    void close();

    io_uring* ring() { return &ring_; }
    bool ok() const { return ok_; }
    bool deferred() const { return deferred_; }
    unsigned unsubmitted() const { return unsubmitted_; }

    // A submission slot, counted as queued; when the SQ is full the queued batch is submitted
    // first. Null when none is free.
    io_uring_sqe* get_sqe();
    // Submits the queued batch and runs deferred task work that is pending. The number of
    // submissions (>= 0) or -errno.
    int submit();
    // Copies out up to kCqBatch completions, releases their CQ slots (so handlers may queue
    // new submissions), then calls on_cqe(user_data, res) for each. The number handled.
    template <class F>
    unsigned reap(F&& on_cqe) {
        io_uring_cqe* cqes[kCqBatch];
        const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kCqBatch);
        if (!n) return 0;
        struct Done {
            __u64 data;
            int res;
        } done[kCqBatch];
        for (unsigned i = 0; i < n; ++i) done[i] = {cqes[i]->user_data, cqes[i]->res};
        io_uring_cq_advance(&ring_, n);
        efd_dirty_ = true;
        for (unsigned i = 0; i < n; ++i) on_cqe(done[i].data, done[i].res);
        return n;
    }
    // End of a poll pass: clears the eventfd once a pass found no work (not on every busy
    // pass: the reactor's wake-up is level-triggered). Returns the pass's work, or 1 when a
    // completion or task work arrived while clearing, so that the reactor does not sleep on it.
    int end_pass(int work);

  private:
    io_uring ring_{};
    bool ok_ = false;
    bool deferred_ = false;
    int efd_ = -1;
    bool efd_dirty_ = false;
    Reactor* reactor_ = nullptr;
    unsigned unsubmitted_ = 0;
};

}  // namespace nocstor
