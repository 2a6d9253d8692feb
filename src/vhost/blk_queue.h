// One virtqueue of a vhost-user-blk controller, served by one data thread: pops requests from
// the split ring, runs them on the bdev with the guest's own pages as the I/O buffers (no copy),
// writes the status byte, returns the chain on the used ring and interrupts the guest once per
// poll pass at most (and only when the driver asked for it: EVENT_IDX / NO_INTERRUPT).
//
// While requests arrive the thread polls the ring with kicks disabled; before the reactor sleeps
// a sleep hook re-enables kicks and the kick eventfd wakes it, so an idle controller costs no
// CPU. The requests' slots are indexed by descriptor head (unique while a request is out), all
// allocated when the queue is created. Own thread only, except construction and destruction on
// the control thread while the queue is stopped.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "runtime/thread.h"
#include "vhost/virtqueue.h"

namespace nocstor::vhost {

// What requests need to know about the disk; fixed while a queue runs.
struct BlkDisk {
    BdevDesc* desc = nullptr;
    uint32_t block_size = 512;
    uint64_t num_blocks = 0;
    bool readonly = false;
    bool writeback = true;  // false: the guest switched the cache to write-through (FUA writes)
    bool discard = false;
    bool write_zeroes = false;
    std::string serial;  // GET_ID, at most 20 bytes
};

// Interrupt coalescing (vhost_controller_set_coalescing): while a queue completes more than
// iops_threshold requests per second, its interrupts are at least delay_us apart.
struct CoalescingConfig {
    uint32_t delay_us = 0;  // 0: off
    uint32_t iops_threshold = 0;
};

struct QueueSetup {
    std::shared_ptr<GuestMemory> mem;
    VringLayout layout;
    InflightQueue* inflight = nullptr;
    int kick_fd = -1;  // owned by the controller; valid until stop's done ran
    int call_fd = -1;
    BlkDisk disk;
    CoalescingConfig coalescing;
};

struct QueueStats {
    uint64_t requests = 0, reads = 0, writes = 0, flushes = 0, discards = 0, write_zeroes = 0,
             get_ids = 0, errors = 0, unsupported = 0, bytes_read = 0, bytes_written = 0,
             interrupts = 0, wakeups = 0, resubmitted = 0;
    uint32_t inflight = 0;
    QueueStats& operator+=(const QueueStats& o);
};

class BlkQueue {
  public:
    // Requests carry at most this many iovecs (seg_max + header + status + region splits).
    static constexpr int kMaxIov = 132;
    static constexpr uint32_t kSegMax = 126;

    BlkQueue(uint32_t index, std::string ctrlr, Thread* thread, uint16_t size);
    ~BlkQueue();
    BlkQueue(const BlkQueue&) = delete;
    BlkQueue& operator=(const BlkQueue&) = delete;

    uint32_t index() const { return index_; }
    uint16_t size() const { return size_; }
    Thread* thread() const { return thread_; }

    // --- own thread ---
    // Attaches the rings, resubmits what an earlier server left in flight, starts polling.
    // false (logged) when the rings are unusable: the queue stays stopped.
    bool start(QueueSetup setup);
    // Stops popping, waits for the requests out on the bdev, then done(last available index).
    void stop(std::function<void(uint16_t last_avail)> done);
    bool running() const { return state_ == State::Running; }
    bool broken() const { return broken_; }
    QueueStats stats() const;

  private:
    enum class State { Stopped, Running, Stopping };
    struct Request {
        BlkQueue* q = nullptr;
        uint16_t head = 0;
        bool busy = false;
        uint8_t type = 0;
        uint8_t* status = nullptr;
        uint32_t used_len = 0;
        iovec* data = nullptr;
        int data_cnt = 0;
        uint64_t offset_blocks = 0, num_blocks = 0;
        BdevIoWaitEntry wait;
        iovec iov[kMaxIov];
    };

    int poll();
    int flush_interrupts();
    bool before_sleep();
    void after_wakeup();
    void execute(uint16_t head);
    // Parses the virtio-blk header and sets up the bdev operation; false: answered already.
    bool prepare(Request& r, const DescChain& c);
    void submit(Request& r);
    void finish(Request& r, uint8_t status);
    void complete_stop();
    void break_queue(const char* why);
    static void io_done(BdevIo* io, bool success, void* arg);
    static void retry(void* arg);

    uint32_t index_;
    std::string ctrlr_;
    Thread* thread_;
    uint16_t size_;
    std::vector<Request> reqs_;
    State state_ = State::Stopped;
    bool broken_ = false;
    QueueSetup setup_;
    SplitVirtqueue vq_;
    IoChannel* ch_ = nullptr;
    Poller* poller_ = nullptr;
    Poller* flusher_ = nullptr;
    bool pending_interrupt_ = false;
    // Coalescing: completions in the current 10 ms window, the rate of the last one, and when
    // the last interrupt went out.
    uint64_t window_start_ns_ = 0;
    uint32_t window_completions_ = 0;
    uint64_t rate_iops_ = 0;
    uint64_t last_interrupt_ns_ = 0;
    uint32_t inflight_ = 0;
    std::function<void(uint16_t)> stop_done_;
    QueueStats stats_;
};

}  // namespace nocstor::vhost
