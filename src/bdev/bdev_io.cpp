// Submission, splitting, completion and retry of block I/O.
#include "bdev/bdev.h"
#include "bdev/bdev_channel.h"
#include "util/lat_clock.h"
#include "util/log.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nocstor {

const char* io_type_name(IoType t) {
    switch (t) {
        case IoType::Read:
            return "read";
        case IoType::Write:
            return "write";
        case IoType::Flush:
            return "flush";
        case IoType::Unmap:
            return "unmap";
        case IoType::WriteZeroes:
            return "write_zeroes";
        case IoType::Reset:
            return "reset";
        default:
            return "unknown";
    }
}

const char* io_status_name(IoStatus s) {
    switch (s) {
        case IoStatus::Pending:
            return "pending";
        case IoStatus::Success:
            return "success";
        case IoStatus::Failed:
            return "failed";
        case IoStatus::NoMemory:
            return "no_memory";
        case IoStatus::Aborted:
            return "aborted";
        case IoStatus::InvalidRange:
            return "invalid_range";
        case IoStatus::Unsupported:
            return "unsupported";
        case IoStatus::MediaError:
            return "media_error";
        case IoStatus::NvmeError:
            return "nvme_error";
        case IoStatus::Timeout:
            return "timeout";
    }
    return "unknown";
}

uint64_t BdevIo::length_bytes() const {
    return bdev ? num_blocks * bdev->block_size : 0;
}

