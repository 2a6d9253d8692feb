#include "runtime/reactor.h"

#include "runtime/io_channel.h"
#include "util/lat_clock.h"
#include "util/log.h"
#include "util/tick.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace nocstor {

namespace detail {
void set_current_thread(Thread* t);
}

Reactor::Reactor(uint32_t index, int core, int cluster_id, ReactorOptions opts)
    : index_(index), core_(core), cluster_id_(cluster_id), opts_(opts) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epoll_fd_ < 0 || event_fd_ < 0 || timer_fd_ < 0)
        throw std::runtime_error(std::string("reactor: cannot create epoll/eventfd/timerfd: ") +
                                 strerror(errno));
    add_interrupt_fd(event_fd_, EPOLLIN);
    add_interrupt_fd(timer_fd_, EPOLLIN);
}

Reactor::~Reactor() {
    stop();
    join();
    for (auto& t : threads_) unregister_thread(t.get());
    if (epoll_fd_ >= 0) close(epoll_fd_);
    if (event_fd_ >= 0) close(event_fd_);
    if (timer_fd_ >= 0) close(timer_fd_);
}

void Reactor::add_thread(std::unique_ptr<Thread> t) {
    t->attach(this);
    register_thread(t.get());
    threads_.push_back(std::move(t));
}

void Reactor::start() {
    running_.store(true, std::memory_order_release);
    os_thread_ = std::thread([this] { run(); });
}

void Reactor::stop() {
    stop_requested_.store(true, std::memory_order_seq_cst);
    wake();
}

void Reactor::join() {
    if (os_thread_.joinable()) os_thread_.join();
}

void Reactor::wake() {
    uint64_t one = 1;
    ssize_t rc = write(event_fd_, &one, sizeof(one));
    (void)rc;  // EAGAIN means the counter is already non-zero: the reactor will wake anyway
}

