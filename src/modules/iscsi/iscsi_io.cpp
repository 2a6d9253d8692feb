// The SCSI side of a session: a bdev I/O becomes READ(16) / WRITE(16) with the I/O's own iovecs
// (no copy), SYNCHRONIZE CACHE(16), UNMAP or WRITE SAME(16) of zeroes (both split to the LUN's
// limits and issued one after the other); the target's status becomes the I/O's.
#include "modules/iscsi/iscsi_session.h"

#include "modules/iscsi/iscsi_bdev.h"

#include "bdev/bdev.h"
#include "runtime/thread.h"
#include "util/tick.h"

#include <fmt/format.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <algorithm>

namespace nocstor::iscsi {

namespace {

// Per-I/O state in BdevIo::driver_ctx.
struct IoCtx {
    IscsiSession* session;
    Thread* origin;
    uint64_t first_submit_ns;
    uint64_t next_lba;   // unmap / write zeroes: where the next command starts
    uint64_t remaining;  // blocks still to do
    uint32_t retries;    // UNIT ATTENTION / BUSY / TASK SET FULL answers so far
};

constexpr uint32_t kMaxRetries = 16;
constexpr uint32_t kMaxUnmapDescriptors = 64;  // our own cap per UNMAP command

// One block of zeroes for WRITE SAME (the largest block size a bdev may have).
alignas(4096) unsigned char g_zero_block[65536];

IoCtx* ctx_of(BdevIo* io) {
    return io->ctx<IoCtx>();
}

}  // namespace

bool IscsiSession::expired(BdevIo* io, uint64_t now) const {
    const uint64_t t = iscsi_get_options().timeout_sec * 1'000'000'000ull;
    return t != 0 && now - ctx_of(io)->first_submit_ns > t;
}

void IscsiSession::submit(BdevIo* io, Thread* origin) {
    IoCtx* c = ctx_of(io);
    c->session = this;
    c->origin = origin;
    c->first_submit_ns = now_ns();
    c->next_lba = io->offset_blocks;
    c->remaining = io->num_blocks;
    c->retries = 0;
    dispatch(io);
}

void IscsiSession::dispatch(BdevIo* io) {
    if (state_ == State::Closed) return finish(io, IoStatus::Aborted);
    if (state_ != State::Ready || !waiting_.empty() || !issue(io)) {
        waiting_.push(io);
        counters_.queued = uint32_t(waiting_.size);
    }
}

void IscsiSession::dispatch_waiting() {
    BdevIoQueue batch = waiting_;
    waiting_ = BdevIoQueue{};
    while (BdevIo* io = batch.pop()) {
        if (state_ != State::Ready || !issue(io)) {
            // Keep the order: what is left goes back in front of anything queued meanwhile.
            waiting_.push(io);
            while (BdevIo* rest = batch.pop()) waiting_.push(rest);
            break;
        }
    }
    counters_.queued = uint32_t(waiting_.size);
}

void IscsiSession::requeue(BdevIo* io) {
    ++counters_.retried_ios;
    waiting_.push(io);
    counters_.queued = uint32_t(waiting_.size);
}

// Returns false when libiscsi could not take the command (no memory): the caller queues it.
bool IscsiSession::issue(BdevIo* io) {
    IoCtx* c = ctx_of(io);
    const LunGeometry& g = *geometry_;
    const int lun = spec_.lun;
    const uint64_t timeout_sec = iscsi_get_options().timeout_sec;
    if (timeout_sec != ctx_timeout_sec_) {
        // libiscsi stamps each PDU with the context's timeout when it is created.
        iscsi_set_timeout(ctx_, int(std::min<uint64_t>(timeout_sec, INT32_MAX)));
        ctx_timeout_sec_ = timeout_sec;
    }
    auto cb = [](iscsi_context*, int status, void* data, void* arg) {
        auto* bio = static_cast<BdevIo*>(arg);
        ctx_of(bio)->session->on_task_done(bio, static_cast<scsi_task*>(data), status);
    };
    scsi_task* t = nullptr;
    switch (io->type) {
        case IoType::Read:
            t = iscsi_read16_iov_task(ctx_, lun, io->offset_blocks,
                                      uint32_t(io->num_blocks * g.block_size), int(g.block_size), 0,
                                      0, io->fua ? 1 : 0, 0, 0, cb, io,
                                      reinterpret_cast<scsi_iovec*>(io->iovs), io->iovcnt);
            break;
        case IoType::Write:
            t = iscsi_write16_iov_task(ctx_, lun, io->offset_blocks, nullptr,
                                       uint32_t(io->num_blocks * g.block_size), int(g.block_size),
                                       0, 0, io->fua ? 1 : 0, 0, 0, cb, io,
                                       reinterpret_cast<scsi_iovec*>(io->iovs), io->iovcnt);
            break;
        case IoType::Flush:
            t = iscsi_synchronizecache16_task(ctx_, lun, 0, 0, 0, 0, cb, io);
            break;
        case IoType::Unmap: {
            unmap_list list[kMaxUnmapDescriptors];
            const uint32_t per = g.max_unmap_blocks ? g.max_unmap_blocks : UINT32_MAX;
            const uint32_t max_desc =
                std::min<uint32_t>(kMaxUnmapDescriptors, std::max(1u, g.max_unmap_descriptors));
            int n = 0;
            uint64_t lba = c->next_lba, left = c->remaining;
            while (left && n < int(max_desc)) {
                const uint32_t len = uint32_t(std::min<uint64_t>(left, per));
                list[n++] = unmap_list{lba, len};
                lba += len;
                left -= len;
            }
            t = iscsi_unmap_task(ctx_, lun, 0, 0, list, n, cb, io);
            break;
        }
        case IoType::WriteZeroes: {
            uint64_t len = std::min<uint64_t>(c->remaining, 0xffffffffull);
            if (g.max_write_same_blocks) len = std::min(len, g.max_write_same_blocks);
            t = iscsi_writesame16_task(ctx_, lun, c->next_lba, g_zero_block, g.block_size,
                                       uint32_t(len), 0, 0, 0, 0, cb, io);
            break;
        }
        default:
            finish(io, IoStatus::Unsupported);
            return true;
    }
    if (!t) return false;
    ++counters_.in_flight;
    return true;
}

void IscsiSession::on_task_done(BdevIo* io, scsi_task* task, int status) {
    --counters_.in_flight;
    ++completions_in_pass_;
    IoCtx* c = ctx_of(io);
    scsi_sense sense{};
    size_t residual = 0;
    scsi_residual residual_status = SCSI_RESIDUAL_NO_RESIDUAL;
    if (task) {
        sense = task->sense;
        residual = task->residual;
        residual_status = task->residual_status;
        scsi_free_scsi_task(task);
    }
    if (status == SCSI_STATUS_CANCELLED) {
        // The connection went away (or we are shutting down): never acknowledged, so it is
        // issued again on the next connection.
        if (state_ == State::Closed) return finish(io, IoStatus::Aborted);
        broken_ = true;
        if (expired(io, now_ns())) {
            ++counters_.timed_out_ios;
            return finish(io, IoStatus::Timeout);
        }
        return requeue(io);
    }
    if (status == SCSI_STATUS_TIMEOUT) {
        // Not answered within the timeout: fail it, and do not trust the connection any more.
        ++counters_.timed_out_ios;
        broken_ = true;
        if (cause_.empty())
            cause_ = fmt::format("a {} was not answered within {} s", io_type_name(io->type),
                                 iscsi_get_options().timeout_sec);
        return finish(io, IoStatus::Timeout);
    }
    if (status == SCSI_STATUS_CHECK_CONDITION && sense.key == SCSI_SENSE_UNIT_ATTENTION &&
        sense.ascq == SCSI_SENSE_ASCQ_CAPACITY_DATA_HAS_CHANGED)
        probe_capacity();  // the LUN was resized: the bdev follows (the I/O is retried below)
    const bool transient =
        status == SCSI_STATUS_BUSY || status == SCSI_STATUS_TASK_SET_FULL ||
        (status == SCSI_STATUS_CHECK_CONDITION &&
         (sense.key == SCSI_SENSE_UNIT_ATTENTION || sense.key == SCSI_SENSE_NOT_READY));
    if (transient && ++c->retries <= kMaxRetries && !expired(io, now_ns())) return requeue(io);
    if (status == SCSI_STATUS_CHECK_CONDITION) {
        if (sense.key == SCSI_SENSE_MEDIUM_ERROR) return finish(io, IoStatus::MediaError);
        if (sense.key == SCSI_SENSE_ILLEGAL_REQUEST &&
            sense.ascq == SCSI_SENSE_ASCQ_LBA_OUT_OF_RANGE)
            return finish(io, IoStatus::InvalidRange);
        last_error_ =
            fmt::format("{} failed: {}", io_type_name(io->type), scsi_sense_key_str(sense.key));
        return finish(io, IoStatus::Failed);
    }
    if (status != SCSI_STATUS_GOOD) {
        last_error_ =
            fmt::format("{} failed with SCSI status {:#x}", io_type_name(io->type), status);
        return finish(io, IoStatus::Failed);
    }
    if (io->type == IoType::Read && residual_status == SCSI_RESIDUAL_UNDERFLOW && residual) {
        // A short read would hand the user whatever the buffer held before.
        last_error_ = fmt::format("read returned {} bytes less than asked", residual);
        return finish(io, IoStatus::Failed);
    }
    if (io->type == IoType::Unmap || io->type == IoType::WriteZeroes) {
        // Account for what this command covered; continue with the rest.
        const LunGeometry& g = *geometry_;
        uint64_t done;
        if (io->type == IoType::Unmap) {
            const uint64_t per = g.max_unmap_blocks ? g.max_unmap_blocks : UINT32_MAX;
            const uint64_t desc =
                std::min<uint64_t>(kMaxUnmapDescriptors, std::max(1u, g.max_unmap_descriptors));
            done = std::min(c->remaining, per * desc);
        } else {
            done = std::min<uint64_t>(c->remaining, 0xffffffffull);
            if (g.max_write_same_blocks) done = std::min(done, g.max_write_same_blocks);
        }
        c->next_lba += done;
        c->remaining -= done;
        if (c->remaining) {
            waiting_.push(io);  // the next command, issued at the end of this poll pass
            return;
        }
    }
    finish(io, IoStatus::Success);
}

void IscsiSession::probe_capacity() {
    if (capacity_probe_ || !ctx_ || state_ != State::Ready || !on_resize_) return;
    capacity_probe_ = true;
    auto cb = [](iscsi_context*, int status, void* data, void* priv) {
        auto* self = static_cast<IscsiSession*>(priv);
        auto* task = static_cast<scsi_task*>(data);
        self->capacity_probe_ = false;
        if (status == SCSI_STATUS_GOOD && task) {
            if (auto* rc = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(task))) {
                if (self->on_resize_) self->on_resize_(rc->returned_lba + 1);
            }
        }
        if (task) scsi_free_scsi_task(task);
    };
    if (!iscsi_readcapacity16_task(ctx_, spec_.lun, cb, this)) capacity_probe_ = false;
}

void IscsiSession::finish(BdevIo* io, IoStatus st) {
    Thread* origin = ctx_of(io)->origin;
    if (origin == owner_) return bdev_io_complete(io, st);
    origin->send([io, st] { bdev_io_complete(io, st); });
}

}  // namespace nocstor::iscsi
