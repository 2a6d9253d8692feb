// A reactor is one pinned OS thread that runs its lightweight threads in turn. Under load it
// spins; after `idle_sleep_us` without work it sleeps in epoll on an eventfd (rung by senders),
// a timerfd (the next timed poller) and the file descriptors its pollers registered, so an idle
// daemon costs ~0% CPU, unlike SPDK's always-spinning reactors.
#pragma once

#include "runtime/thread.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace nocstor {

struct ReactorOptions {
    uint64_t idle_sleep_us = 500;  // spin this long without work before sleeping
    bool allow_sleep = true;       // false: spin forever like SPDK
    bool pin = true;               // pin to the core (tests may turn it off)
    // Another data reactor runs on the same core (clusters sharing a core): a pass that found no
    // work yields the core, so that the other one (often the peer this one waits for) runs now
    // instead of after a scheduler time slice. Set by the Runtime from the cluster plan; the
    // control reactor does not count, since it sleeps when idle and the scheduler runs it as
    // soon as it wakes (a yield per idle pass would cost a syscall for nothing).
    bool yield_when_idle = false;
    // Adaptive spinning: while the gaps between bursts of work average more than
    // `spin_break_even_us`, an idle reactor spins only `min_spin_us` before sleeping (interrupt
    // mode: at low request rates spinning would cost more CPU than the wake-ups it saves);
    // while they are shorter it spins the full idle_sleep_us (polling mode).
    bool adaptive_spin = true;
    uint64_t min_spin_us = 20;
    uint64_t spin_break_even_us = 200;
};

struct ReactorStats {
    uint64_t busy_ns = 0;
    uint64_t idle_ns = 0;
    uint64_t sleeps = 0;
    uint64_t wakeups_rung = 0;  // eventfd writes received from senders
    uint64_t loops = 0;
    uint64_t spin_window_ns = 0;  // how long it spins now before sleeping
    uint64_t idle_gap_ns = 0;     // moving average of the gaps between bursts of work
};

class Reactor {
  public:
    Reactor(uint32_t index, int core, int cluster_id, ReactorOptions opts);
    ~Reactor();
    Reactor(const Reactor&) = delete;
    Reactor& operator=(const Reactor&) = delete;

    uint32_t index() const { return index_; }
    int core() const { return core_; }
    int cluster_id() const { return cluster_id_; }

    // Before start(), or from a message running on this reactor.
    void add_thread(std::unique_ptr<Thread> t);
    // The first thread added (its "main" lightweight thread).
    Thread* main_thread() const { return threads_.empty() ? nullptr : threads_.front().get(); }
    const std::vector<std::unique_ptr<Thread>>& threads() const { return threads_; }

    void start();
    // Any thread: asks the loop to exit after draining messages; join() waits for it.
    void stop();
    void join();
    bool running() const { return running_.load(std::memory_order_acquire); }

    // Senders call this after pushing a message (after a seq_cst fence).
    void wake_if_sleeping() {
        if (sleeping_.load(std::memory_order_seq_cst)) wake();
    }
    void wake();

    // Interrupt sources: fds whose readiness should end a sleep (sockets, io_uring eventfds,
    // NoC doorbells). Level-triggered; the poller does the actual work when the loop spins.
    // Owning reactor's threads only (or before start).
    bool add_interrupt_fd(int fd, uint32_t events = 0x001 /* EPOLLIN */);
    bool modify_interrupt_fd(int fd, uint32_t events);
    void remove_interrupt_fd(int fd);

    // A hook consulted before sleeping: prepare() returns false to veto the sleep (work arrived),
    // finish() runs after every wake-up. Used by the NoC endpoint's doorbell protocol.
    // Owning reactor's threads only (or before start).
    // `owner` identifies the hook for remove_sleep_hook (not from inside a hook).
    void add_sleep_hook(std::function<bool()> prepare, std::function<void()> finish,
                        const void* owner = nullptr);
    void remove_sleep_hook(const void* owner);

    ReactorStats stats() const;  // approximate when read from another thread
    const ReactorOptions& options() const { return opts_; }

  private:
    void run();
    // Returns true when woken by a message or an fd, false when only a timer expired.
    bool try_sleep(uint64_t now);

    uint32_t index_;
    int core_;
    int cluster_id_;
    ReactorOptions opts_;
    std::vector<std::unique_ptr<Thread>> threads_;
    struct SleepHook {
        std::function<bool()> prepare;
        std::function<void()> finish;
        const void* owner = nullptr;
    };
    std::vector<SleepHook> sleep_hooks_;
    std::thread os_thread_;
    int epoll_fd_ = -1;
    int event_fd_ = -1;
    int timer_fd_ = -1;
    alignas(64) std::atomic<bool> sleeping_{false};
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> running_{false};
    // Written by the reactor only; readers on other threads see approximate values.
    std::atomic<uint64_t> busy_ns_{0}, idle_ns_{0}, sleeps_{0}, wakeups_{0}, loops_{0};
    std::atomic<uint64_t> spin_window_ns_{0}, idle_gap_ns_{0};
};

}  // namespace nocstor
