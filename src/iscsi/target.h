// The iSCSI target: one per process. The control thread owns the master configuration (SPDK's
// portal groups, initiator groups, auth groups, target nodes and options); every change builds
// a new IscsiSnapshot and pushes it to each data thread's poll group by message before the
// operation's done runs. Portal listeners accept on the control thread and hand each socket to
// the poll group with the fewest connections.
//
// All methods: control thread only. rc is 0 or a negative errno (-EINVAL bad argument, -EEXIST
// duplicate, -ENOENT unknown, -EBUSY in use, -EADDRINUSE / -errno from the socket layer).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "iscsi/target_config.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"

namespace nocstor::iscsi_tgt {

class IscsiPollGroup;
class PortalListener;

using DoneFn = std::function<void(int rc, std::string err)>;

struct IscsiTargetOptions {
    std::function<BufferPool*(int cluster)> pool_of;
    BufferPoolConfig buffers{.small_count = 2048, .large_count = 256};
    std::vector<Thread*> threads;  // empty = Runtime::data_threads()
};

struct TargetNodeParams {
    std::string name;
    std::string alias;
    std::vector<std::pair<int, int>> pg_ig_maps;
    std::vector<std::pair<std::string, int>> luns;  // (bdev, lun id; -1 = next free)
    uint32_t queue_depth = 64;
    AuthSettings auth;
    bool header_digest = false;
    bool data_digest = false;
};

struct ConnectionInfo {
    uint64_t id = 0;
    uint32_t poll_group = 0;
    std::string initiator, target, peer, local;
    bool discovery = false;
    bool full_feature = false;
    uint16_t tsih = 0, cid = 0;
    std::string isid;  // hex
    bool header_digest = false, data_digest = false;
    uint64_t commands = 0, pdus_in = 0, pdus_out = 0, bytes_read = 0, bytes_written = 0;
};

struct IscsiStats {
    struct Group {
        uint32_t index = 0;
        uint64_t connections = 0, accepted = 0, logins = 0, login_failures = 0, commands = 0,
                 rejects = 0, nop_timeouts = 0, login_timeouts = 0;
    };
    std::vector<Group> poll_groups;
};

class IscsiTarget {
  public:
    explicit IscsiTarget(IscsiTargetOptions opts = {});
    ~IscsiTarget();
    IscsiTarget(const IscsiTarget&) = delete;
    IscsiTarget& operator=(const IscsiTarget&) = delete;

    static IscsiTarget* instance();

    void start(std::function<void()> done);
    void shutdown(std::function<void()> done);

    // Options (apply to new logins).
    const IscsiOptions& options() const { return cfg_.options; }
    void set_options(const IscsiOptions& o, DoneFn done);
    void set_discovery_auth(const AuthSettings& a, DoneFn done);

    // Auth groups.
    void create_auth_group(int tag, std::vector<ChapSecret> secrets, DoneFn done);
    void delete_auth_group(int tag, DoneFn done);
    void auth_group_add_secret(int tag, ChapSecret s, DoneFn done);
    void auth_group_remove_secret(int tag, const std::string& user, DoneFn done);
    std::vector<AuthGroup> auth_groups() const;

    // Portal groups: listening starts at create unless `wait`.
    void create_portal_group(PortalGroup pg, bool wait, DoneFn done);
    void start_portal_group(int tag, DoneFn done);
    void delete_portal_group(int tag, DoneFn done);
    void portal_group_set_auth(int tag, const AuthSettings& a, DoneFn done);
    struct PortalGroupView {
        PortalGroup pg;
        bool started = false;
        std::vector<uint16_t> bound_ports;
    };
    std::vector<PortalGroupView> portal_groups() const;

    // Initiator groups.
    void create_initiator_group(InitiatorGroup ig, DoneFn done);
    void initiator_group_add(int tag, const std::vector<std::string>& initiators,
                             const std::vector<std::string>& netmasks, DoneFn done);
    void initiator_group_remove(int tag, const std::vector<std::string>& initiators,
                                const std::vector<std::string>& netmasks, DoneFn done);
    void delete_initiator_group(int tag, DoneFn done);
    std::vector<InitiatorGroup> initiator_groups() const;

    // Target nodes.
    void create_target_node(TargetNodeParams p, DoneFn done);
    void delete_target_node(const std::string& name, DoneFn done);
    void target_node_add_lun(const std::string& name, const std::string& bdev, int lun_id,
                             std::function<void(int rc, std::string err, int lun_id)> done);
    void target_node_add_pg_ig_maps(const std::string& name,
                                    const std::vector<std::pair<int, int>>& maps, DoneFn done);
    void target_node_remove_pg_ig_maps(const std::string& name,
                                       const std::vector<std::pair<int, int>>& maps, DoneFn done);
    void target_node_set_auth(const std::string& name, const AuthSettings& a, DoneFn done);
    std::vector<std::shared_ptr<const TargetNode>> target_nodes() const;

    void get_connections(std::function<void(std::vector<ConnectionInfo>)> done);
    void get_stats(std::function<void(IscsiStats)> done);

    // --- data plane ---
    IscsiPollGroup* pick_poll_group();
    // From a poll group's thread: session reinstatement on every poll group.
    void reinstate(const std::string& initiator, const std::string& isid, const std::string& target,
                   uint64_t keep);

  private:
    struct PgState {
        PortalGroup pg;
        bool started = false;
        std::vector<std::unique_ptr<PortalListener>> listeners;
    };

    void publish(std::function<void()> done);
    int validate_auth(const AuthSettings& a, std::string* err) const;
    int open_listeners(PgState& st, std::string* err);
    std::shared_ptr<const scsi::Lun> open_lun(const std::string& bdev, uint32_t id,
                                              const std::string& target, std::string* err, int* rc);
    void on_bdev_event(const std::string& target, uint32_t lun_id);
    void on_bdev_resize(const std::string& target, uint32_t lun_id, uint64_t blocks);

    IscsiTargetOptions opts_;
    std::vector<std::unique_ptr<IscsiPollGroup>> pgs_;
    std::unique_ptr<std::byte[], void (*)(std::byte*)> pool_mem_{nullptr, nullptr};
    BufferPool own_pool_;
    IscsiSnapshot cfg_;  // the master copy (targets, groups, options)
    std::map<int, PgState> portal_groups_;
    uint32_t next_listener_id_ = 1;
    bool started_ = false;
    bool stopping_ = false;
};

// For the daemon: creates the target on the runtime's data threads and registers its shutdown
// step. Call on the control thread.
void iscsi_target_init(Runtime& rt, IscsiTargetOptions opts, std::function<void()> done);

}  // namespace nocstor::iscsi_tgt
