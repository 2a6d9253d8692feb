// SPC-4 persistent reservations (PERSISTENT RESERVE IN / OUT): registrations keyed by I_T nexus
// (the initiator port "iqn,i,0xISID" and the target portal group, so they survive a
// reconnect), the six reservation types, REGISTER (AND IGNORE EXISTING KEY), RESERVE, RELEASE,
// CLEAR, PREEMPT (AND ABORT); READ KEYS, READ RESERVATION, REPORT CAPABILITIES, READ FULL
// STATUS. The model lives on the control thread; the data path sees only the atomics of
// LunShared (type, holder, registrant slots). Not persisted across restarts (APTPL refused).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "iscsi/scsi/scsi_internal.h"
#include "runtime/runtime.h"

namespace nocstor::scsi {

namespace {

enum PrType : uint8_t {
    kWriteExclusive = 1,
    kExclusiveAccess = 3,
    kWriteExclusiveRegistrantsOnly = 5,
    kExclusiveAccessRegistrantsOnly = 6,
    kWriteExclusiveAllRegistrants = 7,
    kExclusiveAccessAllRegistrants = 8,
};

bool valid_type(uint8_t t) {
    return t == 1 || t == 3 || (t >= 5 && t <= 8);
}
bool all_registrants(uint8_t t) {
    return t == 7 || t == 8;
}
bool registrants_type(uint8_t t) {
    return t >= 5;
}
bool exclusive_access(uint8_t t) {
    return t == 3 || t == 6 || t == 8;
}

}  // namespace

struct PrState {
    struct Registrant {
        uint64_t nexus = 0;
        uint64_t key = 0;
        std::string port;  // initiator port name
        int slot = -1;
    };
    uint32_t generation = 0;
    std::vector<Registrant> regs;
    uint8_t type = 0;
    uint64_t holder = 0;  // nexus; for *AR types any registrant holds it

