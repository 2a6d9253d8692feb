// The iSCSI target's configuration as the data plane sees it: immutable snapshots built by the
// control thread (IscsiTarget owns the master copy, with SPDK's model: portal groups, initiator
// groups, auth groups, target nodes mapping portal groups to initiator groups) and pushed to
// every poll group by message, so the I/O path never takes a lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "iscsi/negotiation.h"
#include "iscsi/scsi/scsi.h"

namespace nocstor::iscsi_tgt {

struct Portal {
    std::string host;  // numeric address; "0.0.0.0" / "[::]" = any
    uint16_t port = 3260;
    std::string to_string() const;  // host:port ([v6]:port)
};

struct AuthSettings {
    bool disable_chap = false;
    bool require_chap = false;
    bool mutual_chap = false;
    int chap_group = 0;
};

struct PortalGroup {
    int tag = 0;
    std::vector<Portal> portals;
    bool is_private = false;  // not announced by SendTargets
    // Discovery sessions through this group (iscsi_portal_group_set_auth); else the global one.
    std::optional<AuthSettings> discovery_auth;
};

struct InitiatorGroup {
    int tag = 0;
    std::vector<std::string> initiators;  // names, "ANY", "!name" denies
    std::vector<std::string> netmasks;    // "ANY", an address, or address/prefix
};

struct ChapSecret {
    std::string user, secret, muser, msecret;
};

struct AuthGroup {
    int tag = 0;
    std::vector<ChapSecret> secrets;
};

struct TargetNode {
    std::string name;  // full IQN
    std::string alias;
    std::vector<std::pair<int, int>> pg_ig_maps;  // (portal group tag, initiator group tag)
    scsi::LunTable luns;
    uint32_t queue_depth = 64;
    AuthSettings auth;
    bool header_digest = false;  // required
    bool data_digest = false;    // required

    const scsi::Lun* find_lun(uint32_t id) const;
};

// iscsi_set_options, with SPDK's names; the values nocstor uses are documented in
// docs/iscsi-target.md.
struct IscsiOptions {
    std::string node_base = "iqn.2016-06.io.spdk";
    uint32_t nop_timeout = 60;
    uint32_t nop_in_interval = 30;
    AuthSettings discovery_auth;
    uint32_t max_sessions = 128;
    uint32_t max_queue_depth = 64;
    uint32_t max_connections_per_session = 1;
    uint32_t default_time2wait = 2;
    uint32_t default_time2retain = 20;
    uint32_t first_burst_length = 8192;
    bool immediate_data = true;
    uint32_t error_recovery_level = 0;
    bool allow_duplicated_isid = false;
    uint32_t max_large_datain_per_connection = 64;
    uint32_t max_r2t_per_connection = 4;
    uint32_t pdu_pool_size = 0;
    uint32_t immediate_data_pool_size = 0;
    uint32_t data_out_pool_size = 0;
    // nocstor's own: the largest data segment it accepts and the largest burst.
    uint32_t max_recv_data_segment_length = 256 * 1024;
    uint32_t max_burst_length = 1024 * 1024;
};

struct ListenerRef {
    uint32_t id = 0;
    int pg_tag = 0;
    Portal portal;
};

struct IscsiSnapshot {
    IscsiOptions options;
    std::vector<std::shared_ptr<const TargetNode>> targets;
    std::map<int, PortalGroup> portal_groups;
    std::map<int, InitiatorGroup> initiator_groups;
    std::map<int, AuthGroup> auth_groups;
    std::vector<ListenerRef> listeners;

    const TargetNode* find_target(std::string_view name) const;
    const ListenerRef* listener(uint32_t id) const;
    // Whether `initiator` from `addr` may reach `t` through portal group `pg_tag`.
    bool allowed(const TargetNode& t, int pg_tag, std::string_view initiator,
                 std::string_view addr) const;
    // Whether `initiator` from `addr` may see `t` through any portal group (discovery).
    bool visible(const TargetNode& t, std::string_view initiator, std::string_view addr) const;
    const ChapSecret* find_secret(int group, std::string_view user) const;
    TargetOffer offer_for(const TargetNode* t) const;
};

// The full IQN for a target node name: names without ':' get "<node_base>:" in front (SPDK).
std::string full_target_name(const std::string& node_base, const std::string& name);
bool valid_iscsi_name(std::string_view name);
// Address matches netmask ("ANY", "a.b.c.d", "a.b.c.d/nn", "[v6]/nn" or "v6/nn").
bool netmask_matches(std::string_view netmask, std::string_view addr);
bool valid_netmask(std::string_view netmask);

}  // namespace nocstor::iscsi_tgt
