// A lightweight thread: the unit of work a reactor runs. It owns pollers, an MPSC message queue
// and the I/O channels opened on it. Everything a lightweight thread owns is touched only from
// the reactor running it; other threads reach it by send_message().
#pragma once

#include "runtime/mpsc_queue.h"
#include "util/inline_function.h"

#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <vector>

namespace nocstor {

class Reactor;
class IoChannel;
class IoDevice;

using Message = InlineFunction<void(), 48>;

// A poller returns > 0 when it did work, 0 when it found nothing to do (used for the busy/idle
// accounting that decides when a reactor may sleep).
using PollFn = std::function<int()>;

struct Poller {
    enum class State { Running, Paused, Unregistered };
    std::string name;
    PollFn fn;
    bool tail = false;
    uint64_t period_ns = 0;  // 0: active poller, run every loop
    uint64_t next_run_ns = 0;
    State state = State::Running;
    uint64_t run_count = 0;
    uint64_t busy_count = 0;
};

struct ThreadStats {
    uint64_t busy_ns = 0;
    uint64_t idle_ns = 0;
    uint64_t messages = 0;
    uint64_t poller_runs = 0;
};

class Thread {
  public:
    Thread(std::string name, int cluster_id, uint32_t id, size_t queue_capacity = 16384);
    ~Thread();
    Thread(const Thread&) = delete;
    Thread& operator=(const Thread&) = delete;

    // The lightweight thread running on this OS thread, or nullptr outside reactors.
    static Thread* current();

    const std::string& name() const { return name_; }
    uint32_t id() const { return id_; }
    int cluster_id() const { return cluster_id_; }
    Reactor* reactor() const { return reactor_; }

    // Any OS thread. Never blocks on the reactor side; from a non-reactor thread a full queue
    // is retried with a yield. Messages from one sender run in the order they were sent.
    void send(Message msg);
    bool try_send(Message& msg);

    // Owning thread only.
    Poller* register_poller(std::string name, PollFn fn, uint64_t period_us = 0);
    // An active poller that runs after every other one in each pass, whenever registered: for
    // work that should see everything the pass produced (the NVMe/TCP target flushes the
    // responses of completions that came in after its socket poller ran).
    Poller* register_tail_poller(std::string name, PollFn fn);
    void pause_poller(Poller* p);
    void resume_poller(Poller* p);
    void unregister_poller(Poller* p);  // safe from inside the poller itself

    // Runs due messages and pollers once; returns the amount of work done. Reactor only.
    int run_once(uint64_t now_ns);
    // Earliest deadline of a timed poller (UINT64_MAX if none).
    uint64_t next_deadline_ns() const { return next_deadline_ns_; }
    bool has_pending_messages() const { return !queue_.empty_approx(); }
    bool has_active_pollers() const { return active_pollers_ > 0; }

    const ThreadStats& stats() const { return stats_; }
    ThreadStats& mutable_stats() { return stats_; }
    const std::list<Poller>& pollers() const { return pollers_; }

    // I/O channel table (see io_channel.h).
    std::vector<IoChannel*>& channels() { return channels_; }

    // Set by the reactor when the thread is attached to it.
    void attach(Reactor* r) { reactor_ = r; }
    // Marks the thread as exiting: no new messages are expected after the reactor drained it.
    bool drain_messages(size_t max);

  private:
    void recompute_deadline();

    std::string name_;
    int cluster_id_;
    uint32_t id_;
    Reactor* reactor_ = nullptr;
    MpscQueue<Message> queue_;
    std::list<Poller> pollers_;  // list: stable addresses for Poller* handles
    size_t active_pollers_ = 0;
    bool in_poll_ = false;
    bool needs_reap_ = false;
    uint64_t next_deadline_ns_ = UINT64_MAX;
    std::vector<IoChannel*> channels_;
    ThreadStats stats_;
};

// Free function form used throughout the code base.
inline void send_message(Thread* t, Message msg) {
    t->send(std::move(msg));
}

}  // namespace nocstor
