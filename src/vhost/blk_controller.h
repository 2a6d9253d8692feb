// A vhost-user-blk controller: a Unix socket that one VMM (QEMU, cloud-hypervisor...) connects
// to, and the vhost-user session with it. The session's messages are handled on the control
// thread; each virtqueue runs on a data thread (BlkQueue). Messages that change what running
// queues use (memory table, features, call fd, cache mode) stop those queues first (their
// requests finish), then restart them; while that happens no further message is read, so the
// front-end's view stays ordered.
//
// With VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD the queues record popped requests in a shared
// region that the VMM keeps: after this process is killed and started again, the VMM reconnects
// and hands the region back, and the requests that were in flight are submitted again.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bdev/bdev.h"
#include "runtime/thread.h"
#include "vhost/blk_queue.h"
#include "vhost/message_io.h"

namespace nocstor::vhost {

struct BlkControllerParams {
    std::string name;         // ctrlr
    std::string socket_path;  // resolved by the target
    std::string bdev_name;    // dev_name
    bool readonly = false;
    std::string cpumask;           // as given ("" = every data thread)
    std::vector<Thread*> threads;  // the data threads its queues may use
    uint32_t num_queues = 0;       // offered to the front-end; 0 = kDefaultQueues
    uint32_t thread_offset = 0;    // queue i runs on threads[(offset + i) % n]
};

struct ControllerInfo {
    std::string name, socket_path, bdev_name, cpumask;
    bool readonly = false;
    uint32_t num_queues = 0;
    bool connected = false;
    bool bdev_removed = false;
    uint64_t features = 0, protocol_features = 0;
    uint32_t active_queues = 0;
    QueueStats stats;
    std::vector<std::pair<uint32_t, std::string>> queue_threads;  // running queues
};

class BlkController {
  public:
    static constexpr uint32_t kDefaultQueues = 16;

    // Opens the bdev and listens on the socket (a stale socket file is replaced). Control thread.
    static std::unique_ptr<BlkController> create(BlkControllerParams p, int* rc, std::string* err);
    ~BlkController();
    BlkController(const BlkController&) = delete;
    BlkController& operator=(const BlkController&) = delete;

    const BlkControllerParams& params() const { return p_; }
    int listen_fd() const { return listen_fd_; }
    int conn_fd() const { return conn_fd_; }
    // The target's epoll reports readiness; `watch` changes which fds it should watch.
    void set_watch(std::function<void(int fd, bool add)> watch) { watch_ = std::move(watch); }
    void on_listen_readable();
    void on_conn_readable();
    // Stops the queues, closes the session and the socket, releases the bdev.
    void shutdown(std::function<void()> done);
    void info(std::function<void(ControllerInfo)> done) const;
    // Applies to the queues from their next start; running queues restart now.
    void set_coalescing(uint32_t delay_base_us, uint32_t iops_threshold);

  private:
    struct Vq {
        uint16_t num = 0;
        VringAddr addr{};
        bool addr_set = false;
        uint16_t base = 0;
        int kick = -1, call = -1;
        bool kicked = false;
        bool enabled = false;
        bool running = false;
        std::unique_ptr<BlkQueue> q;
        std::function<void()> stop_done;
    };

    explicit BlkController(BlkControllerParams p);
    void on_bdev_event(BdevEvent ev);
    void handle(Message& m);
    bool handle_mem_table(Message& m);
    bool handle_get_config(const Message& m);
    bool handle_set_config(const Message& m);
    bool handle_get_inflight(const Message& m);
    bool handle_set_inflight(Message& m);
    void reply_u64(uint32_t req, uint64_t v);
    void ack(const Message& m, bool ok);
    BlkConfig config_space() const;
    BlkDisk disk() const;
    Thread* thread_of(uint32_t q) const;
    void maybe_start(uint32_t i);
    void stop_queue(uint32_t i, std::function<void()> done);
    // Stops the running queues (or only `only`), runs `change`, restarts those that can run.
    // Reading from the socket pauses meanwhile.
    void quiesce(std::function<void()> change, int only = -1);
    void pause_reading();
    void resume_reading();
    void reset_session_state();
    void disconnect(const char* why);
    void notify_config_change();
    void unmap_inflight();
    uint64_t offered_features() const;
    uint64_t offered_protocol_features() const;

    BlkControllerParams p_;
    BdevDesc* desc_ = nullptr;
    Bdev* bdev_ = nullptr;
    bool bdev_removed_ = false;
    int listen_fd_ = -1;
    int conn_fd_ = -1;
    std::function<void(int, bool)> watch_;
    MessageReader reader_;
    Message msg_;
    bool reading_paused_ = false;
    bool closing_ = false;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;

    // Session state.
    uint64_t features_ = 0;
    uint64_t protocol_features_ = 0;
    bool features_set_ = false;
    uint8_t status_ = 0;
    bool writeback_ = true;
    CoalescingConfig coalescing_;
    std::shared_ptr<GuestMemory> mem_;
    std::vector<Vq> vqs_;
    int inflight_fd_ = -1;
    int backend_fd_ = -1;  // SET_BACKEND_REQ_FD: back-end → front-end requests
    void* inflight_map_ = nullptr;
    uint64_t inflight_size_ = 0;
    uint16_t inflight_queue_size_ = 0;
    uint16_t inflight_queues_ = 0;
    std::vector<std::unique_ptr<BlkQueue>> retired_;
};

}  // namespace nocstor::vhost
