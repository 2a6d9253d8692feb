#include "modules/lvol/lvs_journal.h"

#include "util/log.h"

#include <cerrno>
#include <cstring>
#include <memory>

namespace nocstor::lvol {

LvsJournal::LvsJournal(BdevDesc* base, const Superblock& sb, const LvsState* state,
                       const Recovered& r)
    : base_(base), sb_(sb), state_(state) {
    vtail_ = r.ckpt.journal_pos;
    vhead_ = vtail_ + r.used_bytes;
    next_seq_ = r.next_seq;
    ckpt_seq_ = r.ckpt.seq;
    ckpt_next_slot_ = r.ckpt_slot ^ 1;
}

void LvsJournal::commit(Op op, Done done) {
    if (failed_) return done(-EIO);
    pending_.push_back({std::move(op), std::move(done)});
    kick();
}

void LvsJournal::checkpoint(Done done) {
    if (failed_) return done(-EIO);
    ckpt_waiters_.push_back(std::move(done));
    kick();
}

void LvsJournal::fail_all() {
    failed_ = true;
    auto pending = std::move(pending_);
    auto waiters = std::move(ckpt_waiters_);
    for (auto& p : pending) p.done(-EIO);
    for (auto& w : waiters) w(-EIO);
}

void LvsJournal::kick() {
    if (in_flight_ || failed_) return;
    if (ckpt_wanted_ || !ckpt_waiters_.empty()) return write_checkpoint();
    if (pending_.empty()) return;
    const uint64_t J = sb_.journal_bytes;
    // Group commit: as many queued operations as fit in a quarter of the journal (at least one).
    std::vector<Pending> batch;
    uint64_t payload = 0;
    std::vector<uint8_t> scratch;
    while (!pending_.empty()) {
        scratch.clear();
        op_encode(pending_.front().op, &scratch);
        if (!batch.empty() && payload + scratch.size() > J / 4) break;
        payload += scratch.size();
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
    }
    const uint64_t bytes = batch_bytes(payload, sb_.page_bytes);
    uint64_t v = vhead_;
    if (v % J + bytes > J) v = (v / J + 1) * J;  // does not fit before the end: start over at 0
    if (vhead_ == vtail_) vtail_ = v;            // nothing live: the skipped end is not in use
    if (v + bytes - vtail_ > J) {
        // No room: a checkpoint commits these operations (and empties the journal).
        for (auto it = batch.rbegin(); it != batch.rend(); ++it)
            pending_.push_front(std::move(*it));
        ckpt_wanted_ = true;
        return write_checkpoint();
    }
    write_batch(std::move(batch), v, bytes);
}

void LvsJournal::write_batch(std::vector<Pending> batch, uint64_t vstart, uint64_t bytes) {
    in_flight_ = true;
    std::vector<const Op*> ops;
    for (const Pending& p : batch) ops.push_back(&p.op);
    std::vector<uint8_t> enc;
    batch_encode(sb_.uuid, next_seq_, ops, sb_.page_bytes, &enc);
    auto buf = std::make_shared<AlignedBuffer>(enc.size());
    std::memcpy(buf->data(), enc.data(), enc.size());
    auto pend = std::make_shared<std::vector<Pending>>(std::move(batch));
    const uint64_t off = sb_.journal_offset + vstart % sb_.journal_bytes;
    md_flush(base_, [this, buf, pend, off, vstart, bytes](bool ok) {
        if (!ok) {
            NOC_ERROR("lvol",
                      "flush of the base before journal batch {} failed: the lvstore stops "
                      "changing metadata",
                      next_seq_);
            in_flight_ = false;
            for (auto& p : *pend) p.done(-EIO);
            return fail_all();
        }
        md_write(base_, off, buf->data(), buf->size(), true,
                 [this, buf, pend, vstart, bytes](bool ok) {
                     in_flight_ = false;
                     if (!ok) {
                         NOC_ERROR("lvol",
                                   "journal batch {} write failed: the lvstore stops "
                                   "changing metadata",
                                   next_seq_);
                         for (auto& p : *pend) p.done(-EIO);
                         return fail_all();
                     }
                     vhead_ = vstart + bytes;
                     ++next_seq_;
                     ++batches_;
                     if (vhead_ - vtail_ > sb_.journal_bytes / 2) ckpt_wanted_ = true;
                     for (auto& p : *pend) p.done(0);
                     kick();
                 });
    });
}

void LvsJournal::write_checkpoint() {
    in_flight_ = true;
    // Everything applied so far is in the state: the checkpoint commits it all.
    auto waiters = std::make_shared<std::vector<Done>>(std::move(ckpt_waiters_));
    ckpt_waiters_.clear();
    for (auto& p : pending_) waiters->push_back(std::move(p.done));
    pending_.clear();
    CheckpointHeader h;
    h.seq = ckpt_seq_ + 1;
    h.uuid = sb_.uuid;
    h.journal_seq = next_seq_;
    h.journal_pos = vhead_ % sb_.journal_bytes;
    h.next_id = state_->next_id();
    std::vector<uint8_t> enc;
    ckpt_encode(h, state_->all(), state_->used_bits(), sb_.page_bytes, &enc);
    if (enc.size() > sb_.ckpt_bytes) {
        NOC_ERROR("lvol",
                  "the metadata ({} B) no longer fits a checkpoint slot ({} B): the lvstore "
                  "stops changing metadata",
                  enc.size(), sb_.ckpt_bytes);
        in_flight_ = false;
        for (auto& w : *waiters) w(-ENOSPC);
        return fail_all();
    }
    auto buf = std::make_shared<AlignedBuffer>(enc.size());
    std::memcpy(buf->data(), enc.data(), enc.size());
    const uint32_t slot = ckpt_next_slot_;
    const uint64_t off = sb_.ckpt_offset + slot * sb_.ckpt_bytes;
    const uint64_t vhead = vhead_;
    md_flush(base_, [this, buf, waiters, off, slot, vhead](bool ok) {
        auto failed = [this, waiters](const char* what) {
            NOC_ERROR("lvol", "checkpoint {} failed: the lvstore stops changing metadata", what);
            in_flight_ = false;
            for (auto& w : *waiters) w(-EIO);
            fail_all();
        };
        if (!ok) return failed("flush");
        md_write(base_, off, buf->data(), buf->size(), true,
                 [this, buf, waiters, slot, vhead, failed](bool ok) {
                     if (!ok) return failed("write");
                     in_flight_ = false;
                     ++ckpt_seq_;
                     ++checkpoints_;
                     ckpt_next_slot_ = slot ^ 1;
                     vtail_ = vhead;  // the journal before this point is not needed any more
                     ckpt_wanted_ = false;
                     for (auto& w : *waiters) w(0);
                     kick();
                 });
    });
}

}  // namespace nocstor::lvol
