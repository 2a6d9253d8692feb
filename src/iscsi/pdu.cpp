#include "iscsi/pdu.h"

#include "util/crc32c.h"

namespace nocstor::iscsi_tgt {

uint32_t decode_lun(uint64_t field) {
    const uint8_t method = uint8_t(field >> 62);
    const uint32_t first = uint32_t(field >> 48) & 0x3fff;
    if ((field & 0x0000ffffffffffffull) != 0) return UINT32_MAX;  // second level: not ours
    if (method == 0) return first > 0xff ? UINT32_MAX : first;    // bus 0 only
    if (method == 1) return first;                                // flat space addressing
    return UINT32_MAX;
}

uint64_t encode_lun(uint32_t lun) {
    if (lun < 256) return uint64_t(lun) << 48;
    return (uint64_t(0x4000 | (lun & 0x3fff))) << 48;
}

uint32_t header_digest(const uint8_t* hdr, size_t len) {
    return crc32c(hdr, len);
}

}  // namespace nocstor::iscsi_tgt
