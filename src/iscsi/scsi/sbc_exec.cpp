// Execution of planned commands: bdev I/O for reads, writes, flushes, unmaps and the
// multi-step commands (WRITE SAME with a pattern, VERIFY with BYTCHK, COMPARE AND WRITE), which
// run their steps one after the other on the task's thread with one scratch pool buffer.
#include <cerrno>
#include <cstring>

#include "iscsi/scsi/scsi_internal.h"

namespace nocstor::scsi {

namespace {

void finish(Task* t) {
    t->done(t, t->done_arg);
}

void fail_io(Task* t, bool write, const BdevIo* io) {
    if (io && io->status == IoStatus::Aborted) {
        t->status = kTaskAborted;
        t->sense_len = 0;
        return;
    }
    if (io && io->status == IoStatus::InvalidRange) {
        t->check_condition(kIllegalRequest, kAscLbaOutOfRange);
        return;
    }
    t->check_condition(kMediumError, write ? kAscWriteError : kAscUnrecoveredReadError);
}

void release_scratch(Task* t) {
    if (t->scratch) {
        t->buffers->put(t->scratch);
        t->scratch = {};
    }
}

// A step's bdev I/O came back: frees it; on failure sets the sense, drops the scratch buffer and
// finishes the task (false: stop here).
bool step_ok(Task* t, BdevIo* io, bool ok, bool write) {
    if (!ok) fail_io(t, write, io);
    bdev_free_io(io);
    if (ok) return true;
    release_scratch(t);
    finish(t);
    return false;
}

// Blocks one step of a multi-step command moves through the scratch buffer.
uint32_t scratch_blocks(const Task* t) {
    const uint32_t per = std::min<uint32_t>(t->scratch.size, 128 * 1024) / t->lun->block_size;
    return std::min(per, t->nblocks - t->step);
}

// Submits fn(t); on -ENOMEM waits for a free BdevIo and tries again.
void issue(Task* t, int (*fn)(Task*)) {
    const int rc = fn(t);
    if (rc == 0) return;
    if (rc == -ENOMEM) {
        t->resubmit = fn;
        t->io_wait.cb = [](void* arg) {
            auto* task = static_cast<Task*>(arg);
            issue(task, task->resubmit);
        };
        t->io_wait.arg = t;
        bdev_queue_io_wait(t->ch, &t->io_wait);
        return;
    }
    t->check_condition(kHardwareError, kAscInternalTargetFailure);
    release_scratch(t);
    finish(t);
}

bool is_write_op(uint8_t opc) {
    return is_plain_write(opc);
}

// --- plain read / write / flush ---

void simple_done(BdevIo* io, bool ok, void* arg) {
    auto* t = static_cast<Task*>(arg);
    if (!ok) fail_io(t, is_write_op(t->cdb[0]), io);
    bdev_free_io(io);
    finish(t);
}

void read_done(BdevIo* io, bool ok, void* arg) {
    auto* t = static_cast<Task*>(arg);
    if (ok) {
        t->data_in_len = t->xfer_len;
    } else {
        fail_io(t, false, io);
    }
    bdev_free_io(io);
    finish(t);
}

int submit_read(Task* t) {
    return bdev_readv(t->lun->desc, t->ch, t->iov, t->iovcnt, t->lba, t->nblocks, read_done, t);
}

int submit_write(Task* t) {
    const uint8_t opc = t->cdb[0];
    const bool fua = (opc != op::kWrite6 && (t->cdb[1] & 0x08)) || opc == op::kWriteVerify10 ||
                     opc == op::kWriteVerify12 || opc == op::kWriteVerify16;
    return bdev_writev(t->lun->desc, t->ch, t->iov, t->iovcnt, t->lba, t->nblocks, simple_done, t,
                       fua);
}

int submit_flush(Task* t) {
    return bdev_flush(t->lun->desc, t->ch, 0, t->lun->num_blocks, simple_done, t);
}

// --- UNMAP: one descriptor after the other ---

void unmap_next(Task* t);

void unmap_done(BdevIo* io, bool ok, void* arg) {
    auto* t = static_cast<Task*>(arg);
    if (!step_ok(t, io, ok, true)) return;
    ++t->step;
    unmap_next(t);
}

int submit_unmap(Task* t) {
    return bdev_unmap(t->lun->desc, t->ch, t->lba, t->nblocks, unmap_done, t);
}

// t->pending = descriptor count; t->step = the next one.
void unmap_next(Task* t) {
    while (t->step < t->pending) {
        uint8_t d[16];
        copy_from_iov(d, t->iov, t->iovcnt, 8 + 16 * t->step, 16);
        t->lba = be::get64(d);
        t->nblocks = be::get32(d + 8);
        if (t->nblocks == 0) {
            ++t->step;
            continue;
        }
        return issue(t, submit_unmap);
    }
    finish(t);
}

void exec_unmap(Task* t) {
    const uint32_t len = t->data_len;
    if (len == 0) return finish(t);
    uint8_t h[8];
    if (len < 8) {
        t->check_condition(kIllegalRequest, kAscParameterListLengthError);
        return finish(t);
    }
    copy_from_iov(h, t->iov, t->iovcnt, 0, 8);
    const uint32_t bd_len = be::get16(h + 2);
    if (bd_len % 16 || 8 + bd_len > len || be::get16(h) + 2u < 8 + bd_len) {
        t->check_condition(kIllegalRequest, kAscParameterListLengthError);
        return finish(t);
    }
    const uint32_t count = bd_len / 16;
    if (count > kMaxUnmapDescriptors) {
        t->check_condition(kIllegalRequest, kAscInvalidFieldInParamList);
        return finish(t);
    }
    // Check every range before unmapping anything.
    for (uint32_t i = 0; i < count; ++i) {
        uint8_t d[16];
        copy_from_iov(d, t->iov, t->iovcnt, 8 + 16 * i, 16);
        const uint64_t lba = be::get64(d);
        const uint64_t n = be::get32(d + 8);
        if (lba > t->lun->num_blocks || n > t->lun->num_blocks - lba) {
            t->check_condition(kIllegalRequest, kAscLbaOutOfRange);
            return finish(t);
        }
    }
    t->pending = count;
    t->step = 0;
    unmap_next(t);
}

// --- WRITE SAME: zeroes as write-zeroes, a pattern in chunks of a scratch buffer ---

void write_same_next(Task* t);

void write_same_done(BdevIo* io, bool ok, void* arg) {
    auto* t = static_cast<Task*>(arg);
    if (!step_ok(t, io, ok, true)) return;
    write_same_next(t);
}

int submit_write_zeroes(Task* t) {
    return bdev_write_zeroes(t->lun->desc, t->ch, t->lba, t->nblocks, write_same_done, t);
}

int submit_pattern_chunk(Task* t) {
    const uint32_t n = scratch_blocks(t);
    iovec v{t->scratch.data, size_t(n) * t->lun->block_size};
    return bdev_writev(t->lun->desc, t->ch, &v, 1, t->lba + t->step, n, write_same_done, t);
}

void write_same_next(Task* t) {
    if (!t->scratch) {  // write-zeroes: one call
        if (t->pending) return finish(t);
        t->pending = 1;
        return issue(t, submit_write_zeroes);
    }
    // The previous chunk finished: advance by its size.
    if (t->pending) t->step += scratch_blocks(t);
    t->pending = 1;
    if (t->step >= t->nblocks) {
        release_scratch(t);
        return finish(t);
    }
    issue(t, submit_pattern_chunk);
}

void exec_write_same(Task* t) {
    const uint32_t bs = t->lun->block_size;
    uint8_t block[4096];
    bool zero = true;
    if (t->dir == DataDir::Out) {
        if (t->data_len < bs || bs > sizeof(block)) {
            t->check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            return finish(t);
        }
        copy_from_iov(block, t->iov, t->iovcnt, 0, bs);
        for (uint32_t i = 0; i < bs && zero; ++i) zero = block[i] == 0;
    }
    t->pending = 0;
    t->step = 0;
    if (!zero) {
        t->scratch = t->buffers->get(BufClass::Large);
        if (!t->scratch) {
            t->status = kBusy;
            return finish(t);
        }
        const uint32_t per = std::min<uint32_t>(t->scratch.size, 128 * 1024) / bs;
        for (uint32_t i = 0; i < per; ++i)
            std::memcpy(reinterpret_cast<uint8_t*>(t->scratch.data) + size_t(i) * bs, block, bs);
    }
    write_same_next(t);
}

// --- VERIFY (BYTCHK=1): read chunks into scratch and compare ---

void verify_next(Task* t);

void verify_read_done(BdevIo* io, bool ok, void* arg) {
    auto* t = static_cast<Task*>(arg);
    if (!step_ok(t, io, ok, false)) return;
    const uint32_t bs = t->lun->block_size;
    const uint32_t n = scratch_blocks(t);
    // Compare in pieces against the data-out bytes at the same offset.
    const uint8_t* medium = reinterpret_cast<const uint8_t*>(t->scratch.data);
    uint8_t piece[4096];
    const uint32_t total = n * bs;
    for (uint32_t off = 0; off < total; off += sizeof(piece)) {
        const uint32_t len = std::min<uint32_t>(sizeof(piece), total - off);
        copy_from_iov(piece, t->iov, t->iovcnt, t->step * bs + off, len);
        if (std::memcmp(piece, medium + off, len) != 0) {
            t->check_condition(kMiscompare, kAscMiscompareDuringVerify);
            release_scratch(t);
            return finish(t);
        }
    }
    t->step += n;
    verify_next(t);
}

int submit_verify_read(Task* t) {
    const uint32_t n = scratch_blocks(t);
    iovec v{t->scratch.data, size_t(n) * t->lun->block_size};
    return bdev_readv(t->lun->desc, t->ch, &v, 1, t->lba + t->step, n, verify_read_done, t);
}

void verify_next(Task* t) {
    if (t->step >= t->nblocks) {
        release_scratch(t);
        return finish(t);
    }
    issue(t, submit_verify_read);
}

void exec_verify(Task* t) {
    if (t->dir != DataDir::Out || t->nblocks == 0) return finish(t);  // BYTCHK=0: range only
    t->scratch = t->buffers->get(BufClass::Large);
    if (!t->scratch) {
        t->status = kBusy;
        return finish(t);
    }
    t->step = 0;
    verify_next(t);
}

// --- COMPARE AND WRITE: read, compare with the first half, write the second half ---

void caw_write_done(BdevIo* io, bool ok, void* arg) {
    auto* t = static_cast<Task*>(arg);
    if (!ok) fail_io(t, true, io);
    bdev_free_io(io);
    release_scratch(t);
    finish(t);
}

int submit_caw_write(Task* t) {
    const uint32_t half = t->nblocks * t->lun->block_size;
    // Both halves sit in the first buffer (plan() bounds them to one small buffer).
    iovec v{static_cast<uint8_t*>(t->iov[0].iov_base) + half, half};
    return bdev_writev(t->lun->desc, t->ch, &v, 1, t->lba, t->nblocks, caw_write_done, t);
}

void caw_read_done(BdevIo* io, bool ok, void* arg) {
    auto* t = static_cast<Task*>(arg);
    if (!step_ok(t, io, ok, false)) return;
    const uint32_t half = t->nblocks * t->lun->block_size;
    if (std::memcmp(t->iov[0].iov_base, t->scratch.data, half) != 0) {
        t->check_condition(kMiscompare, kAscMiscompareDuringVerify);
        release_scratch(t);
        return finish(t);
    }
    issue(t, submit_caw_write);
}

int submit_caw_read(Task* t) {
    iovec v{t->scratch.data, size_t(t->nblocks) * t->lun->block_size};
    return bdev_readv(t->lun->desc, t->ch, &v, 1, t->lba, t->nblocks, caw_read_done, t);
}

void exec_compare_and_write(Task* t) {
    const uint32_t half = t->nblocks * t->lun->block_size;
    if (t->nblocks == 0) return finish(t);
    if (t->data_len < 2 * half || t->iov[0].iov_len < 2 * half) {
        t->check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
        return finish(t);
    }
    t->scratch = t->buffers->get(BufClass::Small);
    if (!t->scratch) {
        t->status = kBusy;
        return finish(t);
    }
    issue(t, submit_caw_read);
}

}  // namespace

void execute(Task& task) {
    Task* t = &task;
    if (t->status != kGood) return finish(t);
    const uint8_t opc = t->cdb[0];
    switch (opc) {
        case op::kRead6:
        case op::kRead10:
        case op::kRead12:
        case op::kRead16:
            if (t->nblocks == 0) return finish(t);
            return issue(t, submit_read);
        case op::kWrite6:
        case op::kWrite10:
        case op::kWrite12:
        case op::kWrite16:
        case op::kWriteVerify10:
        case op::kWriteVerify12:
        case op::kWriteVerify16:
            if (t->nblocks == 0) return finish(t);
            return issue(t, submit_write);
        case op::kSyncCache10:
        case op::kSyncCache16:
            if (!t->lun->flush) return finish(t);
            return issue(t, submit_flush);
        case op::kUnmap:
            return exec_unmap(t);
        case op::kWriteSame10:
        case op::kWriteSame16:
            return exec_write_same(t);
        case op::kVerify10:
        case op::kVerify12:
        case op::kVerify16:
            return exec_verify(t);
        case op::kCompareAndWrite:
            return exec_compare_and_write(t);
        case op::kPrIn:
        case op::kPrOut:
            return spc_persistent_reserve(*t);
        case op::kInquiry:
            spc_inquiry(*t);
            break;
        case op::kModeSense6:
        case op::kModeSense10:
            spc_mode_sense(*t, opc == op::kModeSense10);
            break;
        case op::kModeSelect6:
        case op::kModeSelect10:
            spc_mode_select(*t, opc == op::kModeSelect10);
            break;
        case op::kReportLuns:
            spc_report_luns(*t);
            break;
        case op::kRequestSense:
            spc_request_sense(*t);
            break;
        case op::kReserve6:
            spc_reserve6(*t);
            break;
        case op::kMaintenanceIn:
            spc_report_supported_opcodes(*t);
            break;
        case op::kRelease6:
            spc_release6(*t);
            break;
        case op::kReadCapacity10:
            sbc_read_capacity10(*t);
            break;
        case op::kServiceActionIn16:
            if ((t->cdb[1] & 0x1f) == op::kSaReadCapacity16) {
                sbc_read_capacity16(*t);
            } else {
                sbc_get_lba_status(*t);
            }
            break;
        default:  // TEST UNIT READY, START STOP UNIT, PREVENT ALLOW, PRE-FETCH, RESERVE/RELEASE
            break;
    }
    finish(t);
}

}  // namespace nocstor::scsi
