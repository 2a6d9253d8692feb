// Offline, read-only access to one RAID member (an image file or a block device) for
// nocstor-raid: plain preads, and the two superblock copies as the daemon's assembly reads them.
#pragma once

#include "modules/raid/raid_superblock.h"
#include "tools/nocstor_raid/intent_bitmap.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace nocstor::raid_tool {

class MemberFile {
  public:
    // Opens `path` O_RDONLY and finds its size (fstat, or BLKGETSIZE64 for a block device).
    // Null with *err when that fails.
    static std::unique_ptr<MemberFile> open(const std::string& path, std::string* err);
    ~MemberFile();
    MemberFile(const MemberFile&) = delete;
    MemberFile& operator=(const MemberFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t size() const { return size_; }
    // Reads exactly len bytes at byte `off`; false with *err on an error or past the end.
    bool read(uint64_t off, void* buf, size_t len, std::string* err) const;

  private:
    MemberFile(std::string path, int fd, uint64_t size);
    std::string path_;
    int fd_;
    uint64_t size_;
};

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

// "A" or "B".
inline const char* copy_name(int i) {
    return i == 0 ? "A" : "B";
}

}  // namespace nocstor::raid_tool
