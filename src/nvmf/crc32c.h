// CRC32C (Castagnoli) as NVMe/TCP uses it for header and data digests: util/crc32c.h's (the
// iSCSI/kernel/SPDK convention), streamed over buffer lists, the 4 bytes on the wire
// little-endian. The running state of Crc32c below is the "raw" register value.
#pragma once

#include "util/crc32c.h"

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nocstor::nvmf {

using ::nocstor::crc32c;
using ::nocstor::crc32c_update;
using ::nocstor::kCrc32cFinalXor;
using ::nocstor::kCrc32cInitial;

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
