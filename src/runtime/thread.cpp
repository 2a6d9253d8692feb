#include "runtime/thread.h"

#include <algorithm>

#include "runtime/reactor.h"
#include "util/log.h"

#include <sched.h>

#include <atomic>

namespace nocstor {

namespace {
thread_local Thread* tls_current = nullptr;
}

namespace detail {
void set_current_thread(Thread* t) {
    tls_current = t;
}
}  // namespace detail

Thread* Thread::current() {
    return tls_current;
}

Thread::Thread(std::string name, int cluster_id, uint32_t id, size_t queue_capacity)
    : name_(std::move(name)), cluster_id_(cluster_id), id_(id), queue_(queue_capacity) {}

Thread::~Thread() = default;

bool Thread::try_send(Message& msg) {
    if (!queue_.try_push(std::move(msg))) return false;
    // Pairs with the fence in Reactor::try_sleep(): either we see the sleeping flag, or the
    // reactor sees our message on its re-check.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (reactor_) reactor_->wake_if_sleeping();
    return true;
}

void Thread::send(Message msg) {
    bool warned = false;
    while (!try_send(msg)) {
        if (!warned) {
            NOC_WARN("runtime", "message queue of thread {} is full; sender waits", name_);
            warned = true;
        }
        sched_yield();
    }
}

Poller* Thread::register_poller(std::string name, PollFn fn, uint64_t period_us) {
    auto first_tail =
        std::find_if(pollers_.begin(), pollers_.end(), [](const Poller& q) { return q.tail; });
    Poller& p = *pollers_.emplace(first_tail);
    p.name = std::move(name);
    p.fn = std::move(fn);
    p.period_ns = period_us * 1000;
    p.next_run_ns = 0;
    if (p.period_ns == 0) ++active_pollers_;
    recompute_deadline();
    return &p;
}

Poller* Thread::register_tail_poller(std::string name, PollFn fn) {
    Poller& p = pollers_.emplace_back();
    p.name = std::move(name);
    p.fn = std::move(fn);
    p.tail = true;
    ++active_pollers_;
    return &p;
}

void Thread::pause_poller(Poller* p) {
    if (p->state != Poller::State::Running) return;
    p->state = Poller::State::Paused;
    if (p->period_ns == 0) --active_pollers_;
    recompute_deadline();
}

void Thread::resume_poller(Poller* p) {
    if (p->state != Poller::State::Paused) return;
    p->state = Poller::State::Running;
    if (p->period_ns == 0) ++active_pollers_;
    p->next_run_ns = 0;
    recompute_deadline();
}

void Thread::unregister_poller(Poller* p) {
    if (p->state == Poller::State::Running && p->period_ns == 0) --active_pollers_;
    p->state = Poller::State::Unregistered;
    needs_reap_ = true;
    if (!in_poll_) {
        pollers_.remove_if([](const Poller& q) { return q.state == Poller::State::Unregistered; });
        needs_reap_ = false;
    }
    recompute_deadline();
}

void Thread::recompute_deadline() {
    uint64_t d = UINT64_MAX;
    for (const auto& p : pollers_)
        if (p.state == Poller::State::Running && p.period_ns != 0 && p.next_run_ns < d)
            d = p.next_run_ns;
    next_deadline_ns_ = d;
}

bool Thread::drain_messages(size_t max) {
    Message msg;
    size_t n = 0;
    while (n < max && queue_.try_pop(msg)) {
        msg();
        msg.reset();
        ++n;
    }
    stats_.messages += n;
    return n > 0;
}

int Thread::run_once(uint64_t now) {
    int work = 0;
    detail::set_current_thread(this);
    // Bounded batch: a flood of messages must not starve the pollers.
    Message msg;
    int n = 0;
    while (n < 64 && queue_.try_pop(msg)) {
        msg();
        msg.reset();
        ++n;
    }
    stats_.messages += n;
    work += n;

    in_poll_ = true;
    bool timers_due = now >= next_deadline_ns_;
    for (auto& p : pollers_) {
        if (p.state != Poller::State::Running) continue;
        if (p.period_ns != 0) {
            if (!timers_due || now < p.next_run_ns) continue;
            p.next_run_ns = now + p.period_ns;
        }
        int rc = p.fn();
        ++p.run_count;
        if (rc > 0) {
            ++p.busy_count;
            work += rc;
        }
    }
    stats_.poller_runs++;
    in_poll_ = false;
    if (needs_reap_) {
        pollers_.remove_if([](const Poller& q) { return q.state == Poller::State::Unregistered; });
        needs_reap_ = false;
    }
    if (timers_due) recompute_deadline();
    detail::set_current_thread(nullptr);
    return work;
}

}  // namespace nocstor
