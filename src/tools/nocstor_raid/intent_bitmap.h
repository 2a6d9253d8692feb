// The write-intent bitmap of a RAID member, read offline. It lives at member bytes
// [kBitmapOffset, kMetadataBytes) and is the same on every writable member. Bit r (byte r / 8,
// bit r % 8, least significant first) covers the member data blocks
// [r * region_blocks, (r + 1) * region_blocks), counted from data_offset; set means the region may
// hold writes that are not on every member yet (the daemon resyncs only those regions).
#pragma once

#include "modules/raid/raid_superblock.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::tools {
class ImageFile;
}

namespace nocstor::raid_tool {

using MemberFile = tools::ImageFile;  // tools/common/image_file.h

// Member data blocks [begin, end).
struct BlockRange {
    uint64_t begin = 0, end = 0;
};

class IntentBitmap {
  public:
    // Reads the bitmap the superblock describes (none when bitmap_region_blocks is 0). False with
    // *err when its geometry does not fit the metadata area or the member, or on a read error.
    bool load(const MemberFile& f, const raid::Superblock& sb, uint64_t data_blocks,
              std::string* err);

    bool present() const { return region_blocks_ != 0; }
    uint64_t region_blocks() const { return region_blocks_; }
    uint64_t regions() const { return regions_; }
    bool region_dirty(uint64_t region) const;
    bool row_dirty(uint64_t row) const { return present() && region_dirty(row / region_blocks_); }
    uint64_t dirty_count() const;
    // The dirty regions as merged ranges of member data blocks (the last one clipped to
    // data_blocks), at most `max` of them.
    std::vector<BlockRange> dirty_ranges(uint64_t data_blocks, size_t max) const;

    bool same_geometry(const IntentBitmap& o) const {
        return region_blocks_ == o.region_blocks_ && regions_ == o.regions_;
    }
    bool same_bits(const IntentBitmap& o) const { return same_geometry(o) && bytes_ == o.bytes_; }
    // Adds the dirty bits of a bitmap of the same geometry.
    void merge(const IntentBitmap& o);

  private:
    uint64_t region_blocks_ = 0;
    uint64_t regions_ = 0;
    std::vector<uint8_t> bytes_;  // ceil(regions / 8), bits past `regions` cleared
};

}  // namespace nocstor::raid_tool
