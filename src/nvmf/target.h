// The NVMe-oF target: one per process. The control thread owns the master configuration
// (subsystems, namespaces, hosts, listeners); every change builds a new immutable
// TargetSnapshot and pushes it to each data thread's PollGroup by message before the
// operation's done() runs, so the I/O path never takes a lock.
//
// All public methods: control thread only (Runtime::control_thread()). Methods that touch the
// data plane complete asynchronously through done(rc, err) on the control thread; rc is 0 or a
// negative errno (-EINVAL bad argument, -EEXIST duplicate, -ENOENT unknown, -ENOSPC full,
// -EADDRINUSE / -errno from the socket layer) and err a human-readable message.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nvmf/sock_impl.h"
#include "nvmf/subsystem.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"

namespace nocstor::nvmf {

class PollGroup;
class TcpListener;

using DoneFn = std::function<void(int rc, std::string err)>;

struct NvmfTargetOptions {
    // The request buffers of a poll group on cluster c: pool_of(c), that cluster's partition of
    // the NoC arena (so a namespace whose bdev is a remote bdev costs no copy); when empty, one
    // private pool of `buffers` for all poll groups.
    std::function<BufferPool*(int cluster)> pool_of;
    BufferPoolConfig buffers{.small_count = 2048, .large_count = 256};
    // Data threads that run poll groups; empty = Runtime::data_threads().
    std::vector<Thread*> threads;
    // How poll groups drive their sockets: epoll + recvmsg/sendmsg, or io_uring.
    SockImpl sock_impl = SockImpl::kPosix;
    // Deadlines of a new connection, from the TCP accept: the ICReq, and the Fabrics Connect.
    uint32_t icreq_timeout_ms = 5'000;
    uint32_t connect_timeout_ms = 10'000;
    // Connections that have not completed Connect, target-wide (split evenly between the poll
    // groups). At the cap, a new connection makes its poll group close the oldest of them that
    // has not even sent its ICReq (else the oldest), so that idle sockets can never keep a real
    // host out.
    uint32_t max_unconnected = 256;
};

struct SubsystemParams {
    std::string nqn;
    std::string serial = "NOCSTOR0000000000001";
    std::string model = "nocstor NVMe-oF target";
    uint32_t max_namespaces = 32;
    bool allow_any_host = false;
    std::vector<std::string> hosts;
    std::map<std::string, std::shared_ptr<const HostKeys>> host_keys;  // by host NQN
};

struct NamespaceParams {
    std::string bdev_name;
    uint32_t nsid = 0;         // 0: lowest free
    std::optional<Uuid> uuid;  // default: the bdev's UUID (saved in its config, so stable)
};

struct ControllerInfo {
    std::string subnqn;
    uint16_t cntlid = 0;
    std::string hostnqn;
    uint32_t kato_ms = 0;
    uint32_t poll_group = 0;
    uint32_t io_queues = 0;
};

struct QpairInfo {
    std::string subnqn;  // empty before Connect
    uint16_t cntlid = 0;
    uint16_t qid = 0;
    uint32_t poll_group = 0;
    std::string listen_address;
    uint64_t commands = 0;
};

struct TargetStats {
    struct Group {
        uint32_t index = 0;
        uint64_t connections = 0, accepted = 0, commands = 0, term_reqs_sent = 0, kato_expired = 0;
        uint64_t icreq_timeouts = 0, connect_timeouts = 0, unconnected_evicted = 0;
        uint64_t auth_timeouts = 0;
        uint64_t tls_established = 0, tls_failures = 0;
        uint64_t unconnected = 0;  // live connections that have not completed Connect
    };
    std::vector<Group> poll_groups;
};

struct SubsystemConfig {  // the master copy, as list_subsystems returns it
    SubsystemParams params;
    std::vector<ListenAddress> listeners;
    std::vector<std::shared_ptr<const NamespaceInfo>> namespaces;
};

class NvmfTarget {
  public:
    explicit NvmfTarget(NvmfTargetOptions opts = {});
    ~NvmfTarget();
    NvmfTarget(const NvmfTarget&) = delete;
    NvmfTarget& operator=(const NvmfTarget&) = delete;

    // The process's target once started (nullptr otherwise).
    static NvmfTarget* instance();

    // Creates a poll group on every data thread. done(0) once they all run.
    void start(std::function<void()> done);
    // Stops listeners, closes every connection (waiting for their bdev I/O), drops the
    // namespace tables and closes the bdev descriptors. done() on the control thread.
    void shutdown(std::function<void()> done);

