// CDB decoding: what a command transfers and whether it may run at all (LBA range, protection
// fields, write protection, limits). Execution is in sbc_exec.cpp.
#include <algorithm>
#include <cstring>

#include "iscsi/scsi/scsi_internal.h"
#include "modules/iov_util.h"

namespace nocstor::scsi {

void Task::check_condition(SenseKey key, uint16_t asc) {
    status = kCheckCondition;
    fill_sense(sense, key, asc);
    sense_len = 18;
    dir = DataDir::None;
}

void fill_sense(uint8_t* out, SenseKey key, uint16_t asc) {
    std::memset(out, 0, 18);
    out[0] = 0x70;  // current error, fixed format
    out[2] = key;
    out[7] = 10;  // additional length
    out[12] = uint8_t(asc >> 8);
    out[13] = uint8_t(asc);
}

uint32_t copy_to_iov(const iovec* iov, int iovcnt, const uint8_t* src, uint32_t len) {
    iovec part[Task::kMaxIov];
    const int n = iov_slice(iov, iovcnt, 0, len, part, Task::kMaxIov);
    uint32_t done = 0;
    for (int i = 0; i < n; ++i) done += uint32_t(part[i].iov_len);
    iov_copy_from_buf(part, n, src, done);
    return done;
}

uint32_t copy_from_iov(uint8_t* dst, const iovec* iov, int iovcnt, uint32_t off, uint32_t len) {
    iovec part[Task::kMaxIov];
    const int n = iov_slice(iov, iovcnt, off, len, part, Task::kMaxIov);
    uint32_t done = 0;
    for (int i = 0; i < n; ++i) done += uint32_t(part[i].iov_len);
    iov_copy_to_buf(part, n, dst, done);
    return done;
}

namespace {

constexpr uint32_t kSpcDataMax = 8192;             // the most a data-building command produces
constexpr uint32_t kVerifyMaxBytes = 1024 * 1024;  // VERIFY compares all its data at once

// LBA range check: the command's blocks must lie on the medium.
bool in_range(const Task& t, uint64_t lba, uint64_t n) {
    const uint64_t cap = t.lun->num_blocks;
    return lba <= cap && n <= cap - lba;
}

// A read/write: lba, nblocks, protection field, limits, write protection.
void plan_rw(Task& t, uint64_t lba, uint32_t n, bool write, uint8_t protect) {
    const Lun& lun = *t.lun;
    if (protect) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    if (write && lun.read_only) return t.check_condition(kDataProtect, kAscWriteProtected);
    if (!in_range(t, lba, n)) return t.check_condition(kIllegalRequest, kAscLbaOutOfRange);
    if (uint64_t(n) * lun.block_size > lun.max_transfer_bytes)
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    t.lba = lba;
    t.nblocks = n;
    t.xfer_len = n * lun.block_size;
    t.dir = n ? (write ? DataDir::Out : DataDir::In) : DataDir::None;
}

void plan_data_in(Task& t, uint32_t alloc) {
    t.dir = alloc ? DataDir::In : DataDir::None;
    t.xfer_len = std::min(alloc, kSpcDataMax);
}

void plan_write_same(Task& t, uint64_t lba, uint32_t n, bool ndob) {
    const Lun& lun = *t.lun;
    const uint8_t flags = t.cdb[1];
    if (flags & 0x10) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);  // ANCHOR
    if (flags & 0xe0)
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);  // WRPROTECT
    if (lun.read_only) return t.check_condition(kDataProtect, kAscWriteProtected);
    if (n == 0 || n > kMaxWriteSameBlocks)  // WSNZ
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    if (!in_range(t, lba, n)) return t.check_condition(kIllegalRequest, kAscLbaOutOfRange);
    t.lba = lba;
    t.nblocks = n;
    t.xfer_len = ndob ? 0 : lun.block_size;
    t.dir = ndob ? DataDir::None : DataDir::Out;
}

void plan_verify(Task& t, uint64_t lba, uint32_t n) {
    const Lun& lun = *t.lun;
    const uint8_t bytchk = (t.cdb[1] >> 1) & 3;
    if (t.cdb[1] & 0xe0) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    if (bytchk == 2 || bytchk == 3)
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    if (!in_range(t, lba, n)) return t.check_condition(kIllegalRequest, kAscLbaOutOfRange);
    if (bytchk && uint64_t(n) * lun.block_size > kVerifyMaxBytes)
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    t.lba = lba;
    t.nblocks = n;
    t.xfer_len = bytchk ? n * lun.block_size : 0;
    t.dir = t.xfer_len ? DataDir::Out : DataDir::None;
}

void plan_range_only(Task& t, uint64_t lba, uint32_t n) {
    if (!in_range(t, lba, n)) return t.check_condition(kIllegalRequest, kAscLbaOutOfRange);
    t.lba = lba;
    t.nblocks = n;
}

}  // namespace