namespace {

constexpr uint32_t kMaxChildrenInFlight = 32;

// > 0 while this thread runs inside a module's submit_request (a vbdev submitting to its base)
// or splits an I/O: such allocations may use the pool's reserve.
thread_local int tls_nested = 0;

struct NestedScope {
    NestedScope() { ++tls_nested; }
    ~NestedScope() { --tls_nested; }
};

// Latency timestamps (LatClock ticks) shared along a stack, so that a stacked I/O costs no clock
// read of its own. tls_submit_tick: the submission tick of the I/O whose submit_request runs now
// (valid while tls_nested > 0); an I/O submitted from inside it (a vbdev's member I/O) takes it.
// tls_done_tick: the completion tick of the I/O whose callback runs now (valid while
// tls_done_depth > 0); an I/O that completes from inside that callback (the array I/O a member's
// completion finishes) takes it. Each I/O of a stack is still counted in its own bdev's
// statistics; the time a module spends between its own submission and its member's (or between
// its member's completion and its own) counts on the other side of the boundary.
thread_local uint64_t tls_submit_tick = 0;
thread_local uint64_t tls_done_tick = 0;
thread_local int tls_done_depth = 0;

// Runs the module's submit_request for io (with the pool's reserve and io's tick for the I/O it
// submits in turn).
void submit_to_module(BdevIo* io) {
    io->in_submit = true;
    {
        NestedScope nested;
        const uint64_t saved = tls_submit_tick;
        tls_submit_tick = io->submit_tick;
        io->bdev->submit_request(io->module_channel, io);
        tls_submit_tick = saved;
    }
    io->in_submit = false;
}

constexpr size_t kZeroBufferSize = 1 << 20;

// Read-only source for emulated write-zeroes.
const void* zero_buffer() {
    static void* buf = [] {
        void* p = nullptr;
        if (posix_memalign(&p, 4096, kZeroBufferSize) != 0) std::abort();
        memset(p, 0, kZeroBufferSize);
        return p;
    }();
    return buf;
}

void submit_io(BdevIo* io);
void finish_io(BdevIo* io);

BdevIo* alloc_io(BdevChannel* ch) {
    BdevIo* io = ch->mgmt->get_io(tls_nested > 0);
    if (!io) return nullptr;
    io->status = IoStatus::Pending;
    io->nvme_sct = io->nvme_sc = 0;
    io->parent = nullptr;
    io->children_outstanding = 0;
    io->split_next_block = 0;
    io->split_status = IoStatus::Success;
    io->forward_depth = 0;
    io->in_submit = false;
    io->queued_nomem = false;
    io->fua = false;
    io->iovs = nullptr;
    io->iovcnt = 0;
    io->channel = ch;
    io->module_channel = ch->module_ch;
    io->bdev = ch->bdev;
    return io;
}

// True when blocks [first, first + n) cross a multiple of `boundary` (n > 0). Boundaries (strips,
// clusters) are nearly always powers of two: a mask then, not two 64-bit divisions per I/O.
inline bool crosses_boundary(uint64_t first, uint64_t n, uint64_t boundary) {
    const uint64_t last = first + n - 1;
    if ((boundary & (boundary - 1)) == 0) return ((first ^ last) & ~(boundary - 1)) != 0;
    return first / boundary != last / boundary;
}

bool needs_split(const BdevIo* io) {
    const Bdev* b = io->bdev;
    if (io->type == IoType::WriteZeroes) return !b->io_type_supported(IoType::WriteZeroes);
    if (io->type != IoType::Read && io->type != IoType::Write) return false;
    if (b->max_transfer_blocks && io->num_blocks > b->max_transfer_blocks) return true;
    if (b->max_num_segments && uint32_t(io->iovcnt) > b->max_num_segments) return true;
    return b->optimal_io_boundary &&
           crosses_boundary(io->offset_blocks, io->num_blocks, b->optimal_io_boundary);
}

// Largest child starting at `start` within the parent, by boundary and transfer limits.
uint64_t child_blocks(const BdevIo* parent, uint64_t start) {
    const Bdev* b = parent->bdev;
    uint64_t end = parent->offset_blocks + parent->num_blocks;
    uint64_t n = end - start;
    if (parent->type == IoType::WriteZeroes) {
        uint64_t max = kZeroBufferSize / b->block_size;
        return n < max ? n : max;
    }
    if (b->max_transfer_blocks && n > b->max_transfer_blocks) n = b->max_transfer_blocks;
    if (b->optimal_io_boundary) {
        uint64_t to_boundary = b->optimal_io_boundary - start % b->optimal_io_boundary;
        if (n > to_boundary) n = to_boundary;
    }
    return n;
}

// Points child->inline_iovs at the parent's bytes [byte_off, byte_off + len). Returns the bytes
// covered (less than len when the inline array is too small).
uint64_t slice_iovs(const BdevIo* parent, uint64_t byte_off, uint64_t len, BdevIo* child) {
    const uint32_t limit = parent->bdev->max_num_segments;
    const int max =
        limit && limit < uint32_t(BdevIo::kInlineIovs) ? int(limit) : BdevIo::kInlineIovs;
    int i = 0;
    uint64_t skip = byte_off;
    while (i < parent->iovcnt && skip >= parent->iovs[i].iov_len) skip -= parent->iovs[i++].iov_len;
    uint64_t covered = 0;
    int n = 0;
    for (; i < parent->iovcnt && covered < len && n < max; ++i) {
        uint64_t avail = parent->iovs[i].iov_len - skip;
        uint64_t take = avail < len - covered ? avail : len - covered;
        child->inline_iovs[n].iov_base = static_cast<char*>(parent->iovs[i].iov_base) + skip;
        child->inline_iovs[n].iov_len = take;
        covered += take;
        ++n;
        skip = 0;
    }
    child->iovs = child->inline_iovs;
    child->iovcnt = n;
    return covered;
}

void child_done(BdevIo* child);

void split_continue(BdevIo* parent) {
    BdevChannel* ch = parent->channel;
    Bdev* b = parent->bdev;
    uint64_t end = parent->offset_blocks + parent->num_blocks;
    while (parent->split_next_block < end && parent->children_outstanding < kMaxChildrenInFlight &&
           parent->split_status == IoStatus::Success) {
        uint64_t start = parent->split_next_block;
        uint64_t n = child_blocks(parent, start);
        BdevIo* child;
        {
            NestedScope nested;  // children may use the reserve
            child = alloc_io(ch);
        }
        if (!child) {
            if (parent->children_outstanding == 0) {
                // Nothing of ours in flight will free a bdev_io: retry from the nomem queue.
                parent->queued_nomem = true;
                ch->nomem_queue.push(parent);
            }
            return;
        }
        child->parent = parent;
        child->offset_blocks = start;
        child->submit_tick = parent->submit_tick;
        if (parent->type == IoType::WriteZeroes) {
            child->type = IoType::Write;
            child->inline_iovs[0].iov_base = const_cast<void*>(zero_buffer());
            child->inline_iovs[0].iov_len = n * b->block_size;
            child->iovs = child->inline_iovs;
            child->iovcnt = 1;
        } else {
            child->type = parent->type;
            child->fua = parent->fua;
            uint64_t want = n * b->block_size;
            uint64_t got =
                slice_iovs(parent, (start - parent->offset_blocks) * b->block_size, want, child);
            if (got < want) {
                n = got / b->block_size;  // too many iovecs: a shorter child
                if (n == 0) {
                    ch->mgmt->put_io(child);
                    parent->split_status = IoStatus::Failed;
                    break;
                }
                slice_iovs(parent, (start - parent->offset_blocks) * b->block_size,
                           n * b->block_size, child);
            }
        }
        child->num_blocks = n;
        parent->split_next_block = start + n;
        ++parent->children_outstanding;
        ++ch->outstanding;
        submit_to_module(child);
    }
    if (parent->children_outstanding == 0 &&
        (parent->split_next_block >= end || parent->split_status != IoStatus::Success)) {
        parent->status =
            parent->split_status == IoStatus::Success ? IoStatus::Success : parent->split_status;
        finish_io(parent);
    }
}

void child_done(BdevIo* child) {
    BdevIo* parent = child->parent;
    if (child->status != IoStatus::Success && parent->split_status == IoStatus::Success) {
        parent->split_status = child->status;
        parent->nvme_sct = child->nvme_sct;
        parent->nvme_sc = child->nvme_sc;
    }
    child->channel->mgmt->put_io(child);
    --parent->children_outstanding;
    split_continue(parent);
}

void retry_nomem(BdevChannel* ch) {
    // Resubmit what waits, oldest first; a resubmission may queue itself again.
    size_t n = ch->nomem_queue.size;
    while (n-- > 0) {
        BdevIo* io = ch->nomem_queue.pop();
        if (!io) break;
        io->queued_nomem = false;
        ch->stats.nomem_retries++;
        if (io->split_next_block != 0 || io->children_outstanding != 0 || needs_split(io)) {
            split_continue(io);
        } else {
            --ch->outstanding;  // submit_io counts it again
            submit_io(io);
        }
    }
}

void ensure_retry_poller(BdevChannel* ch) {
    if (ch->retry_poller) return;
    ch->retry_poller = Thread::current()->register_poller(
        "bdev_nomem_retry",
        [ch] {
            if (ch->nomem_queue.empty()) return 0;
            retry_nomem(ch);
            return 1;
        },
        100 /* µs: only matters when nothing else completes on this channel */);
}

void finish_io(BdevIo* io) {
    BdevChannel* ch = io->channel;
    if (io->parent) {
        --ch->outstanding;
        child_done(io);
        return;
    }
    --ch->outstanding;
    bool ok = io->status == IoStatus::Success;
    const uint64_t now = tls_done_depth > 0 ? tls_done_tick : LatClock::now();
    const uint64_t lat = LatClock::to_ns(io->submit_tick, now);
    ch->stats.record(
        io->type,
        io->type == IoType::Read || io->type == IoType::Write || io->type == IoType::WriteZeroes
            ? io->num_blocks * io->bdev->block_size
            : 0,
        lat, ok);
    if (ch->histogram && (ch->histogram_type < 0 || ch->histogram_type == int(io->type)))
        ch->histogram->tally(lat);
    if (io->forward_depth > 0) {
        // A forwarded I/O: back to the vbdev that passed it down, which completes it in turn.
        const BdevIo::ForwardFrame f = io->forward[--io->forward_depth];
        io->channel = f.channel;
        io->bdev = f.channel->bdev;
        io->module_channel = f.channel->module_ch;
        io->offset_blocks = f.offset_blocks;
        io->parent = f.parent;
        const uint64_t saved = tls_done_tick;
        tls_done_tick = now;
        ++tls_done_depth;
        f.done(io, ok, f.done_arg);
        --tls_done_depth;
        tls_done_tick = saved;
        if (!ch->nomem_queue.empty()) retry_nomem(ch);
        return;
    }
    {
        const uint64_t saved = tls_done_tick;
        tls_done_tick = now;
        ++tls_done_depth;
        io->cb(io, ok, io->cb_arg);
        --tls_done_depth;
        tls_done_tick = saved;
    }
    if (!ch->nomem_queue.empty()) retry_nomem(ch);
}

void submit_io(BdevIo* io) {
    BdevChannel* ch = io->channel;
    ++ch->outstanding;
    if (needs_split(io)) {
        io->split_next_block = io->offset_blocks;
        split_continue(io);
        return;
    }
    submit_to_module(io);
}

BdevChannel* as_bdev_channel(IoChannel* ch) {
    return static_cast<BdevChannel*>(ch);
}

int check_and_alloc(BdevDesc* desc, IoChannel* ioch, IoType type, uint64_t offset_blocks,
                    uint64_t num_blocks, BdevIo** out) {
    if (!desc || !ioch) return -EINVAL;
    Bdev* b = desc->bdev();
    if (b->removing()) return -ENODEV;
    if (type != IoType::Read && type != IoType::Reset && !desc->writable()) return -EBADF;
    if (type != IoType::Reset) {
        if (num_blocks == 0 && type != IoType::Flush) return -EINVAL;
        if (offset_blocks > b->num_blocks || num_blocks > b->num_blocks - offset_blocks)
            return -EINVAL;
    }
    if (type != IoType::WriteZeroes && !b->io_type_supported(type)) return -ENOTSUP;
    if (type == IoType::WriteZeroes && !b->io_type_supported(IoType::WriteZeroes) &&
        !b->io_type_supported(IoType::Write))
        return -ENOTSUP;
    BdevChannel* ch = as_bdev_channel(ioch);
    BdevIo* io = alloc_io(ch);
    if (!io) return -ENOMEM;
    io->type = type;
    io->offset_blocks = offset_blocks;
    io->num_blocks = num_blocks;
    io->split_next_block = 0;
    io->submit_tick = tls_nested > 0 ? tls_submit_tick : LatClock::now();
    *out = io;
    return 0;
}

int submit_rw(BdevDesc* desc, IoChannel* ioch, IoType type, iovec* iov, int iovcnt,
              uint64_t offset_blocks, uint64_t num_blocks, BdevIoCompletion cb, void* cb_arg,
              bool fua) {
    if (!iov || iovcnt <= 0) return -EINVAL;
    uint64_t total = 0;
    uintptr_t align_mask =
        desc && desc->bdev()->required_alignment ? desc->bdev()->required_alignment - 1 : 0;
    for (int i = 0; i < iovcnt; ++i) {
        total += iov[i].iov_len;
        if (align_mask && (reinterpret_cast<uintptr_t>(iov[i].iov_base) & align_mask))
            return -EINVAL;
    }
    if (desc && total != num_blocks * desc->bdev()->block_size) return -EINVAL;
    BdevIo* io;
    int rc = check_and_alloc(desc, ioch, type, offset_blocks, num_blocks, &io);
    if (rc) return rc;
    io->iovs = iov;
    io->iovcnt = iovcnt;
    io->fua = fua;
    io->cb = cb;
    io->cb_arg = cb_arg;
    submit_io(io);
    return 0;
}

}  // namespace

