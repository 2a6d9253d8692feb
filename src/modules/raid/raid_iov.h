// Byte ranges of an I/O's iovecs: slicing them for a member, copying to and from flat buffers.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstring>

namespace nocstor::raid {

// The iovecs covering bytes [off, off + len) of iov; -1 if more than max are needed.
inline int iov_slice(const iovec* iov, int iovcnt, uint64_t off, uint64_t len, iovec* out,
                     int max) {
    int n = 0;
    for (int i = 0; i < iovcnt && len > 0; ++i) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        if (n == max) return -1;
        const uint64_t take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
        out[n].iov_base = static_cast<char*>(iov[i].iov_base) + off;
        out[n].iov_len = take;
        ++n;
        len -= take;
        off = 0;
    }
    return n;
}

// A pointer to bytes [off, off + len) of iov if they are contiguous and `align`-aligned there.
inline uint8_t* iov_flat(const iovec* iov, int iovcnt, uint64_t off, uint64_t len,
                         uintptr_t align) {
    for (int i = 0; i < iovcnt; ++i) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        if (iov[i].iov_len - off < len) return nullptr;
        auto* p = static_cast<uint8_t*>(iov[i].iov_base) + off;
        return reinterpret_cast<uintptr_t>(p) % align == 0 ? p : nullptr;
    }
    return nullptr;
}

// Copies bytes [off, off + len) of iov into dst.
inline void iov_read(const iovec* iov, int iovcnt, uint64_t off, uint64_t len, void* dst) {
    auto* d = static_cast<uint8_t*>(dst);
    for (int i = 0; i < iovcnt && len > 0; ++i) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        const uint64_t take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
        std::memcpy(d, static_cast<const uint8_t*>(iov[i].iov_base) + off, take);
        d += take;
        len -= take;
        off = 0;
    }
}

// Copies len bytes of src into bytes [off, off + len) of iov.
inline void iov_write(const iovec* iov, int iovcnt, uint64_t off, uint64_t len, const void* src) {
    auto* s = static_cast<const uint8_t*>(src);
    for (int i = 0; i < iovcnt && len > 0; ++i) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        const uint64_t take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
        std::memcpy(static_cast<uint8_t*>(iov[i].iov_base) + off, s, take);
        s += take;
        len -= take;
        off = 0;
    }
}

}  // namespace nocstor::raid
