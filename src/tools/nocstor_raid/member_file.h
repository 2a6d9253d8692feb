// Offline, read-only access to one RAID member (an image file or a block device) for
// nocstor-raid: plain preads, and the two superblock copies as the daemon's assembly reads them.
#pragma once

#include "modules/raid/raid_superblock.h"
#include "tools/common/image_file.h"
#include "tools/common/report_text.h"
#include "tools/nocstor_raid/intent_bitmap.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace nocstor::raid_tool {

// A member is read front to back (the data check); read errors name the member.
using MemberFile = tools::ImageFile;

// One of the two superblock copies.
struct SbCopy {
    uint64_t offset = 0;
    bool has_magic = false;
    bool valid = false;
    std::string why;  // sb_decode's reason when not valid
    raid::Superblock sb;
};

// What a member says about itself.
struct MemberInfo {
    std::string path;
    uint64_t size = 0;
    std::string error;  // could not be opened or read, or too small: nothing below is filled
    SbCopy copies[2];
    int current = -1;  // the valid copy with the highest seq (A on a tie, as the daemon), or -1
    IntentBitmap bitmap;
    std::string bitmap_error;
    std::unique_ptr<MemberFile> file;  // stays open for the data check

    const raid::Superblock* sb() const { return current >= 0 ? &copies[current].sb : nullptr; }
    // The array data blocks this member holds (concat: its own table entry).
    uint64_t data_blocks() const;
    // Why there is no current superblock (no magic at all, or both copies damaged).
    std::string no_superblock_reason() const;
    // Empty, or why the file cannot hold what its superblock describes.
    std::string size_problem() const;
};

MemberInfo inspect_member(const std::string& path);

using tools::copy_name;

}  // namespace nocstor::raid_tool
