// REPORT SUPPORTED OPERATION CODES (MAINTENANCE IN, service action 0x0C; SPC-4 6.35): the
// commands of this command set with the CDB bits each one uses, so that initiators (and
// libiscsi's DPO/FUA tests) know what they may send.
#include <algorithm>
#include <cstring>
#include <vector>

#include "iscsi/scsi/scsi_internal.h"

namespace nocstor::scsi {

namespace {

struct OpInfo {
    uint8_t opcode;
    uint16_t sa;  // service action, when has_sa
    bool has_sa;
    uint8_t len;
    uint8_t usage[16];  // CDB usage data: the bits the command looks at
};

// Usage bytes end with the CONTROL byte mask 0x07 (NACA, obsolete, link) as SPC-4 shows it.
const std::vector<OpInfo>& ops() {
    static const std::vector<OpInfo> v = {
        {op::kTestUnitReady, 0, false, 6, {0x00, 0, 0, 0, 0, 0x07}},
        {op::kRequestSense, 0, false, 6, {0x03, 0x01, 0, 0, 0xff, 0x07}},
        {op::kRead6, 0, false, 6, {0x08, 0x1f, 0xff, 0xff, 0xff, 0x07}},
        {op::kWrite6, 0, false, 6, {0x0a, 0x1f, 0xff, 0xff, 0xff, 0x07}},
        {op::kInquiry, 0, false, 6, {0x12, 0x01, 0xff, 0xff, 0xff, 0x07}},
        {op::kModeSelect6, 0, false, 6, {0x15, 0x11, 0, 0, 0xff, 0x07}},
        {op::kReserve6, 0, false, 6, {0x16, 0, 0, 0, 0, 0x07}},
        {op::kRelease6, 0, false, 6, {0x17, 0, 0, 0, 0, 0x07}},
        {op::kModeSense6, 0, false, 6, {0x1a, 0x08, 0xff, 0xff, 0xff, 0x07}},
        {op::kStartStopUnit, 0, false, 6, {0x1b, 0x01, 0, 0x0f, 0xf7, 0x07}},
        {op::kPreventAllow, 0, false, 6, {0x1e, 0, 0, 0, 0x03, 0x07}},
        {op::kReadCapacity10, 0, false, 10, {0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0x07}},
        {op::kRead10, 0, false, 10, {0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x07}},
        {op::kWrite10, 0, false, 10, {0x2a, 0x18, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x07}},
        {op::kWriteVerify10,
         0,
         false,
         10,
         {0x2e, 0x12, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x07}},
        {op::kVerify10, 0, false, 10, {0x2f, 0x12, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x07}},
        {op::kPrefetch10, 0, false, 10, {0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x07}},
        {op::kSyncCache10, 0, false, 10, {0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x07}},
        {op::kWriteSame10, 0, false, 10, {0x41, 0x08, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x07}},
        {op::kUnmap, 0, false, 10, {0x42, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
        {op::kModeSelect10, 0, false, 10, {0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
        {op::kModeSense10, 0, false, 10, {0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0x07}},
        {op::kRead16,
         0,
         false,
         16,
         {0x88, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kCompareAndWrite,
         0,
         false,
         16,
         {0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0, 0x07}},
        {op::kWrite16,
         0,
         false,
         16,
         {0x8a, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kWriteVerify16,
         0,
         false,
         16,
         {0x8e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kVerify16,
         0,
         false,
         16,
         {0x8f, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kPrefetch16,
         0,
         false,
         16,
         {0x90, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kSyncCache16,
         0,
         false,
         16,
         {0x91, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kWriteSame16,
         0,
         false,
         16,
         {0x93, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kServiceActionIn16,
         op::kSaReadCapacity16,
         true,
         16,
         {0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
        {op::kServiceActionIn16,
         op::kSaGetLbaStatus,
         true,
         16,
         {0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
          0x07}},
        {op::kReportLuns, 0, false, 12, {0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
        {op::kPrIn, 0, true, 10, {0x5e, 0x00, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
        {op::kPrIn, 1, true, 10, {0x5e, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
        {op::kPrIn, 2, true, 10, {0x5e, 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
        {op::kPrIn, 3, true, 10, {0x5e, 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
        {op::kPrOut, 0, true, 10, {0x5f, 0x00, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
        {op::kPrOut, 1, true, 10, {0x5f, 0x01, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
        {op::kPrOut, 2, true, 10, {0x5f, 0x02, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
        {op::kPrOut, 3, true, 10, {0x5f, 0x03, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
        {op::kPrOut, 4, true, 10, {0x5f, 0x04, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
        {op::kPrOut, 5, true, 10, {0x5f, 0x05, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
        {op::kPrOut, 6, true, 10, {0x5f, 0x06, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
        {op::kMaintenanceIn,
         op::kSaReportSupportedOpcodes,
         true,
         12,
         {0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
        {op::kRead12,
         0,
         false,
         12,
         {0xa8, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
        {op::kWrite12,
         0,
         false,
         12,
         {0xaa, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
        {op::kWriteVerify12,
         0,
         false,
         12,
         {0xae, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
        {op::kVerify12,
         0,
         false,
         12,
         {0xaf, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
    };
    return v;
}

// Command timeouts descriptor (RCTD): none recommended.
void put_timeouts(std::vector<uint8_t>& d) {
    const uint8_t t[12] = {0, 0x0a};
    d.insert(d.end(), t, t + 12);
}

}  // namespace

void spc_report_supported_opcodes(Task& t) {
    const uint8_t* c = t.cdb;
    const bool rctd = c[2] & 0x80;
    const uint8_t options = c[2] & 0x07;
    const uint8_t req_op = c[3];
    const uint16_t req_sa = be::get16(c + 4);
    const uint32_t alloc = be::get32(c + 6);
    std::vector<uint8_t> d;
    if (options == 0) {  // every command
        d.resize(4);
        for (const OpInfo& o : ops()) {
            uint8_t e[8] = {o.opcode,
                            0,
                            uint8_t(o.sa >> 8),
                            uint8_t(o.sa),
                            0,
                            uint8_t((o.has_sa ? 0x01 : 0) | (rctd ? 0x02 : 0)),
                            0,
                            o.len};
            d.insert(d.end(), e, e + 8);
            if (rctd) put_timeouts(d);
        }
        be::put32(d.data(), uint32_t(d.size() - 4));
    } else if (options >= 1 && options <= 3) {
        const OpInfo* found = nullptr;
        bool known = false, has_sa = false;
        for (const OpInfo& o : ops()) {
            if (o.opcode != req_op) continue;
            known = true;
            has_sa |= o.has_sa;
            if (!o.has_sa || o.sa == req_sa) found = &o;
        }
        // Option 1 names an opcode without service actions, option 2 one with them.
        if ((options == 1 && has_sa) || (options == 2 && known && !has_sa))
            return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
        d.resize(4);
        if (found) {
            d[1] = uint8_t(0x03 | (rctd ? 0x80 : 0));  // supported (standard conformance)
            be::put16(d.data() + 2, found->len);
            d.insert(d.end(), found->usage, found->usage + found->len);
            if (rctd) put_timeouts(d);
        } else {
            d[1] = 0x01;  // not supported
        }
    } else {
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    }
    const uint32_t n = std::min<uint32_t>({uint32_t(d.size()), alloc, t.data_len});
    t.data_in_len = copy_to_iov(t.iov, t.iovcnt, d.data(), n);
}

}  // namespace nocstor::scsi