int bdev_readv(BdevDesc* desc, IoChannel* ch, iovec* iov, int iovcnt, uint64_t offset_blocks,
               uint64_t num_blocks, BdevIoCompletion cb, void* cb_arg) {
    return submit_rw(desc, ch, IoType::Read, iov, iovcnt, offset_blocks, num_blocks, cb, cb_arg,
                     false);
}

int bdev_writev(BdevDesc* desc, IoChannel* ch, iovec* iov, int iovcnt, uint64_t offset_blocks,
                uint64_t num_blocks, BdevIoCompletion cb, void* cb_arg, bool fua) {
    return submit_rw(desc, ch, IoType::Write, iov, iovcnt, offset_blocks, num_blocks, cb, cb_arg,
                     fua);
}

int bdev_forward_io(BdevDesc* desc, IoChannel* ioch, BdevIo* io, uint64_t offset_blocks,
                    BdevIoCompletion done, void* arg) {
    if (!desc || !ioch) return -EINVAL;
    if (io->type != IoType::Read && io->type != IoType::Write) return -ENOTSUP;
    if (io->forward_depth >= BdevIo::kMaxForwardDepth) return -ENOTSUP;
    Bdev* b = desc->bdev();
    if (b->removing()) return -ENODEV;
    if (io->type == IoType::Write && !desc->writable()) return -EBADF;
    if (offset_blocks > b->num_blocks || io->num_blocks > b->num_blocks - offset_blocks)
        return -EINVAL;
    // The iovecs were checked against this vbdev's needs, not the base's.
    if (b->block_size != io->bdev->block_size ||
        b->required_alignment > io->bdev->required_alignment)
        return -ENOTSUP;
    if (b->max_transfer_blocks && io->num_blocks > b->max_transfer_blocks) return -ENOTSUP;
    if (b->max_num_segments && uint32_t(io->iovcnt) > b->max_num_segments) return -ENOTSUP;
    if (b->optimal_io_boundary &&
        crosses_boundary(offset_blocks, io->num_blocks, b->optimal_io_boundary))
        return -ENOTSUP;
    BdevChannel* ch = as_bdev_channel(ioch);
    io->forward[io->forward_depth++] = {io->channel, io->offset_blocks, io->parent, done, arg};
    io->channel = ch;
    io->bdev = b;
    io->module_channel = ch->module_ch;
    io->offset_blocks = offset_blocks;
    io->parent = nullptr;
    ++ch->outstanding;
    submit_to_module(io);
    return 0;
}

