// Clusters as processes (--cluster-processes, docs/remote.md): the daemon keeps the control
// cluster and the first data cluster, and runs every other data cluster as a child process
// (`nocstor --cluster-child N`) on the same NoC region. This file is the supervisor, on the
// control thread: it starts the children, notices when one dies (kill -9 included), restarts it
// with back-off, and routes management calls to it over its own JSON-RPC socket.
#pragma once

#include "control/rpc_client.h"
#include "control/rpc_registry.h"
#include "runtime/noc.h"

#include <nlohmann/json.hpp>

#include <sched.h>

#include <functional>
#include <string>
#include <vector>

namespace nocstor::control {

struct ClusterProcessOptions {
    std::vector<int> clusters;    // the data clusters to run as children
    std::string exe;              // the nocstor binary ("/proc/self/exe")
    std::string rpc_socket_base;  // child N listens on <base>.cluster<N>
    std::string config_base;      // "": children start empty each time; else <base>.cluster<N>.json
    std::vector<std::string> common_args;  // passed to every child (--clusters, -L, ...)
    NocFabricFds fds;                      // inherited by the children (not owned)
    // The daemon's CPU affinity before its threads were pinned: a child starts from it, not
    // from the pinned control thread's that forks it (the plan names the child's own cores).
    cpu_set_t affinity{};
    bool has_affinity = false;
};

// Control thread. Starts the children and the watcher; installs the RPC forwarder.
void cluster_processes_start(ClusterProcessOptions opts);
// Control thread: SIGTERM to every child, SIGKILL after 5 s, then done().
void cluster_processes_stop(std::function<void()> done);
// nocstor_get_cluster_processes: [{cluster, pid, state, restarts, rpc_socket, last_exit}].
nlohmann::json cluster_processes_json();
// The JSON-RPC socket of the child running `cluster`, or "" when no child runs it.
std::string cluster_process_socket(int cluster);
// The clusters that run as child processes (empty without --cluster-processes).
std::vector<int> cluster_process_clusters();
// Control thread: calls `method` on the process running `cluster` from a helper thread and
// hands the answer to done() on the control thread; a kTransport result at once when that
// process is not running.
void cluster_process_call(int cluster, std::string method, nlohmann::json params,
                          std::function<void(RpcResult)> done);

// The hidden `--noc-fds R,D0,D1,...` argument of a child: the region's fd, then the doorbells.
std::string format_noc_fds(const NocFabricFds& fds);
bool parse_noc_fds(const std::string& text, NocFabricFds* out, std::string* err);

void register_cluster_process_rpcs();

}  // namespace nocstor::control
