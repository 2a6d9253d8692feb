// Data-in commands answered from the LUN's description: INQUIRY (standard and VPD pages),
// MODE SENSE/SELECT, REPORT LUNS, REQUEST SENSE, READ CAPACITY and GET LBA STATUS.
#include <algorithm>
#include <cstring>

#include "iscsi/scsi/scsi_internal.h"

namespace nocstor::scsi {

namespace {

constexpr char kVendor[] = "NOCSTOR ";           // 8 bytes
constexpr char kProduct[] = "nocstor bdev    ";  // 16 bytes
constexpr char kRevision[] = "0001";

void finish_data(Task& t, const uint8_t* data, uint32_t len, uint32_t alloc_len) {
    const uint32_t n = std::min({len, alloc_len, t.data_len});
    t.data_in_len = copy_to_iov(t.iov, t.iovcnt, data, n);
}

// The serial number: the bdev's UUID as 32 hex digits.
std::string serial_of(const Lun& lun) {
    static const char* kHex = "0123456789abcdef";
    std::string s;
    for (uint8_t b : lun.uuid) {
        s += kHex[b >> 4];
        s += kHex[b & 15];
    }
    return s;
}

uint32_t vpd_page(const Lun& lun, uint8_t page, uint8_t* p) {
    p[0] = 0x00;  // peripheral: connected disk
    p[1] = page;
    uint32_t n = 4;
    switch (page) {
        case 0x00: {
            const uint8_t pages[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};
            std::memcpy(p + 4, pages, sizeof(pages));
            n += sizeof(pages);
            break;
        }
        case 0x80: {
            const std::string s = serial_of(lun);
            std::memcpy(p + 4, s.data(), s.size());
            n += uint32_t(s.size());
            break;
        }
        case 0x83: {
            // NAA IEEE Registered Extended (type 3, 16 bytes) from the UUID, associated with the
            // LU.
            uint8_t* d = p + n;
            d[0] = 0x01;  // code set binary
            d[1] = 0x03;  // association LU, designator type NAA
            d[3] = 16;
            d[4] = 0x60 | (lun.uuid[0] & 0x0f);
            std::memcpy(d + 5, lun.uuid.data() + 1, 15);
            n += 20;
            // T10 vendor ID: vendor + serial (ASCII).
            d = p + n;
            const std::string s = serial_of(lun);
            d[0] = 0x02;  // ASCII
            d[1] = 0x01;  // LU, T10 vendor ID
            d[3] = uint8_t(8 + s.size());
            std::memcpy(d + 4, kVendor, 8);
            std::memcpy(d + 12, s.data(), s.size());
            n += 4 + d[3];
            break;
        }
        case 0xb0: {  // block limits
            const uint32_t bs = lun.block_size;
            std::memset(p + 4, 0, 0x3c);
            p[4] = 0x01;  // WSNZ: WRITE SAME with 0 blocks is refused
            p[5] = uint8_t(std::min<uint32_t>(255, max_compare_and_write_blocks(lun)));
            be::put16(p + 6, uint16_t(std::max<uint32_t>(1, 4096 / bs)));  // optimal granularity
            be::put32(p + 8, lun.max_transfer_bytes / bs);                 // maximum transfer
            be::put32(p + 12, std::min<uint32_t>(lun.max_transfer_bytes, 128 * 1024) / bs);
            be::put32(p + 16, lun.max_transfer_bytes / bs);  // maximum prefetch
            if (lun.unmap) {
                be::put32(p + 20, 0xffffffff);  // maximum unmap LBA count
                be::put32(p + 24, kMaxUnmapDescriptors);
                be::put32(p + 28, std::max<uint32_t>(1, 4096 / bs));  // optimal unmap granularity
            }
            be::put64(p + 36, kMaxWriteSameBlocks);
            n += 0x3c;
            break;
        }
        case 0xb1: {  // block device characteristics
            std::memset(p + 4, 0, 0x3c);
            be::put16(p + 4, 0x0001);  // non-rotating medium
            n += 0x3c;
            break;
        }
        case 0xb2: {  // logical block provisioning
            std::memset(p + 4, 0, 4);
            if (lun.unmap) p[5] = 0x80 | 0x40 | 0x20;  // LBPU, LBPWS, LBPWS10
            p[6] = lun.unmap ? 0x02 : 0x00;            // thin provisioned : full
            n += 4;
            break;
        }
        default:
            return 0;
    }
    be::put16(p + 2, uint16_t(n - 4));
    return n;
}

}  // namespace

uint32_t max_compare_and_write_blocks(const Lun& lun) {
    return std::max<uint32_t>(1, 8192 / (2 * lun.block_size));
}

void spc_inquiry(Task& t) {
    const uint8_t* c = t.cdb;
    const bool evpd = c[1] & 0x01;
    const uint8_t page = c[2];
    const uint32_t alloc = be::get16(c + 3);
    if (c[1] & 0xfe) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    uint8_t d[512] = {};
    if (!evpd) {
        if (page) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
        // No LU here: peripheral qualifier 3, device type 0x1f.
        d[0] = t.lun ? 0x00 : 0x7f;
        d[2] = 0x06;         // SPC-4
        d[3] = 0x02 | 0x10;  // response format 2, HiSup
        d[4] = 96 - 5;
        d[7] = 0x02;  // CmdQue
        std::memcpy(d + 8, kVendor, 8);
        std::memcpy(d + 16, kProduct, 16);
        std::memcpy(d + 32, kRevision, 4);
        // Version descriptors: SAM-5, iSCSI, SPC-4, SBC-3.
        be::put16(d + 58, 0x00a0);
        be::put16(d + 60, 0x0960);
        be::put16(d + 62, 0x0460);
        be::put16(d + 64, 0x04c0);
        return finish_data(t, d, 96, alloc);
    }
    if (!t.lun) return t.check_condition(kIllegalRequest, kAscLunNotSupported);
    const uint32_t n = vpd_page(*t.lun, page, d);
    if (n == 0) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    finish_data(t, d, n, alloc);
}

void spc_mode_sense(Task& t, bool ten) {
    const uint8_t* c = t.cdb;
    const bool dbd = c[1] & 0x08;
    const bool llbaa = ten && (c[1] & 0x10);
    const uint8_t pc = c[2] >> 6;
    const uint8_t page = c[2] & 0x3f;
    const uint8_t subpage = c[3];
    const uint32_t alloc = ten ? be::get16(c + 7) : c[4];
    const Lun& lun = *t.lun;
    if (pc == 3) return t.check_condition(kIllegalRequest, kAscSavingParamsNotSupported);
    if (subpage != 0 && !(page == 0x3f && subpage == 0xff))
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    uint8_t d[512] = {};
    const uint32_t hdr = ten ? 8 : 4;
    uint32_t n = hdr;
    // Block descriptor.
    if (!dbd) {
        if (llbaa) {
            be::put64(d + n, lun.num_blocks);
            be::put32(d + n + 12, lun.block_size);
            n += 16;
        } else {
            be::put32(d + n, uint32_t(std::min<uint64_t>(lun.num_blocks, 0xffffffff)));
            be::put32(d + n + 4, lun.block_size & 0xffffff);
            n += 8;
        }
    }
    const uint32_t bd_len = n - hdr;
    const bool changeable = pc == 1;
    bool any = false;
    if (page == 0x08 || page == 0x3f) {  // caching
        uint8_t* p = d + n;
        p[0] = 0x08;
        p[1] = 0x12;
        if (!changeable && lun.write_cache) p[2] = 0x04;  // WCE
        n += 20;
        any = true;
    }
    if (page == 0x0a || page == 0x3f) {  // control
        uint8_t* p = d + n;
        p[0] = 0x0a;
        p[1] = 0x0a;
        if (!changeable) {
            p[3] = 0x10;               // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
            be::put16(p + 8, 0xffff);  // busy timeout period: unlimited
        }
        n += 12;
        any = true;
    }
    if (page == 0x1c || page == 0x3f) {  // informational exceptions control
        uint8_t* p = d + n;
        p[0] = 0x1c;
        p[1] = 0x0a;
        n += 12;
        any = true;
    }
    if (!any) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    const uint8_t dev_specific = uint8_t((lun.read_only ? 0x80 : 0) | 0x10);  // WP, DPOFUA
    if (ten) {
        be::put16(d, uint16_t(n - 2));
        d[3] = dev_specific;
        d[4] = llbaa && !dbd ? 0x01 : 0x00;
        be::put16(d + 6, uint16_t(bd_len));
    } else {
        d[0] = uint8_t(n - 1);
        d[2] = dev_specific;
        d[3] = uint8_t(bd_len);
    }
    finish_data(t, d, n, alloc);
}

void spc_mode_select(Task& t, bool ten) {
    const uint8_t* c = t.cdb;
    const uint32_t len = ten ? be::get16(c + 7) : c[4];
    if (len == 0) return;
    // Only the current values are accepted: nothing here is changeable, but a page that
    // repeats what MODE SENSE reported is fine (initiators do that).
    uint8_t d[512] = {};
    const uint32_t n = copy_from_iov(d, t.iov, t.iovcnt, 0, std::min<uint32_t>(len, sizeof(d)));
    const uint32_t hdr = ten ? 8 : 4;
    if (n < hdr) return t.check_condition(kIllegalRequest, kAscParameterListLengthError);
    const uint32_t bd_len = ten ? be::get16(d + 6) : d[3];
    uint32_t off = hdr + bd_len;
    while (off + 2 <= n) {
        const uint8_t page = d[off] & 0x3f;
        const uint32_t plen = uint32_t(d[off + 1]) + 2;
        if (off + plen > n) return t.check_condition(kIllegalRequest, kAscParameterListLengthError);
        if (page == 0x08) {
            const bool wce = d[off + 2] & 0x04;
            if (wce != t.lun->write_cache)
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInParamList);
        } else if (page != 0x0a && page != 0x1c) {
            return t.check_condition(kIllegalRequest, kAscInvalidFieldInParamList);
        }
        off += plen;
    }
}

