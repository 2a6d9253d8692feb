#include "ublk/ublk_queue.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bdev/bdev_io.h"
#include "runtime/reactor.h"
#include "util/log.h"

namespace nocstor::ublk {

namespace {

constexpr unsigned kCqBatch = 64;
constexpr uint64_t kSector = 512;

// Where queue q's descriptors are in the char device's mmap space: every queue has room for
// the largest depth, whatever its own depth is.
off_t desc_offset(uint16_t q) {
    return off_t(UBLKSRV_CMD_BUF_OFFSET) + off_t(q) * off_t(desc_area_bytes(UBLK_MAX_QUEUE_DEPTH));
}

}  // namespace

QueueStats& QueueStats::operator+=(const QueueStats& o) {
    reads += o.reads;
    writes += o.writes;
    flushes += o.flushes;
    discards += o.discards;
    write_zeroes += o.write_zeroes;
    errors += o.errors;
    bytes_read += o.bytes_read;
    bytes_written += o.bytes_written;
    inflight += o.inflight;
    return *this;
}

UblkQueue::UblkQueue(QueueConfig cfg, Thread* thread)
    : cfg_(std::move(cfg)), thread_(thread), tags_(cfg_.depth) {
    for (uint16_t i = 0; i < cfg_.depth; ++i) {
        tags_[i].q = this;
        tags_[i].tag = i;
    }
}

UblkQueue::~UblkQueue() {
    // stop() released everything on the queue's thread; this is for a queue never started.
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (efd_ >= 0) ::close(efd_);
    if (descs_) ::munmap(const_cast<ublksrv_io_desc*>(descs_), descs_bytes_);
    if (buffers_) ::munmap(buffers_, buffers_bytes_);
}

QueueStats UblkQueue::stats() const {
    QueueStats s = stats_;
    s.inflight = on_bdev_;
    return s;
}

int UblkQueue::start() {
    auto fail = [&](int rc, const char* what) {
        NOC_ERROR("ublk", "{} queue {}: {}: {}", cfg_.disk, cfg_.q_id, what, std::strerror(-rc));
        return rc;
    };
    descs_bytes_ = desc_area_bytes(cfg_.depth);
    void* p = ::mmap(nullptr, descs_bytes_, PROT_READ, MAP_SHARED | MAP_POPULATE, cfg_.char_fd,
                     desc_offset(cfg_.q_id));
    if (p == MAP_FAILED) return fail(-errno, "mapping the request descriptors");
    descs_ = static_cast<const ublksrv_io_desc*>(p);
    // The tags' data buffers; pages are faulted in by the first request that uses them.
    buffers_bytes_ = size_t(cfg_.depth) * cfg_.max_io_bytes;
    p = ::mmap(nullptr, buffers_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return fail(-errno, "allocating the request buffers");
    buffers_ = static_cast<uint8_t*>(p);
    // Completions of the ublk commands run as task work of this thread. Deferred to the ring
    // (DEFER_TASKRUN, 6.1+) they only run when we ask for events, and when the process dies
    // they go away with the ring: Linux 6.12 can oops running a dying thread's ordinary
    // io_uring task work after a SIGKILL (io_fallback_tw), which the kill tests hit.
    int rc = io_uring_queue_init(
        cfg_.depth, &ring_,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
    deferred_ = rc == 0;
    if (rc == -EINVAL) rc = io_uring_queue_init(cfg_.depth, &ring_, 0);
    if (rc < 0) return fail(rc, "io_uring_queue_init");
    ring_ok_ = true;
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) return fail(-errno, "eventfd");
    rc = io_uring_register_eventfd(&ring_, efd_);
    if (rc < 0) return fail(rc, "io_uring_register_eventfd");
    ch_ = bdev_get_io_channel(cfg_.desc);
    if (!ch_) return fail(-ENOMEM, "no I/O channel for the bdev");
    thread_->reactor()->add_interrupt_fd(efd_);
    for (Tag& t : tags_) queue_cmd(t, UBLK_IO_FETCH_REQ, 0);
    rc = io_uring_submit(&ring_);
    if (rc < 0) return fail(rc, "submitting the fetch commands");
    unsubmitted_ -= unsigned(rc);
    poller_ = thread_->register_poller(
        "ublk_" + std::to_string(cfg_.dev_id) + "_q" + std::to_string(cfg_.q_id),
        [this] { return poll(); });
    return 0;
}

void UblkQueue::queue_cmd(Tag& t, uint32_t nr, int result) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {  // cannot happen: one command per tag and the SQ has a slot for each
        int r = io_uring_submit(&ring_);
        if (r > 0) unsubmitted_ -= unsigned(r);
        sqe = io_uring_get_sqe(&ring_);
        if (!sqe) {
            NOC_ERROR("ublk", "{} queue {}: no submission slot for tag {}", cfg_.disk, cfg_.q_id,
                      t.tag);
            return;
        }
    }
    std::memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = cfg_.char_fd;
    sqe->cmd_op = io_op(nr, cfg_.ioctl_encode);
    auto* cmd = reinterpret_cast<ublksrv_io_cmd*>(&sqe->addr3);
    cmd->q_id = cfg_.q_id;
    cmd->tag = t.tag;
    cmd->result = result;
    cmd->addr = reinterpret_cast<uint64_t>(buffers_ + size_t(t.tag) * cfg_.max_io_bytes);
    sqe->user_data = t.tag;
    t.fetching = true;
    ++unsubmitted_;
}

int UblkQueue::poll() {
    int work = 0;
    // Deferred task work (new requests, mostly) waits for us to enter the kernel: the kernel
    // raises IORING_SQ_TASKRUN (and the eventfd) when there is some.
    const bool taskrun =
        deferred_ && (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
    if (unsubmitted_) {
        int r = taskrun ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
        if (r > 0) {
            unsubmitted_ -= unsigned(r);
            work += r;
        }
    } else if (taskrun) {
        io_uring_get_events(&ring_);
    }
    if (taskrun) efd_dirty_ = true;  // the eventfd rang for it
    io_uring_cqe* cqes[kCqBatch];
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kCqBatch);
    if (n) {
        struct Done {
            uint64_t tag;
            int res;
        } done[kCqBatch];
        for (unsigned i = 0; i < n; ++i) done[i] = {cqes[i]->user_data, cqes[i]->res};
        io_uring_cq_advance(&ring_, n);
        for (unsigned i = 0; i < n; ++i) {
            if (done[i].tag >= tags_.size()) continue;
            Tag& t = tags_[done[i].tag];
            t.fetching = false;
            on_request(t, done[i].res);
        }
        work += int(n);
        efd_dirty_ = true;
    }
    if (work == 0 && efd_dirty_) {
        // Cleared once idle, not on every busy pass (the wake-up is level-triggered).
        uint64_t v;
        ssize_t r = ::read(efd_, &v, sizeof(v));
        (void)r;
        efd_dirty_ = false;
    }
    return work;
}

void UblkQueue::on_request(Tag& t, int res) {
    if (res != UBLK_IO_RES_OK) {
        // ABORT: the device is stopping and the tag gets no more requests.
        if (res != UBLK_IO_RES_ABORT)
            NOC_WARN("ublk", "{} queue {} tag {}: fetch failed: {}", cfg_.disk, cfg_.q_id, t.tag,
                     std::strerror(-res));
        return;
    }
    if (stopping_) return;
    const ublksrv_io_desc& d = descs_[t.tag];
    t.op = uint8_t(ublksrv_get_op(&d));
    const uint64_t bytes = uint64_t(d.nr_sectors) * kSector;
    const uint64_t off = d.start_sector * kSector;
    const uint64_t bs = cfg_.block_size;
    t.iov = {buffers_ + size_t(t.tag) * cfg_.max_io_bytes, size_t(bytes)};
    t.offset_blocks = off / bs;
    t.num_blocks = bytes / bs;
    if (t.op != UBLK_IO_OP_FLUSH) {
        const bool in_range = off % bs == 0 && bytes % bs == 0 &&
                              t.offset_blocks <= cfg_.num_blocks &&
                              t.num_blocks <= cfg_.num_blocks - t.offset_blocks;
        const bool data = t.op == UBLK_IO_OP_READ || t.op == UBLK_IO_OP_WRITE;
        if (!in_range || (data && (bytes == 0 || bytes > cfg_.max_io_bytes))) {
            NOC_WARN("ublk", "{} queue {}: request op {} sector {} count {} is out of range",
                     cfg_.disk, cfg_.q_id, t.op, d.start_sector, d.nr_sectors);
            ++stats_.errors;
            return commit(t, -EIO);
        }
    }
    t.on_bdev = true;
    ++on_bdev_;
    submit(t);
}

void UblkQueue::submit(Tag& t) {
    const uint32_t flags = ublksrv_get_flags(&descs_[t.tag]);
    int rc;
    switch (t.op) {
        case UBLK_IO_OP_READ:
            rc = bdev_readv(cfg_.desc, ch_, &t.iov, 1, t.offset_blocks, t.num_blocks, io_done, &t);
            break;
        case UBLK_IO_OP_WRITE:
            rc = bdev_writev(cfg_.desc, ch_, &t.iov, 1, t.offset_blocks, t.num_blocks, io_done, &t,
                             (flags & UBLK_IO_F_FUA) != 0);
            break;
        case UBLK_IO_OP_FLUSH:
            rc = bdev_flush(cfg_.desc, ch_, 0, cfg_.num_blocks, io_done, &t);
            if (rc == -ENOTSUP) return commit(t, 0);  // nothing cached below
            break;
        case UBLK_IO_OP_DISCARD:
            rc = bdev_unmap(cfg_.desc, ch_, t.offset_blocks, t.num_blocks, io_done, &t);
            break;
        case UBLK_IO_OP_WRITE_ZEROES:
            rc = bdev_write_zeroes(cfg_.desc, ch_, t.offset_blocks, t.num_blocks, io_done, &t);
            break;
        default:
            rc = -EOPNOTSUPP;
            break;
    }
    if (rc == 0) return;
    if (rc == -ENOMEM) {  // no bdev_io free: retried when one is
        t.wait = BdevIoWaitEntry{retry, &t, nullptr};
        bdev_queue_io_wait(ch_, &t.wait);
        return;
    }
    ++stats_.errors;
    commit(t, rc == -ENOTSUP || rc == -EOPNOTSUPP ? -EOPNOTSUPP : -EIO);
}

void UblkQueue::retry(void* arg) {
    auto* t = static_cast<Tag*>(arg);
    t->q->submit(*t);
}

void UblkQueue::io_done(BdevIo* io, bool success, void* arg) {
    bdev_free_io(io);
    auto* t = static_cast<Tag*>(arg);
    UblkQueue* q = t->q;
    const uint64_t bytes = t->iov.iov_len;
    if (!success) {
        ++q->stats_.errors;
        return q->commit(*t, -EIO);
    }
    switch (t->op) {
        case UBLK_IO_OP_READ:
            ++q->stats_.reads;
            q->stats_.bytes_read += bytes;
            return q->commit(*t, int(bytes));
        case UBLK_IO_OP_WRITE:
            ++q->stats_.writes;
            q->stats_.bytes_written += bytes;
            return q->commit(*t, int(bytes));
        case UBLK_IO_OP_FLUSH:
            ++q->stats_.flushes;
            break;
        case UBLK_IO_OP_DISCARD:
            ++q->stats_.discards;
            break;
        default:
            ++q->stats_.write_zeroes;
            break;
    }
    q->commit(*t, 0);
}

void UblkQueue::commit(Tag& t, int result) {
    if (t.on_bdev) {
        t.on_bdev = false;
        --on_bdev_;
    }
    if (stopping_) return maybe_finish_stop();
    queue_cmd(t, UBLK_IO_COMMIT_AND_FETCH_REQ, result);
}

void UblkQueue::stop(std::function<void()> done) {
    stopping_ = true;
    stop_done_ = std::move(done);
    maybe_finish_stop();
}

void UblkQueue::maybe_finish_stop() {
    if (!stopping_ || on_bdev_ || !stop_done_) return;
    if (poller_) {
        thread_->unregister_poller(poller_);
        poller_ = nullptr;
    }
    if (ch_) {
        thread_->reactor()->remove_interrupt_fd(efd_);
        bdev_put_io_channel(ch_);
        ch_ = nullptr;
    }
    // Closing the ring cancels the fetch commands still with the kernel.
    if (ring_ok_) {
        io_uring_queue_exit(&ring_);
        ring_ok_ = false;
    }
    if (efd_ >= 0) {
        ::close(efd_);
        efd_ = -1;
    }
    if (descs_) {
        ::munmap(const_cast<ublksrv_io_desc*>(descs_), descs_bytes_);
        descs_ = nullptr;
    }
    if (buffers_) {
        ::munmap(buffers_, buffers_bytes_);
        buffers_ = nullptr;
    }
    auto d = std::move(stop_done_);
    stop_done_ = nullptr;
    d();
}

}  // namespace nocstor::ublk
