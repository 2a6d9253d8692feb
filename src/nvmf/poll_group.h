// A poll group: everything one data thread serves. Its TCP connections (polled through one
// epoll set that the reactor also sleeps on), its I/O channels to namespace bdevs, its copy of
// the subsystem tables (from TargetSnapshot messages), and the controllers whose admin queue
// lives here. Touched only from its own thread; other threads talk to it by message.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nvmf/subsystem.h"
#include "nvmf/uring_sock.h"
#include "runtime/buffer_pool.h"
#include "runtime/thread.h"
#include "security/tls_psk.h"

namespace nocstor::nvmf {

class NvmfTarget;
class TcpConn;
class Controller;

// A namespace as seen by one poll group: the shared info plus this thread's channel.
struct PgNamespace {
    std::shared_ptr<const NamespaceInfo> info;
    IoChannel* ch = nullptr;
    uint32_t inflight = 0;  // bdev I/O outstanding on ch
    bool removed = false;   // gone from the table; destroyed when inflight drops to 0
};

struct PgSubsystem {
    std::shared_ptr<const SubsystemInfo> info;
    std::vector<PgNamespace*> ns;     // index nsid - 1, size max_namespaces
    std::vector<Controller*> ctrlrs;  // controllers of this subsystem on this poll group

    PgNamespace* find_ns(uint32_t nsid) const {
        return nsid >= 1 && nsid <= ns.size() ? ns[nsid - 1] : nullptr;
    }
};

struct PollGroupStats {
    uint64_t connections = 0;  // live
    uint64_t accepted = 0;
    uint64_t commands = 0;
    uint64_t term_reqs_sent = 0;
    uint64_t kato_expired = 0;
    uint64_t icreq_timeouts = 0;       // no ICReq within icreq_timeout_ms
    uint64_t connect_timeouts = 0;     // ICReq, but no Connect within connect_timeout_ms
    uint64_t auth_timeouts = 0;        // DH-HMAC-CHAP not completed within connect_timeout_ms
    uint64_t tls_established = 0;      // TLS secure channels set up
    uint64_t tls_failures = 0;         // TLS handshakes or records that failed
    uint64_t unconnected_evicted = 0;  // closed to make room under max_unconnected
};

class PollGroup {
  public:
    PollGroup(NvmfTarget* target, Thread* thread, uint32_t index, uint16_t cntlid_first,
              uint16_t cntlid_last, BufferPool* pool, SockImpl sock_impl = SockImpl::kPosix);
    ~PollGroup();

    NvmfTarget* target() const { return target_; }
    Thread* thread() const { return thread_; }
    uint32_t index() const { return index_; }

    // --- own thread ---
    void start();
    // Closes every connection; done once they are all reaped (bdev I/O finished).
    void stop(std::function<void()> done);
    // secure: the listener is a TLS secure channel; the connection starts with the handshake.
    void add_connection(int fd, uint32_t listener_id, bool secure = false);
    std::vector<uint8_t> tls_psk_for(uint32_t listener_id, std::string_view identity,
                                     security::TlsCipher cipher) const;
    void apply(std::shared_ptr<const TargetSnapshot> snap);
    const TargetSnapshot& snapshot() const { return *snap_; }

    PgSubsystem* find_subsystem(std::string_view nqn);
    TcpConn* find_conn(uint64_t id);
    BufferCache& buffers() { return *cache_; }
    uint32_t buffers_small_size() const { return small_size_; }
    // Connections served here (read by the accepting thread to balance).
    uint32_t load() const { return load_.load(std::memory_order_relaxed); }
    // A connection closed: tear down its controller or detach it from its controller.
    void conn_closed(TcpConn* c);
    PollGroupStats& stats() { return stats_; }
    // Live connections that have not completed Connect.
    uint64_t unconnected_count() const;

    // Controllers whose admin queue lives here.
    bool owns_cntlid(uint16_t cntlid) const {
        return cntlid >= cntlid_first_ && cntlid <= cntlid_last_;
    }
    uint16_t alloc_cntlid();  // 0 when the range is exhausted
    void add_controller(Controller* c);
    void remove_controller(Controller* c);
    Controller* find_controller(uint16_t cntlid);
    const std::unordered_map<uint16_t, Controller*>& controllers() const { return ctrlrs_; }

    // The io_uring driver, or null when connections are served through epoll.
    UringSock* uring() const { return uring_.get(); }
    SockImpl sock_impl() const { return uring_ ? SockImpl::kUring : SockImpl::kPosix; }

    // Epoll registration of a connection (data.ptr = conn).
    void watch(TcpConn* c, bool want_write);
    void unwatch(TcpConn* c);
    void mark_dirty(TcpConn* c);  // flush its TX queue at the end of this poll

    // A namespace's last I/O finished after it was removed.
    void ns_idle(PgNamespace* ns);

    // Qpairs of this poll group, for list_qpairs.
    const std::unordered_map<uint64_t, std::unique_ptr<TcpConn>>& conns() const { return conns_; }

  private:
    int poll();
    int timer_poll();
    int flush_dirty();
    void retire_ns(PgNamespace* ns);
    void destroy_ns(PgNamespace* ns);
    void reap();
    // At the unconnected cap: closes the oldest connection that has not sent its ICReq (else the
    // oldest that has not completed Connect) to make room for a new one.
    void make_room_for_unconnected();

    NvmfTarget* target_;
    Thread* thread_;
    uint32_t index_;
    uint16_t cntlid_first_, cntlid_last_, cntlid_next_;
    BufferPool* pool_;
    std::unique_ptr<BufferCache> cache_;
    int epfd_ = -1;
    SockImpl want_sock_impl_;
    std::unique_ptr<UringSock> uring_;
    uint32_t tls_conns_ = 0;  // live TLS connections (on epoll even when uring_ drives the rest)
    Poller* poller_ = nullptr;
    Poller* timer_ = nullptr;
    Poller* flusher_ = nullptr;
    std::shared_ptr<const TargetSnapshot> snap_;
    std::map<std::string, std::unique_ptr<PgSubsystem>, std::less<>> subsystems_;
    std::unordered_map<uint64_t, std::unique_ptr<TcpConn>> conns_;
    std::vector<TcpConn*> dirty_;
    std::unordered_map<uint16_t, Controller*> ctrlrs_;
    uint64_t next_conn_id_ = 1;
    bool stopping_ = false;
    std::function<void()> stop_done_;
    PollGroupStats stats_;
    uint32_t small_size_;
    std::atomic<uint32_t> load_{0};
};

}  // namespace nocstor::nvmf
