#include "vhost/blk_queue.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bdev/bdev_io.h"
#include "modules/iov_util.h"
#include "runtime/reactor.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::vhost {

namespace {

constexpr int kPollBatch = 64;

// Drops the first `bytes` bytes of the iovecs in place; returns the first iovec left.
iovec* trim_front(iovec* iov, int* cnt, uint64_t bytes) {
    while (*cnt > 0 && bytes >= iov->iov_len) {
        bytes -= iov->iov_len;
        ++iov;
        --*cnt;
    }
    if (*cnt > 0 && bytes) {
        iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + bytes;
        iov->iov_len -= bytes;
    }
    return iov;
}

}  // namespace

QueueStats& QueueStats::operator+=(const QueueStats& o) {
    requests += o.requests;
    reads += o.reads;
    writes += o.writes;
    flushes += o.flushes;
    discards += o.discards;
    write_zeroes += o.write_zeroes;
    get_ids += o.get_ids;
    errors += o.errors;
    unsupported += o.unsupported;
    bytes_read += o.bytes_read;
    bytes_written += o.bytes_written;
    interrupts += o.interrupts;
    wakeups += o.wakeups;
    resubmitted += o.resubmitted;
    inflight += o.inflight;
    return *this;
}

BlkQueue::BlkQueue(uint32_t index, std::string ctrlr, Thread* thread, uint16_t size)
    : index_(index), ctrlr_(std::move(ctrlr)), thread_(thread), size_(size), reqs_(size) {
    for (auto& r : reqs_) r.q = this;
}

BlkQueue::~BlkQueue() = default;

QueueStats BlkQueue::stats() const {
    QueueStats s = stats_;
    s.inflight = inflight_;
    return s;
}

bool BlkQueue::start(QueueSetup setup) {
    setup_ = std::move(setup);
    broken_ = false;
    std::string err;
    if (setup_.layout.size != size_) {
        NOC_ERROR("vhost", "{} queue {}: ring size {} but the queue was set up for {}", ctrlr_,
                  index_, setup_.layout.size, size_);
        return false;
    }
    if (!vq_.attach(*setup_.mem, setup_.layout, setup_.inflight, &err)) {
        NOC_ERROR("vhost", "{} queue {}: {}", ctrlr_, index_, err);
        return false;
    }
    ch_ = bdev_get_io_channel(setup_.disk.desc);
    if (!ch_) {
        NOC_ERROR("vhost", "{} queue {}: no I/O channel for the bdev", ctrlr_, index_);
        return false;
    }
    if (setup_.kick_fd >= 0) {
        ::fcntl(setup_.kick_fd, F_SETFL, ::fcntl(setup_.kick_fd, F_GETFL) | O_NONBLOCK);
        thread_->reactor()->add_interrupt_fd(setup_.kick_fd);
    }
    thread_->reactor()->add_sleep_hook([this] { return before_sleep(); },
                                       [this] { after_wakeup(); }, this);
    poller_ = thread_->register_poller("vhost_blk_" + ctrlr_ + "_q" + std::to_string(index_),
                                       [this] { return poll(); });
    flusher_ = thread_->register_tail_poller("vhost_irq_" + ctrlr_ + "_q" + std::to_string(index_),
                                             [this] { return flush_interrupts(); });
    state_ = State::Running;
    vq_.disable_notify();
    const std::vector<uint16_t> resubmit = vq_.recover_inflight();
    if (!resubmit.empty())
        NOC_INFO("vhost",
                 "{} queue {}: resubmitting {} request(s) left in flight by the previous "
                 "server",
                 ctrlr_, index_, resubmit.size());
    for (uint16_t head : resubmit) {
        ++stats_.resubmitted;
        execute(head);
    }
    return true;
}

void BlkQueue::stop(std::function<void(uint16_t)> done) {
    if (state_ == State::Stopped) return done(vq_.last_avail_idx());
    stop_done_ = std::move(done);
    if (state_ == State::Running) {
        state_ = State::Stopping;
        thread_->unregister_poller(poller_);
        poller_ = nullptr;
    }
    if (inflight_ == 0) complete_stop();
    // else: the last finish() completes the stop.
}

void BlkQueue::complete_stop() {
    flush_interrupts();  // completions may still owe the guest an interrupt (not coalesced now)
    thread_->unregister_poller(flusher_);
    flusher_ = nullptr;
    thread_->reactor()->remove_sleep_hook(this);
    if (setup_.kick_fd >= 0) thread_->reactor()->remove_interrupt_fd(setup_.kick_fd);
    bdev_put_io_channel(ch_);
    ch_ = nullptr;
    state_ = State::Stopped;
    setup_.mem.reset();
    auto d = std::move(stop_done_);
    stop_done_ = nullptr;
    d(vq_.last_avail_idx());
}

