#include "tools/nocstor_raid/intent_bitmap.h"

#include "tools/nocstor_raid/member_file.h"

#include <fmt/format.h>

#include <bit>

namespace nocstor::raid_tool {

using namespace nocstor::raid;

bool IntentBitmap::load(const MemberFile& f, const Superblock& sb, uint64_t data_blocks,
                        std::string* err) {
    *this = IntentBitmap{};
    if (sb.bitmap_region_blocks == 0) return true;
    const uint64_t area = kMetadataBytes - kBitmapOffset;
    const uint64_t rb = sb.bitmap_region_blocks, n = sb.bitmap_regions;
    if (n == 0 || (n + 7) / 8 > area)
        return *err = fmt::format("{} bitmap regions do not fit the {} bytes of the bitmap area", n,
                                  area),
               false;
    if (n < (data_blocks + rb - 1) / rb)
        return *err = fmt::format("{} regions of {} blocks do not cover the {} data blocks", n, rb,
                                  data_blocks),
               false;
    if (sb.data_offset * sb.block_size < kMetadataBytes)
        return *err = fmt::format("the bitmap area [{}, {}) overlaps the data (data_offset {} B)",
                                  kBitmapOffset, kMetadataBytes, sb.data_offset * sb.block_size),
               false;
    std::vector<uint8_t> bytes((n + 7) / 8);
    if (!f.read(kBitmapOffset, bytes.data(), bytes.size(), err)) return false;
    if (n % 8) bytes.back() &= uint8_t((1u << (n % 8)) - 1);  // only the first n bits count
    region_blocks_ = rb;
    regions_ = n;
    bytes_ = std::move(bytes);
    return true;
}

bool IntentBitmap::region_dirty(uint64_t region) const {
    return region < regions_ && (bytes_[region / 8] >> (region % 8)) & 1;
}

uint64_t IntentBitmap::dirty_count() const {
    uint64_t n = 0;
    for (uint8_t b : bytes_) n += uint64_t(std::popcount(b));
    return n;
}

std::vector<BlockRange> IntentBitmap::dirty_ranges(uint64_t data_blocks, size_t max) const {
    std::vector<BlockRange> out;
    for (uint64_t r = 0; r < regions_ && out.size() < max; ++r) {
        if (!region_dirty(r)) continue;
        uint64_t e = r + 1;
        while (e < regions_ && region_dirty(e)) ++e;
        out.push_back({r * region_blocks_, std::min(e * region_blocks_, data_blocks)});
        r = e;
    }
    return out;
}

void IntentBitmap::merge(const IntentBitmap& o) {
    if (!present()) {
        *this = o;
        return;
    }
    if (!same_geometry(o)) return;
    for (size_t i = 0; i < bytes_.size(); ++i) bytes_[i] |= o.bytes_[i];
}

}  // namespace nocstor::raid_tool
