#include "modules/raid/raid_superblock.h"

#include "util/crc32c.h"
#include "util/le_codec.h"

#include <algorithm>
#include <cstring>

namespace nocstor::raid {

namespace {

// Field offsets of format version 1.
constexpr size_t kOffMagic = 0, kOffVersion = 8, kOffSize = 12, kOffCrc = 16, kOffFlags = 20,
                 kOffSeq = 24, kOffUuid = 32, kOffName = 48, kOffLevel = 112, kOffMembers = 116,
                 kOffStrip = 120, kOffBlock = 124, kOffDataOffset = 128, kOffMemberBlocks = 136,
                 kOffSlot = 144, kOffBitmapRegionBlocks = 160, kOffBitmapRegions = 168,
                 kOffResyncOffset = 176, kOffMemberTable = 256, kMemberEntry = 64;
constexpr size_t kNameBytes = 64;
constexpr uint32_t kFlagClean = 1, kFlagResyncPending = 2;
constexpr uint8_t kMemberPartialRebuild = 1;

using le::get;
using le::put;

}  // namespace

const char* sb_member_state_name(SbMemberState s) {
    switch (s) {
        case SbMemberState::Online:
            return "online";
        case SbMemberState::Failed:
            return "failed";
        case SbMemberState::Missing:
            return "missing";
        case SbMemberState::Rebuilding:
            return "rebuilding";
    }
    return "?";
}

void sb_encode(const Superblock& sb, uint8_t* out) {
    std::memset(out, 0, kSbBytes);
    std::memcpy(out + kOffMagic, kSbMagic, 8);
    put<uint32_t>(out, kOffVersion, kSbVersion);
    put<uint32_t>(out, kOffSize, kSbBytes);
    put<uint32_t>(out, kOffFlags,
                  (sb.clean ? kFlagClean : 0) | (sb.resync_pending ? kFlagResyncPending : 0));
    put<uint64_t>(out, kOffSeq, sb.seq);
    std::memcpy(out + kOffUuid, sb.array_uuid.data(), 16);
    std::memcpy(out + kOffName, sb.name.data(), std::min(sb.name.size(), kNameBytes - 1));
    out[kOffLevel] = uint8_t(sb.level);
    put<uint32_t>(out, kOffMembers, uint32_t(sb.members.size()));
    put<uint32_t>(out, kOffStrip, sb.strip_size_kb);
    put<uint32_t>(out, kOffBlock, sb.block_size);
    put<uint64_t>(out, kOffDataOffset, sb.data_offset);
    put<uint64_t>(out, kOffMemberBlocks, sb.member_blocks);
    put<uint32_t>(out, kOffSlot, sb.slot);
    put<uint64_t>(out, kOffBitmapRegionBlocks, sb.bitmap_region_blocks);
    put<uint64_t>(out, kOffBitmapRegions, sb.bitmap_regions);
    put<uint64_t>(out, kOffResyncOffset, sb.resync_pending ? sb.resync_offset : 0);
    for (size_t i = 0; i < sb.members.size() && i < kMaxMembers; ++i) {
        uint8_t* e = out + kOffMemberTable + i * kMemberEntry;
        std::memcpy(e, sb.members[i].uuid.data(), 16);
        e[16] = uint8_t(sb.members[i].state);
        e[17] = sb.members[i].partial_rebuild ? kMemberPartialRebuild : 0;
        put<uint64_t>(e, 24, sb.members[i].data_blocks);
        put<uint64_t>(e, 32, sb.members[i].rebuild_offset);
    }
    put<uint32_t>(out, kOffCrc, crc32c(out, kSbBytes));
}

bool sb_has_magic(const uint8_t* in) {
    return std::memcmp(in + kOffMagic, kSbMagic, 8) == 0;
}

bool sb_decode(const uint8_t* in, Superblock* sb, std::string* why) {
    if (!sb_has_magic(in)) return *why = "no nocstor raid superblock", false;
    if (get<uint32_t>(in, kOffVersion) != kSbVersion)
        return *why = "superblock format version " +
                      std::to_string(get<uint32_t>(in, kOffVersion)) +
                      " (this nocstor reads version 1)",
               false;
    if (get<uint32_t>(in, kOffSize) != kSbBytes) return *why = "bad superblock size", false;
    uint8_t copy[kSbBytes];
    std::memcpy(copy, in, kSbBytes);
    put<uint32_t>(copy, kOffCrc, 0);
    if (crc32c(copy, kSbBytes) != get<uint32_t>(in, kOffCrc))
        return *why = "superblock checksum mismatch", false;
    const uint32_t n = get<uint32_t>(in, kOffMembers);
    const uint8_t level = in[kOffLevel];
    if (n == 0 || n > kMaxMembers || level > uint8_t(Level::Concat))
        return *why = "superblock fields out of range", false;
    sb->clean = get<uint32_t>(in, kOffFlags) & kFlagClean;
    sb->resync_pending = get<uint32_t>(in, kOffFlags) & kFlagResyncPending;
    sb->resync_offset = get<uint64_t>(in, kOffResyncOffset);
    sb->seq = get<uint64_t>(in, kOffSeq);
    std::memcpy(sb->array_uuid.data(), in + kOffUuid, 16);
    sb->name.assign(reinterpret_cast<const char*>(in + kOffName),
                    strnlen(reinterpret_cast<const char*>(in + kOffName), kNameBytes - 1));
    sb->level = Level(level);
    sb->strip_size_kb = get<uint32_t>(in, kOffStrip);
    sb->block_size = get<uint32_t>(in, kOffBlock);
    sb->data_offset = get<uint64_t>(in, kOffDataOffset);
    sb->member_blocks = get<uint64_t>(in, kOffMemberBlocks);
    sb->slot = get<uint32_t>(in, kOffSlot);
    sb->bitmap_region_blocks = get<uint64_t>(in, kOffBitmapRegionBlocks);
    sb->bitmap_regions = get<uint64_t>(in, kOffBitmapRegions);
    if (sb->slot >= n || sb->block_size < 512 || sb->block_size > kSbBytes ||
        (sb->block_size & (sb->block_size - 1)))
        return *why = "superblock fields out of range", false;
    sb->members.assign(n, SbMember{});
    for (uint32_t i = 0; i < n; ++i) {
        const uint8_t* e = in + kOffMemberTable + i * kMemberEntry;
        std::memcpy(sb->members[i].uuid.data(), e, 16);
        if (e[16] > uint8_t(SbMemberState::Rebuilding))
            return *why = "superblock member state out of range", false;
        sb->members[i].state = SbMemberState(e[16]);
        sb->members[i].data_blocks = get<uint64_t>(e, 24);
        sb->members[i].rebuild_offset = get<uint64_t>(e, 32);
        sb->members[i].partial_rebuild = e[17] & kMemberPartialRebuild;
    }
    return true;
}

void bitmap_geometry(uint64_t data_blocks, uint32_t block_size, uint64_t unit_blocks,
                     uint64_t region_bytes, uint64_t* region_blocks, uint64_t* regions) {
    const uint64_t bits = (kMetadataBytes - kBitmapOffset) * 8;
    // Larger regions: fewer bitmap writes in front of first writes, more to resync after a
    // crash (Linux md's default internal bitmap chunk is 64 MiB on large disks).
    if (region_bytes == 0)
        region_bytes = std::clamp<uint64_t>(data_blocks * block_size / 64, 1ull << 20, 64ull << 20);
    uint64_t region = std::max<uint64_t>(unit_blocks, 1);
    while (region * 2 * block_size <= region_bytes) region *= 2;
    while ((data_blocks + region - 1) / region > bits) region *= 2;
    *region_blocks = region;
    *regions = (data_blocks + region - 1) / region;
}

}  // namespace nocstor::raid
