// The subsystem model as the data plane sees it: immutable snapshots built by the control thread
// (NvmfTarget owns the master copy) and pushed to every poll group by message. Nothing here is
// modified after it is published, so a poll group reads it without locks.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bdev/bdev.h"
#include "nvmf/auth.h"

namespace nocstor::nvmf {

// A transport address a listener serves. adrfam is derived from traddr (':' => IPv6).
struct ListenAddress {
    std::string traddr = "127.0.0.1";
    uint16_t port = 4420;

    bool ipv6() const { return traddr.find(':') != std::string::npos; }
    std::string to_string() const;
    friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

// One open namespace. Owned through shared_ptr by snapshots and by the poll groups' tables;
// the last reference closes the bdev descriptor on the control thread.
struct NamespaceInfo {
    uint32_t nsid = 0;
    std::string bdev_name;
    BdevDesc* desc = nullptr;
    // Closes desc on the control thread once the last NamespaceInfo sharing it is gone (a
    // resized namespace is a new NamespaceInfo on the same descriptor).
    std::shared_ptr<const void> desc_guard;
    Uuid uuid{};  // NGUID = UUID bytes, EUI64 = first 8 bytes
    uint32_t block_size = 512;
    uint64_t num_blocks = 0;
    bool write_cache = false;
};

struct SubsystemInfo {
    std::string nqn;
    std::string serial;
    std::string model;
    uint32_t max_namespaces = 32;
    bool allow_any_host = false;
    std::vector<std::string> hosts;
    // Hosts that must authenticate (DH-HMAC-CHAP), with their keys.
    std::vector<std::pair<std::string, std::shared_ptr<const HostKeys>>> host_keys;
    std::vector<uint32_t> listener_ids;  // ids of TargetSnapshot::listeners this subsystem uses
    std::vector<std::shared_ptr<const NamespaceInfo>> namespaces;  // ascending nsid

    bool host_allowed(std::string_view hostnqn) const;
    std::shared_ptr<const HostKeys> keys_of(std::string_view hostnqn) const;
    bool listener_allowed(uint32_t listener_id) const;
    const NamespaceInfo* find_ns(uint32_t nsid) const;
};

struct ListenerInfo {
    uint32_t id = 0;  // also the PORTID of discovery log entries
    ListenAddress addr;
    bool secure = false;  // TLS secure channel
};

// Everything the data plane needs to know about the configuration, as of one change.
struct TargetSnapshot {
    uint64_t genctr = 0;  // discovery log generation: bumped on every change
    std::vector<std::shared_ptr<const SubsystemInfo>> subsystems;
    std::vector<ListenerInfo> listeners;
    // The discovery controller's hosts with DH-HMAC-CHAP keys (nvmf_subsystem_add_host on the
    // discovery NQN): they must authenticate; any other host may discover.
    std::shared_ptr<const SubsystemInfo> discovery;

    const SubsystemInfo* find(std::string_view nqn) const;
    const ListenerInfo* listener(uint32_t id) const;
};

}  // namespace nocstor::nvmf
