// CRC32C (Castagnoli), backed by ISA-L: NVMe/TCP digests and the checksums of on-disk metadata
// (raid superblocks, lvstore superblocks, checkpoints and journal batches).
//
// Convention (the same as iSCSI, the Linux kernel and SPDK): start from 0xFFFFFFFF, run the
// reflected CRC32C over the bytes, xor the result with 0xFFFFFFFF. ISA-L's crc32_iscsi() does
// neither the initial nor the final inversion itself, so crc32c_update() works on the "raw"
// register value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nocstor {

inline constexpr uint32_t kCrc32cInitial = 0xFFFFFFFFu;
inline constexpr uint32_t kCrc32cFinalXor = 0xFFFFFFFFu;

// Continues a raw CRC32C register over data (no inversion in or out); any length (ISA-L takes an
// int, so 1 GiB slices).
uint32_t crc32c_update(uint32_t state, const void* data, size_t len);

// Finished CRC32C of one buffer. With the default seed this is the standard CRC32C
// ("123456789" -> 0xE3069283); a seed is a previous finished value to continue from.
inline uint32_t crc32c(const void* data, size_t len, uint32_t seed = 0) {
    return crc32c_update(seed ^ kCrc32cFinalXor, data, len) ^ kCrc32cFinalXor;
}

}  // namespace nocstor