void spc_report_luns(Task& t) {
    const uint8_t* c = t.cdb;
    const uint8_t select = c[2];
    const uint32_t alloc = be::get32(c + 6);
    if (alloc < 16) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    if (select != 0x00 && select != 0x01 && select != 0x02)
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    std::vector<uint8_t> d(8);
    if (select != 0x01 && t.luns) {
        for (const auto& l : *t.luns) {
            uint8_t e[8] = {};
            if (l->id < 256) {
                e[1] = uint8_t(l->id);
            } else {
                e[0] = uint8_t(0x40 | ((l->id >> 8) & 0x3f));
                e[1] = uint8_t(l->id);
            }
            d.insert(d.end(), e, e + 8);
        }
    }
    be::put32(d.data(), uint32_t(d.size() - 8));
    finish_data(t, d.data(), uint32_t(d.size()), alloc);
}

void spc_request_sense(Task& t) {
    const uint8_t* c = t.cdb;
    if (c[1] & 0x01) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);  // DESC
    uint8_t d[18];
    fill_sense(d, kNoSense, kAscNone);
    if (!t.lun) fill_sense(d, kIllegalRequest, kAscLunNotSupported);
    finish_data(t, d, sizeof(d), c[4]);
}

void sbc_read_capacity10(Task& t) {
    const uint8_t* c = t.cdb;
    // PMI bit and LBA field: obsolete in SBC-3 but a set PMI with LBA 0 is fine.
    if ((c[8] & 0x01) == 0 && be::get32(c + 2) != 0)
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    uint8_t d[8];
    const uint64_t last = t.lun->num_blocks ? t.lun->num_blocks - 1 : 0;
    be::put32(d, uint32_t(std::min<uint64_t>(last, 0xffffffff)));
    be::put32(d + 4, t.lun->block_size);
    finish_data(t, d, 8, 8);
}

void sbc_read_capacity16(Task& t) {
    const uint32_t alloc = be::get32(t.cdb + 10);
    uint8_t d[32] = {};
    be::put64(d, t.lun->num_blocks ? t.lun->num_blocks - 1 : 0);
    be::put32(d + 8, t.lun->block_size);
    if (t.lun->unmap) d[14] = 0x80;  // LBPME
    finish_data(t, d, 32, alloc);
}

void sbc_get_lba_status(Task& t) {
    const uint64_t lba = be::get64(t.cdb + 2);
    const uint32_t alloc = be::get32(t.cdb + 10);
    if (lba >= t.lun->num_blocks) return t.check_condition(kIllegalRequest, kAscLbaOutOfRange);
    uint8_t d[24] = {};
    be::put32(d, 20);
    be::put64(d + 8, lba);
    be::put32(d + 16, uint32_t(std::min<uint64_t>(t.lun->num_blocks - lba, 0xffffffff)));
    d[20] = 0x00;  // mapped (or unknown): the bdev layer has no allocation query
    finish_data(t, d, 24, alloc);
}

}  // namespace nocstor::scsi
