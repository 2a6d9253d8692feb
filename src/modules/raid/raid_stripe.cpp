// Operations on a lock unit's owner thread: raid5/6 user writes (read-modify-write,
// reconstruct-write, or a full reconstruction when a member cannot be read) and degraded reads,
// raid1 user writes, and the background resync, rebuild and scrub of every redundant level.
//
// An operation takes its unit's lock (a hash table of the operations running on this thread;
// later ones for the same unit wait behind the holder), then works through its rows in chunks of
// at most kChunkBytes per member: snapshot which members can be read and written, read what the
// chosen mode needs into pool buffers, compute, write. New user data is written straight from the
// caller's buffers when they are contiguous and aligned. Every write is idempotent, so a user
// operation that runs out of resources half-way completes with NoMemory and the bdev layer runs
// it again.
#include "modules/raid/raid_stripe.h"

#include "modules/raid/raid_iov.h"
#include "modules/vbdev.h"
#include "runtime/runtime.h"

#include <isa-l/raid.h>

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
void write_members(StripeOp* op);

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

bool is_user_parity(const StripeOp* op) {
    return op->kind == OpKind::Write || op->kind == OpKind::Read;
}

// Byte offset in the user I/O of row `row` of data strip d.
uint64_t io_offset(const StripeOp* op, uint32_t d, uint64_t row) {
    const Geometry& g = geo(op);
    const uint64_t lba = op->unit * g.stripe_data_blocks() + d * g.strip_blocks + row;
    return (lba - op->io->offset_blocks) * g.block_size;
}

