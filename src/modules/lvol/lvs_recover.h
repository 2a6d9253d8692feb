// Loading an lvstore's metadata: the newest superblock copy, the newest valid checkpoint, then
// the journal batches after it in sequence order until the first one that is not there (a
// batch cut by a crash was never acknowledged). Pure: works on the metadata region in memory,
// so that the daemon (after one read) and the offline checker (from a file) share it.
#pragma once

#include "modules/lvol/lvs_state.h"

#include <string>
#include <vector>

namespace nocstor::lvol {

// The newest valid superblock of the two copies in `first_pages` (2 * page bytes, or at least
// 2 * 4 KiB; a store with bigger blocks is found from copy A's page size). False: none
// (`*damaged` set when a copy has the magic but does not decode: refuse to overwrite it).
bool read_superblock(const uint8_t* first_pages, size_t n, Superblock* sb, bool* damaged,
                     std::string* why);

struct Recovered {
    Superblock sb;
    LvsState state;
    uint32_t ckpt_slot = 0;  // the slot the checkpoint came from
    CheckpointHeader ckpt;
    std::vector<bool> ckpt_used;  // the checkpoint's allocation bitmap
    uint64_t next_seq = 0;        // the next batch's sequence number
    uint64_t next_pos = 0;        // and where it goes (byte offset in the journal)
    uint64_t used_bytes = 0;      // journal bytes from the checkpoint's position to next_pos
    uint64_t batches = 0;         // replayed
    uint64_t ops = 0;
};

// `md` holds the store's first sb.data_offset bytes. False (and *why) when no checkpoint is
// valid or a journal operation does not apply (the store is damaged: nothing is changed).
bool recover(const uint8_t* md, size_t n, const Superblock& sb, Recovered* out, std::string* why);

}  // namespace nocstor::lvol
