// The metadata journal writer (control thread). Operations are applied to the in-memory state
// first (LvsState::apply validates them), then committed here: group commit, one metadata write
// in flight at a time, in order, so that an operation is acknowledged only when it and every
// operation before it are durable.
//
// A commit is a flush of the base (the data an operation depends on — zero-filled or copied
// clusters — is on disk first), then the batch with FUA. When the journal is half full, or an
// operation does not fit, a checkpoint of the whole state goes to the other checkpoint slot and
// the journal starts over; the checkpoint commits every operation applied so far.
#pragma once

#include "modules/lvol/lvs_io.h"
#include "modules/lvol/lvs_recover.h"

#include <deque>
#include <functional>
#include <vector>

namespace nocstor::lvol {

class LvsJournal {
  public:
    using Done = std::function<void(int rc)>;  // 0: durable; -EIO: the store failed

    // `state` is the store's live state (for checkpoints); positions come from recovery.
    LvsJournal(BdevDesc* base, const Superblock& sb, const LvsState* state, const Recovered& r);

    // Commits an operation already applied to the state.
    void commit(Op op, Done done);
    // Writes a checkpoint of the state now (after everything queued) and calls done: a clean
    // stop, or a state that changed outside the journal (format, grow).
    void checkpoint(Done done);
    // After a write failed, nothing more is written and every commit fails with -EIO.
    bool failed() const { return failed_; }
    bool idle() const { return !in_flight_ && pending_.empty() && ckpt_waiters_.empty(); }

    uint64_t batches_written() const { return batches_; }
    uint64_t checkpoints_written() const { return checkpoints_; }
    uint64_t used_bytes() const { return vhead_ - vtail_; }

  private:
    struct Pending {
        Op op;
        Done done;
    };
    void kick();
    void write_batch(std::vector<Pending> batch, uint64_t vstart, uint64_t bytes);
    void write_checkpoint();
    void fail_all();

    BdevDesc* base_;
    Superblock sb_;
    const LvsState* state_;
    std::deque<Pending> pending_;
    std::vector<Done> ckpt_waiters_;  // explicit checkpoint() calls
    bool ckpt_wanted_ = false;
    bool in_flight_ = false;
    bool failed_ = false;
    // Journal positions as ever-growing byte counts (physical = v % journal_bytes): the live
    // batches are [vtail_, vhead_).
    uint64_t vhead_ = 0, vtail_ = 0;
    uint64_t next_seq_ = 1;
    uint64_t ckpt_seq_ = 0;
    uint32_t ckpt_next_slot_ = 0;
    uint64_t batches_ = 0, checkpoints_ = 0;
};

}  // namespace nocstor::lvol
