// raid5/raid6 stripe operations on the stripe's owner thread: writes (read-modify-write,
// reconstruct-write, or a full reconstruction when a member is missing) and degraded reads.
//
// An operation takes its stripe's lock (a hash table of the operations running on this thread;
// later ones for the same stripe wait behind the holder), then works through the rows it touches
// in chunks of at most kChunkBytes per member: read what the chosen mode needs into pool buffers,
// compute, write the new data (straight from the caller's buffers when they are contiguous and
// aligned) and the parity. Every write is idempotent, so an operation that runs out of resources
// half-way completes with NoMemory and the bdev layer simply runs it again.
#include "modules/raid/raid_stripe.h"

#include "modules/raid/raid_iov.h"
#include "modules/vbdev.h"
#include "runtime/runtime.h"

#include <algorithm>

namespace nocstor::raid {

std::unique_ptr<StripeOwner> make_stripe_owner(RaidBdev* r) {
    return std::make_unique<StripeOwner>(r);
}

void destroy_stripe_owner(std::unique_ptr<StripeOwner> owner) {
    owner.reset();
}

MemberChannels* owner_member_channels(StripeOwner* o) {
    return &o->mc;
}

namespace {

using namespace stripe_detail;

void run_chunk(StripeOp* op);
void advance(StripeOp* op);

bool member_error(IoStatus s) {
    return s == IoStatus::Failed || s == IoStatus::MediaError || s == IoStatus::NvmeError ||
           s == IoStatus::Timeout || s == IoStatus::Aborted;
}

const Geometry& geo(const StripeOp* op) {
    return op->raid->geometry();
}

uint64_t chunk_bytes(const StripeOp* op) {
    return (op->c1 - op->c0) * geo(op).block_size;
}

// Byte offset in the array I/O of row `row` of data strip d.
uint64_t io_offset(const StripeOp* op, uint32_t d, uint64_t row) {
    const Geometry& g = geo(op);
    const uint64_t lba = op->stripe * g.stripe_data_blocks() + d * g.strip_blocks + row;
    return (lba - op->io->offset_blocks) * g.block_size;
}

// Rows of data strip d written by the op within the current chunk: [*a, *b), false if none.
bool written_in_chunk(const StripeOp* op, uint32_t d, uint64_t* a, uint64_t* b) {
    *a = std::max(op->w0[d], op->c0);
    *b = std::min(op->w1[d], op->c1);
    return *a < *b;
}

bool get_buffer(StripeOp* op, Buffer* b) {
    if (*b) return true;
    const BufClass cls =
        chunk_bytes(op) <= op->owner->small_size ? BufClass::Small : BufClass::Large;
    *b = op->owner->buffers.get(cls);
    return bool(*b);
}

void release_buffers(StripeOp* op) {
    for (uint32_t i = 0; i < kMaxMembers; ++i) {
        if (op->buf[i]) op->owner->buffers.put(op->buf[i]);
        if (op->newbuf[i]) op->owner->buffers.put(op->newbuf[i]);
        op->buf[i] = Buffer{};
        op->newbuf[i] = Buffer{};
    }
}

uint8_t* bufp(const StripeOp* op, uint32_t member, uint64_t row) {
    return reinterpret_cast<uint8_t*>(op->buf[member].data) + (row - op->c0) * geo(op).block_size;
}

void finish(StripeOp* op) {
    release_buffers(op);
    StripeOwner* owner = op->owner;
    BdevIo* io = op->io;
    Thread* origin = op->origin;
    const IoStatus status = op->status;
    StripeOp* next = owner->unlock(op);
    owner->put_op(op);
    if (origin == Thread::current())
        bdev_io_complete(io, status);
    else
        origin->send([io, status] { bdev_io_complete(io, status); });
    if (next) run_chunk(next);
}

void member_done(BdevIo* child, bool ok, void* arg) {
    auto* mio = static_cast<MemberIo*>(arg);
    StripeOp* op = mio->op;
    const IoStatus s = child->status;
    bdev_free_io(child);
    op->owner->mc.finished(mio->member);
    if (!ok) {
        if (member_error(s)) {
            op->raid->fail_member(mio->member, io_status_name(s));
            if (!mio->write) op->replan = true;  // read the chunk another way
        } else if (op->status == IoStatus::Success) {
            op->status = s;
        }
    }
    op->owner->mios.put(mio);
    if (--op->pending == 0) advance(op);
}

// Queues one member I/O of the op: rows [row, row + rows) of `member` from/to `data`.
bool submit(StripeOp* op, uint32_t member, bool write, uint64_t row, uint64_t rows, uint8_t* data) {
    StripeOwner* o = op->owner;
    MemberIo* mio = o->mios.get();
    if (!mio || !o->mc.ch[member] || !op->raid->member(member).desc) {
        if (mio) o->mios.put(mio);
        op->status = mio ? IoStatus::Failed : IoStatus::NoMemory;
        return false;
    }
    const Geometry& g = geo(op);
    mio->op = op;
    mio->member = member;
    mio->write = write;
    mio->iov[0] = {data, rows * g.block_size};
    mio->iovcnt = 1;
    ++op->pending;
    o->mc.started(member);
    BdevDesc* desc = op->raid->member(member).desc;
    const uint64_t block = strip_block(g, op->stripe, row);
    int rc = write ? bdev_writev(desc, o->mc.ch[member], mio->iov, 1, block, rows, member_done, mio)
                   : bdev_readv(desc, o->mc.ch[member], mio->iov, 1, block, rows, member_done, mio);
    if (rc) {
        --op->pending;
        o->mc.finished(member);
        o->mios.put(mio);
        op->status = rc == -ENOMEM ? IoStatus::NoMemory : status_from_submit_rc(rc);
        return false;
    }
    return true;
}

// The new data of data strip d for the rows it writes in this chunk: straight from the caller's
// iovecs when contiguous and aligned, else gathered into a buffer. False without a buffer.
bool prepare_new_data(StripeOp* op, uint32_t d) {
    uint64_t a, b;
    if (!written_in_chunk(op, d, &a, &b)) return true;
    const BdevIo* io = op->io;
    const uint64_t off = io_offset(op, d, a), len = (b - a) * geo(op).block_size;
    op->newp[d] = iov_flat(io->iovs, io->iovcnt, off, len, 32);
    if (op->newp[d]) return true;
    if (!get_buffer(op, &op->newbuf[d])) return false;
    iov_read(io->iovs, io->iovcnt, off, len, op->newbuf[d].data);
    op->newp[d] = reinterpret_cast<uint8_t*>(op->newbuf[d].data);
    return true;
}

// Chooses how to write this chunk and issues its reads.
void plan_write(StripeOp* op) {
    const Geometry& g = geo(op);
    RaidBdev* r = op->raid;
    const uint32_t k = g.data_members();
    const uint64_t rows = op->c1 - op->c0;
    const uint32_t pm = g.p_member(op->stripe);
    const uint32_t qm = g.parity_members() == 2 ? g.q_member(op->stripe) : kMaxMembers;
    const uint32_t ok_parities = r->member_ok(pm) + (qm < kMaxMembers && r->member_ok(qm));
    bool rmw_ok = true, rcw_ok = true;
    uint64_t rmw_reads = uint64_t(ok_parities) * rows, rcw_reads = 0;
    for (uint32_t d = 0; d < k; ++d) {
        const bool ok = r->member_ok(g.data_member(op->stripe, d));
        uint64_t a, b;
        const bool written = written_in_chunk(op, d, &a, &b);
        const bool full = written && a == op->c0 && b == op->c1;
        if (written) {
            rmw_reads += b - a;
            rmw_ok = rmw_ok && ok;
        }
        if (!full) {
            rcw_reads += rows;
            rcw_ok = rcw_ok && ok;
        }
    }
    if (rmw_ok && (!rcw_ok || rmw_reads < rcw_reads))
        op->mode = Mode::Rmw;
    else if (rcw_ok)
        op->mode = Mode::Rcw;
    else
        op->mode = Mode::Reconstruct;

    for (uint32_t d = 0; d < k; ++d) {
        if (!prepare_new_data(op, d)) {
            op->status = IoStatus::NoMemory;
            return finish(op);
        }
    }
    op->phase = Phase::Reading;
    op->pending = 1;  // held while submitting
    auto read = [&](uint32_t m, uint64_t a, uint64_t b) {
        if (!get_buffer(op, &op->buf[m])) {
            op->status = IoStatus::NoMemory;
            return false;
        }
        return submit(op, m, false, a, b - a, bufp(op, m, a));
    };
    bool ok = true;
    switch (op->mode) {
        case Mode::Rmw:
            for (uint32_t d = 0; d < k && ok; ++d) {
                uint64_t a, b;
                if (written_in_chunk(op, d, &a, &b)) ok = read(g.data_member(op->stripe, d), a, b);
            }
            if (ok && r->member_ok(pm)) ok = read(pm, op->c0, op->c1);
            if (ok && qm < kMaxMembers && r->member_ok(qm)) ok = read(qm, op->c0, op->c1);
            break;
        case Mode::Rcw:
            for (uint32_t d = 0; d < k && ok; ++d) {
                uint64_t a, b;
                const bool written = written_in_chunk(op, d, &a, &b);
                if (!(written && a == op->c0 && b == op->c1))
                    ok = read(g.data_member(op->stripe, d), op->c0, op->c1);
            }
            break;
        case Mode::Reconstruct:
        case Mode::Read:
            for (uint32_t m = 0; m < g.members && ok; ++m)
                if (r->member_ok(m)) ok = read(m, op->c0, op->c1);
            break;
    }
    if (--op->pending == 0) advance(op);
}

void plan_read(StripeOp* op) {
    op->mode = Mode::Read;
    op->phase = Phase::Reading;
    op->pending = 1;
    const Geometry& g = geo(op);
    bool ok = true;
    for (uint32_t m = 0; m < g.members && ok; ++m) {
        if (!op->raid->member_ok(m)) continue;
        ok = get_buffer(op, &op->buf[m]);
        if (!ok) {
            op->status = IoStatus::NoMemory;
            break;
        }
        ok = submit(op, m, false, op->c0, op->c1 - op->c0, bufp(op, m, op->c0));
    }
    if (--op->pending == 0) advance(op);
}

// Rebuilds the missing data strips of the chunk from what was read (Reconstruct, Read modes).
bool reconstruct_missing(StripeOp* op) {
    const Geometry& g = geo(op);
    RaidBdev* r = op->raid;
    const uint32_t k = g.data_members();
    uint8_t* data[kMaxMembers];
    uint32_t missing[2];
    uint32_t n_missing = 0;
    for (uint32_t d = 0; d < k; ++d) {
        const uint32_t m = g.data_member(op->stripe, d);
        if (!r->member_ok(m)) {
            if (n_missing == 2 || !get_buffer(op, &op->buf[m])) return false;
            missing[n_missing++] = d;
        }
        data[d] = bufp(op, m, op->c0);
    }
    const uint32_t pm = g.p_member(op->stripe);
    const uint32_t qm = g.parity_members() == 2 ? g.q_member(op->stripe) : kMaxMembers;
    const uint8_t* P = r->member_ok(pm) ? bufp(op, pm, op->c0) : nullptr;
    const uint8_t* Q = qm < kMaxMembers && r->member_ok(qm) ? bufp(op, qm, op->c0) : nullptr;
    return r->parity().reconstruct(chunk_bytes(op), data, missing, n_missing, P, Q);
}

// Reads are in: compute the parity and write the new data and the parity.
void write_chunk(StripeOp* op) {
    const Geometry& g = geo(op);
    RaidBdev* r = op->raid;
    const Parity& par = r->parity();
    const uint32_t k = g.data_members();
    const uint32_t pm = g.p_member(op->stripe);
    const uint32_t qm = g.parity_members() == 2 ? g.q_member(op->stripe) : kMaxMembers;
    const bool p_ok = r->member_ok(pm), q_ok = qm < kMaxMembers && r->member_ok(qm);
    const size_t bs = g.block_size;

    if (op->mode == Mode::Rmw) {
        uint8_t* P = p_ok ? bufp(op, pm, op->c0) : nullptr;
        uint8_t* Q = q_ok ? bufp(op, qm, op->c0) : nullptr;
        for (uint32_t d = 0; d < k; ++d) {
            uint64_t a, b;
            if (!written_in_chunk(op, d, &a, &b)) continue;
            const size_t off = (a - op->c0) * bs, len = (b - a) * bs;
            uint8_t* old = bufp(op, g.data_member(op->stripe, d), a);
            par.update(len, d, old, P ? P + off : nullptr, Q ? Q + off : nullptr);
            par.update(len, d, op->newp[d], P ? P + off : nullptr, Q ? Q + off : nullptr);
        }
    } else {
        if (op->mode == Mode::Reconstruct && !reconstruct_missing(op)) {
            op->status = IoStatus::Failed;
            return finish(op);
        }
        // The chunk's data after the write, then its parity from scratch.
        uint8_t* data[kMaxMembers];
        for (uint32_t d = 0; d < k; ++d) {
            const uint32_t m = g.data_member(op->stripe, d);
            uint64_t a, b;
            const bool written = written_in_chunk(op, d, &a, &b);
            if (written && a == op->c0 && b == op->c1) {
                data[d] = op->newp[d];
                continue;
            }
            data[d] = bufp(op, m, op->c0);
            if (written) std::memcpy(bufp(op, m, a), op->newp[d], (b - a) * bs);
        }
        if ((p_ok && !get_buffer(op, &op->buf[pm])) || (q_ok && !get_buffer(op, &op->buf[qm]))) {
            op->status = IoStatus::NoMemory;
            return finish(op);
        }
        par.generate(chunk_bytes(op), data, p_ok ? bufp(op, pm, op->c0) : nullptr,
                     q_ok ? bufp(op, qm, op->c0) : nullptr);
    }

    op->phase = Phase::Writing;
    op->pending = 1;
    bool ok = true;
    for (uint32_t d = 0; d < k && ok; ++d) {
        const uint32_t m = g.data_member(op->stripe, d);
        uint64_t a, b;
        if (!written_in_chunk(op, d, &a, &b) || !r->member_ok(m)) continue;
        ok = submit(op, m, true, a, b - a, op->newp[d]);
    }
    if (ok && p_ok) ok = submit(op, pm, true, op->c0, op->c1 - op->c0, bufp(op, pm, op->c0));
    if (ok && q_ok) submit(op, qm, true, op->c0, op->c1 - op->c0, bufp(op, qm, op->c0));
    if (--op->pending == 0) advance(op);
}

// Reads are in: rebuild what is missing and copy the requested rows out.
void read_chunk(StripeOp* op) {
    const Geometry& g = geo(op);
    if (!reconstruct_missing(op)) {
        op->status = IoStatus::Failed;
        return finish(op);
    }
    for (uint32_t d = 0; d < g.data_members(); ++d) {
        uint64_t a, b;
        if (!written_in_chunk(op, d, &a, &b)) continue;  // (w0/w1: the rows read)
        iov_write(op->io->iovs, op->io->iovcnt, io_offset(op, d, a), (b - a) * g.block_size,
                  bufp(op, g.data_member(op->stripe, d), a));
    }
    op->c0 = op->c1;
    advance(op);
}

void advance(StripeOp* op) {
    if (op->status != IoStatus::Success) return finish(op);
    if (op->phase == Phase::Reading && op->pending == 0 && op->c0 < op->c1) {
        if (op->raid->array_state() == ArrayState::Offline) {
            op->status = IoStatus::Failed;
            return finish(op);
        }
        if (op->replan) {
            op->replan = false;
            release_buffers(op);
            if (++op->attempts > op->raid->members()) {
                op->status = IoStatus::Failed;
                return finish(op);
            }
            return run_chunk(op);
        }
        return op->io->type == IoType::Read ? read_chunk(op) : write_chunk(op);
    }
    // The chunk is done (written, or read and copied out).
    if (op->phase == Phase::Writing) {
        if (op->raid->array_state() == ArrayState::Offline) {
            op->status = IoStatus::Failed;
            return finish(op);
        }
        op->c0 = op->c1;
    }
    release_buffers(op);
    if (op->c0 >= op->r1) return finish(op);
    run_chunk(op);
}

void run_chunk(StripeOp* op) {
    const Geometry& g = geo(op);
    const uint64_t max_rows = std::max<uint64_t>(1, kChunkBytes / g.block_size);
    op->c1 = std::min(op->r1, op->c0 + max_rows);
    if (op->io->type == IoType::Read)
        plan_read(op);
    else
        plan_write(op);
}

}  // namespace

// The stripe's owner runs the operation (raid5/6 writes, degraded reads).
void submit_to_owner(RaidBdev* r, BdevIo* io) {
    const Geometry& g = r->geometry();
    const uint64_t stripe = io->offset_blocks / g.stripe_data_blocks();
    Thread* origin = Thread::current();
    auto start = [r, io, origin, stripe] {
        StripeOwner* owner = r->owner_here();
        StripeOp* op = owner ? owner->get_op() : nullptr;
        if (!op) {
            const IoStatus s = IoStatus::NoMemory;
            if (origin == Thread::current())
                bdev_io_complete(io, s);
            else
                origin->send([io, s] { bdev_io_complete(io, s); });
            return;
        }
        const Geometry& g = r->geometry();
        op->raid = r;
        op->owner = owner;
        op->io = io;
        op->origin = origin;
        op->stripe = stripe;
        op->status = IoStatus::Success;
        op->replan = false;
        op->attempts = 0;
        op->pending = 0;
        const uint64_t first = io->offset_blocks - stripe * g.stripe_data_blocks();
        const uint64_t last = first + io->num_blocks;  // exclusive, within the stripe
        op->r0 = g.strip_blocks;
        op->r1 = 0;
        for (uint32_t d = 0; d < g.data_members(); ++d) {
            const uint64_t s0 = uint64_t(d) * g.strip_blocks, s1 = s0 + g.strip_blocks;
            const uint64_t a = std::max(first, s0), b = std::min(last, s1);
            op->w0[d] = a < b ? a - s0 : 0;
            op->w1[d] = a < b ? b - s0 : 0;
            if (a < b) {
                op->r0 = std::min(op->r0, op->w0[d]);
                op->r1 = std::max(op->r1, op->w1[d]);
            }
        }
        op->c0 = op->r0;
        op->c1 = op->r0;
        if (owner->lock(op)) run_chunk(op);
    };
    Thread* owner = r->owner_thread(stripe);
    if (owner == origin)
        start();
    else
        owner->send(std::move(start));
}

}  // namespace nocstor::raid