bool Reactor::add_interrupt_fd(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Reactor::modify_interrupt_fd(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void Reactor::remove_interrupt_fd(int fd) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Reactor::add_sleep_hook(std::function<bool()> prepare, std::function<void()> finish,
                             const void* owner) {
    sleep_hooks_.push_back({std::move(prepare), std::move(finish), owner});
}

void Reactor::remove_sleep_hook(const void* owner) {
    std::erase_if(sleep_hooks_, [owner](const SleepHook& h) { return h.owner == owner; });
}

ReactorStats Reactor::stats() const {
    ReactorStats s;
    s.busy_ns = busy_ns_.load(std::memory_order_relaxed);
    s.idle_ns = idle_ns_.load(std::memory_order_relaxed);
    s.sleeps = sleeps_.load(std::memory_order_relaxed);
    s.wakeups_rung = wakeups_.load(std::memory_order_relaxed);
    s.loops = loops_.load(std::memory_order_relaxed);
    s.spin_window_ns = spin_window_ns_.load(std::memory_order_relaxed);
    s.idle_gap_ns = idle_gap_ns_.load(std::memory_order_relaxed);
    return s;
}

bool Reactor::try_sleep(uint64_t now) {
    // Announce the sleep, then re-check every queue: a sender that pushed before seeing the
    // flag is caught by the re-check, one that pushes after it rings the eventfd.
    sleeping_.store(true, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    uint64_t deadline = UINT64_MAX;
    // Active pollers that found nothing sleep too: they registered their fds as interrupts.
    for (auto& t : threads_) {
        if (t->has_pending_messages()) {
            sleeping_.store(false, std::memory_order_relaxed);
            return true;
        }
        if (t->next_deadline_ns() < deadline) deadline = t->next_deadline_ns();
    }
    if (stop_requested_.load(std::memory_order_seq_cst)) {
        sleeping_.store(false, std::memory_order_relaxed);
        return true;
    }
    size_t prepared = 0;
    for (; prepared < sleep_hooks_.size(); ++prepared)
        if (!sleep_hooks_[prepared].prepare()) break;
    if (prepared < sleep_hooks_.size()) {
        for (size_t i = 0; i <= prepared && i < sleep_hooks_.size(); ++i) sleep_hooks_[i].finish();
        sleeping_.store(false, std::memory_order_relaxed);
        return true;
    }
    itimerspec its{};
    if (deadline != UINT64_MAX) {
        uint64_t at = deadline > now ? deadline : now + 1000;
        its.it_value.tv_sec = time_t(at / 1'000'000'000ull);
        its.it_value.tv_nsec = long(at % 1'000'000'000ull);
        timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
    }
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    epoll_event evs[16];
    int n = epoll_wait(epoll_fd_, evs, 16, -1);
    sleeping_.store(false, std::memory_order_relaxed);
    for (auto& h : sleep_hooks_) h.finish();
    bool real_event = false;
    for (int i = 0; i < n; ++i) {
        uint64_t v;
        if (evs[i].data.fd != timer_fd_) real_event = true;
        if (evs[i].data.fd == event_fd_) {
            if (read(event_fd_, &v, sizeof(v)) > 0)
                wakeups_.fetch_add(1, std::memory_order_relaxed);
        } else if (evs[i].data.fd == timer_fd_) {
            ssize_t rc = read(timer_fd_, &v, sizeof(v));
            (void)rc;
        }
    }
    if (deadline != UINT64_MAX) {
        itimerspec off{};
        timerfd_settime(timer_fd_, 0, &off, nullptr);
    }
    return real_event;
}

void Reactor::run() {
    if (opts_.pin && core_ >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(core_, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
            NOC_WARN("runtime", "reactor {}: cannot pin to core {}", index_, core_);
    }
    char tname[16];
    snprintf(tname, sizeof(tname), "reactor_%u", index_);
    pthread_setname_np(pthread_self(), tname);

    const uint64_t idle_limit = opts_.idle_sleep_us * 1000;
    const uint64_t min_window = std::min(idle_limit, opts_.min_spin_us * 1000);
    const uint64_t break_even = opts_.spin_break_even_us * 1000;
    uint64_t window = idle_limit;
    int64_t gap_avg = 0;
    bool idle_pass = false;  // a pass without work since the last one with work
    bool interrupt_mode = false;
    bool probing = false;  // this idle episode spins the full window although in interrupt mode
    uint32_t episodes = 0;
    spin_window_ns_.store(window, std::memory_order_relaxed);
    // A clock read per pass through the vDSO is a visible share of a busy reactor's time under
    // kvm-clock; the anchored TSC costs a third of it.
    LoopClock clock;
    uint64_t last = clock.now();
    uint64_t last_work = last;
    while (!stop_requested_.load(std::memory_order_relaxed)) {
        int work = 0;
        uint64_t now = last;
        for (size_t i = 0; i < threads_.size(); ++i) {
            uint64_t t0 = now;
            int w = threads_[i]->run_once(now);
            now = clock.now();
            auto& st = threads_[i]->mutable_stats();
            (w > 0 ? st.busy_ns : st.idle_ns) += now - t0;
            work += w;
        }
        loops_.store(loops_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        auto& acc = work > 0 ? busy_ns_ : idle_ns_;
        acc.store(acc.load(std::memory_order_relaxed) + (now - last), std::memory_order_relaxed);
        if (work > 0) {
            if (idle_pass && opts_.adaptive_spin) {
                // The idle gap that just ended, capped so that one long pause does not take
                // many bursts to forget. Only gaps seen while spinning count: in interrupt
                // mode a gap includes the wake-up latency, which would keep the reactor there.
                const int64_t gap = int64_t(std::min(now - last_work, 8 * break_even));
                if (!interrupt_mode) {
                    gap_avg += (gap - gap_avg) / 8;
                    interrupt_mode = uint64_t(gap_avg) > break_even;
                } else if (probing && uint64_t(gap) < break_even) {
                    interrupt_mode = false;  // work came back while spinning: spin again
                    gap_avg = gap;
                }
                // In interrupt mode every 16th idle episode spins the full window, to notice
                // when work comes often enough again.
                probing = interrupt_mode && (++episodes % 16 == 0);
                window = interrupt_mode && !probing ? min_window : idle_limit;
                spin_window_ns_.store(interrupt_mode ? min_window : idle_limit,
                                      std::memory_order_relaxed);
                idle_gap_ns_.store(uint64_t(gap_avg), std::memory_order_relaxed);
            }
            idle_pass = false;
            last_work = now;
        } else if (opts_.yield_when_idle && !(opts_.allow_sleep && now - last_work >= window)) {
            idle_pass = true;
            sched_yield();
        } else if (opts_.allow_sleep && now - last_work >= window) {
            idle_pass = true;
            bool woken = try_sleep(now);
            now = clock.now();
            // After a message or socket event, spin for a while (more is likely to follow);
            // after a bare timer, go back to sleep as soon as the timed pollers are done.
            if (!woken) last_work = now - idle_limit;
        } else {
            idle_pass = true;
        }
        last = now;
    }
    // Run what was queued before the stop so that senders' completions are not lost.
    for (int round = 0; round < 16; ++round) {
        bool any = false;
        for (auto& t : threads_) {
            detail::set_current_thread(t.get());
            any |= t->drain_messages(4096);
            detail::set_current_thread(nullptr);
        }
        if (!any) break;
    }
    running_.store(false, std::memory_order_release);
}

}  // namespace nocstor
