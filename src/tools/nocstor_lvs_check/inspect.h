// What nocstor-lvs-check finds in an lvstore: both superblock copies, both checkpoint slots,
// the metadata as loading recovers it (newest checkpoint + journal replay), and every
// inconsistency: recovery failing, the state's own check, the newest checkpoint's lvols
// against each other and against its allocation bitmap, the data region against the file's size.
#pragma once

#include "modules/lvol/lvs_recover.h"

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::lvs_tool {

inline constexpr int kExitOk = 0;        // an lvstore, consistent
inline constexpr int kExitProblems = 1;  // an lvstore with problems (damaged metadata included)
inline constexpr int kExitError = 2;     // usage, cannot open or read, not an lvstore

struct SbCopy {
    uint64_t offset = 0;  // from the start of the store
    bool has_magic = false;
    bool valid = false;
    std::string why;  // sb_decode's reason when not valid
    lvol::Superblock sb;
};

struct CkptSlot {
    uint64_t offset = 0;
    bool valid = false;
    std::string why;
    lvol::CheckpointHeader header;
    std::vector<lvol::LvolMeta> lvols;
    std::vector<bool> used;
};

// The newest valid checkpoint's lvols judged on their own and against its bitmap.
struct CkptAnalysis {
    bool done = false;
    uint32_t slot = 0;
    uint64_t owned = 0;         // clusters some lvol of the checkpoint owns
    uint64_t marked = 0;        // bits set in its bitmap
    uint64_t leaked = 0;        // marked, owned by none
    uint64_t unmarked = 0;      // owned, not marked (could be handed out twice)
    uint64_t double_owned = 0;  // owned by more than one lvol
    uint64_t past_end = 0;      // map entries past the end of the store
};

struct Inspection {
    std::string path;
    uint64_t offset = 0;       // of the store in the file
    uint64_t store_bytes = 0;  // file size - offset

    std::string error;     // not an lvstore, or it cannot be read: nothing below is complete
    bool damaged = false;  // the error is a damaged lvstore (exit 1, not 2)

    SbCopy copies[2];
    bool have_sb = false;
    lvol::Superblock sb;
    int sb_copy = -1;  // the copy `sb` came from

    bool have_md = false;  // the metadata region was read
    CkptSlot slots[2];
    bool recovered = false;
    std::string recover_error;
    lvol::Recovered rec;
    CkptAnalysis ckpt;

    std::vector<std::string> problems;
    std::vector<std::string> warnings;

    int exit_status() const;
};

Inspection inspect(const std::string& path, uint64_t offset);

}  // namespace nocstor::lvs_tool