// Rows of data strip d the user op covers within the current chunk: [*a, *b), false if none.
bool covered_in_chunk(const StripeOp* op, uint32_t d, uint64_t* a, uint64_t* b) {
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
uint8_t* scratch(const StripeOp* op, uint32_t i) {
    return reinterpret_cast<uint8_t*>(op->newbuf[i].data);
}

uint32_t p_member(const StripeOp* op) {
    return geo(op).p_member(op->unit);
}
uint32_t q_member(const StripeOp* op) {
    return geo(op).parity_members() == 2 ? geo(op).q_member(op->unit) : kMaxMembers;
}
uint32_t data_member(const StripeOp* op, uint32_t d) {
    return geo(op).data_member(op->unit, d);
}

bool writes_members(const StripeOp* op) {
    return op->kind == OpKind::Write || op->kind == OpKind::MirrorWrite ||
           (op->kind == OpKind::Scrub && op->repair);
}

// A user write that left members out completes once the superblocks on disk say those members
// are not to be trusted; else a crash now would bring them back as if they held this write.
bool must_wait_for_record(StripeOp* op) {
    RaidBdev* r = op->raid;
    if (!op->io || op->status != IoStatus::Success || !r->superblock || !writes_members(op))
        return false;
    if ((op->skipped & ~r->recorded_untrusted()) == 0) return false;
    if (r->array_state() == ArrayState::Offline) {
        op->status = IoStatus::Failed;
        return false;
    }
    return true;
}

void begin_locked(StripeOp* op);

void finish(StripeOp* op) {
    if (must_wait_for_record(op)) {
        op->parked_for_bitmap = false;
        return op->owner->park(op);
    }
    if (op->region != StripeOp::kNoRegion) {
        op->raid->bitmap()->leave(op->region);
        op->region = StripeOp::kNoRegion;
    }
    release_buffers(op);
    StripeOwner* owner = op->owner;
    Thread* origin = op->origin;
    const IoStatus status = op->status;
    StripeOp* next = owner->unlock(op);
    if (op->io) {
        BdevIo* io = op->io;
        if (origin == Thread::current())
            bdev_io_complete(io, status);
        else
            origin->send([io, status] { bdev_io_complete(io, status); });
    } else {
        ProcessDone done = op->done;
        void* arg = op->done_arg;
        const uint64_t mismatches = op->mismatches;
        if (origin == Thread::current())
            done(arg, status, mismatches);
        else
            origin->send([done, arg, status, mismatches] { done(arg, status, mismatches); });
    }
    owner->put_op(op);
    if (next) begin_locked(next);
}

void member_done(BdevIo* child, bool ok, void* arg) {
    auto* mio = static_cast<MemberIo*>(arg);
    StripeOp* op = mio->op;
    const IoStatus s = child->status;
    bdev_free_io(child);
    op->owner->mc.finished(mio->member);
    if (!ok) {
        if (member_error(s) && op->raid->geometry().tolerance() > 0) {
            op->raid->fail_member(mio->member, io_status_name(s));
            op->skipped |= 1u << mio->member;
            if (!mio->write) op->replan = true;  // read the chunk another way
        } else if (op->status == IoStatus::Success) {
            op->status = s;
        }
    }
    op->owner->mios.put(mio);
    if (--op->pending == 0) advance(op);
}

// Queues one member I/O of the op: rows [row, row + rows) of the unit on `member`, from/to the
// given iovecs. False (status set) if it could not be queued.
bool submit_iov(StripeOp* op, uint32_t member, bool write, uint64_t row, uint64_t rows,
                const iovec* iov, int iovcnt) {
    StripeOwner* o = op->owner;
    MemberIo* mio = o->mios.get();
    if (!mio || !o->mc.ch[member] || !op->raid->member(member).desc || iovcnt > MemberIo::kIovs) {
        if (mio) o->mios.put(mio);
        op->status = mio ? IoStatus::Failed : IoStatus::NoMemory;
        return false;
    }
    const Geometry& g = geo(op);
    mio->op = op;
    mio->member = member;
    mio->write = write;
    for (int i = 0; i < iovcnt; ++i) mio->iov[i] = iov[i];
    mio->iovcnt = iovcnt;
    ++op->pending;
    o->mc.started(member);
    BdevDesc* desc = op->raid->member(member).desc;
    const uint64_t block = g.data_offset + op->unit * op->raid->unit_blocks() + row;
    // A user write with FUA: everything it writes (its parity too) is durable when it completes.
    const bool fua = write && op->io && op->io->fua;
    int rc =
        write ? bdev_writev(desc, o->mc.ch[member], mio->iov, iovcnt, block, rows, member_done, mio,
                            fua)
              : bdev_readv(desc, o->mc.ch[member], mio->iov, iovcnt, block, rows, member_done, mio);
    if (rc) {
        --op->pending;
        o->mc.finished(member);
        o->mios.put(mio);
        op->status = rc == -ENOMEM ? IoStatus::NoMemory : status_from_submit_rc(rc);
        return false;
    }
    return true;
}

bool submit(StripeOp* op, uint32_t member, bool write, uint64_t row, uint64_t rows, uint8_t* data) {
    const iovec v{data, rows * geo(op).block_size};
    return submit_iov(op, member, write, row, rows, &v, 1);
}

// Reads rows [a, b) of member m into its buffer.
bool read_rows(StripeOp* op, uint32_t m, uint64_t a, uint64_t b) {
    if (!get_buffer(op, &op->buf[m])) {
        op->status = IoStatus::NoMemory;
        return false;
    }
    return submit(op, m, false, a, b - a, bufp(op, m, a));
}

bool read_chunk_of(StripeOp* op, uint32_t m) {
    return read_rows(op, m, op->c0, op->c1);
}

// --- raid5/6 ---

// The new data of data strip d for the rows it writes in this chunk: straight from the caller's
// iovecs when contiguous and aligned, else gathered into a buffer. False without a buffer.
bool prepare_new_data(StripeOp* op, uint32_t d) {
    uint64_t a, b;
    if (!covered_in_chunk(op, d, &a, &b)) return true;
    const BdevIo* io = op->io;
    const uint64_t off = io_offset(op, d, a), len = (b - a) * geo(op).block_size;
    op->newp[d] = iov_flat(io->iovs, io->iovcnt, off, len, 32);
    if (op->newp[d]) return true;
    if (!get_buffer(op, &op->newbuf[d])) return false;
    iov_read(io->iovs, io->iovcnt, off, len, op->newbuf[d].data);
    op->newp[d] = scratch(op, d);
    return true;
}

// Reconstructs the data strips that cannot be read from what was read (all readable members
// of the chunk must have been read).
bool reconstruct_unreadable(StripeOp* op) {
    const Geometry& g = geo(op);
    const uint32_t k = g.data_members();
    uint8_t* data[kMaxMembers];
    uint32_t missing[2];
    uint32_t n_missing = 0;
    for (uint32_t d = 0; d < k; ++d) {
        const uint32_t m = data_member(op, d);
        if (!op->rd[m]) {
            if (n_missing == 2 || !get_buffer(op, &op->buf[m])) return false;
            missing[n_missing++] = d;
        }
        data[d] = bufp(op, m, op->c0);
    }
    const uint32_t pm = p_member(op), qm = q_member(op);
    const uint8_t* P = op->rd[pm] ? bufp(op, pm, op->c0) : nullptr;
    const uint8_t* Q = qm < kMaxMembers && op->rd[qm] ? bufp(op, qm, op->c0) : nullptr;
    return op->raid->parity().reconstruct(chunk_bytes(op), data, missing, n_missing, P, Q);
}

bool read_all_readable(StripeOp* op) {
    bool ok = true;
    for (uint32_t m = 0; m < geo(op).members && ok; ++m)
        if (op->rd[m] || m == op->suspect) ok = read_chunk_of(op, m);
    return ok;
}

// raid6: the one member of the unit that cannot be read (a rebuild target counts as unreadable
// for its own rebuild) if it is a data member that is there and written to; else kMaxMembers.
uint32_t lone_unreadable_data_member(const StripeOp* op) {
    const Geometry& g = geo(op);
    if (g.parity_members() != 2) return kMaxMembers;
    uint32_t lone = kMaxMembers;
    for (uint32_t m = 0; m < g.members; ++m) {
        const bool readable = op->rd[m] && !(op->kind == OpKind::Rebuild && m == op->target);
        if (readable) continue;
        if (lone != kMaxMembers) return kMaxMembers;  // two: no redundancy left to check with
        lone = m;
    }
    if (lone == kMaxMembers || lone == p_member(op) || lone == q_member(op)) return kMaxMembers;
    if (!op->wr[lone] || !op->raid->member(lone).desc) return kMaxMembers;
    return lone;
}

// Where a crash cut writes to a unit (its parity not trusted yet) while a member was being
// rebuilt, rebuilding that member from P alone would turn a half-done write on another member
// into wrong data on it. Its rows on disk are right unless P and Q both point at it (with one
// member left to rebuild, raid6 still locates a single wrong member in a row): only then are
// they rebuilt from P. A torn write elsewhere leaves its rows old or new, and the parity is
// made to match them. Afterwards the member counts as read for this chunk. False without
// buffers.
bool resolve_suspect(StripeOp* op) {
    const uint32_t s = op->suspect;
    if (s == kMaxMembers) return true;
    const Geometry& g = geo(op);
    const Parity& par = op->raid->parity();
    const uint32_t k = g.data_members(), pm = p_member(op), qm = q_member(op);
    const size_t bs = g.block_size, len = chunk_bytes(op);
    Buffer psyn, qsyn;
    const bool ok = get_buffer(op, &psyn) && get_buffer(op, &qsyn);
    if (ok) {
        uint8_t* data[kMaxMembers];
        uint32_t sd = 0;
        for (uint32_t d = 0; d < k; ++d) {
            data[d] = bufp(op, data_member(op, d), op->c0);
            if (data_member(op, d) == s) sd = d;
        }
        auto* P = reinterpret_cast<uint8_t*>(psyn.data);
        auto* Q = reinterpret_cast<uint8_t*>(qsyn.data);
        par.generate(len, data, P, Q);
        void* px[3] = {bufp(op, pm, op->c0), P, P};
        void* qx[3] = {bufp(op, qm, op->c0), Q, Q};
        xor_gen(3, int(len), px);
        xor_gen(3, int(len), qx);
        for (uint64_t row = op->c0; row < op->c1; ++row) {
            const size_t off = (row - op->c0) * bs;
            const Parity::RowFault f = par.locate(bs, P + off, Q + off);
            if (f.kind != Parity::RowFault::Data || f.data_index != sd) continue;
            void* fix[3] = {bufp(op, s, row), P + off, bufp(op, s, row)};
            xor_gen(3, int(bs), fix);  // D = D_disk ^ Psyn
        }
    }
    if (psyn) op->owner->buffers.put(psyn);
    if (qsyn) op->owner->buffers.put(qsyn);
    if (!ok) return false;
    op->rd[s] = true;
    op->suspect = kMaxMembers;
    return true;
}

// Chooses how to write this chunk and issues its reads.
void plan_write(StripeOp* op) {
    const Geometry& g = geo(op);
    const uint32_t k = g.data_members();
    const uint64_t rows = op->c1 - op->c0;
    const uint32_t pm = p_member(op), qm = q_member(op);
    // Read-modify-write needs the old data it replaces and the old parity of every parity member
    // it updates, and parity that matches the data in the first place.
    bool rmw_ok = op->raid->parity_trusted(op->unit);
    bool rcw_ok = true;
    uint64_t rmw_reads = 0, rcw_reads = 0;
    for (uint32_t m : {pm, qm}) {
        if (m == kMaxMembers || !op->wr[m]) continue;
        rmw_ok = rmw_ok && op->rd[m];
        rmw_reads += rows;
    }
    for (uint32_t d = 0; d < k; ++d) {
        const bool readable = op->rd[data_member(op, d)];
        uint64_t a, b;
        const bool written = covered_in_chunk(op, d, &a, &b);
        const bool full = written && a == op->c0 && b == op->c1;
        if (written) {
            rmw_reads += b - a;
            rmw_ok = rmw_ok && readable;
        }
        if (!full) {
            rcw_reads += rows;
            rcw_ok = rcw_ok && readable;
        }
    }
    // raid6 with a member being rebuilt and not there yet in this unit: its rows are rebuilt
    // (Reconstruct reads everything) and written first (heal).
    op->heal = lone_unreadable_data_member(op);
    if (op->heal != kMaxMembers) rmw_ok = rcw_ok = false;
    // On a tie RMW wins: it touches fewer members (data and parity only), leaving the others free.
    if (rmw_ok && (!rcw_ok || rmw_reads <= rcw_reads))
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
    bool ok = true;
    switch (op->mode) {
        case Mode::Rmw:
            for (uint32_t d = 0; d < k && ok; ++d) {
                uint64_t a, b;
                if (covered_in_chunk(op, d, &a, &b)) ok = read_rows(op, data_member(op, d), a, b);
            }
            for (uint32_t m : {pm, qm})
                if (ok && m != kMaxMembers && op->wr[m]) ok = read_chunk_of(op, m);
            break;
        case Mode::Rcw:
            for (uint32_t d = 0; d < k && ok; ++d) {
                uint64_t a, b;
                const bool written = covered_in_chunk(op, d, &a, &b);
                if (!(written && a == op->c0 && b == op->c1))
                    ok = read_chunk_of(op, data_member(op, d));
            }
            break;
        case Mode::Reconstruct:
            ok = read_all_readable(op);
            break;
    }
    if (--op->pending == 0) advance(op);
}

// Reads are in: compute the parity and write the new data and the parity.
void write_after_reads(StripeOp* op) {
    const Geometry& g = geo(op);
    const Parity& par = op->raid->parity();
    const uint32_t k = g.data_members();
    const uint32_t pm = p_member(op), qm = q_member(op);
    const bool p_wr = op->wr[pm], q_wr = qm < kMaxMembers && op->wr[qm];
    const size_t bs = g.block_size;

    if (!resolve_suspect(op)) {
        op->status = IoStatus::NoMemory;
        return finish(op);
    }
    if (op->mode == Mode::Rmw) {
        uint8_t* P = p_wr ? bufp(op, pm, op->c0) : nullptr;
        uint8_t* Q = q_wr ? bufp(op, qm, op->c0) : nullptr;
        for (uint32_t d = 0; d < k; ++d) {
            uint64_t a, b;
            if (!covered_in_chunk(op, d, &a, &b)) continue;
            const size_t off = (a - op->c0) * bs, len = (b - a) * bs;
            uint8_t* old = bufp(op, data_member(op, d), a);
            par.update(len, d, old, P ? P + off : nullptr, Q ? Q + off : nullptr);
            par.update(len, d, op->newp[d], P ? P + off : nullptr, Q ? Q + off : nullptr);
        }
    } else {
        if (op->mode == Mode::Reconstruct && !reconstruct_unreadable(op)) {
            op->status = IoStatus::Failed;
            return finish(op);
        }
        // The chunk's data after the write, then its parity from scratch.
        uint8_t* data[kMaxMembers];
        for (uint32_t d = 0; d < k; ++d) {
            const uint32_t m = data_member(op, d);
            uint64_t a, b;
            const bool written = covered_in_chunk(op, d, &a, &b);
            if (written && a == op->c0 && b == op->c1) {
                data[d] = op->newp[d];
                continue;
            }
            data[d] = bufp(op, m, op->c0);
            if (written) std::memcpy(bufp(op, m, a), op->newp[d], (b - a) * bs);
        }
        if ((p_wr && !get_buffer(op, &op->buf[pm])) || (q_wr && !get_buffer(op, &op->buf[qm]))) {
            op->status = IoStatus::NoMemory;
            return finish(op);
        }
        par.generate(chunk_bytes(op), data, p_wr ? bufp(op, pm, op->c0) : nullptr,
                     q_wr ? bufp(op, qm, op->c0) : nullptr);
        if (op->heal != kMaxMembers) {
            // The member's rows as they are after this write, on it before anything else.
            const uint32_t h = op->heal;
            uint32_t hd = 0;
            while (data_member(op, hd) != h) ++hd;
            op->phase = Phase::Healing;
            op->pending = 1;
            submit(op, h, true, op->c0, op->c1 - op->c0, data[hd]);
            if (--op->pending == 0) advance(op);
            return;
        }
    }
    write_members(op);
}

// The chunk's new data and parity go to the members (the healed member has its rows already).
void write_members(StripeOp* op) {
    const Geometry& g = geo(op);
    const uint32_t k = g.data_members();
    const uint32_t pm = p_member(op), qm = q_member(op);
    const bool p_wr = op->wr[pm], q_wr = qm < kMaxMembers && op->wr[qm];
    op->phase = Phase::Writing;
    op->pending = 1;
    bool ok = true;
    for (uint32_t d = 0; d < k && ok; ++d) {
        const uint32_t m = data_member(op, d);
        uint64_t a, b;
        if (!covered_in_chunk(op, d, &a, &b) || !op->wr[m] || m == op->heal) continue;
        ok = submit(op, m, true, a, b - a, op->newp[d]);
    }
    if (ok && p_wr) ok = submit(op, pm, true, op->c0, op->c1 - op->c0, bufp(op, pm, op->c0));
    if (ok && q_wr) submit(op, qm, true, op->c0, op->c1 - op->c0, bufp(op, qm, op->c0));
    if (--op->pending == 0) advance(op);
}

// Degraded read: rebuild what cannot be read and copy the requested rows out.
void read_after_reads(StripeOp* op) {
    const Geometry& g = geo(op);
    if (!resolve_suspect(op)) {
        op->status = IoStatus::NoMemory;
        return finish(op);
    }
    if (!reconstruct_unreadable(op)) {
        op->status = IoStatus::Failed;
        return finish(op);
    }
    for (uint32_t d = 0; d < g.data_members(); ++d) {
        uint64_t a, b;
        if (!covered_in_chunk(op, d, &a, &b)) continue;
        iov_write(op->io->iovs, op->io->iovcnt, io_offset(op, d, a), (b - a) * g.block_size,
                  bufp(op, data_member(op, d), a));
    }
    op->phase = Phase::Writing;  // nothing to write: the chunk is done
    advance(op);
}

// Background operations on raid5/6 once the chunk's reads are in.
void parity_process_after_reads(StripeOp* op) {
    const Geometry& g = geo(op);
    const Parity& par = op->raid->parity();
    const uint32_t k = g.data_members();
    const uint32_t pm = p_member(op), qm = q_member(op);
    const size_t bs = g.block_size, len = chunk_bytes(op);
    if (!resolve_suspect(op)) {
        op->status = IoStatus::NoMemory;
        return finish(op);
    }
    if (!reconstruct_unreadable(op)) {
        op->status = IoStatus::Failed;
        return finish(op);
    }
    uint8_t* data[kMaxMembers];
    for (uint32_t d = 0; d < k; ++d) data[d] = bufp(op, data_member(op, d), op->c0);
    // The parity the data calls for, in scratch buffers 0 (P) and 1 (Q).
    if (!get_buffer(op, &op->newbuf[0]) || (qm < kMaxMembers && !get_buffer(op, &op->newbuf[1]))) {
        op->status = IoStatus::NoMemory;
        return finish(op);
    }
    uint8_t* P = scratch(op, 0);
    uint8_t* Q = qm < kMaxMembers ? scratch(op, 1) : nullptr;
    par.generate(len, data, P, Q);

    op->phase = Phase::Writing;
    op->pending = 1;
    bool ok = true;
    switch (op->kind) {
        case OpKind::Resync:
            if (op->wr[pm]) ok = submit(op, pm, true, op->c0, op->c1 - op->c0, P);
            if (ok && Q && op->wr[qm]) submit(op, qm, true, op->c0, op->c1 - op->c0, Q);
            break;
        case OpKind::Rebuild: {
            const uint32_t t = op->target;
            if (!op->wr[t]) {  // the target failed: the rebuild stops
                op->status = IoStatus::Aborted;
                break;
            }
            uint8_t* content = t == pm ? P : t == qm ? Q : bufp(op, t, op->c0);
            submit(op, t, true, op->c0, op->c1 - op->c0, content);
            break;
        }
        case OpKind::Scrub: {
            uint64_t bad_rows = 0;  // in this chunk
            for (uint64_t row = op->c0; row < op->c1; ++row) {
                const size_t off = (row - op->c0) * bs;
                const bool bad_p = std::memcmp(P + off, bufp(op, pm, row), bs) != 0;
                const bool bad_q = Q && std::memcmp(Q + off, bufp(op, qm, row), bs) != 0;
                if (bad_p || bad_q) ++bad_rows;
            }
            op->mismatches += bad_rows;
            if (op->repair && bad_rows) {
                if (op->wr[pm]) ok = submit(op, pm, true, op->c0, op->c1 - op->c0, P);
                if (ok && Q && op->wr[qm]) submit(op, qm, true, op->c0, op->c1 - op->c0, Q);
            }
            break;
        }
        default:
            break;
    }
    if (--op->pending == 0) advance(op);
}

void plan_parity_process(StripeOp* op) {
    const Geometry& g = geo(op);
    // Scrub compares everything: it needs every member. The others read what can be read and
    // rebuild the rest (a rebuild target is never readable in its unrebuilt part).
    if (op->kind == OpKind::Scrub) {
        for (uint32_t m = 0; m < g.members; ++m) {
            if (!op->rd[m]) {
                op->status = IoStatus::Aborted;  // degraded: nothing to compare with
                return finish(op);
            }
        }
    }
    if (op->kind == OpKind::Resync) {
        // A member gone since the resync started: it waits for the array to be whole again
        // (see RaidBdev::resync_can_run).
        for (uint32_t m = 0; m < g.members; ++m) {
            if (!op->rd[m] && !op->wr[m]) {
                op->status = IoStatus::Aborted;
                return finish(op);
            }
        }
    }
    if (op->kind == OpKind::Rebuild) op->rd[op->target] = false;
    op->phase = Phase::Reading;
    op->pending = 1;
    read_all_readable(op);
    if (--op->pending == 0) advance(op);
}

// --- raid1 ---

// Write, unmap or write-zeroes of rows [c0, c1) on member m (raid1: the user I/O as it is).
bool submit_mirror(StripeOp* op, uint32_t m) {
    const BdevIo* io = op->io;
    if (io->type == IoType::Write)
        return submit_iov(op, m, true, op->c0, op->c1 - op->c0, io->iovs, io->iovcnt);
    StripeOwner* o = op->owner;
    MemberIo* mio = o->mios.get();
    if (!mio) {
        op->status = IoStatus::NoMemory;
        return false;
    }
    mio->op = op;
    mio->member = m;
    mio->write = true;
    ++op->pending;
    o->mc.started(m);
    BdevDesc* desc = op->raid->member(m).desc;
    const uint64_t block = geo(op).data_offset + op->unit * op->raid->unit_blocks() + op->c0;
    const uint64_t n = op->c1 - op->c0;
    int rc = io->type == IoType::Unmap
                 ? bdev_unmap(desc, o->mc.ch[m], block, n, member_done, mio)
                 : bdev_write_zeroes(desc, o->mc.ch[m], block, n, member_done, mio);
    if (rc) {
        --op->pending;
        o->mc.finished(m);
        o->mios.put(mio);
        op->status = rc == -ENOMEM ? IoStatus::NoMemory : status_from_submit_rc(rc);
        return false;
    }
    return true;
}

void plan_mirror_write(StripeOp* op) {
    op->phase = Phase::Writing;
    op->pending = 1;
    bool ok = true;
    for (uint32_t m = 0; m < geo(op).members && ok; ++m)
        if (op->wr[m]) ok = submit_mirror(op, m);
    if (--op->pending == 0) advance(op);
}

uint32_t first_readable(const StripeOp* op) {
    for (uint32_t m = 0; m < geo(op).members; ++m)
        if (op->rd[m] && m != op->target) return m;
    return kMaxMembers;
}

void plan_mirror_process(StripeOp* op) {
    const uint32_t src = first_readable(op);
    if (src == kMaxMembers) {
        op->status = IoStatus::Failed;
        return finish(op);
    }
    op->phase = Phase::Reading;
    op->pending = 1;
    if (op->kind == OpKind::Scrub) {
        for (uint32_t m = 0; m < geo(op).members; ++m)
            if (op->rd[m]) read_chunk_of(op, m);
    } else {
        read_chunk_of(op, src);
    }
    if (--op->pending == 0) advance(op);
}

void mirror_process_after_reads(StripeOp* op) {
    const Geometry& g = geo(op);
    const uint32_t src = first_readable(op);
    const uint64_t rows = op->c1 - op->c0;
    op->phase = Phase::Writing;
    op->pending = 1;
    uint8_t* data = bufp(op, src, op->c0);
    switch (op->kind) {
        case OpKind::Resync:
            for (uint32_t m = 0; m < g.members; ++m)
                if (m != src && op->wr[m]) submit(op, m, true, op->c0, rows, data);
            break;
        case OpKind::Rebuild:
            if (op->wr[op->target])
                submit(op, op->target, true, op->c0, rows, data);
            else
                op->status = IoStatus::Aborted;  // the target failed: the rebuild stops
            break;
        case OpKind::Scrub: {
            // A row counts once, however many mirrors differ in it.
            bool differs[kMaxMembers] = {};
            for (uint64_t row = op->c0; row < op->c1; ++row) {
                bool bad_row = false;
                for (uint32_t m = 0; m < g.members; ++m) {
                    if (m == src || !op->rd[m]) continue;
                    if (std::memcmp(bufp(op, m, row), bufp(op, src, row), g.block_size) != 0)
                        differs[m] = bad_row = true;
                }
                op->mismatches += bad_row;
            }
            for (uint32_t m = 0; m < g.members; ++m)
                if (differs[m] && op->repair && op->wr[m]) submit(op, m, true, op->c0, rows, data);
            break;
        }
        default:
            break;
    }
    if (--op->pending == 0) advance(op);
}

// --- the chunk loop ---

void plan_chunk(StripeOp* op) {
    for (uint32_t m = 0; m < geo(op).members; ++m) {
        op->rd[m] = op->raid->member_readable(m, op->unit);
        op->wr[m] = op->raid->member_writable(m);
        if (!op->wr[m]) op->skipped |= 1u << m;
    }
    op->heal = kMaxMembers;
    op->suspect =
        op->kind != OpKind::Scrub && geo(op).parity() && !op->raid->parity_trusted(op->unit)
            ? lone_unreadable_data_member(op)
            : kMaxMembers;
    switch (op->kind) {
        case OpKind::Write:
            return plan_write(op);
        case OpKind::Read:
            op->phase = Phase::Reading;
            op->pending = 1;
            read_all_readable(op);
            if (--op->pending == 0) advance(op);
            return;
        case OpKind::MirrorWrite:
            return plan_mirror_write(op);
        default:
            return geo(op).parity() ? plan_parity_process(op) : plan_mirror_process(op);
    }
}

void advance(StripeOp* op) {
    if (op->status != IoStatus::Success) return finish(op);
    if (op->phase == Phase::Reading) {
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
        switch (op->kind) {
            case OpKind::Write:
                return write_after_reads(op);
            case OpKind::Read:
                return read_after_reads(op);
            default:
                return geo(op).parity() ? parity_process_after_reads(op)
                                        : mirror_process_after_reads(op);
        }
    }
    if (op->phase == Phase::Healing) return write_members(op);
    // The chunk is done.
    if (is_user_parity(op) || op->kind == OpKind::MirrorWrite) {
        if (op->raid->array_state() == ArrayState::Offline) {
            op->status = IoStatus::Failed;
            return finish(op);
        }
    }
    release_buffers(op);
    op->c0 = op->c1;
    if (op->c0 >= op->r1) return finish(op);
    run_chunk(op);
}

void run_chunk(StripeOp* op) {
    const uint64_t max_rows = std::max<uint64_t>(1, kChunkBytes / geo(op).block_size);
    op->c1 = op->kind == OpKind::MirrorWrite ? op->r1 : std::min(op->r1, op->c0 + max_rows);
    plan_chunk(op);
}

// Takes an op on the calling (owner) thread and starts it once it holds its unit.
StripeOp* new_op(RaidBdev* r, OpKind kind, uint64_t unit, Thread* origin) {
    StripeOwner* owner = r->owner_here();
    StripeOp* op = owner ? owner->get_op() : nullptr;
    if (!op) return nullptr;
    op->raid = r;
    op->owner = owner;
    op->kind = kind;
    op->io = nullptr;
    op->origin = origin;
    op->unit = unit;
    op->status = IoStatus::Success;
    op->replan = false;
    op->attempts = 0;
    op->pending = 0;
    op->target = kMaxMembers;
    op->repair = false;
    op->mismatches = 0;
    op->done = nullptr;
    op->done_arg = nullptr;
    op->region = StripeOp::kNoRegion;
    op->skipped = 0;
    return op;
}

// The op holds its unit: a write first makes sure its region's bitmap bit is on disk.
void begin_locked(StripeOp* op) {
    WriteIntentBitmap* bm = op->raid->bitmap();
    if (bm && writes_members(op)) {
        op->region = op->raid->region_of_unit(op->unit);
        if (!bm->enter(op->region)) {
            op->parked_for_bitmap = true;
            return op->owner->park(op);
        }
    }
    run_chunk(op);
}

void start(StripeOp* op) {
    op->c0 = op->r0;
    op->c1 = op->r0;
    if (op->owner->lock(op)) begin_locked(op);
}

}  // namespace

