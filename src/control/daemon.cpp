#include "control/daemon.h"

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "control/cluster_process/cluster_processes.h"
#include "control/config.h"
#include "control/http_server.h"
#include "control/jsonrpc_server.h"
#include "control/mgmt_token.h"
#include "control/rest_api.h"
#include "control/rpc_registry.h"
#include "control/server_metrics.h"
#include "iscsi/target.h"
#include "modules/builtin.h"
#include "nvmf/target.h"
#include "ublk/ublk_target.h"
#include "util/log.h"
#include "util/tick.h"
#include "vhost/vhost_target.h"

#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>

#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <filesystem>

namespace nocstor::control {

namespace {

// State owned by the control thread.
struct ControlPlane {
    DaemonOptions opts;
    std::unique_ptr<JsonRpcServer> rpc;
    std::unique_ptr<HttpServer> http;
    Poller* rpc_poller = nullptr;
    Poller* http_poller = nullptr;
    Poller* deadline_poller = nullptr;  // connection deadlines of both servers
    std::string token_file;             // written at start, removed at stop
    std::atomic<int> exit_code{0};
    ClusterProcessOptions children;  // --cluster-processes: the data clusters run as children
};

void persist_if_enabled(ControlPlane* cp) {
    if (!cp->opts.persist || cp->opts.config_path.empty()) return;
    std::string err;
    if (!write_file_atomically(cp->opts.config_path, build_config().dump(2) + "\n", &err))
        NOC_ERROR("config", "cannot persist the configuration: {}", err);
}

// Exposes every registry method on the JSON-RPC server.
void bind_rpc_methods(ControlPlane* cp) {
    for (const auto& [name, info] : RpcRegistry::instance().methods()) {
        bool changes = info.changes_state;
        std::string n = name;
        cp->rpc->register_method(name, [cp, n, changes](const nlohmann::json& params, Responder r) {
            auto responder = std::make_shared<Responder>(std::move(r));
            RpcRegistry::instance().call(
                n, params, RpcReply([cp, responder, changes](bool ok, nlohmann::json v) {
                    if (ok) {
                        if (changes) persist_if_enabled(cp);
                        responder->result(std::move(v));
                    } else {
                        responder->error(v.value("code", rpc_error::kInternalError),
                                         v.value("message", std::string("error")));
                    }
                }));
        });
    }
}

// The REST API's management token, in a file only this user can read.
bool create_token(ControlPlane* cp, std::string* token, std::string* err) {
    cp->token_file = cp->opts.http_token_file.empty() ? default_token_path(cp->opts.rpc_socket)
                                                      : cp->opts.http_token_file;
    try {
        *token = generate_mgmt_token();
    } catch (const std::exception& e) {
        *err = e.what();
        return false;
    }
    if (!write_token_file(cp->token_file, *token, err)) {
        *err = "management token: " + *err + " (choose another path with --http-token-file)";
        cp->token_file.clear();
        return false;
    }
    return true;
}

// Whether a REST listen address stays on this machine.
bool loopback_address(std::string a) {
    if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
    if (a == "localhost" || a == "::1") return true;
    in_addr v4{};
    return ::inet_pton(AF_INET, a.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

// HTTPS options; REST beyond loopback is refused without TLS (anyone on the network could
// read the configuration, and the token would travel in clear).
bool http_tls_setup(const DaemonOptions& o, HttpServerOptions* ho, std::string* err) {
    const bool tls = !o.http_tls_cert.empty() || !o.http_tls_key.empty();
    if (tls && (o.http_tls_cert.empty() || o.http_tls_key.empty())) {
        *err = "--http-tls-cert and --http-tls-key go together";
        return false;
    }
    if (!tls && (!o.http_client_ca.empty() || o.metrics_public)) {
        *err = "--http-client-ca and --metrics-public need HTTPS (--http-tls-cert/--http-tls-key)";
        return false;
    }
    if (o.metrics_public && o.http_client_ca.empty()) {
        *err =
            "--metrics-public only matters with --http-client-ca (without it every client may "
            "read /metrics)";
        return false;
    }
    if (!tls) {
        if (loopback_address(o.http_address)) return true;
        *err = fmt::format(
            "--http-address {} is not a loopback address: the REST API beyond this machine "
            "needs TLS (--http-tls-cert/--http-tls-key, and --http-client-ca to require client "
            "certificates)",
            o.http_address);
        return false;
    }
    HttpTlsOptions t{o.http_tls_cert, o.http_tls_key, o.http_client_ca, o.metrics_public};
    ho->tls = HttpTlsContext::create(t, err);
    return ho->tls != nullptr;
}

bool start_servers(ControlPlane* cp, std::string* err) {
    Thread* t = Thread::current();
    JsonRpcServerOptions ro;
    ro.socket_path = cp->opts.rpc_socket;
    ro.socket_group = cp->opts.rpc_group;
    ro.connections = cp->opts.rpc_limits;
    cp->rpc = std::make_unique<JsonRpcServer>(ro);
    bind_rpc_methods(cp);
    if (!cp->rpc->start(err)) return false;
    t->reactor()->add_interrupt_fd(cp->rpc->fd(), EPOLLIN);
    cp->rpc_poller = t->register_poller("jsonrpc", [cp] { return cp->rpc->poll() ? 1 : 0; });
    NOC_INFO("rpc", "JSON-RPC listening on {}", cp->opts.rpc_socket);
    if (cp->opts.http_enabled) {
        HttpServerOptions ho;
        ho.address = cp->opts.http_address;
        ho.port = cp->opts.http_port;
        ho.connections = cp->opts.http_limits;
        if (!http_tls_setup(cp->opts, &ho, err)) return false;
        if (!create_token(cp, &ho.token, err)) return false;
        ho.token_hint = "the token is in " + cp->token_file;
        cp->http = std::make_unique<HttpServer>(ho);
        register_rest_routes(*cp->http);
        if (!cp->http->start(err)) {
            *err = "REST/metrics server on " + ho.address + ":" + std::to_string(ho.port) + ": " +
                   *err + " (use --http-port or --no-http)";
            return false;
        }
        t->reactor()->add_interrupt_fd(cp->http->fd(), EPOLLIN);
        cp->http_poller = t->register_poller("http", [cp] { return cp->http->poll() ? 1 : 0; });
        NOC_INFO("rpc",
                 "REST API and /metrics on {}://{}:{}; changes need the management token "
                 "in {}{}",
                 ho.tls ? "https" : "http", ho.address, cp->http->port(), cp->token_file,
                 !ho.tls || !ho.tls->verifies_clients()
                     ? ""
                     : (ho.tls->metrics_public()
                            ? "; a client certificate is needed except for GET /metrics"
                            : "; clients need a certificate"));
    }
    cp->deadline_poller = t->register_poller(
        "mgmt_deadlines",
        [cp] {
            const uint64_t now = now_ns();
            cp->rpc->expire(now);
            if (cp->http) cp->http->expire(now);
            return 0;
        },
        100'000);
    add_metrics_source(
        [cp](std::string& out) { render_server_metrics(out, cp->rpc.get(), cp->http.get()); });
    return true;
}

void stop_servers(ControlPlane* cp) {
    Thread* t = Thread::current();
    if (cp->deadline_poller) {
        t->unregister_poller(cp->deadline_poller);
        cp->deadline_poller = nullptr;
    }
    if (cp->rpc_poller) {
        t->reactor()->remove_interrupt_fd(cp->rpc->fd());
        t->unregister_poller(cp->rpc_poller);
        cp->rpc_poller = nullptr;
        cp->rpc->stop();
    }
    if (cp->http_poller) {
        t->reactor()->remove_interrupt_fd(cp->http->fd());
        t->unregister_poller(cp->http_poller);
        cp->http_poller = nullptr;
        cp->http->stop();
    }
    if (!cp->token_file.empty()) {
        ::unlink(cp->token_file.c_str());
        cp->token_file.clear();
    }
}

void fail_start(ControlPlane* cp, const std::string& msg) {
    NOC_ERROR("app", "{}", msg);
    fprintf(stderr, "nocstor: %s\n", msg.c_str());
    cp->exit_code = 1;
    Runtime::instance()->request_shutdown();
}

void load_and_serve(ControlPlane* cp, const nlohmann::json& config);

void on_start(ControlPlane* cp) {
    std::string err;
    if (!bdev_modules_init(&err)) return fail_start(cp, err);
    if (cp->opts.persist && !cp->opts.config_path.empty())
        remove_stale_temporaries(cp->opts.config_path);
    nlohmann::json config;
    bool have_file = !cp->opts.config_path.empty() && std::filesystem::exists(cp->opts.config_path);
    if (cp->opts.empty_config) {
        config = {{"subsystems", nlohmann::json::array()}};
    } else if (have_file) {
        if (!read_config_file(cp->opts.config_path, &config, &err)) return fail_start(cp, err);
    } else if (!cp->opts.config_path.empty() && !cp->opts.persist) {
        return fail_start(cp, "config file " + cp->opts.config_path + " does not exist");
    } else {
        config = default_config();
    }
    // The target's shutdown step (stop listeners, close connections and namespaces) is
    // registered by nvmf_target_init; it runs before the bdev layer's.
    nvmf::NvmfTargetOptions topts;
    // Request buffers from the connection's cluster's partition of the NoC arena: remote bdevs
    // then pass them to their owner cluster as they are (docs/remote.md).
    topts.pool_of = [](int cluster) { return &Runtime::instance()->noc().buffers(cluster); };
    topts.sock_impl = cp->opts.sock_impl;
    topts.icreq_timeout_ms = cp->opts.nvmf_icreq_timeout_ms;
    topts.connect_timeout_ms = cp->opts.nvmf_connect_timeout_ms;
    topts.max_unconnected = cp->opts.nvmf_max_unconnected;
    nvmf::nvmf_target_init(*Runtime::instance(), std::move(topts), [cp, config]() {
        // The iSCSI target's poll groups share the data threads and their buffer partitions.
        iscsi_tgt::IscsiTargetOptions iopts;
        iopts.pool_of = [](int cluster) { return &Runtime::instance()->noc().buffers(cluster); };
        iscsi_tgt::iscsi_target_init(*Runtime::instance(), std::move(iopts), [cp, config]() {
            vhost::VhostOptions vopts;
            vopts.socket_dir = cp->opts.vhost_socket_dir;
            vhost::vhost_target_init(*Runtime::instance(), std::move(vopts));
            ublk::ublk_init(*Runtime::instance());
            load_and_serve(cp, config);
        });
    });
}

void load_and_serve(ControlPlane* cp, const nlohmann::json& config) {
    NOC_INFO(
        "app", "loading {}",
        !cp->opts.config_path.empty() && !cp->opts.empty_config
            ? cp->opts.config_path
            : (cp->opts.empty_config ? "an empty configuration" : "the default configuration"));
    // The children first: remote bdevs in this configuration open exports of their bdevs.
    if (!cp->children.clusters.empty()) cluster_processes_start(cp->children);
    load_config(config, [cp](bool ok, std::string error) {
        if (!ok) return fail_start(cp, error);
        std::string err;
        if (!start_servers(cp, &err)) return fail_start(cp, err);
        persist_if_enabled(cp);
        NOC_INFO("app", "nocstor is ready");
    });
}

}  // namespace

int run_daemon(const DaemonOptions& opts) {
    // Block the stop signals in every thread; the main thread takes them with sigwait.
    // A shell starts background jobs with SIGINT ignored; an ignored signal never reaches
    // sigwait, so restore the default disposition first.
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);

    register_builtin_bdev_modules();
    register_framework_rpcs();
    register_bdev_rpcs();
    register_bdev_nvme_rpcs();
    register_nvmf_rpcs();
    register_config_rpcs();
    register_log_rpcs();
    register_raid_rpcs();
    register_lvol_rpcs();
    register_remote_rpcs();
    register_cache_rpcs();
    register_iscsi_bdev_rpcs();
    register_iscsi_target_rpcs();
    register_vhost_rpcs();
    register_ublk_rpcs();
    register_keyring_rpcs();
    register_volume_rpcs();
    register_cluster_process_rpcs();
    bdev_set_io_pool_size(opts.bdev_io_pool_size);

    RuntimeOptions ro;
    if (!opts.cluster_plan.empty()) {
        std::string err;
        auto plan = parse_cluster_plan(opts.cluster_plan, &err);
        if (!plan) {
            fprintf(stderr, "nocstor: --clusters: %s\n", err.c_str());
            return 2;
        }
        ro.clusters = *plan;
    }
    if (ro.clusters.empty()) ro.clusters = default_cluster_plan(Topology::detect());
    std::vector<int> child_clusters;
    if (opts.child_cluster >= 0) {
        // A data cluster of a --cluster-processes daemon: this cluster only, on the parent's NoC.
        NocFabricFds fds;
        std::string err;
        if (!parse_noc_fds(opts.noc_fds, &fds, &err)) {
            fprintf(stderr, "nocstor: %s\n", err.c_str());
            return 2;
        }
        ro.local_clusters = {opts.child_cluster};
        ro.attach = std::move(fds);
        set_log_process_tag("cluster " + std::to_string(opts.child_cluster));
    } else if (opts.cluster_processes) {
        int first_data = -1;
        for (const auto& c : ro.clusters) {
            if (c.role == ClusterSpec::Role::Control) {
                ro.local_clusters.push_back(c.id);
            } else if (first_data < 0) {
                first_data = c.id;
                ro.local_clusters.push_back(c.id);
            } else {
                child_clusters.push_back(c.id);
            }
        }
        if (child_clusters.empty())
            NOC_WARN("app", "--cluster-processes: the plan has one data cluster, which stays here");
    }
    ro.reactor.idle_sleep_us = opts.idle_sleep_us;
    ro.reactor.allow_sleep = opts.allow_sleep;
    ro.reactor.adaptive_spin = opts.adaptive_spin;
    ro.noc.buffers.small_count = opts.small_buffers;
    ro.noc.buffers.large_count = opts.large_buffers;

    auto cp = std::make_unique<ControlPlane>();
    cp->opts = opts;
    if (!child_clusters.empty()) {
        cp->children.clusters = child_clusters;
        cp->children.exe = "/proc/self/exe";
        cp->children.rpc_socket_base = opts.rpc_socket;
        if (opts.persist) cp->children.config_base = opts.config_path;
        cp->children.common_args = {"--clusters",      format_cluster_plan(ro.clusters),
                                    "--idle-sleep-us", std::to_string(opts.idle_sleep_us),
                                    "--io-pool-size",  std::to_string(opts.bdev_io_pool_size)};
        if (!opts.allow_sleep) cp->children.common_args.push_back("--no-sleep");
        if (!opts.adaptive_spin) cp->children.common_args.push_back("--no-adaptive-spin");
        cp->children.has_affinity =
            sched_getaffinity(0, sizeof cp->children.affinity, &cp->children.affinity) == 0;
    }
    std::unique_ptr<Runtime> rt;
    try {
        rt = std::make_unique<Runtime>(ro);
    } catch (const std::exception& e) {
        fprintf(stderr, "nocstor: cannot start the runtime: %s\n", e.what());
        return 1;
    }
    ControlPlane* cpp = cp.get();
    if (opts.child_cluster >= 0) {
        // What the previous process of this cluster left unanswered: its senders failed it.
        if (size_t n = rt->noc().endpoint(opts.child_cluster).discard_inbound())
            NOC_WARN("app", "cluster {}: dropped {} requests sent to the previous process",
                     opts.child_cluster, n);
    } else if (!cp->children.clusters.empty()) {
        cp->children.fds = rt->noc().fds();
    }
    // Shutdown runs these in reverse: stop the servers, stop the target (registered by its own
    // module), unregister every bdev, then stop the cluster processes. Stacks go from the top:
    // the front end's arrays and remote bdevs before the children's lvols under them.
    rt->add_shutdown_step("cluster processes",
                          [](std::function<void()> done) { cluster_processes_stop(done); });
    rt->add_shutdown_step("bdev layer", [](std::function<void()> done) { bdev_layer_fini(done); });
    rt->add_shutdown_step("management servers", [cpp](std::function<void()> done) {
        stop_servers(cpp);
        done();
    });
    rt->start([cpp] { on_start(cpp); });

    // Wait for a stop signal, or for the runtime to stop by itself (failed start).
    static std::atomic<bool> stopped{false};
    std::thread waiter([&] {
        rt->wait();
        stopped = true;
        kill(getpid(), SIGTERM);  // wake a sigwait below
    });
    int sig = 0;
    sigwait(&set, &sig);
    if (!rt->stopped()) {
        NOC_INFO("app", "{} received: shutting down (send it again to exit at once)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
        rt->request_shutdown();
        // A second signal while draining forces the exit.
        std::thread force([set]() mutable {
            int s;
            if (sigwait(&set, &s) == 0 && !stopped.load()) {
                fprintf(stderr, "nocstor: second signal, exiting now\n");
                _exit(130);
            }
        });
        force.detach();
    }
    waiter.join();
    int code = cp->exit_code.load();
    rt.reset();
    return code;
}

}  // namespace nocstor::control
