// Helpers shared by the lvstore format and checker tests: lvol records, state comparison, and a
// metadata image written the way the daemon writes it (superblock, checkpoint slots, journal
// ring of batches), page write by page write, so that tests can cut it anywhere.
#pragma once

#include "modules/lvol/lvs_format.h"
#include "modules/lvol/lvs_state.h"

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::lvol::test {

Uuid test_uuid(uint8_t seed);

// An lvol record; `pcls` (if any) are its first clusters' base clusters, in order.
LvolMeta make_lvol(uint32_t id, const std::string& name, uint64_t num_clusters, bool thin,
                   const std::vector<uint32_t>& pcls = {}, uint32_t parent = kNoLvol);

Op op_create(const LvolMeta& l);
Op op_delete(uint32_t id);
Op op_alloc(uint32_t id, std::vector<Run> runs);
Op op_resize(uint32_t id, uint64_t num, std::vector<Run> runs = {});
Op op_snapshot(uint32_t origin, uint32_t snap_id, const std::string& name);
Op op_rename(uint32_t id, const std::string& name);
Op op_read_only(uint32_t id);
Op op_set_parent(uint32_t id, uint32_t parent, const std::string& esnap = "");
Op op_merge(uint32_t snap, uint32_t child);

// "" when equal, else the first difference.
std::string lvol_diff(const LvolMeta& a, const LvolMeta& b);
std::string state_diff(const LvsState& a, const LvsState& b);

// A small geometry with a 16-page journal: 4 KiB pages, `total_clusters` of 1 MiB, two
// checkpoint slots of `ckpt_pages` pages each. Passes sb_decode's checks.
Superblock small_sb(uint64_t total_clusters = 256, uint64_t journal_pages = 16,
                    uint64_t ckpt_pages = 8);

// One page-sized (or smaller) write to the metadata region.
struct PageWrite {
    uint64_t off = 0;
    std::vector<uint8_t> bytes;
};

// Writes an lvstore's metadata as the daemon does: batches go at the journal position, or at
// the start of the journal when they do not fit before its end; a checkpoint goes into the
// other slot and frees the journal before its position; a checkpoint is taken before a batch
// that would overwrite journal space the newest checkpoint still needs.
class MetaWriter {
  public:
    // The initial image: superblock copy A (seq 0) and a checkpoint of `initial` in slot 0
    // (journal_seq 1, journal_pos 0).
    MetaWriter(const Superblock& sb, const LvsState& initial);

    const Superblock& sb() const { return sb_; }
    LvsState& state() { return state_; }  // what the ops were applied to
    const std::vector<uint8_t>& base() const { return base_; }
    const std::vector<PageWrite>& writes() const { return writes_; }
    // The image with every write applied.
    std::vector<uint8_t> image() const;
    // Base + the first k writes (+ the first `torn_bytes` of write k when non-zero).
    std::vector<uint8_t> image_at(size_t k, size_t torn_bytes = 0) const;

    // Applies `ops` to state() (each must apply) and appends their batch. Returns its seq.
    uint64_t batch(const std::vector<Op>& ops);
    void checkpoint();
    // Superblock copy (seq even: A, odd: B) with the next seq.
    void superblock(bool clean);

    uint64_t next_seq() const { return seq_; }
    uint64_t pos() const { return pos_; }
    uint64_t checkpoints() const { return ckpt_seq_; }
    uint64_t wraps() const { return wraps_; }
    // Per batch seq s (1..): the state after it, the journal position after it, and the index
    // one past its last write. states[0]: the initial state.
    std::vector<LvsState> states;
    std::vector<uint64_t> pos_after;
    std::vector<size_t> done_at;
    std::vector<uint64_t> batch_pages;  // per batch seq: its size in pages

  private:
    void write_pages(uint64_t off, const std::vector<uint8_t>& bytes);
    Superblock sb_;
    LvsState state_;
    std::vector<uint8_t> base_;
    std::vector<PageWrite> writes_;
    uint64_t seq_ = 1, pos_ = 0, used_ = 0, ckpt_seq_ = 1, wraps_ = 0, sb_seq_ = 0;
    uint32_t next_slot_ = 1;
};

// The store's metadata region with a checkpoint of `lvols` (and `used`, the allocation bitmap;
// empty: what the lvols own) in slot 0, optionally followed by journal batches.
std::vector<uint8_t> make_image(const Superblock& sb, const std::vector<LvolMeta>& lvols,
                                std::vector<bool> used = {},
                                const std::vector<std::vector<Op>>& batches = {},
                                uint32_t next_id = 0);

}  // namespace nocstor::lvol::test