namespace {
int submit_nodata(BdevDesc* desc, IoChannel* ch, IoType type, uint64_t offset_blocks,
                  uint64_t num_blocks, BdevIoCompletion cb, void* cb_arg) {
    BdevIo* io;
    int rc = check_and_alloc(desc, ch, type, offset_blocks, num_blocks, &io);
    if (rc) return rc;
    io->cb = cb;
    io->cb_arg = cb_arg;
    submit_io(io);
    return 0;
}
}  // namespace

int bdev_flush(BdevDesc* desc, IoChannel* ch, uint64_t offset_blocks, uint64_t num_blocks,
               BdevIoCompletion cb, void* cb_arg) {
    return submit_nodata(desc, ch, IoType::Flush, offset_blocks, num_blocks, cb, cb_arg);
}

int bdev_unmap(BdevDesc* desc, IoChannel* ch, uint64_t offset_blocks, uint64_t num_blocks,
               BdevIoCompletion cb, void* cb_arg) {
    return submit_nodata(desc, ch, IoType::Unmap, offset_blocks, num_blocks, cb, cb_arg);
}

int bdev_write_zeroes(BdevDesc* desc, IoChannel* ch, uint64_t offset_blocks, uint64_t num_blocks,
                      BdevIoCompletion cb, void* cb_arg) {
    return submit_nodata(desc, ch, IoType::WriteZeroes, offset_blocks, num_blocks, cb, cb_arg);
}