    void create_subsystem(const SubsystemParams& p, DoneFn done);
    void delete_subsystem(const std::string& nqn, DoneFn done);
    void add_namespace(const std::string& nqn, const NamespaceParams& p,
                       std::function<void(int rc, std::string err, uint32_t nsid)> done);
    void remove_namespace(const std::string& nqn, uint32_t nsid, DoneFn done);
    // nqn may be the discovery NQN: a listener that only serves discovery.
    // cluster >= 0 binds the listener to that data cluster: the connections it accepts run on
    // that cluster's poll groups (where the namespaces' bdevs are owned). A listener shared by
    // several subsystems keeps the binding it was opened with; asking for another is -EINVAL.
    // secure: a TLS secure channel listener (nvmf_subsystem_add_listener {secure_channel});
    // a listener shared by several subsystems is either secure for all or for none.
    void add_listener(const std::string& nqn, const ListenAddress& addr, DoneFn done,
                      int cluster = -1, bool secure = false);
    void remove_listener(const std::string& nqn, const ListenAddress& addr, DoneFn done);
    // `keys`: the host must authenticate with DH-HMAC-CHAP (nullptr: it need not).
    void add_host(const std::string& nqn, const std::string& hostnqn,
                  std::shared_ptr<const HostKeys> keys, DoneFn done);
    void remove_host(const std::string& nqn, const std::string& hostnqn, DoneFn done);
    void set_allow_any_host(const std::string& nqn, bool allow, DoneFn done);

    // Synchronous views of the master copy.
    std::vector<SubsystemConfig> list_subsystems() const;
    // Hosts that must authenticate to the discovery controller, with their keys.
    const std::map<std::string, std::shared_ptr<const HostKeys>>& discovery_keys() const {
        return discovery_keys_;
    }
    // The port a listener is bound to (useful with port 0), or 0 if none.
    uint16_t bound_port(const ListenAddress& addr) const;
    // The data cluster a listener is bound to, or -1 (none, or no such listener).
    int listener_cluster(const ListenAddress& addr) const;
    bool listener_secure(const ListenAddress& addr) const;

    // Gathered from every poll group.
    void list_controllers(const std::string& nqn,
                          std::function<void(std::vector<ControllerInfo>)> done);
    void list_qpairs(const std::string& nqn, std::function<void(std::vector<QpairInfo>)> done);
    void get_stats(std::function<void(TargetStats)> done);

    // --- for the data plane ---
    const NvmfTargetOptions& options() const { return opts_; }
    const std::vector<std::unique_ptr<PollGroup>>& poll_groups() const { return pgs_; }
    PollGroup* poll_group_of(Thread* t) const;
    PollGroup* owner_of_cntlid(uint16_t cntlid) const;
    // Accepted sockets go to the poll group with the fewest connections (of `cluster`'s poll
    // groups when it is >= 0).
    PollGroup* pick_poll_group(int cluster = -1);
    // Control thread: where a new connection on an unbound listener goes: the one data cluster
    // that owns every namespace's bdev of the subsystems listening there (and runs a poll
    // group), else -1 (any cluster).
    int namespace_owner_cluster(uint32_t listener_id) const;

  private:
    struct Subsys {
        SubsystemParams params;
        std::vector<std::string> listeners;  // keys of listeners_
        std::map<uint32_t, std::shared_ptr<const NamespaceInfo>> namespaces;
    };
    struct Listener {
        uint32_t id = 0;
        std::unique_ptr<TcpListener> sock;
        int cluster = -1;
        std::vector<std::string> users;  // subsystem NQNs (the discovery NQN included)
    };

    Subsys* find(const std::string& nqn);
    std::shared_ptr<const TargetSnapshot> build_snapshot();
    // Pushes the current configuration to every poll group, then runs done.
    void publish(std::function<void()> done);
    void on_bdev_event(BdevEvent ev, const std::string& nqn, uint32_t nsid);
    void namespace_resized(const std::string& nqn, uint32_t nsid);

    NvmfTargetOptions opts_;
    std::vector<std::unique_ptr<PollGroup>> pgs_;
    std::vector<Thread*> threads_;
    std::unique_ptr<std::byte[], void (*)(std::byte*)> pool_mem_{nullptr, nullptr};
    BufferPool own_pool_;
    std::map<std::string, Subsys> subsystems_;
    std::map<std::string, std::shared_ptr<const HostKeys>> discovery_keys_;  // by host NQN
    std::map<std::string, Listener> listeners_;  // key: ListenAddress::to_string()
    uint32_t next_listener_id_ = 1;
    uint64_t genctr_ = 0;
    bool started_ = false;
    uint32_t rr_ = 0;
};

// For the daemon: creates the target on the runtime's data threads and registers its shutdown
// step. Call on the control thread; done once it runs.
void nvmf_target_init(Runtime& rt, NvmfTargetOptions opts, std::function<void()> done);

}  // namespace nocstor::nvmf
