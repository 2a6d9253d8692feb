// The RAID data path on the submitting thread: raid0 and concat (one member per I/O), raid1
// (reads from one mirror with failover, writes to all), flush to every member, and healthy
// raid5/6 reads straight from the data members. Everything that needs a stripe's parity goes to
// the stripe's owner thread (raid_stripe.cpp).
#include "modules/raid/raid_bdev.h"
#include "modules/raid/raid_iov.h"
#include "modules/vbdev.h"

namespace nocstor::raid {

namespace {

// Per array I/O state while its member I/O is out (in the BdevIo's driver context).
struct FanoutCtx {
    RaidChannel* ch;
    uint32_t pending;
    IoStatus status;
    uint32_t tried;       // raid1 reads: mirrors tried (bit mask)
    bool retry_degraded;  // raid5/6 reads: a member failed, read again through the owner
    uint32_t member;      // raid0/concat: the one member the I/O went to
};

FanoutCtx* ctx(BdevIo* io) {
    return io->ctx<FanoutCtx>();
}

// Errors that say the member is bad (not "retry later" or "you asked for something wrong").
bool member_error(IoStatus s) {
    return s == IoStatus::Failed || s == IoStatus::MediaError || s == IoStatus::NvmeError ||
           s == IoStatus::Timeout || s == IoStatus::Aborted;
}

int submit_member(RaidChannel* ch, uint32_t m, IoType type, iovec* iov, int iovcnt, uint64_t block,
                  uint64_t blocks, BdevIoCompletion cb, void* arg, bool fua = false) {
    BdevDesc* desc = ch->raid->member(m).desc;
    IoChannel* mch = ch->mc.ch[m];
    if (!desc || !mch) return -ENODEV;
    ch->mc.started(m);
    int rc;
    switch (type) {
        case IoType::Read:
            rc = bdev_readv(desc, mch, iov, iovcnt, block, blocks, cb, arg);
            break;
        case IoType::Write:
            rc = bdev_writev(desc, mch, iov, iovcnt, block, blocks, cb, arg, fua);
            break;
        case IoType::Unmap:
            rc = bdev_unmap(desc, mch, block, blocks, cb, arg);
            break;
        case IoType::WriteZeroes:
            rc = bdev_write_zeroes(desc, mch, block, blocks, cb, arg);
            break;
        case IoType::Flush:
            rc = bdev_flush(desc, mch, block, blocks, cb, arg);
            break;
        default:
            rc = -ENOTSUP;
    }
    if (rc) ch->mc.finished(m);
    return rc;
}

// Merges a member's outcome into the array I/O's; a worse status wins.
void merge_status(FanoutCtx* c, IoStatus s) {
    if (s == IoStatus::Success) return;
    if (c->status == IoStatus::Success || c->status == IoStatus::NoMemory) c->status = s;
}

// --- raid0, concat ---

void plain_done(BdevIo* child, bool, void* arg) {
    auto* io = static_cast<BdevIo*>(arg);
    FanoutCtx* c = ctx(io);
    const IoStatus s = child->status;
    bdev_free_io(child);
    c->ch->mc.finished(c->member);
    bdev_io_complete(io, s);
}

// The array I/O itself, forwarded to its member (bdev_forward_io), is back; arg: the member.
void plain_forwarded_done(BdevIo* io, bool, void* arg) {
    auto* ch = static_cast<RaidChannel*>(io->module_channel);
    ch->mc.finished(uint32_t(reinterpret_cast<uintptr_t>(arg)));
    bdev_io_complete(io, io->status);
}

// --- fan-out to several members (raid1 writes, flush) ---

void fanout_done(BdevIo* child, bool ok, void* arg) {
    auto* io = static_cast<BdevIo*>(arg);
    FanoutCtx* c = ctx(io);
    RaidBdev* r = c->ch->raid;
    const uint32_t m = r->member_of(child->bdev);
    const IoStatus s = child->status;
    bdev_free_io(child);
    if (m < kMaxMembers) {
        c->ch->mc.finished(m);
        // A redundant array takes a member that failed a write out of service: it holds stale
        // data from now on.
        if (!ok && member_error(s) && r->geometry().tolerance() > 0)
            r->fail_member(m, io_status_name(s));
        else if (!ok)
            merge_status(c, s);
    }
    if (--c->pending > 0) return;
    if (c->status == IoStatus::Success && r->array_state() == ArrayState::Offline)
        c->status = IoStatus::Failed;
    bdev_io_complete(io, c->status);
}

// Sends io's operation to every member in service (mapped 1:1: raid1, or flush of anything).
void fanout(RaidBdev* r, RaidChannel* ch, BdevIo* io, bool whole_members) {
    FanoutCtx* c = ctx(io);
    c->ch = ch;
    c->status = IoStatus::Success;
    c->pending = 1;  // held while submitting
    for (uint32_t m = 0; m < r->members(); ++m) {
        if (!r->member_writable(m)) continue;
        const uint64_t block = whole_members ? r->geometry().data_offset
                                             : r->geometry().data_offset + io->offset_blocks;
        const uint64_t blocks =
            whole_members ? (r->geometry().level == Level::Concat ? r->geometry().concat_blocks[m]
                                                                  : r->geometry().member_blocks)
                          : io->num_blocks;
        ++c->pending;
        int rc = submit_member(ch, m, io->type, io->iovs, io->iovcnt, block, blocks, fanout_done,
                               io, io->fua);
        if (rc) {
            --c->pending;
            merge_status(c, rc == -ENOMEM ? IoStatus::NoMemory : status_from_submit_rc(rc));
        }
    }
    if (--c->pending > 0) return;
    if (c->status == IoStatus::Success && r->array_state() == ArrayState::Offline)
        c->status = IoStatus::Failed;
    bdev_io_complete(io, c->status);
}

// --- raid1 reads: one mirror, the next one on an error ---

void mirror_read(RaidBdev* r, RaidChannel* ch, BdevIo* io);

void mirror_read_done(BdevIo* child, bool ok, void* arg) {
    auto* io = static_cast<BdevIo*>(arg);
    FanoutCtx* c = ctx(io);
    RaidBdev* r = c->ch->raid;
    const uint32_t m = r->member_of(child->bdev);
    const IoStatus s = child->status;
    bdev_free_io(child);
    if (m < kMaxMembers) c->ch->mc.finished(m);
    if (ok) return bdev_io_complete(io, IoStatus::Success);
    if (m < kMaxMembers && member_error(s)) {
        r->fail_member(m, io_status_name(s));
        return mirror_read(r, c->ch, io);  // the next mirror
    }
    bdev_io_complete(io, s);
}

void mirror_read(RaidBdev* r, RaidChannel* ch, BdevIo* io) {
    FanoutCtx* c = ctx(io);
    const uint32_t n = r->members();
    // Until the resync got there the mirrors may differ: read what the resync copies from (the
    // first member that can be read), so that every read of a block answers the same.
    const bool synced = r->parity_trusted(io->offset_blocks / RaidBdev::kMirrorUnitBlocks);
    const uint32_t first = synced ? ch->next_mirror : 0;
    for (uint32_t i = 0; i < n; ++i) {
        const uint32_t m = (first + i) % n;
        if (!r->member_ok(m) || (c->tried & (1u << m))) continue;
        if (synced) ch->next_mirror = m + 1;
        c->tried |= 1u << m;
        int rc = submit_member(ch, m, IoType::Read, io->iovs, io->iovcnt,
                               r->geometry().data_offset + io->offset_blocks, io->num_blocks,
                               mirror_read_done, io);
        if (rc == 0) return;
        if (rc == -ENOMEM) return bdev_io_complete(io, IoStatus::NoMemory);
    }
    bdev_io_complete(io, IoStatus::Failed);  // no mirror left
}

// --- raid5/6 reads from healthy data members ---

void parity_read_done(BdevIo* child, bool ok, void* arg) {
    auto* mio = static_cast<MemberIo*>(arg);
    BdevIo* io = mio->parent;
    FanoutCtx* c = ctx(io);
    RaidBdev* r = c->ch->raid;
    const IoStatus s = child->status;
    bdev_free_io(child);
    c->ch->mc.finished(mio->member);
    if (!ok) {
        if (member_error(s)) {
            r->fail_member(mio->member, io_status_name(s));
            c->retry_degraded = true;
        } else {
            merge_status(c, s);
        }
    }
    c->ch->mios.put(mio);
    if (--c->pending > 0) return;
    if (c->retry_degraded && c->status == IoStatus::Success)
        return submit_to_owner(r, io);  // reconstruct from the others
    bdev_io_complete(io, c->status);
}

}  // namespace

void submit_plain(RaidBdev* r, RaidChannel* ch, BdevIo* io) {
    const Extent e = map_plain(r->geometry(), io->offset_blocks, io->num_blocks);
    if (e.blocks != io->num_blocks) return bdev_io_complete(io, IoStatus::InvalidRange);
    if (!r->member_ok(e.member)) return bdev_io_complete(io, IoStatus::Failed);
    if (io->type == IoType::Read || io->type == IoType::Write) {
        // No second bdev_io: the array I/O goes down to the member as it is.
        BdevDesc* desc = r->member(e.member).desc;
        IoChannel* mch = ch->mc.ch[e.member];
        if (desc && mch) {
            ch->mc.started(e.member);
            const int rc = bdev_forward_io(desc, mch, io, e.member_block, plain_forwarded_done,
                                           reinterpret_cast<void*>(uintptr_t(e.member)));
            if (rc == 0) return;
            ch->mc.finished(e.member);
            if (rc != -ENOTSUP) return bdev_io_complete(io, status_from_submit_rc(rc));
        }
    }
    FanoutCtx* c = ctx(io);
    c->ch = ch;
    c->member = e.member;  // the completion needs no search by bdev
    int rc = submit_member(ch, e.member, io->type, io->iovs, io->iovcnt, e.member_block, e.blocks,
                           plain_done, io, io->fua);
    if (rc) bdev_io_complete(io, status_from_submit_rc(rc));
}

void submit_mirror(RaidBdev* r, RaidChannel* ch, BdevIo* io) {
    if (io->type == IoType::Read) {
        FanoutCtx* c = ctx(io);
        c->ch = ch;
        c->tried = 0;
        return mirror_read(r, ch, io);
    }
    // Writes take their unit's lock on its owner, so that a resync or rebuild copying that unit
    // never puts older data over them.
    submit_to_owner(r, io);
}

void submit_all_members(RaidBdev* r, RaidChannel* ch, BdevIo* io) {
    fanout(r, ch, io, /*whole_members=*/true);
}

void submit_parity(RaidBdev* r, RaidChannel* ch, BdevIo* io) {
    if (io->type != IoType::Read) return submit_to_owner(r, io);
    const Geometry& g = r->geometry();
    // The layer splits I/O at stripe boundaries: this read is in one stripe. Serve it from the
    // data members if they are all there.
    const StripeAddr a = map_stripe(g, io->offset_blocks);
    uint32_t pieces = 0;
    for (uint64_t done = 0; done < io->num_blocks; ++pieces) {
        const uint32_t d = uint32_t(a.d + pieces);
        const uint64_t row = pieces == 0 ? a.row : 0;
        const uint64_t n = std::min(io->num_blocks - done, g.strip_blocks - row);
        if (!r->member_ok(g.data_member(a.stripe, d))) return submit_to_owner(r, io);
        done += n;
    }
    FanoutCtx* c = ctx(io);
    c->ch = ch;
    c->status = IoStatus::Success;
    c->retry_degraded = false;
    if (pieces == 1) {
        // One strip: the array I/O's iovecs go to the member as they are.
        ctx(io)->pending = 1;
        MemberIo* mio = ch->mios.get();
        if (!mio) return bdev_io_complete(io, IoStatus::NoMemory);
        mio->parent = io;
        mio->member = g.data_member(a.stripe, a.d);
        int rc =
            submit_member(ch, mio->member, IoType::Read, io->iovs, io->iovcnt,
                          strip_block(g, a.stripe, a.row), io->num_blocks, parity_read_done, mio);
        if (rc) {
            ch->mios.put(mio);
            bdev_io_complete(io, status_from_submit_rc(rc));
        }
        return;
    }
    c->pending = 1;  // held while submitting
    uint64_t done = 0;
    for (uint32_t i = 0; i < pieces; ++i) {
        const uint32_t d = a.d + i;
        const uint64_t row = i == 0 ? a.row : 0;
        const uint64_t n = std::min(io->num_blocks - done, g.strip_blocks - row);
        MemberIo* mio = ch->mios.get();
        if (!mio) {
            merge_status(c, IoStatus::NoMemory);  // the layer retries the read
            break;
        }
        mio->parent = io;
        mio->member = g.data_member(a.stripe, d);
        mio->iovcnt = iov_slice(io->iovs, io->iovcnt, done * g.block_size, n * g.block_size,
                                mio->iov, MemberIo::kIovs);
        if (mio->iovcnt < 0) {
            // Too many iovecs for a piece: the owner reads through buffers and copies.
            ch->mios.put(mio);
            c->retry_degraded = true;
            break;
        }
        ++c->pending;
        int rc = submit_member(ch, mio->member, IoType::Read, mio->iov, mio->iovcnt,
                               strip_block(g, a.stripe, row), n, parity_read_done, mio);
        if (rc) {
            --c->pending;
            ch->mios.put(mio);
            merge_status(c, rc == -ENOMEM ? IoStatus::NoMemory : status_from_submit_rc(rc));
            break;
        }
        done += n;
    }
    if (--c->pending > 0) return;
    if (c->retry_degraded && c->status == IoStatus::Success) return submit_to_owner(r, io);
    bdev_io_complete(io, c->status);
}

}  // namespace nocstor::raid