int bdev_reset(BdevDesc* desc, IoChannel* ioch, BdevIoCompletion cb, void* cb_arg) {
    BdevIo* io;
    int rc = check_and_alloc(desc, ioch, IoType::Reset, 0, 0, &io);
    if (rc) return rc;
    io->cb = cb;
    io->cb_arg = cb_arg;
    Bdev* b = desc->bdev();
    ++io->channel->outstanding;
    // First abort what waits in the bdev layer on every thread, then reset the device itself.
    b->layer_device()->for_each_channel(
        [](IoChannel& c, std::function<void(int)> next) {
            auto& bch = static_cast<BdevChannel&>(c);
            while (BdevIo* q = bch.nomem_queue.pop()) {
                q->queued_nomem = false;
                q->status = IoStatus::Aborted;
                finish_io(q);
            }
            next(0);
        },
        [io](int) {
            io->in_submit = true;
            io->bdev->submit_request(io->channel->module_ch, io);
            io->in_submit = false;
        });
    return 0;
}

void bdev_free_io(BdevIo* io) {
    io->channel->mgmt->put_io(io);
}

void bdev_queue_io_wait(IoChannel* ch, BdevIoWaitEntry* entry) {
    as_bdev_channel(ch)->mgmt->add_waiter(entry);
}

void bdev_io_complete(BdevIo* io, IoStatus status) {
    if (status == IoStatus::NoMemory) {
        BdevChannel* ch = io->channel;
        io->queued_nomem = true;
        ch->nomem_queue.push(io);
        ensure_retry_poller(ch);
        return;
    }
    io->status = status;
    if (io->in_submit) {
        // Completed inside submit_request: defer so that callers never recurse into themselves.
        Thread::current()->send([io] { finish_io(io); });
        return;
    }
    finish_io(io);
}

void bdev_io_complete_nvme(BdevIo* io, uint8_t sct, uint8_t sc) {
    io->nvme_sct = sct;
    io->nvme_sc = sc;
    bdev_io_complete(io, sct == 0 && sc == 0 ? IoStatus::Success : IoStatus::NvmeError);
}

}  // namespace nocstor
