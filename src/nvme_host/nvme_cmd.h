// Submission queue entries for the commands the initiator sends (NVM and admin), so that the
// field packing lives in one place.
#pragma once

#include <cstdint>
#include <cstring>

#include "nvmf/spec.h"

namespace nocstor::nvme_host::cmd {

inline nvme::SubmissionQueueEntry zero() {
    nvme::SubmissionQueueEntry s;
    std::memset(&s, 0, sizeof s);
    return s;
}

// Read / Write / Write Zeroes share SLBA (cdw10-11) and 0-based NLB (cdw12[15:0]).
inline nvme::SubmissionQueueEntry rw(uint8_t opcode, uint32_t nsid, uint64_t slba, uint32_t nlb,
                                     bool fua = false) {
    auto s = zero();
    s.opcode = opcode;
    s.nsid = nsid;
    s.cdw10 = uint32_t(slba);
    s.cdw11 = uint32_t(slba >> 32);
    s.cdw12 = ((nlb - 1) & 0xFFFF) | (fua ? (1u << 30) : 0);
    return s;
}
inline nvme::SubmissionQueueEntry read(uint32_t nsid, uint64_t slba, uint32_t nlb) {
    return rw(nvme::nvm_opc::kRead, nsid, slba, nlb);
}
inline nvme::SubmissionQueueEntry write(uint32_t nsid, uint64_t slba, uint32_t nlb, bool fua) {
    return rw(nvme::nvm_opc::kWrite, nsid, slba, nlb, fua);
}
inline nvme::SubmissionQueueEntry write_zeroes(uint32_t nsid, uint64_t slba, uint32_t nlb) {
    return rw(nvme::nvm_opc::kWriteZeroes, nsid, slba, nlb);
}
inline nvme::SubmissionQueueEntry flush(uint32_t nsid) {
    auto s = zero();
    s.opcode = nvme::nvm_opc::kFlush;
    s.nsid = nsid;
    return s;
}

// One Dataset Management range (16 bytes, sent as write data).
struct __attribute__((packed)) DsmRange {
    uint32_t attributes;
    uint32_t nlb;  // 1-based here
    uint64_t slba;
};
static_assert(sizeof(DsmRange) == 16);
// Deallocate `nr` ranges (1..256).
inline nvme::SubmissionQueueEntry dsm_deallocate(uint32_t nsid, uint32_t nr) {
    auto s = zero();
    s.opcode = nvme::nvm_opc::kDatasetManagement;
    s.nsid = nsid;
    s.cdw10 = nr - 1;
    s.cdw11 = 1u << 2;  // AD
    return s;
}

inline nvme::SubmissionQueueEntry identify(uint8_t cns, uint32_t nsid, uint16_t cntid = 0) {
    auto s = zero();
    s.opcode = nvme::admin_opc::kIdentify;
    s.nsid = nsid;
    s.cdw10 = cns | (uint32_t(cntid) << 16);
    return s;
}
inline nvme::SubmissionQueueEntry get_log_page(uint8_t lid, uint32_t nsid, uint64_t offset,
                                               uint32_t len_bytes, bool rae = false) {
    auto s = zero();
    const uint32_t numd = len_bytes / 4 - 1;
    s.opcode = nvme::admin_opc::kGetLogPage;
    s.nsid = nsid;
    s.cdw10 = lid | (rae ? (1u << 15) : 0) | ((numd & 0xFFFF) << 16);
    s.cdw11 = numd >> 16;
    s.cdw12 = uint32_t(offset);
    s.cdw13 = uint32_t(offset >> 32);
    return s;
}
inline nvme::SubmissionQueueEntry set_features(uint8_t fid, uint32_t cdw11) {
    auto s = zero();
    s.opcode = nvme::admin_opc::kSetFeatures;
    s.cdw10 = fid;
    s.cdw11 = cdw11;
    return s;
}
inline nvme::SubmissionQueueEntry keep_alive() {
    auto s = zero();
    s.opcode = nvme::admin_opc::kKeepAlive;
    return s;
}
inline nvme::SubmissionQueueEntry async_event_request() {
    auto s = zero();
    s.opcode = nvme::admin_opc::kAsyncEventRequest;
    return s;
}
inline nvme::SubmissionQueueEntry property_get(uint32_t offset, bool eight_bytes) {
    nvme::PropertyGetCommand c;
    std::memset(&c, 0, sizeof c);
    c.opcode = nvme::admin_opc::kFabrics;
    c.fctype = nvme::fctype::kPropertyGet;
    c.attrib = eight_bytes ? 1 : 0;
    c.offset = offset;
    nvme::SubmissionQueueEntry s;
    std::memcpy(&s, &c, sizeof s);
    return s;
}
inline nvme::SubmissionQueueEntry property_set(uint32_t offset, uint64_t value, bool eight) {
    nvme::PropertySetCommand c;
    std::memset(&c, 0, sizeof c);
    c.opcode = nvme::admin_opc::kFabrics;
    c.fctype = nvme::fctype::kPropertySet;
    c.attrib = eight ? 1 : 0;
    c.offset = offset;
    c.value = value;
    nvme::SubmissionQueueEntry s;
    std::memcpy(&s, &c, sizeof s);
    return s;
}

}  // namespace nocstor::nvme_host::cmd
