#include "nvmf/discovery.h"

#include <algorithm>
#include <cstring>

#include "nvmf/limits.h"
#include "nvmf/spec.h"

namespace nocstor::nvmf {

namespace {
void copy_padded(char* dst, size_t size, const std::string& s) {
    std::memset(dst, ' ', size);
    std::memcpy(dst, s.data(), std::min(size, s.size()));
}

void fill_entry(nvme::DiscoveryLogEntry* e, const ListenerInfo& l, const std::string& nqn,
                uint8_t subtype) {
    std::memset(e, 0, sizeof *e);
    e->trtype = nvme::trtype::kTcp;
    e->adrfam = l.addr.ipv6() ? nvme::adrfam::kIpv6 : nvme::adrfam::kIpv4;
    e->subtype = subtype;
    e->treq = l.secure ? nvme::kTreqSecureChannelRequired : nvme::kTreqSecureChannelNotRequired;
    e->portid = static_cast<uint16_t>(l.id);
    e->cntlid = nvme::kCntlidDynamic;
    e->asqsz = kMaxQueueEntries;
    copy_padded(e->trsvcid, sizeof e->trsvcid, std::to_string(l.addr.port));
    copy_padded(e->traddr, sizeof e->traddr, l.addr.traddr);
    std::memcpy(e->subnqn, nqn.data(), std::min(nqn.size(), sizeof e->subnqn - 1));
    e->tsas[0] = l.secure ? nvme::kTcpSectypeTls13 : nvme::kTcpSectypeNone;
}
}  // namespace

std::vector<uint8_t> build_discovery_log(const TargetSnapshot& snap, const std::string& hostnqn,
                                         uint32_t listener_id) {
    std::vector<nvme::DiscoveryLogEntry> entries;
    for (const auto& s : snap.subsystems) {
        if (!s->host_allowed(hostnqn)) continue;
        for (uint32_t lid : s->listener_ids) {
            const ListenerInfo* l = snap.listener(lid);
            if (!l) continue;
            fill_entry(&entries.emplace_back(), *l, s->nqn, nvme::subtype::kNvm);
        }
    }
    if (const ListenerInfo* l = snap.listener(listener_id)) {
        fill_entry(&entries.emplace_back(), *l, nvme::kDiscoveryNqn,
                   nvme::subtype::kCurrentDiscovery);
    }
    std::vector<uint8_t> out(sizeof(nvme::DiscoveryLogHeader) +
                             entries.size() * sizeof(nvme::DiscoveryLogEntry));
    auto* h = reinterpret_cast<nvme::DiscoveryLogHeader*>(out.data());
    h->genctr = snap.genctr;
    h->numrec = entries.size();
    h->recfmt = 0;
    if (!entries.empty()) {
        std::memcpy(out.data() + sizeof *h, entries.data(),
                    entries.size() * sizeof(nvme::DiscoveryLogEntry));
    }
    return out;
}

}  // namespace nocstor::nvmf
