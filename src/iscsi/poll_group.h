// An iSCSI poll group: everything one data thread serves. Its connections (polled through one
// epoll set that the reactor also sleeps on), its channels to the LUNs' bdevs, and its copy of
// the configuration (IscsiSnapshot messages). Touched only from its own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "iscsi/target_config.h"
#include "runtime/buffer_pool.h"
#include "runtime/thread.h"

namespace nocstor::iscsi_tgt {

class IscsiTarget;
class Conn;

// A LUN as one poll group uses it: this thread's channel, and the I/O outstanding on it.
struct PgLun {
    std::shared_ptr<const scsi::Lun> lun;
    IoChannel* ch = nullptr;
    uint32_t inflight = 0;
    bool removed = false;  // gone from the configuration: released when inflight drops to 0
};

struct PollGroupStats {
    uint64_t accepted = 0;
    uint64_t logins = 0;
    uint64_t login_failures = 0;
    uint64_t commands = 0;
    uint64_t rejects = 0;
    uint64_t nop_timeouts = 0;
    uint64_t login_timeouts = 0;
};

class IscsiPollGroup {
  public:
    IscsiPollGroup(IscsiTarget* target, Thread* thread, uint32_t index, BufferPool* pool);
    ~IscsiPollGroup();

    IscsiTarget* target() const { return target_; }
    Thread* thread() const { return thread_; }
    uint32_t index() const { return index_; }
    uint32_t load() const { return load_.load(std::memory_order_relaxed); }

    // --- own thread ---
    void start();
    // Only the buffer cache, no reactor: connections are driven by hand (the fuzz target).
    void start_detached() { cache_ = std::make_unique<BufferCache>(*pool_); }
    void stop(std::function<void()> done);
    void add_connection(int fd, uint32_t listener_id);
    void apply(std::shared_ptr<const IscsiSnapshot> snap);
    const IscsiSnapshot& snapshot() const { return *snap_; }
    std::shared_ptr<const TargetNode> find_target(std::string_view name) const;
    BufferCache& buffers() { return *cache_; }
    PgLun* lun(const std::shared_ptr<const scsi::Lun>& l);
    void lun_io_done(PgLun* l);
    uint16_t alloc_tsih();
    void watch(Conn* c, bool want_write);
    void mark_dirty(Conn* c);
    // Sends what the connections marked dirty have queued (the tail poller's job).
    int flush_dirty();
    PollGroupStats& stats() { return stats_; }
    const std::unordered_map<uint64_t, std::unique_ptr<Conn>>& conns() const { return conns_; }
    // Session reinstatement (RFC 7143 6.3.5): closes this group's sessions of `initiator` with
    // this ISID on `target`, except connection `keep`.
    void reinstate(const std::string& initiator, const std::string& isid, const std::string& target,
                   uint64_t keep);

  private:
    int poll();
    int timer_poll();
    void reap();

    IscsiTarget* target_;
    Thread* thread_;
    uint32_t index_;
    BufferPool* pool_;
    std::unique_ptr<BufferCache> cache_;
    int epfd_ = -1;
    Poller* poller_ = nullptr;
    Poller* timer_ = nullptr;
    Poller* flusher_ = nullptr;
    std::shared_ptr<const IscsiSnapshot> snap_;
    std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
    std::map<const scsi::Lun*, std::unique_ptr<PgLun>> luns_;
    std::vector<Conn*> dirty_;
    uint64_t next_conn_id_ = 1;
    uint16_t next_tsih_ = 1;
    bool stopping_ = false;
    std::function<void()> stop_done_;
    PollGroupStats stats_;
    std::atomic<uint32_t> load_{0};
};

}  // namespace nocstor::iscsi_tgt