int BlkQueue::poll() {
    if (state_ != State::Running || broken_) return 0;
    int n = 0;
    for (; n < kPollBatch; ++n) {
        const int head = vq_.pop();
        if (head == -1) break;
        if (head == -2) {
            break_queue("the driver published a descriptor index outside the ring");
            break;
        }
        execute(uint16_t(head));
    }
    return n;
}

int BlkQueue::flush_interrupts() {
    if (!pending_interrupt_) return 0;
    const CoalescingConfig& co = setup_.coalescing;
    if (co.delay_us && state_ == State::Running) {
        const uint64_t now = now_ns();
        if (now - window_start_ns_ >= 10'000'000) {
            rate_iops_ = uint64_t(window_completions_) * 1'000'000'000ull /
                         std::max<uint64_t>(now - window_start_ns_, 1);
            window_start_ns_ = now;
            window_completions_ = 0;
        }
        // Busy enough: hold the interrupt back (the reactor does not sleep meanwhile).
        if (rate_iops_ > co.iops_threshold && now - last_interrupt_ns_ < co.delay_us * 1000ull)
            return 0;
        last_interrupt_ns_ = now;
    }
    pending_interrupt_ = false;
    if (vq_.should_signal() && setup_.call_fd >= 0) {
        const uint64_t one = 1;
        if (::write(setup_.call_fd, &one, sizeof(one)) == sizeof(one)) ++stats_.interrupts;
    }
    return 1;
}

bool BlkQueue::before_sleep() {
    if (state_ != State::Running || broken_) return true;
    if (setup_.kick_fd < 0) return false;  // no kick eventfd: this queue can only be polled
    if (pending_interrupt_) return false;  // a coalesced interrupt is still due
    vq_.enable_notify();
    return vq_.empty();
}

void BlkQueue::after_wakeup() {
    if (state_ != State::Running) return;
    vq_.disable_notify();
    uint64_t v;
    if (setup_.kick_fd >= 0 && ::read(setup_.kick_fd, &v, sizeof(v)) == sizeof(v)) ++stats_.wakeups;
}

void BlkQueue::break_queue(const char* why) {
    if (!broken_)
        NOC_ERROR("vhost", "{} queue {}: {}; the queue stops until the driver resets it", ctrlr_,
                  index_, why);
    broken_ = true;
}

void BlkQueue::execute(uint16_t head) {
    Request& r = reqs_[head];
    if (r.busy) return break_queue("the driver reused a descriptor head still in flight");
    DescChain c;
    if (!vq_.read_chain(*setup_.mem, head, r.iov, kMaxIov, &c))
        return break_queue("malformed descriptor chain (loop, bad index or address, indirect)");
    if (c.writable_bytes == 0) return break_queue("request without a status byte");
    r.busy = true;
    r.head = head;
    ++inflight_;
    ++stats_.requests;
    if (prepare(r, c)) submit(r);
}