void wake_parked(StripeOwner* o) {
    StripeOp* list = o->take_parked();
    while (list) {
        StripeOp* op = list;
        list = op->next_parked;
        if (!op->parked_for_bitmap)
            finish(op);  // parks again if the failure is not on disk yet
        else if (o->raid->bitmap()->ready(op->region))
            run_chunk(op);
        else
            o->park(op);
    }
}

void submit_to_owner(RaidBdev* r, BdevIo* io) {
    const Geometry& g = r->geometry();
    const bool mirror = g.level == Level::Raid1;
    const uint64_t unit = mirror ? io->offset_blocks / RaidBdev::kMirrorUnitBlocks
                                 : io->offset_blocks / g.stripe_data_blocks();
    Thread* origin = Thread::current();
    auto begin = [r, io, origin, unit, mirror] {
        const OpKind kind = mirror                     ? OpKind::MirrorWrite
                            : io->type == IoType::Read ? OpKind::Read
                                                       : OpKind::Write;
        StripeOp* op = new_op(r, kind, unit, origin);
        if (!op) {
            const IoStatus s = IoStatus::NoMemory;
            if (origin == Thread::current())
                bdev_io_complete(io, s);
            else
                origin->send([io, s] { bdev_io_complete(io, s); });
            return;
        }
        const Geometry& g = r->geometry();
        op->io = io;
        if (mirror) {
            op->r0 = io->offset_blocks - unit * RaidBdev::kMirrorUnitBlocks;
            op->r1 = op->r0 + io->num_blocks;
        } else {
            const uint64_t first = io->offset_blocks - unit * g.stripe_data_blocks();
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
        }
        start(op);
    };
    Thread* owner = r->owner_thread(unit);
    if (owner == origin)
        begin();
    else
        owner->send(std::move(begin));
}

void submit_process(RaidBdev* r, const ProcessRequest* req) {
    Thread* origin = Thread::current();
    auto begin = [r, req, origin] {
        StripeOp* op = new_op(r, req->kind, req->unit, origin);
        if (!op) {
            origin->send([req] { req->done(req->arg, IoStatus::NoMemory, 0); });
            return;
        }
        op->r0 = req->row0;
        op->r1 = req->row1;
        op->target = req->target;
        op->repair = req->repair;
        op->done = req->done;
        op->done_arg = req->arg;
        start(op);
    };
    r->owner_thread(req->unit)->send(std::move(begin));
}

}  // namespace nocstor::raid
