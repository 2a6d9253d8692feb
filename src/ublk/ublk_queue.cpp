#include "ublk/ublk_queue.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bdev/bdev_io.h"
#include "runtime/reactor.h"
#include "util/log.h"

namespace nocstor::ublk {

namespace {

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
    ring_.close();
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
    // Completions of the ublk commands run as task work of this thread, deferred to the ring
    // (see PolledRing for why).
    const char* what = nullptr;
    int rc = ring_.init(cfg_.depth, 0, thread_->reactor(), &what);
    if (rc < 0) return fail(rc, what);
    ch_ = bdev_get_io_channel(cfg_.desc);
    if (!ch_) return fail(-ENOMEM, "no I/O channel for the bdev");
    for (Tag& t : tags_) queue_cmd(t, UBLK_IO_FETCH_REQ, 0);
    rc = ring_.submit();
    if (rc < 0) return fail(rc, "submitting the fetch commands");
    poller_ = thread_->register_poller(
        "ublk_" + std::to_string(cfg_.dev_id) + "_q" + std::to_string(cfg_.q_id),
        [this] { return poll(); });
    return 0;
}

void UblkQueue::queue_cmd(Tag& t, uint32_t nr, int result) {
    io_uring_sqe* sqe = ring_.get_sqe();
    if (!sqe) {  // cannot happen: one command per tag and the SQ has a slot for each
        NOC_ERROR("ublk", "{} queue {}: no submission slot for tag {}", cfg_.disk, cfg_.q_id,
                  t.tag);
        return;
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
}

int UblkQueue::poll() {
    int work = 0;
    const int r = ring_.submit();
    if (r > 0) work += r;
    work += int(ring_.reap([this](uint64_t tag, int res) {
        if (tag < tags_.size()) on_request(tags_[tag], res);
    }));
    return ring_.end_pass(work);
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
        bdev_put_io_channel(ch_);
        ch_ = nullptr;
    }
    ring_.close();  // cancels the fetch commands still with the kernel
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