bool BlkQueue::prepare(Request& r, const DescChain& c) {
    // The status byte is the last writable byte; the data buffer is what lies between.
    iovec& last = r.iov[c.n_readable + c.n_writable - 1];
    r.status = static_cast<uint8_t*>(last.iov_base) + last.iov_len - 1;
    int wcnt = c.n_writable;
    if (--last.iov_len == 0) --wcnt;
    r.used_len = 1;
    if (c.readable_bytes < sizeof(BlkOutHdr)) {
        finish(r, kBlkSIoErr);
        return false;
    }
    BlkOutHdr hdr{};
    iov_copy_to_buf(r.iov, c.n_readable, &hdr, sizeof(hdr));
    r.type = uint8_t(hdr.type);
    const BlkDisk& disk = setup_.disk;
    int rcnt = c.n_readable;
    iovec* rdata = trim_front(r.iov, &rcnt, sizeof(hdr));
    const uint64_t rbytes = c.readable_bytes - sizeof(hdr);
    const uint64_t wbytes = c.writable_bytes - 1;

    auto set_range = [&](uint64_t sector, uint64_t bytes) {
        const uint64_t bs = disk.block_size;
        if (bytes == 0 || bytes % bs || sector > (UINT64_MAX / kSectorSize) ||
            (sector * kSectorSize) % bs)
            return false;
        r.offset_blocks = sector * kSectorSize / bs;
        r.num_blocks = bytes / bs;
        return r.offset_blocks <= disk.num_blocks &&
               r.num_blocks <= disk.num_blocks - r.offset_blocks;
    };

    switch (hdr.type) {
        case kBlkTIn:
            r.data = r.iov + c.n_readable;
            r.data_cnt = wcnt;
            r.used_len = uint32_t(c.writable_bytes);
            if (!set_range(hdr.sector, wbytes)) break;
            return true;
        case kBlkTOut:
            if (disk.readonly) break;
            r.data = rdata;
            r.data_cnt = rcnt;
            if (!set_range(hdr.sector, rbytes)) break;
            return true;
        case kBlkTFlush:
            return true;
        case kBlkTGetId: {
            ++stats_.get_ids;
            char id[kBlkIdBytes] = {};
            memcpy(id, disk.serial.data(), std::min<size_t>(disk.serial.size(), kBlkIdBytes));
            iov_copy_from_buf(r.iov + c.n_readable, wcnt, id,
                              std::min<uint64_t>(wbytes, kBlkIdBytes));
            r.used_len = uint32_t(std::min<uint64_t>(wbytes, kBlkIdBytes) + 1);
            finish(r, kBlkSOk);
            return false;
        }
        case kBlkTDiscard:
        case kBlkTWriteZeroes: {
            const bool discard = hdr.type == kBlkTDiscard;
            if ((discard && !disk.discard) || (!discard && !disk.write_zeroes)) {
                ++stats_.unsupported;
                finish(r, kBlkSUnsupp);
                return false;
            }
            // One segment per request: max_discard_seg and max_write_zeroes_seg are 1.
            if (disk.readonly || rbytes != sizeof(BlkDiscardWz)) break;
            BlkDiscardWz seg{};
            iov_copy_to_buf(rdata, rcnt, &seg, sizeof(seg));
            if (discard && seg.flags != 0) break;  // the unmap flag is only for write zeroes
            if (!set_range(seg.sector, uint64_t(seg.num_sectors) * kSectorSize)) break;
            return true;
        }
        default:
            ++stats_.unsupported;
            finish(r, kBlkSUnsupp);
            return false;
    }
    finish(r, kBlkSIoErr);
    return false;
}

void BlkQueue::submit(Request& r) {
    const BlkDisk& disk = setup_.disk;
    int rc;
    switch (r.type) {
        case kBlkTIn:
            rc = bdev_readv(disk.desc, ch_, r.data, r.data_cnt, r.offset_blocks, r.num_blocks,
                            io_done, &r);
            break;
        case kBlkTOut:
            rc = bdev_writev(disk.desc, ch_, r.data, r.data_cnt, r.offset_blocks, r.num_blocks,
                             io_done, &r, !disk.writeback);
            break;
        case kBlkTFlush:
            if (disk.readonly) return finish(r, kBlkSOk);  // nothing written, nothing to flush
            rc = bdev_flush(disk.desc, ch_, 0, disk.num_blocks, io_done, &r);
            if (rc == -ENOTSUP) return finish(r, kBlkSOk);  // nothing cached below
            break;
        case kBlkTDiscard:
            rc = bdev_unmap(disk.desc, ch_, r.offset_blocks, r.num_blocks, io_done, &r);
            break;
        default:
            rc = bdev_write_zeroes(disk.desc, ch_, r.offset_blocks, r.num_blocks, io_done, &r);
            break;
    }
    if (rc == 0) return;
    if (rc == -ENOMEM) {
        r.wait = BdevIoWaitEntry{retry, &r, nullptr};
        bdev_queue_io_wait(ch_, &r.wait);
        return;
    }
    finish(r, kBlkSIoErr);
}

void BlkQueue::retry(void* arg) {
    auto* r = static_cast<Request*>(arg);
    r->q->submit(*r);
}

void BlkQueue::io_done(BdevIo* io, bool success, void* arg) {
    bdev_free_io(io);
    auto* r = static_cast<Request*>(arg);
    r->q->finish(*r, success ? kBlkSOk : kBlkSIoErr);
}

void BlkQueue::finish(Request& r, uint8_t status) {
    *r.status = status;
    if (status == kBlkSOk) {
        switch (r.type) {
            case kBlkTIn:
                ++stats_.reads;
                stats_.bytes_read += r.num_blocks * setup_.disk.block_size;
                break;
            case kBlkTOut:
                ++stats_.writes;
                stats_.bytes_written += r.num_blocks * setup_.disk.block_size;
                break;
            case kBlkTFlush:
                ++stats_.flushes;
                break;
            case kBlkTDiscard:
                ++stats_.discards;
                break;
            case kBlkTWriteZeroes:
                ++stats_.write_zeroes;
                break;
            default:
                break;
        }
    } else if (status == kBlkSIoErr) {
        ++stats_.errors;
    }
    r.busy = false;
    vq_.push_used(r.head, r.used_len);
    pending_interrupt_ = true;
    ++window_completions_;
    --inflight_;
    if (state_ == State::Stopping && inflight_ == 0) complete_stop();
}

}  // namespace nocstor::vhost
