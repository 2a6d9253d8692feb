// Little-endian fields of on-disk metadata (the raid superblock, the lvstore's superblock,
// checkpoints and journal batches): a value of type T put at or got from byte `off` of a buffer.
// The host is little-endian (the static_assert below, as in nvmf/spec.h), so a field is its
// bytes as they are in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nocstor::le {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "nocstor assumes a little-endian host");

template <class T>
void put(uint8_t* p, size_t off, T v) {
    std::memcpy(p + off, &v, sizeof(T));
}

template <class T>
T get(const uint8_t* p, size_t off) {
    T v;
    std::memcpy(&v, p + off, sizeof(T));
    return v;
}

}  // namespace nocstor::le
