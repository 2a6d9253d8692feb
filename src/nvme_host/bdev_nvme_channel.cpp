// The per-thread side of an nvme bdev controller: one I/O queue, and the I/O waiting for it
// (queue full, not yet connected, or retried after a transport failure).
#include <algorithm>
#include <cerrno>

#include "bdev/bdev.h"
#include "nvme_host/bdev_nvme_ctrlr.h"
#include "nvme_host/nvme_cmd.h"
#include "runtime/runtime.h"
#include "runtime/thread.h"

namespace nocstor::nvme_host {

namespace {

constexpr uint64_t kMaxWriteZeroesBlocks = 65536;  // NLB is 16 bits, 0-based
constexpr uint64_t kMaxDeallocBlocks = 0xFFFFFFFFull;

// Scratch in BdevIo::driver_ctx while the command is ours.
struct IoCtx {
    NvmeCtrlrChannel* ch;
    uint64_t next;  // chunked commands (write zeroes, deallocate): next block
    uint64_t end;
    uint64_t chunk;  // blocks of the command in flight
    cmd::DsmRange range;
    iovec dsm_iov;
};

}  // namespace

NvmeCtrlrChannel::NvmeCtrlrChannel(NvmeBdevCtrlr* c) : ctrlr(c) {
    fail_fast = c->fail_fast();
    deleting = c->state() == NvmeBdevCtrlr::State::kDeleting;
    if (c->state() == NvmeBdevCtrlr::State::kEnabled) connect_qpair(nullptr);
}

NvmeCtrlrChannel::~NvmeCtrlrChannel() {
    destroying_ = true;
    disconnect_qpair();
    fail_pending(IoStatus::Aborted);
}

void NvmeCtrlrChannel::connect_qpair(std::function<void(int)> done) {
    QpairOptions o;
    uint32_t gen = 0;
    if (!ctrlr->qpair_options(&o, &gen)) {
        if (done) done(-ENOTCONN);
        return;
    }
    disconnect_qpair();
    qp_ = std::make_unique<NvmeTcpQpair>(o);
    qid_ = o.qid;
    gen_ = gen;
    connecting_ = true;
    qp_->set_failure_callback([this](int, const std::string& why) {
        ctrlr->notify_failure("I/O queue " + std::to_string(qid_) + ": " + why);
    });
    qp_->connect([this, done](int rc, const std::string& err) {
        connecting_ = false;
        if (rc != 0) {
            ctrlr->notify_failure("I/O queue connect: " + err);
        } else {
            resubmit_pending();
        }
        if (done) done(rc);
    });
}

void NvmeCtrlrChannel::disconnect_qpair() {
    if (qp_) {
        qp_->disconnect();  // in-flight commands complete with -ECANCELED: see complete()
        qp_.reset();
        ctrlr->release_qid(qid_, gen_);
    }
    connecting_ = false;
}

void NvmeCtrlrChannel::fail_pending(IoStatus st) {
    while (BdevIo* io = pending_.pop()) bdev_io_complete(io, st);
}

void NvmeCtrlrChannel::resubmit_pending() {
    while (!pending_.empty() && qp_ && qp_->ready() && qp_->has_free_slot()) {
        BdevIo* io = pending_.pop();
        int rc = issue(io);
        if (rc != 0) bdev_io_complete(io, IoStatus::Failed);
    }
}

void NvmeCtrlrChannel::submit(BdevIo* io) {
    if (deleting) return bdev_io_complete(io, IoStatus::Aborted);
    if (fail_fast) return bdev_io_complete(io, IoStatus::Failed);
    auto* ctx = io->ctx<IoCtx>();
    ctx->ch = this;
    ctx->next = io->offset_blocks;
    ctx->end = io->offset_blocks + io->num_blocks;
    ctx->chunk = 0;
    if (io->type == IoType::Reset) {
        // A reset is a controller reset: the control thread runs it and answers later.
        Thread* t = Thread::current();
        NvmeBdevCtrlr* c = ctrlr;
        const uint64_t id = c->id();
        Runtime::instance()->control_thread()->send([id, t, io] {
            if (NvmeBdevCtrlr* cc = find_ctrlr(id)) return cc->add_reset_waiter(t, io);
            t->send([io] { bdev_io_complete(io, IoStatus::Failed); });
        });
        return;
    }
    // FIFO: nothing overtakes I/O already waiting.
    if (!pending_.empty() || !qp_ || !qp_->ready() || !qp_->has_free_slot()) {
        pending_.push(io);
        if (!qp_ && !connecting_ && ctrlr->state() == NvmeBdevCtrlr::State::kEnabled)
            connect_qpair(nullptr);
        return;
    }
    int rc = issue(io);
    if (rc != 0) bdev_io_complete(io, rc == -EINVAL ? IoStatus::InvalidRange : IoStatus::Failed);
}

int NvmeCtrlrChannel::issue(BdevIo* io) {
    auto* b = static_cast<NvmeNsBdev*>(io->bdev);
    auto* ctx = io->ctx<IoCtx>();
    const uint32_t len = uint32_t(io->num_blocks * b->block_size);
    switch (io->type) {
        case IoType::Read:
            return qp_->submit(cmd::read(b->nsid, io->offset_blocks, uint32_t(io->num_blocks)),
                               DataDir::kCtrlToHost, io->iovs, io->iovcnt, len, on_done, io);
        case IoType::Write:
            return qp_->submit(
                cmd::write(b->nsid, io->offset_blocks, uint32_t(io->num_blocks), io->fua),
                DataDir::kHostToCtrl, io->iovs, io->iovcnt, len, on_done, io);
        case IoType::Flush:
            return qp_->submit(cmd::flush(b->nsid), DataDir::kNone, nullptr, 0, 0, on_done, io);
        case IoType::WriteZeroes:
            ctx->chunk = std::min(ctx->end - ctx->next, kMaxWriteZeroesBlocks);
            return qp_->submit(cmd::write_zeroes(b->nsid, ctx->next, uint32_t(ctx->chunk)),
                               DataDir::kNone, nullptr, 0, 0, on_done, io);
        case IoType::Unmap:
            ctx->chunk = std::min(ctx->end - ctx->next, kMaxDeallocBlocks);
            ctx->range = {0, uint32_t(ctx->chunk), ctx->next};
            ctx->dsm_iov = {&ctx->range, sizeof ctx->range};
            return qp_->submit(cmd::dsm_deallocate(b->nsid, 1), DataDir::kHostToCtrl, &ctx->dsm_iov,
                               1, sizeof ctx->range, on_done, io);
        default:
            return -ENOTSUP;
    }
}

void NvmeCtrlrChannel::on_done(void* arg, const NvmeCpl& cpl) {
    auto* io = static_cast<BdevIo*>(arg);
    io->ctx<IoCtx>()->ch->complete(io, cpl);
}

void NvmeCtrlrChannel::complete(BdevIo* io, const NvmeCpl& cpl) {
    if (cpl.transport_rc != 0) {
        // The target may or may not have executed it: block writes are idempotent, so it is
        // retried on the next queue unless the controller is going away or failing fast.
        if (destroying_ || deleting) return bdev_io_complete(io, IoStatus::Aborted);
        if (fail_fast) return bdev_io_complete(io, IoStatus::Failed);
        ++requeued;
        pending_.push(io);
        return;
    }
    if (!cpl.cqe.status.ok()) {
        bdev_io_complete_nvme(io, cpl.cqe.status.sct(), cpl.cqe.status.sc());
    } else {
        auto* ctx = io->ctx<IoCtx>();
        const bool chunked = io->type == IoType::WriteZeroes || io->type == IoType::Unmap;
        if (chunked && ctx->next + ctx->chunk < ctx->end) {
            ctx->next += ctx->chunk;
            if (qp_ && qp_->ready() && qp_->has_free_slot()) {
                if (issue(io) != 0) bdev_io_complete(io, IoStatus::Failed);
            } else {
                pending_.push(io);
            }
        } else {
            bdev_io_complete(io, IoStatus::Success);
        }
    }
    if (!pending_.empty()) resubmit_pending();
}

}  // namespace nocstor::nvme_host
