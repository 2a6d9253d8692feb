// The checks of every command (reservations, unit attentions), and SPC-2 reservations (RESERVE(6) /
// RELEASE(6)): one holder per LUN, shared by every poll group through an atomic in the LUN's shared
// state.
#include "iscsi/scsi/scsi_internal.h"

namespace nocstor::scsi {

namespace {

// Commands a reservation held by another nexus lets through (SPC-2 5.5.1).
bool allowed_while_reserved(uint8_t opc) {
    return opc == op::kInquiry || opc == op::kReportLuns || opc == op::kRequestSense ||
           opc == op::kRelease6;
}

}  // namespace

void check_reservation(Task& t) {
    if (!t.lun) return;
    if (!pr_allows(t)) {
        t.status = kReservationConflict;
        t.sense_len = 0;
        t.dir = DataDir::None;
        return;
    }
    const uint64_t holder = t.lun->shared->reserved_by.load(std::memory_order_acquire);
    if (holder == 0 || holder == t.nexus || allowed_while_reserved(t.cdb[0])) return;
    t.status = kReservationConflict;
    t.sense_len = 0;
    t.dir = DataDir::None;
}

void check_unit_attention(Task& t, uint16_t* pending) {
    if (*pending == 0 || t.status != kGood) return;
    const uint8_t opc = t.cdb[0];
    if (opc == op::kReportLuns && *pending == kAscReportedLunsDataChanged) {
        *pending = 0;
    } else if (opc != op::kInquiry && opc != op::kReportLuns && opc != op::kRequestSense) {
        t.check_condition(kUnitAttention, *pending);
        *pending = 0;
    }
}

void release_reservation(const Lun& lun, uint64_t nexus) {
    uint64_t expected = nexus;
    lun.shared->reserved_by.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
}

void reset_reservation(const Lun& lun) {
    lun.shared->reserved_by.store(0, std::memory_order_release);
}

// RESERVE(6): taken by this nexus unless another holds it (then RESERVATION CONFLICT, already
// decided by check_reservation). RELEASE(6): only the holder's releases anything.
void spc_reserve6(Task& t) {
    if (t.cdb[1] & 0x01) return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    uint64_t expected = 0;
    if (!t.lun->shared->reserved_by.compare_exchange_strong(expected, t.nexus,
                                                            std::memory_order_acq_rel) &&
        expected != t.nexus) {
        t.status = kReservationConflict;
    }
}

void spc_release6(Task& t) {
    release_reservation(*t.lun, t.nexus);
}

bool is_plain_write(uint8_t opc) {
    return opc == op::kWrite6 || opc == op::kWrite10 || opc == op::kWrite12 ||
           opc == op::kWrite16 || opc == op::kWriteVerify10 || opc == op::kWriteVerify12 ||
           opc == op::kWriteVerify16;
}

bool is_plain_read(uint8_t opc) {
    return opc == op::kRead6 || opc == op::kRead10 || opc == op::kRead12 || opc == op::kRead16;
}

}  // namespace nocstor::scsi
