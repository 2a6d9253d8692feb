// CRC32C (Castagnoli) as NVMe/TCP uses it for header and data digests, backed by ISA-L.
//
// Digest convention (the same as iSCSI, the Linux kernel and SPDK): start from 0xFFFFFFFF, run
// the reflected CRC32C over the bytes, xor the result with 0xFFFFFFFF, and put the 4 bytes on
// the wire little-endian. ISA-L's crc32_iscsi() does neither the initial nor the final
// inversion itself, so the running state of Crc32c below is the "raw" register value.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nocstor::nvmf {

inline constexpr uint32_t kCrc32cInitial = 0xFFFFFFFFu;
inline constexpr uint32_t kCrc32cFinalXor = 0xFFFFFFFFu;

// Continues a raw CRC32C register over data (no inversion in or out).
uint32_t crc32c_update(uint32_t state, const void* data, size_t len);

// Finished CRC32C of one buffer. With the default seed this is the standard CRC32C
// ("123456789" -> 0xE3069283); a seed is a previous finished value to continue from.
inline uint32_t crc32c(const void* data, size_t len, uint32_t seed = 0) {
    return crc32c_update(seed ^ kCrc32cFinalXor, data, len) ^ kCrc32cFinalXor;
}

// Streaming digest: update() over any number of pieces, then value().
class Crc32c {
  public:
    void update(const void* data, size_t len) { state_ = crc32c_update(state_, data, len); }
    void update(const iovec* iov, size_t iovcnt) {
        for (size_t i = 0; i < iovcnt; ++i) update(iov[i].iov_base, iov[i].iov_len);
    }
    uint32_t value() const { return state_ ^ kCrc32cFinalXor; }
    void reset() { state_ = kCrc32cInitial; }

  private:
    uint32_t state_ = kCrc32cInitial;
};

// Digest of a buffer list, as the 4 bytes that follow the data of a PDU.
inline uint32_t crc32c_iov(const iovec* iov, size_t iovcnt) {
    Crc32c c;
    c.update(iov, iovcnt);
    return c.value();
}

// Digests travel little-endian; the host is little-endian (see nvmf/spec.h).
inline void store_digest(uint8_t* out, uint32_t digest) {
    std::memcpy(out, &digest, 4);
}
inline uint32_t load_digest(const uint8_t* in) {
    uint32_t v;
    std::memcpy(&v, in, 4);
    return v;
}

}  // namespace nocstor::nvmf
