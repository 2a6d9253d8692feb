// Admin bring-up for the protocol tests' TestHost: Fabrics Connect, Property Get/Set, CC.EN,
// Identify, on the test target's subsystem (nvmf_test_env.h).
#pragma once

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "nvmf_host.h"
#include "nvmf_test_env.h"

namespace nocstor::nvmf::testing {

inline std::optional<nvme::CompletionQueueEntry> connect(TestHost& h, uint16_t qid, uint16_t cntlid,
                                                         const std::string& subnqn = kTestNqn,
                                                         const std::string& hostnqn = kTestHostNqn,
                                                         uint32_t kato = 0, uint16_t sqsize = 31) {
    nvme::ConnectCommand c{};
    c.opcode = nvme::admin_opc::kFabrics;
    c.flags = nvme::kSqeFlagsPsdtSgl;
    c.cid = 0x100 + qid;
    c.fctype = nvme::fctype::kConnect;
    c.qid = qid;
    c.sqsize = sqsize;
    c.kato = kato;
    nvme::ConnectData d{};
    d.cntlid = cntlid;
    std::memcpy(d.subnqn, subnqn.data(), subnqn.size());
    std::memcpy(d.hostnqn, hostnqn.data(), hostnqn.size());
    nvme::SubmissionQueueEntry s;
    std::memcpy(&s, &c, sizeof s);
    set_incapsule(s, sizeof d);
    h.send_cmd(s, &d, sizeof d);
    return h.wait_resp(c.cid);
}

inline std::optional<nvme::CompletionQueueEntry> prop_set_cc(TestHost& h, uint32_t cc) {
    nvme::PropertySetCommand p{};
    p.opcode = nvme::admin_opc::kFabrics;
    p.flags = nvme::kSqeFlagsPsdtSgl;
    p.cid = 0x200;
    p.fctype = nvme::fctype::kPropertySet;
    p.offset = nvme::prop::kCc;
    p.value = cc;
    nvme::SubmissionQueueEntry s;
    std::memcpy(&s, &p, sizeof s);
    h.send_cmd(s);
    return h.wait_resp(p.cid);
}

inline std::optional<nvme::CompletionQueueEntry> prop_get(TestHost& h, uint32_t off, bool eight) {
    nvme::PropertyGetCommand p{};
    p.opcode = nvme::admin_opc::kFabrics;
    p.flags = nvme::kSqeFlagsPsdtSgl;
    p.cid = 0x201;
    p.fctype = nvme::fctype::kPropertyGet;
    p.attrib = eight ? 1 : 0;
    p.offset = off;
    nvme::SubmissionQueueEntry s;
    std::memcpy(&s, &p, sizeof s);
    h.send_cmd(s);
    return h.wait_resp(p.cid);
}

inline constexpr uint32_t kCcEnable = 1 | (6u << 16) | (4u << 20);

// IC + admin Connect + CC.EN; returns the CNTLID (0 on failure).
inline uint16_t bring_up_admin(TestHost& h, bool hd = false, bool dd = false, uint32_t kato = 0,
                               const std::string& subnqn = kTestNqn) {
    if (!h.ok() || !h.ic(hd, dd)) return 0;
    auto c = connect(h, 0, 0xFFFF, subnqn, kTestHostNqn, kato);
    if (!c || !c->status.ok()) return 0;
    auto e = prop_set_cc(h, kCcEnable);
    if (!e || !e->status.ok()) return 0;
    return static_cast<uint16_t>(c->dw0);
}

inline bool bring_up_io(TestHost& h, uint16_t cntlid, uint16_t qid, bool hd = false,
                        bool dd = false, const std::string& subnqn = kTestNqn) {
    if (!h.ok() || !h.ic(hd, dd)) return false;
    auto c = connect(h, qid, cntlid, subnqn, kTestHostNqn, 0, 127);
    return c && c->status.ok() && c->dw0 == cntlid;
}

inline std::optional<nvme::CompletionQueueEntry> identify(TestHost& h, uint8_t cns, uint32_t nsid,
                                                          std::vector<uint8_t>* out,
                                                          uint16_t cid = 7) {
    auto s = sqe(nvme::admin_opc::kIdentify, cid, nsid);
    s.cdw10 = cns;
    set_transport(s, 4096);
    out->clear();
    h.send_cmd(s);
    return h.wait_resp(cid, out);
}

inline std::optional<nvme::CompletionQueueEntry> write_incapsule(TestHost& h, uint16_t cid,
                                                                 uint64_t lba,
                                                                 const std::vector<uint8_t>& d) {
    auto s = sqe(nvme::nvm_opc::kWrite, cid, 1);
    s.cdw10 = static_cast<uint32_t>(lba);
    s.cdw12 = static_cast<uint32_t>(d.size() / 512 - 1);
    set_incapsule(s, static_cast<uint32_t>(d.size()));
    h.send_cmd(s, d.data(), static_cast<uint32_t>(d.size()));
    return h.wait_resp(cid);
}

inline std::optional<nvme::CompletionQueueEntry> read(TestHost& h, uint16_t cid, uint64_t lba,
                                                      uint32_t bytes, std::vector<uint8_t>* out) {
    auto s = sqe(nvme::nvm_opc::kRead, cid, 1);
    s.cdw10 = static_cast<uint32_t>(lba);
    s.cdw12 = bytes / 512 - 1;
    set_transport(s, bytes);
    out->clear();
    h.send_cmd(s);
    return h.wait_resp(cid, out);
}

// A write of 512-byte blocks with its data in the capsule, sent without waiting for the answer.
inline void send_write_incapsule(TestHost& h, uint16_t cid, uint64_t lba,
                                 const std::vector<uint8_t>& d) {
    auto s = sqe(nvme::nvm_opc::kWrite, cid, 1);
    s.cdw10 = static_cast<uint32_t>(lba);
    s.cdw12 = static_cast<uint32_t>(d.size() / 512 - 1);
    set_incapsule(s, static_cast<uint32_t>(d.size()));
    h.send_cmd(s, d.data(), static_cast<uint32_t>(d.size()));
}

inline bool flush_ns1(TestHost& h, uint16_t cid) {
    auto s = sqe(nvme::nvm_opc::kFlush, cid, 1);
    h.send_cmd(s);
    auto r = h.wait_resp(cid);
    return r && r->status.ok();
}

// An admin queue and one I/O queue on subsystem `nqn` (the crash loops' host).
struct IoSession {
    TestHost admin, io;
    bool up = false;
    IoSession(uint16_t port, const std::string& nqn) : admin(port), io(port) {
        const uint16_t cntlid = bring_up_admin(admin, false, false, 0, nqn);
        up = cntlid != 0 && bring_up_io(io, cntlid, 1, false, false, nqn);
    }
};

}  // namespace nocstor::nvmf::testing
