#include "util/crc32c.h"

#include <isa-l/crc.h>

namespace nocstor {

uint32_t crc32c_update(uint32_t state, const void* data, size_t len) {
    // ISA-L takes an int length; feed larger buffers in slices.
    auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
    constexpr size_t kSlice = size_t{1} << 30;
    while (len > 0) {
        size_t n = len < kSlice ? len : kSlice;
        state = crc32_iscsi(p, static_cast<int>(n), state);
        p += n;
        len -= n;
    }
    return state;
}

}  // namespace nocstor