    Registrant* find(uint64_t nexus) {
        for (auto& r : regs)
            if (r.nexus == nexus) return &r;
        return nullptr;
    }
};

LunShared::LunShared() : pr(std::make_unique<PrState>()) {}
LunShared::~LunShared() = default;

namespace {

// Mirrors the model into the atomics the data path reads.
void publish(LunShared& s) {
    PrState& p = *s.pr;
    for (int i = 0; i < LunShared::kMaxRegistrants; ++i) {
        uint64_t v = 0;
        for (const auto& r : p.regs)
            if (r.slot == i) v = r.nexus;
        s.pr_registrants[i].store(v, std::memory_order_relaxed);
    }
    s.pr_holder.store(p.holder, std::memory_order_relaxed);
    s.pr_type.store(p.type, std::memory_order_release);
}

int free_slot(const PrState& p) {
    for (int i = 0; i < LunShared::kMaxRegistrants; ++i) {
        bool used = false;
        for (const auto& r : p.regs) used |= r.slot == i;
        if (!used) return i;
    }
    return -1;
}

void remove_registrant(PrState& p, uint64_t nexus) {
    p.regs.erase(std::remove_if(p.regs.begin(), p.regs.end(),
                                [&](const PrState::Registrant& r) { return r.nexus == nexus; }),
                 p.regs.end());
    if (p.type && !all_registrants(p.type) && p.holder == nexus) {
        p.type = 0;
        p.holder = 0;
    }
    if (p.type && all_registrants(p.type) && p.regs.empty()) {
        p.type = 0;
        p.holder = 0;
    }
}

bool is_holder(const PrState& p, uint64_t nexus) {
    if (!p.type) return false;
    if (all_registrants(p.type)) {
        for (const auto& r : p.regs)
            if (r.nexus == nexus) return true;
        return false;
    }
    return p.holder == nexus;
}

void pr_out(Task& t, LunShared& s) {
    PrState& p = *s.pr;
    const uint8_t sa = t.cdb[1] & 0x1f;
    const uint8_t scope = t.cdb[2] >> 4;
    const uint8_t type = t.cdb[2] & 0x0f;
    uint8_t d[24] = {};
    if (t.data_len < 24) return t.check_condition(kIllegalRequest, kAscParameterListLengthError);
    copy_from_iov(d, t.iov, t.iovcnt, 0, 24);
    const uint64_t key = be::get64(d);
    const uint64_t sa_key = be::get64(d + 8);
    const uint8_t flags = d[20];
    if (flags & 0x01) {  // APTPL: registrations are not kept across restarts
        return t.check_condition(kIllegalRequest, kAscInvalidFieldInParamList);
    }
    if (flags & 0x08) return t.check_condition(kIllegalRequest, kAscInvalidFieldInParamList);
    PrState::Registrant* me = p.find(t.nexus);
    auto conflict = [&] { t.status = kReservationConflict; };
    switch (sa) {
        case 0x00:    // REGISTER
        case 0x06: {  // REGISTER AND IGNORE EXISTING KEY
            if (!me) {
                if (sa == 0x00 && key != 0) return conflict();
                if (sa_key == 0) return;
                const int slot = free_slot(p);
                if (slot < 0)
                    return t.check_condition(kIllegalRequest,
                                             kAscInsufficientRegistrationResources);
                p.regs.push_back(
                    {t.nexus, sa_key, t.initiator_port ? *t.initiator_port : "", slot});
                ++p.generation;
                break;
            }
            if (sa == 0x00 && key != me->key) return conflict();
            if (sa_key == 0) {
                remove_registrant(p, t.nexus);
            } else {
                me->key = sa_key;
            }
            ++p.generation;
            break;
        }
        case 0x01: {  // RESERVE
            if (!me || me->key != key) return conflict();
            if (scope != 0 || !valid_type(type))
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            if (p.type) {
                if (is_holder(p, t.nexus) && p.type == type) return;
                return conflict();
            }
            p.type = type;
            p.holder = t.nexus;
            break;
        }
        case 0x02: {  // RELEASE
            if (!me || me->key != key) return conflict();
            if (!p.type || !is_holder(p, t.nexus)) return;
            if (scope != 0 || type != p.type)
                return t.check_condition(kIllegalRequest, kAscInvalidReleaseOfPr);
            p.type = 0;
            p.holder = 0;
            break;
        }
        case 0x03: {  // CLEAR
            if (!me || me->key != key) return conflict();
            p.regs.clear();
            p.type = 0;
            p.holder = 0;
            ++p.generation;
            break;
        }
        case 0x04:    // PREEMPT
        case 0x05: {  // PREEMPT AND ABORT
            if (!me || me->key != key) return conflict();
            if (scope != 0 || !valid_type(type))
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
            const bool held_by_ar = p.type && all_registrants(p.type);
            if (sa_key == 0 && !held_by_ar)
                return t.check_condition(kIllegalRequest, kAscInvalidFieldInParamList);
            const PrState::Registrant* holder = nullptr;
            for (const auto& r : p.regs)
                if (r.nexus == p.holder) holder = &r;
            const bool preempts_holder =
                p.type && (held_by_ar ? sa_key == 0 : holder && holder->key == sa_key);
            std::vector<uint64_t> gone;
            for (const auto& r : p.regs)
                if (r.nexus != t.nexus && (held_by_ar && sa_key == 0 ? true : r.key == sa_key))
                    gone.push_back(r.nexus);
            if (gone.empty() && !preempts_holder) return conflict();
            for (uint64_t n : gone) {
                p.regs.erase(std::remove_if(p.regs.begin(), p.regs.end(),
                                            [&](const auto& r) { return r.nexus == n; }),
                             p.regs.end());
            }
            if (preempts_holder || !p.type) {
                if (preempts_holder) {
                    p.type = type;
                    p.holder = t.nexus;
                }
            }
            ++p.generation;
            break;
        }
        default:
            return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    }
    publish(s);
}

void pr_in(Task& t, LunShared& s) {
    PrState& p = *s.pr;
    const uint8_t sa = t.cdb[1] & 0x1f;
    const uint32_t alloc = be::get16(t.cdb + 7);
    std::vector<uint8_t> d(8);
    be::put32(d.data(), p.generation);
    switch (sa) {
        case 0x00: {  // READ KEYS
            for (const auto& r : p.regs) {
                uint8_t k[8];
                be::put64(k, r.key);
                d.insert(d.end(), k, k + 8);
            }
            be::put32(d.data() + 4, uint32_t(d.size() - 8));
            break;
        }
        case 0x01: {  // READ RESERVATION
            if (p.type) {
                uint8_t r[16] = {};
                uint64_t key = 0;
                for (const auto& reg : p.regs)
                    if (all_registrants(p.type) || reg.nexus == p.holder) key = reg.key;
                if (all_registrants(p.type)) key = 0;
                be::put64(r, key);
                r[13] = p.type;
                d.insert(d.end(), r, r + 16);
            }
            be::put32(d.data() + 4, uint32_t(d.size() - 8));
            break;
        }
        case 0x02: {  // REPORT CAPABILITIES
            d.assign(8, 0);
            be::put16(d.data(), 8);
            d[2] = 0x10;  // CRH: RESERVE(6)/RELEASE(6) conflict with persistent reservations
            d[3] = 0x80;  // TMV: the type mask is valid
            d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
            d[5] = 0x01;
            break;
        }
        case 0x03: {  // READ FULL STATUS
            for (const auto& r : p.regs) {
                std::string id = r.port;
                id.resize((id.size() + 1 + 3) & ~size_t(3), '\0');  // NUL-terminated, padded
                std::vector<uint8_t> e(24, 0);
                be::put64(e.data(), r.key);
                if (is_holder(p, r.nexus)) {
                    e[12] = 0x01;  // R_HOLDER
                    e[13] = p.type;
                }
                std::vector<uint8_t> tid(4, 0);
                tid[0] = 0x40 | 0x05;  // iSCSI, initiator port name format
                be::put16(tid.data() + 2, uint16_t(id.size()));
                tid.insert(tid.end(), id.begin(), id.end());
                be::put32(e.data() + 20, uint32_t(tid.size()));
                d.insert(d.end(), e.begin(), e.end());
                d.insert(d.end(), tid.begin(), tid.end());
            }
            be::put32(d.data() + 4, uint32_t(d.size() - 8));
            break;
        }
        default:
            return t.check_condition(kIllegalRequest, kAscInvalidFieldInCdb);
    }
    const uint32_t n = std::min<uint32_t>({uint32_t(d.size()), alloc, t.data_len});
    t.data_in_len = copy_to_iov(t.iov, t.iovcnt, d.data(), n);
}

void pr_run(Task& t) {
    LunShared& s = *t.lun->shared;
    if (t.cdb[0] == op::kPrOut) {
        pr_out(t, s);
    } else {
        pr_in(t, s);
    }
}

// Commands every nexus may send whatever the persistent reservation (SPC-4 5.13.1).
bool always_allowed(uint8_t opc) {
    return opc == op::kInquiry || opc == op::kReportLuns || opc == op::kRequestSense ||
           opc == op::kPrIn || opc == op::kPrOut || opc == op::kMaintenanceIn ||
           opc == op::kTestUnitReady || opc == op::kReadCapacity10 || opc == op::kServiceActionIn16;
}

// Commands that only read (allowed under the Write Exclusive types).
bool reads_only(uint8_t opc) {
    return opc == op::kRead6 || opc == op::kRead10 || opc == op::kRead12 || opc == op::kRead16 ||
           opc == op::kModeSense6 || opc == op::kModeSense10 || opc == op::kVerify10 ||
           opc == op::kVerify12 || opc == op::kVerify16 || opc == op::kPrefetch10 ||
           opc == op::kPrefetch16;
}

}  // namespace

bool pr_allows(const Task& t) {
    const LunShared& s = *t.lun->shared;
    const uint8_t type = s.pr_type.load(std::memory_order_acquire);
    if (type == 0) return true;
    const uint8_t opc = t.cdb[0];
    if (always_allowed(opc)) return true;
    // RESERVE(6) / RELEASE(6) conflict with a persistent reservation (CRH).
    if (opc == op::kReserve6 || opc == op::kRelease6) return false;
    bool holder;
    if (registrants_type(type)) {
        holder = false;
        for (const auto& r : s.pr_registrants)
            if (r.load(std::memory_order_relaxed) == t.nexus) holder = true;
    } else {
        holder = s.pr_holder.load(std::memory_order_relaxed) == t.nexus;
    }
    if (holder) return true;
    return !exclusive_access(type) && reads_only(opc);
}

void spc_persistent_reserve(Task& task) {
    Task* t = &task;
    Runtime* rt = Runtime::instance();
    Thread* me = Thread::current();
    if (!rt || !me || me == rt->control_thread()) {  // unit tests, or already there
        pr_run(*t);
        return t->done(t, t->done_arg);
    }
    rt->control_thread()->send([t, me] {
        pr_run(*t);
        me->send([t] { t->done(t, t->done_arg); });
    });
}

}  // namespace nocstor::scsi