void plan(Task& t) {
    t.reset_results();
    t.dir = DataDir::None;
    t.xfer_len = 0;
    const uint8_t* c = t.cdb;
    const uint8_t opc = c[0];
    if (!t.lun) {
        switch (opc) {
            case op::kInquiry:
                return plan_data_in(t, be::get16(c + 3));
            case op::kReportLuns:
                return plan_data_in(t, be::get32(c + 6));
            case op::kRequestSense:
                return plan_data_in(t, c[4]);
            default:
                return t.check_condition(kIllegalRequest, kAscLunNotSupported);
        }
    }
    const Lun& lun = *t.lun;
    switch (opc) {
        case op::kTestUnitReady:
        case op::kStartStopUnit:
        case op::kPreventAllow:
        case op::kReserve6:
        case op::kRelease6:
            return;
        case op::kRequestSense:
            return plan_data_in(t, c[4]);
        case op::kInquiry:
            return plan_data_in(t, be::get16(c + 3));
        case op::kModeSense6:
            return plan_data_in(t, c[4]);
        case op::kModeSense10:
            return plan_data_in(t, be::get16(c + 7));
        case op::kModeSelect6:
        case op::kModeSelect10: {
            const uint32_t len = opc == op::kModeSelect6 ? c[4] : be::get16(c + 7);
            if (len > 512) return t.check_condition(kIllegalRequest, kAscParameterListLengthError);
            t.xfer_len = len;
            t.dir = len ? DataDir::Out : DataDir::None;
            return;
        }
        case op::kReportLuns:
            return plan_data_in(t, be::get32(c + 6));
        case op::kPrIn:
            return plan_data_in(t, be::get16(c + 7));
        case op::kPrOut: {
            const uint32_t len = be::get32(c + 5);
            if (len != 24) return t.check_condition(kIllegalRequest, kAscParameterListLengthError);
            t.xfer_len = len;
            t.dir = DataDir::Out;
            return;
        }
        case op::kMaintenanceIn:
            if ((c[1] & 0x1f) == op::kSaReportSupportedOpcodes)
                return plan_data_in(t, be::get32(c + 6));
            return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
        case op::kReadCapacity10:
            return plan_data_in(t, 8);
        case op::kServiceActionIn16: {
            const uint8_t sa = c[1] & 0x1f;
            if (sa == op::kSaReadCapacity16 || sa == op::kSaGetLbaStatus)
                return plan_data_in(t, be::get32(c + 10));
            return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
        }
        case op::kRead6:
        case op::kWrite6: {
            const uint32_t n = c[4] ? c[4] : 256;
            return plan_rw(t, be::get24(c + 1) & 0x1fffff, n, opc == op::kWrite6, 0);
        }
        case op::kRead10:
        case op::kWrite10:
        case op::kWriteVerify10:
            return plan_rw(t, be::get32(c + 2), be::get16(c + 7), opc != op::kRead10, c[1] >> 5);
        case op::kRead12:
        case op::kWrite12:
        case op::kWriteVerify12:
            return plan_rw(t, be::get32(c + 2), be::get32(c + 6), opc != op::kRead12, c[1] >> 5);
        case op::kRead16:
        case op::kWrite16:
        case op::kWriteVerify16:
            return plan_rw(t, be::get64(c + 2), be::get32(c + 10), opc != op::kRead16, c[1] >> 5);
        case op::kVerify10:
            return plan_verify(t, be::get32(c + 2), be::get16(c + 7));
        case op::kVerify12:
            return plan_verify(t, be::get32(c + 2), be::get32(c + 6));
        case op::kVerify16:
            return plan_verify(t, be::get64(c + 2), be::get32(c + 10));
        case op::kSyncCache10:
            return plan_range_only(t, be::get32(c + 2), be::get16(c + 7));
        case op::kSyncCache16:
            return plan_range_only(t, be::get64(c + 2), be::get32(c + 10));
        case op::kPrefetch10:
            return plan_range_only(t, be::get32(c + 2), be::get16(c + 7));
        case op::kPrefetch16:
            return plan_range_only(t, be::get64(c + 2), be::get32(c + 10));
        case op::kWriteSame10:
            if (c[1] & 0x08 && !lun.unmap)  // UNMAP bit without thin provisioning
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            return plan_write_same(t, be::get32(c + 2), be::get16(c + 7), false);
        case op::kWriteSame16:
            if (c[1] & 0x08 && !lun.unmap)
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            return plan_write_same(t, be::get64(c + 2), be::get32(c + 10), c[1] & 0x01);
        case op::kUnmap: {
            if (!lun.unmap) return t.check_condition(kIllegalRequest, kAscInvalidOpcode);
            if (c[1] & 0x01) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            if (lun.read_only) return t.check_condition(kDataProtect, kAscWriteProtected);
            const uint32_t len = be::get16(c + 7);
            if (len > 8 + 16 * kMaxUnmapDescriptors)
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            t.xfer_len = len;
            t.dir = len ? DataDir::Out : DataDir::None;
            return;
        }
        case op::kCompareAndWrite: {
            const uint32_t n = c[13];
            if (c[1] & 0xe0) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            if (lun.read_only) return t.check_condition(kDataProtect, kAscWriteProtected);
            if (n > max_compare_and_write_blocks(lun))
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            const uint64_t lba = be::get64(c + 2);
            if (!in_range(t, lba, n)) return t.check_condition(kIllegalRequest, kAscLbaOutOfRange);
            t.lba = lba;
            t.nblocks = n;
            t.xfer_len = 2 * n * lun.block_size;
            t.dir = n ? DataDir::Out : DataDir::None;
            return;
        }
        default:
            return t.check_condition(kIllegalRequest, kAscInvalidOpcode);
    }
}

}  // namespace nocstor::scsi
