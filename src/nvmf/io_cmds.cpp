// NVM commands on I/O queues: Read, Write, Flush, Write Zeroes, Dataset Management. Data sits in
// one pool buffer that goes to the bdev as is (no copy); completions come back on this thread.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nvmf/commands.h"
#include "nvmf/limits.h"
#include "nvmf/poll_group.h"
#include "nvmf/tcp_conn.h"

namespace nocstor::nvmf {

using nvme::Status;
namespace opc = nvme::nvm_opc;

namespace {

struct __attribute__((packed)) DsmRange {
    uint32_t attributes;
    uint32_t nlb;
    uint64_t slba;
};
static_assert(sizeof(DsmRange) == 16);

Status status_from_bdev(const BdevIo* io, uint8_t opcode) {
    switch (io->status) {
        case IoStatus::Success:
            return Status::success();
        case IoStatus::InvalidRange:
            return Status::generic(nvme::sc::kLbaOutOfRange, true);
        case IoStatus::NvmeError:
            return Status::make(io->nvme_sct, io->nvme_sc);
        case IoStatus::MediaError:
            return Status::media(opcode == opc::kRead ? nvme::sc_media::kUnrecoveredReadError
                                                      : nvme::sc_media::kWriteFault);
        case IoStatus::Unsupported:
            return Status::generic(nvme::sc::kInvalidOpcode, true);
        case IoStatus::Aborted:
            return Status::generic(nvme::sc::kAbortedSqDeletion);
        case IoStatus::Timeout:
            return Status::generic(nvme::sc::kCommandInterrupted);
        default:
            return Status::generic(nvme::sc::kInternalError);
    }
}

Status status_from_errno(int rc) {
    switch (rc) {
        case -EINVAL:
            return Status::generic(nvme::sc::kLbaOutOfRange, true);
        case -EBADF:
            return Status::generic(nvme::sc::kNamespaceWriteProtected, true);
        case -ENOTSUP:
            return Status::generic(nvme::sc::kInvalidOpcode, true);
        case -ENODEV:
            return Status::generic(nvme::sc::kNamespaceNotReady);
        default:
            return Status::generic(nvme::sc::kInternalError);
    }
}

// Ends a command that had bdev work outstanding.
void finish(Request* r, Status st) {
    PgNamespace* ns = r->ns;
    TcpConn* c = r->conn;
    const bool alive = c->end_external(r);
    if (--ns->inflight == 0 && ns->removed) c->pg()->ns_idle(ns);
    if (!alive) return;
    if (st.ok() && r->cmd.opcode == opc::kRead) {
        c->complete_c2h(r, r->data_len);
    } else {
        c->complete(r, st);
    }
}

void issue(Request* r) {
    const int rc = r->submit(r);
    if (rc == 0) return;
    if (rc == -ENOMEM) {
        r->io_wait.cb = [](void* arg) {
            auto* req = static_cast<Request*>(arg);
            if (req->conn->closed()) {
                finish(req, Status::generic(nvme::sc::kAbortedSqDeletion));
            } else {
                issue(req);
            }
        };
        r->io_wait.arg = r;
        bdev_queue_io_wait(r->ns->ch, &r->io_wait);
        return;
    }
    finish(r, status_from_errno(rc));
}

// Starts bdev work for r: the connection and the namespace stay alive until finish().
void start(Request* r, int (*submit)(Request*)) {
    r->submit = submit;
    r->conn->begin_external(r);
    ++r->ns->inflight;
    issue(r);
}

void bdev_done(BdevIo* io, bool success, void* arg) {
    auto* r = static_cast<Request*>(arg);
    const Status st = success ? Status::success() : status_from_bdev(io, r->cmd.opcode);
    bdev_free_io(io);
    finish(r, st);
}

int submit_read(Request* r) {
    r->h2c_iov = {r->buf.data, r->data_len};
    return bdev_readv(r->ns->info->desc, r->ns->ch, &r->h2c_iov, 1, nvme::rw_slba(r->cmd),
                      nvme::rw_nlb(r->cmd), bdev_done, r);
}

int submit_write(Request* r) {
    r->h2c_iov = {r->buf.data, r->data_len};
    return bdev_writev(r->ns->info->desc, r->ns->ch, &r->h2c_iov, 1, nvme::rw_slba(r->cmd),
                       nvme::rw_nlb(r->cmd), bdev_done, r, nvme::rw_fua(r->cmd));
}

int submit_flush(Request* r) {
    return bdev_flush(r->ns->info->desc, r->ns->ch, 0, r->ns->info->num_blocks, bdev_done, r);
}

int submit_write_zeroes(Request* r) {
    return bdev_write_zeroes(r->ns->info->desc, r->ns->ch, nvme::rw_slba(r->cmd),
                             nvme::rw_nlb(r->cmd), bdev_done, r);
}

// DSM deallocate: one range at a time (rare command; keeps the request state to one index).
void dsm_done(BdevIo* io, bool success, void* arg);
uint32_t dsm_ranges(const Request* r);

int submit_dsm_range(Request* r) {
    const auto* ranges = reinterpret_cast<const DsmRange*>(r->buf.data);
    const uint32_t nr = dsm_ranges(r);
    while (r->range_idx < nr && ranges[r->range_idx].nlb == 0) ++r->range_idx;
    if (r->range_idx >= nr) {
        finish(r, r->sub_status);
        return 0;
    }
    const DsmRange& d = ranges[r->range_idx];
    return bdev_unmap(r->ns->info->desc, r->ns->ch, d.slba, d.nlb, dsm_done, r);
}

void dsm_done(BdevIo* io, bool success, void* arg) {
    auto* r = static_cast<Request*>(arg);
    if (!success && r->sub_status.ok())
        r->sub_status = status_from_bdev(io, opc::kDatasetManagement);
    bdev_free_io(io);
    ++r->range_idx;
    if (r->conn->closed()) {
        finish(r, r->sub_status);
        return;
    }
    issue(r);
}

bool range_ok(const PgNamespace* ns, uint64_t slba, uint64_t nlb) {
    const uint64_t n = ns->info->num_blocks;
    return slba < n && nlb <= n - slba;
}

void exec_read(Request* r) {
    start(r, submit_read);
}
void exec_write(Request* r) {
    start(r, submit_write);
}

uint32_t dsm_ranges(const Request* r) {
    return std::min<uint32_t>((r->cmd.cdw10 & 0xFF) + 1,
                              r->data_len / static_cast<uint32_t>(sizeof(DsmRange)));
}

void exec_dsm(Request* r) {
    const auto* ranges = reinterpret_cast<const DsmRange*>(r->buf.data);
    const uint32_t nr = dsm_ranges(r);
    if (!((r->cmd.cdw11 >> 2) & 1)) {  // no deallocate: attributes are hints only
        r->conn->complete(r, Status::success());
        return;
    }
    for (uint32_t i = 0; i < nr; ++i) {
        if (ranges[i].nlb != 0 && !range_ok(r->ns, ranges[i].slba, ranges[i].nlb)) {
            r->conn->complete(r, Status::generic(nvme::sc::kLbaOutOfRange, true));
            return;
        }
    }
    r->range_idx = 0;
    r->sub_status = Status::success();
    if (!r->ns->info->desc->bdev()->io_type_supported(IoType::Unmap)) {
        r->conn->complete(r, Status::success());  // deallocate is advisory
        return;
    }
    start(r, submit_dsm_range);
}

}  // namespace

void io_command(Request* r) {
    TcpConn* c = r->conn;
    PgSubsystem* s = c->subsys();
    const uint8_t op = r->cmd.opcode;
    if (!s) {
        c->complete(r, Status::generic(nvme::sc::kAbortedSqDeletion));
        return;
    }
    if (op != opc::kRead && op != opc::kWrite && op != opc::kFlush && op != opc::kWriteZeroes &&
        op != opc::kDatasetManagement) {
        c->complete(r, Status::generic(nvme::sc::kInvalidOpcode, true));
        return;
    }
    PgNamespace* ns = s->find_ns(r->cmd.nsid);
    if (!ns) {
        c->complete(r, Status::generic(nvme::sc::kInvalidNamespaceOrFormat, true));
        return;
    }
    r->ns = ns;
    switch (op) {
        case opc::kRead:
        case opc::kWrite: {
            const uint64_t slba = nvme::rw_slba(r->cmd);
            const uint32_t nlb = nvme::rw_nlb(r->cmd);
            if (!range_ok(ns, slba, nlb)) {
                c->complete(r, Status::generic(nvme::sc::kLbaOutOfRange, true));
                return;
            }
            const uint64_t len = uint64_t{nlb} * ns->info->block_size;
            if (len > kMaxDataTransfer) {
                c->complete(r, Status::generic(nvme::sc::kInvalidField, true));
                return;
            }
            c->with_data(r, static_cast<uint32_t>(len), op == opc::kWrite,
                         op == opc::kWrite ? exec_write : exec_read);
            return;
        }
        case opc::kFlush:
            if (!ns->info->desc->bdev()->io_type_supported(IoType::Flush)) {
                c->complete(r, Status::success());  // nothing volatile below us
                return;
            }
            start(r, submit_flush);
            return;
        case opc::kWriteZeroes: {
            if (!range_ok(ns, nvme::rw_slba(r->cmd), nvme::rw_nlb(r->cmd))) {
                c->complete(r, Status::generic(nvme::sc::kLbaOutOfRange, true));
                return;
            }
            start(r, submit_write_zeroes);
            return;
        }
        case opc::kDatasetManagement: {
            // Like Linux nvmet, take the range list length from the SGL (at most NR+1 ranges
            // are used): hosts do not always send exactly (NR+1) * 16 bytes.
            const uint32_t len = r->incapsule ? r->icd_len : r->cmd.sgl1.length;
            if (len == 0 || len > kMaxDsmRanges * sizeof(DsmRange)) {
                c->complete(r, Status::generic(nvme::sc::kDataSglLengthInvalid, true));
                return;
            }
            c->with_data(r, len, true, exec_dsm);
            return;
        }
    }
}

}  // namespace nocstor::nvmf
