#include "nvmf/subsystem.h"

#include <algorithm>

namespace nocstor::nvmf {

std::string ListenAddress::to_string() const {
    return ipv6() ? "[" + traddr + "]:" + std::to_string(port)
                  : traddr + ":" + std::to_string(port);
}

bool SubsystemInfo::host_allowed(std::string_view hostnqn) const {
    return allow_any_host || std::find(hosts.begin(), hosts.end(), hostnqn) != hosts.end();
}

std::shared_ptr<const HostKeys> SubsystemInfo::keys_of(std::string_view hostnqn) const {
    for (const auto& [h, k] : host_keys)
        if (h == hostnqn) return k;
    return nullptr;
}

bool SubsystemInfo::listener_allowed(uint32_t listener_id) const {
    return std::find(listener_ids.begin(), listener_ids.end(), listener_id) != listener_ids.end();
}

const NamespaceInfo* SubsystemInfo::find_ns(uint32_t nsid) const {
    for (const auto& ns : namespaces) {
        if (ns->nsid == nsid) return ns.get();
    }
    return nullptr;
}

const SubsystemInfo* TargetSnapshot::find(std::string_view nqn) const {
    for (const auto& s : subsystems) {
        if (s->nqn == nqn) return s.get();
    }
    return nullptr;
}

const ListenerInfo* TargetSnapshot::listener(uint32_t id) const {
    for (const auto& l : listeners) {
        if (l.id == id) return &l;
    }
    return nullptr;
}

}  // namespace nocstor::nvmf
