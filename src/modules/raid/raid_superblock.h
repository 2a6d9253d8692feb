// The RAID superblock: what every member carries so that an array assembles by itself after a
// restart and knows which members it can trust (docs/raid.md has the byte layout).
//
//   member bytes [0, 4 KiB)        superblock copy A  } written alternately (seq even: A, odd: B);
//   member bytes [4 KiB, 8 KiB)    superblock copy B  } the valid copy with the highest seq counts
//   member bytes [64 KiB, 1 MiB)   write-intent bitmap (one bit per region of every member)
//   member bytes [1 MiB, ...)      array data (data_offset)
//
// Little-endian, CRC32C over the 4 KiB with the CRC field zero, format version 1. Members have
// blocks of 512 B to 4 KiB, so that each copy is whole blocks of its own.
#pragma once

#include "bdev/bdev.h"
#include "modules/raid/raid_layout.h"

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::raid {

inline constexpr uint32_t kSbVersion = 1;
inline constexpr uint32_t kSbBytes = 4096;
inline constexpr uint64_t kSbCopyOffset[2] = {0, 4096};
inline constexpr uint64_t kBitmapOffset = 64 * 1024;
inline constexpr uint64_t kMetadataBytes = 1024 * 1024;  // data starts here
inline constexpr char kSbMagic[8] = {'N', 'O', 'C', 'R', 'A', 'I', 'D', '1'};

enum class SbMemberState : uint8_t { Online = 0, Failed = 1, Missing = 2, Rebuilding = 3 };
const char* sb_member_state_name(SbMemberState s);

struct SbMember {
    Uuid uuid{};
    SbMemberState state = SbMemberState::Online;
    uint64_t data_blocks = 0;     // concat: this member's data blocks
    uint64_t rebuild_offset = 0;  // Rebuilding: member data blocks already rebuilt
    // Rebuilding: only the regions set in the write-intent bitmap are rebuilt (the member came
    // back and holds everything else already).
    bool partial_rebuild = false;
};

struct Superblock {
    uint64_t seq = 0;
    bool clean = false;  // the array was stopped cleanly: no resync needed
    Uuid array_uuid{};
    std::string name;  // at most 63 bytes
    Level level = Level::Raid0;
    uint32_t strip_size_kb = 0;
    uint32_t block_size = 0;
    uint64_t data_offset = 0;           // blocks
    uint64_t member_blocks = 0;         // data blocks per member (striped levels, raid1)
    uint32_t slot = 0;                  // the slot of the member this copy is on
    uint64_t bitmap_region_blocks = 0;  // 0: no bitmap
    uint64_t bitmap_regions = 0;
    // A resync of the whole array (initial, or without a bitmap) was not finished: it goes on
    // from member block resync_offset at the next start.
    bool resync_pending = false;
    uint64_t resync_offset = 0;
    std::vector<SbMember> members;
};

// Serialises into 4 KiB (CRC included).
void sb_encode(const Superblock& sb, uint8_t* out);
// False with a reason for anything that is not a valid version-1 superblock.
bool sb_decode(const uint8_t* in, Superblock* out, std::string* why);
// True if the 4 KiB starts with the magic (a superblock, maybe damaged or of another version).
bool sb_has_magic(const uint8_t* in);

// Write-intent bitmap geometry for members of data_blocks blocks: a power-of-two multiple of
// unit_blocks (the array's lock unit), about region_bytes (0: the default, data/64 bounded by
// [1 MiB, 64 MiB]), grown until the bits fit the bitmap area.
void bitmap_geometry(uint64_t data_blocks, uint32_t block_size, uint64_t unit_blocks,
                     uint64_t region_bytes, uint64_t* region_blocks, uint64_t* regions);
// Bytes of the bitmap area that hold bits (rounded up to `align`).
inline uint64_t bitmap_bytes(uint64_t regions, uint64_t align) {
    return ((regions + 7) / 8 + align - 1) / align * align;
}
inline bool bitmap_test(const uint8_t* bits, uint64_t r) {
    return bits[r / 8] & (1u << (r % 8));
}

}  // namespace nocstor::raid
