// Small helpers for modules that move data between a bdev_io's iovecs and flat memory.
#pragma once

#include "bdev/bdev_io.h"

#include <sys/uio.h>

#include <cstdint>
#include <cstring>

namespace nocstor {

// Copies `len` bytes from `src` into the iovecs (stops early if the iovecs are shorter).
inline void iov_copy_from_buf(const iovec* iov, int iovcnt, const void* src, uint64_t len) {
    const char* p = static_cast<const char*>(src);
    for (int i = 0; i < iovcnt && len > 0; ++i) {
        size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;
        std::memcpy(iov[i].iov_base, p, n);
        p += n;
        len -= n;
    }
}

// Copies `len` bytes from the iovecs into `dst`.
inline void iov_copy_to_buf(const iovec* iov, int iovcnt, void* dst, uint64_t len) {
    char* p = static_cast<char*>(dst);
    for (int i = 0; i < iovcnt && len > 0; ++i) {
        size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;
        std::memcpy(p, iov[i].iov_base, n);
        p += n;
        len -= n;
    }
}

// The bytes [off, off + len) of the iovecs as at most `max` iovecs in `out`; returns how many
// (fewer bytes when the iovecs end first or `max` is reached).
inline int iov_slice(const iovec* iov, int iovcnt, uint64_t off, uint64_t len, iovec* out,
                     int max) {
    int n = 0;
    for (int i = 0; i < iovcnt && len > 0 && n < max; ++i) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        const size_t take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
        out[n++] = {static_cast<char*>(iov[i].iov_base) + off, take};
        len -= take;
        off = 0;
    }
    return n;
}

inline void iov_memset(const iovec* iov, int iovcnt, int value) {
    for (int i = 0; i < iovcnt; ++i) std::memset(iov[i].iov_base, value, iov[i].iov_len);
}

}  // namespace nocstor
