// One iSCSI session (one TCP connection, one libiscsi context) to a LUN, owned by one data
// thread: every call below runs there. It connects, logs in, and carries the bdev's I/O; when the
// connection breaks it tears the context down, keeps the I/O that was in flight (libiscsi hands
// it back cancelled) and queued, and reconnects with back-off. An I/O is completed only with
// the target's status, or fails once it is older than the timeout.
#pragma once

#include "bdev/bdev_io.h"
#include "modules/iscsi/iscsi_target_spec.h"

#include <cstdint>
#include <functional>
#include <string>

struct iscsi_context;
struct scsi_task;

namespace nocstor {
class Thread;
struct Poller;
}  // namespace nocstor

namespace nocstor::iscsi {

// What the bdev knows about the LUN; sessions use the geometry and the limits.
struct LunGeometry {
    uint32_t block_size = 512;
    uint64_t num_blocks = 0;
    uint32_t max_unmap_blocks = 0;       // per descriptor; 0 = no UNMAP
    uint32_t max_unmap_descriptors = 0;  // per command
    uint64_t max_write_same_blocks = 0;  // 0 = no limit given
    bool unmap = false;                  // LBPU (and LBPME)
    bool write_same = false;             // zeroes through WRITE SAME(16)
};

class IscsiSession {
  public:
    enum class State { Idle, Connecting, Ready, Backoff, Closed };

    IscsiSession(const IscsiTargetSpec& spec, const LunGeometry* geometry, uint32_t index,
                 Thread* owner);
    ~IscsiSession();
    IscsiSession(const IscsiSession&) = delete;
    IscsiSession& operator=(const IscsiSession&) = delete;

    Thread* owner() const { return owner_; }
    uint32_t index() const { return index_; }
    State state() const { return state_; }

    // Starts connecting (pollers registered on the owner thread). on_first_login runs once, on
    // the owner thread, with the context when the first login succeeded (the LUN probe uses
    // it), or with nullptr and the error when it failed: a first connection is not retried.
    using LoginCb = std::function<void(iscsi_context* ctx, std::string err)>;
    void start(LoginCb on_first_login);
    // Executes io (a read, write, flush, unmap or write-zeroes of the bdev); its completion is
    // sent to `origin` (the submitting thread) when that is not the owner.
    void submit(BdevIo* io, Thread* origin);
    // Called on the owner thread with the LUN's new block count when the target reported
    // CAPACITY DATA HAS CHANGED and READ CAPACITY(16) answered.
    using ResizeCb = std::function<void(uint64_t num_blocks)>;
    void set_resize_callback(ResizeCb cb) { on_resize_ = std::move(cb); }
    // Fails what is queued and in flight with Aborted, logs out and stops the pollers; done
    // runs on the owner thread.
    void shutdown(std::function<void()> done);

    // Counters for bdev_get_bdevs (approximate from other threads).
    struct Counters {
        uint64_t logins = 0;
        uint64_t connection_losses = 0;
        uint64_t retried_ios = 0;
        uint64_t timed_out_ios = 0;
        uint32_t in_flight = 0;
        uint32_t queued = 0;
    };
    Counters counters() const { return counters_; }
    const std::string& last_error() const { return last_error_; }
    static const char* state_name(State s);
    // libiscsi's log callback (errors only): keeps the first cause of a failure.
    static void log_from_libiscsi(int level, const char* message);

  private:
    friend struct IscsiCommand;
    void connect();
    std::string take_cause();  // the first error libiscsi logged, or its last error
    void on_login(int status);
    void fail_connection(const std::string& why);
    int poll();
    int tick();
    void update_interrupt_fd();
    void release_fd();
    // CAPACITY DATA HAS CHANGED: one READ CAPACITY(16) at a time, then on_resize_.
    void probe_capacity();
    // I/O
    void dispatch(BdevIo* io);
    void dispatch_waiting();
    bool issue(BdevIo* io);
    void on_task_done(BdevIo* io, scsi_task* task, int status);
    void finish(BdevIo* io, IoStatus st);
    void requeue(BdevIo* io);
    bool expired(BdevIo* io, uint64_t now) const;

    IscsiTargetSpec spec_;
    const LunGeometry* geometry_;
    uint32_t index_;
    Thread* owner_;
    State state_ = State::Idle;
    iscsi_context* ctx_ = nullptr;
    int fd_ = -1;
    uint32_t fd_events_ = 0;
    Poller* poller_ = nullptr;
    Poller* timer_ = nullptr;
    LoginCb on_first_login_;
    bool logged_in_once_ = false;
    bool broken_ = false;
    uint64_t ctx_timeout_sec_ = 0;  // what iscsi_set_timeout was last given  // set by a callback
                                    // inside iscsi_service, acted on after it
    uint64_t connect_deadline_ns_ = 0;
    uint64_t next_attempt_ns_ = 0;
    uint64_t backoff_ms_ = 0;
    uint32_t completions_in_pass_ = 0;
    BdevIoQueue waiting_;  // not yet issued: no connection, or libiscsi had no memory
    Counters counters_;
    std::string last_error_;
    ResizeCb on_resize_;
    bool capacity_probe_ = false;
    std::string cause_;
};

}  // namespace nocstor::iscsi
