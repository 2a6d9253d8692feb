// The runtime: clusters of pinned reactors built from a cluster plan, the control thread that
// runs management work, and ordered shutdown. One Runtime per process.
//
//   cluster 0 (control): one reactor; JSON-RPC, REST, configuration, slow paths.
//   clusters 1..N (data): one reactor per core; transports and bdev stacks, sharing nothing.
#pragma once

#include "runtime/noc.h"
#include "runtime/reactor.h"
#include "runtime/topology.h"

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace nocstor {

struct RuntimeOptions {
    std::vector<ClusterSpec> clusters;  // empty: default_cluster_plan(Topology::detect())
    ReactorOptions reactor;
    // `clusters` is filled in from the plan. Unless noc.cluster_buffers is set, noc.buffers is
    // the total for the data clusters, split evenly into their arena partitions; the control
    // cluster gets a small partition of its own.
    NocConfig noc;
    // Clusters this process runs (empty: all of them). The others belong to other processes
    // that share the NoC (clusters as processes): they keep their ring pairs and partitions but
    // get no reactor here. A process without the control cluster gets a control thread of its
    // own on its first data core.
    std::vector<int> local_clusters;
    // Map this fabric (created by another process) instead of creating one; its cluster count
    // must match the plan.
    std::optional<NocFabricFds> attach;
};

// Handles one descriptor that arrived at `cluster` from `src` (runs on that cluster's NoC thread).
using NocHandler = std::function<void(int cluster, int src, const NocDescriptor& d)>;

// Handlers every Runtime installs for an opcode when it is built. Modules register theirs at
// start-up, before a runtime exists (the remote bdev's I/O opcodes). Not thread-safe: call it
// before any Runtime is constructed.
void noc_register_default_handler(uint8_t opcode, NocHandler handler);

struct Cluster {
    int id = 0;
    ClusterSpec::Role role = ClusterSpec::Role::Data;
    bool local = true;  // false: another process runs it (no reactors or threads here)
    std::vector<Reactor*> reactors;
    std::vector<Thread*> threads;  // the main lightweight thread of each reactor
};

class Runtime {
  public:
    explicit Runtime(RuntimeOptions opts);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // The running runtime (nullptr before start / after destruction).
    static Runtime* instance();

    // Starts every reactor, then runs on_start on the control thread.
    void start(std::function<void()> on_start = nullptr);

    Thread* control_thread() const { return control_thread_; }
    // Where a data thread sends slow CPU work it must not do itself (e.g. a Diffie-Hellman
    // exponentiation): the control thread; null when called on it or without a runtime (then
    // the caller does the work inline).
    static Thread* offload_thread();

    // The NoC. A cluster's endpoint is used only on its NoC thread (the main thread of the
    // cluster's first reactor), which polls the inbound rings and dispatches by opcode; other
    // threads of the cluster hand descriptors to it by message.
    NocFabric& noc() { return *noc_; }
    // nullptr for a cluster that another process runs.
    Thread* noc_thread(int cluster) const {
        const auto& t = clusters_.at(size_t(cluster)).threads;
        return t.empty() ? nullptr : t.front();
    }
    // Before start(): the handler for one opcode, on every cluster.
    void set_noc_handler(uint8_t opcode, NocHandler handler);
    const std::vector<Cluster>& clusters() const { return clusters_; }
    const std::vector<std::unique_ptr<Reactor>>& reactors() const { return reactors_; }
    // The main threads of every data-cluster reactor, in cluster then core order.
    const std::vector<Thread*>& data_threads() const { return data_threads_; }

    // Registers a shutdown step. Steps run on the control thread in reverse order of
    // registration (stop accepting, drain, destroy); each calls done() when finished.
    void add_shutdown_step(std::string name, std::function<void(std::function<void()> done)> step);

    // Any thread (not a signal handler): starts the ordered shutdown once.
    void request_shutdown();
    // Blocks until the reactors have stopped.
    void wait();
    bool stopped() const;

  private:
    void run_shutdown_steps();
    void stop_reactors();

    void attach_noc(Cluster& c);

    RuntimeOptions opts_;
    std::unique_ptr<NocFabric> noc_;
    std::vector<NocHandler> noc_handlers_ = std::vector<NocHandler>(256);
    std::vector<Cluster> clusters_;
    std::vector<std::unique_ptr<Reactor>> reactors_;
    std::vector<Thread*> data_threads_;
    Thread* control_thread_ = nullptr;
    struct Step {
        std::string name;
        std::function<void(std::function<void()>)> fn;
    };
    std::vector<Step> shutdown_steps_;
    std::atomic<bool> shutdown_requested_{false};
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopped_ = false;
    bool started_ = false;
};

// Runs fn on each thread (in parallel), then done on the calling thread once all have run.
// Control path helper for "apply this configuration on every data-plane thread".
void run_on_threads(const std::vector<Thread*>& threads, std::function<void(Thread*)> fn,
                    std::function<void()> done);

}  // namespace nocstor
