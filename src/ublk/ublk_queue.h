// One hardware queue of a ublk device, served by one data thread. The thread owns an io_uring
// on the device's char device: every tag has one URING_CMD outstanding (FETCH_REQ, then
// COMMIT_AND_FETCH_REQ that returns a result and waits for the tag's next request). A request
// arrives as a completion; its descriptor sits in the queue's mmapped descriptor array, and its
// data in the tag's own buffer, which the bdev reads into / writes from directly (the kernel
// copies between the buffer and the bio's pages). The ring's eventfd is a reactor interrupt
// fd, so an idle queue lets its thread sleep. The kernel ties a queue to the task that fetched
// on it: everything here runs on the queue's thread, except construction and destruction.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "runtime/polled_ring.h"
#include "runtime/thread.h"
#include "ublk/ublk_abi.h"

namespace nocstor::ublk {

struct QueueConfig {
    std::string disk;  // for logs
    uint32_t dev_id = 0;
    uint16_t q_id = 0;
    uint16_t depth = 128;
    uint32_t max_io_bytes = 512 * 1024;
    int char_fd = -1;  // owned by the disk; open while the queue runs
    bool ioctl_encode = true;
    BdevDesc* desc = nullptr;
    uint32_t block_size = 512;
    uint64_t num_blocks = 0;
};

struct QueueStats {
    uint64_t reads = 0, writes = 0, flushes = 0, discards = 0, write_zeroes = 0, errors = 0,
             bytes_read = 0, bytes_written = 0;
    uint32_t inflight = 0;
    QueueStats& operator+=(const QueueStats& o);
};

class UblkQueue {
  public:
    UblkQueue(QueueConfig cfg, Thread* thread);
    ~UblkQueue();
    UblkQueue(const UblkQueue&) = delete;
    UblkQueue& operator=(const UblkQueue&) = delete;

    Thread* thread() const { return thread_; }
    uint16_t id() const { return cfg_.q_id; }

    // --- own thread ---
    // Maps the descriptors, sets up the ring and buffers, fetches on every tag. 0 or -errno
    // (logged with the reason).
    int start();
    // After the device stopped (STOP_DEV) or before a failed start is undone: waits for the
    // requests out on the bdev, then closes the ring (which cancels the fetches left), done().
    void stop(std::function<void()> done);
    QueueStats stats() const;

  private:
    struct Tag {
        UblkQueue* q = nullptr;
        uint16_t tag = 0;
        uint8_t op = 0;
        bool on_bdev = false;
        iovec iov{};
        uint64_t offset_blocks = 0, num_blocks = 0;
        BdevIoWaitEntry wait{};
    };

    int poll();
    void on_request(Tag& t, int res);
    void submit(Tag& t);
    void commit(Tag& t, int result);
    void queue_cmd(Tag& t, uint32_t nr, int result);
    void maybe_finish_stop();
    static void io_done(BdevIo* io, bool success, void* arg);
    static void retry(void* arg);

    QueueConfig cfg_;
    Thread* thread_;
    std::vector<Tag> tags_;
    const ublksrv_io_desc* descs_ = nullptr;
    size_t descs_bytes_ = 0;
    uint8_t* buffers_ = nullptr;
    size_t buffers_bytes_ = 0;
    PolledRing ring_;
    IoChannel* ch_ = nullptr;
    Poller* poller_ = nullptr;
    uint32_t on_bdev_ = 0;
    bool stopping_ = false;
    std::function<void()> stop_done_;
    QueueStats stats_;
};

}  // namespace nocstor::ublk
