// nocstor: the target daemon.
#include "control/daemon.h"
#include "util/log.h"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
    nocstor::control::DaemonOptions o;
    std::string log_spec = "info";
    CLI::App app{
        "nocstor: a user-space, polled-mode, share-nothing NVMe-oF/TCP block-storage target.\n"
        "Without options it serves a 256 MiB RAM namespace nqn.2024-01.io.nocstor:vol1 on\n"
        "127.0.0.1:4420 (discovery also on 8009), JSON-RPC on /var/tmp/nocstor.sock and REST +\n"
        "Prometheus metrics on http://127.0.0.1:8080. Ctrl-C (SIGINT) or SIGTERM stop it cleanly.",
        "nocstor"};
    app.add_option("-c,--config", o.config_path,
                   "JSON config in SPDK's layout ({\"subsystems\": [...]}) to load at start");
    app.add_flag("--persist", o.persist,
                 "write the live configuration back to --config (atomically) after every change, "
                 "so a restart brings the same volumes back; the file is created if missing");
    app.add_flag("--empty", o.empty_config, "start with nothing configured (no default volume)");
    app.add_option("-r,--rpc-socket", o.rpc_socket, "JSON-RPC Unix socket path")
        ->capture_default_str();
    app.add_option("--rpc-group", o.rpc_group,
                   "let this group (name or gid) use the RPC socket too: mode 0660 with that "
                   "group instead of 0600 (owner only)");
    app.add_option("--http-address", o.http_address, "REST/metrics listen address (IPv4 or IPv6)")
        ->capture_default_str();
    app.add_option("--http-port", o.http_port, "REST/metrics port")->capture_default_str();
    bool no_http = false;
    app.add_flag("--no-http", no_http, "do not start the REST/metrics server");
    app.add_option("--http-tls-cert", o.http_tls_cert,
                   "serve REST/metrics over HTTPS with this PEM certificate (chain); needed for "
                   "an --http-address beyond loopback");
    app.add_option("--http-tls-key", o.http_tls_key, "the PEM private key of --http-tls-cert");
    app.add_option("--http-client-ca", o.http_client_ca,
                   "HTTPS: clients need a certificate signed by this PEM CA");
    app.add_flag("--metrics-public", o.metrics_public,
                 "with --http-client-ca: GET /metrics needs no client certificate");
    app.add_option("--http-token-file", o.http_token_file,
                   "where to write the REST API's management token (mode 0600, new at every "
                   "start; requests that change something need 'Authorization: Bearer TOKEN'; "
                   "default: the RPC socket path + '.token')");
    auto* limits = app.add_option_group(
        "Connection limits",
        "Idle or slow clients never lock management or hosts out: at a cap, the longest idle "
        "connection makes room; deadlines close what stalls. 0 disables a limit (not the caps).");
    limits->add_option("--http-max-connections", o.http_limits.max_connections)
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    limits
        ->add_option("--http-max-per-peer", o.http_limits.max_per_peer,
                     "REST connections from one address")
        ->capture_default_str();
    limits->add_option("--http-idle-timeout-ms", o.http_limits.idle_timeout_ms)
        ->capture_default_str();
    limits
        ->add_option("--http-request-timeout-ms", o.http_limits.request_timeout_ms,
                     "a request must arrive completely within this time")
        ->capture_default_str();
    limits->add_option("--rpc-max-connections", o.rpc_limits.max_connections)
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    limits->add_option("--rpc-idle-timeout-ms", o.rpc_limits.idle_timeout_ms)
        ->capture_default_str();
    limits->add_option("--rpc-request-timeout-ms", o.rpc_limits.request_timeout_ms)
        ->capture_default_str();
    limits
        ->add_option("--nvmf-icreq-timeout-ms", o.nvmf_icreq_timeout_ms,
                     "a new NVMe/TCP connection must send its ICReq within this time")
        ->capture_default_str();
    limits
        ->add_option("--nvmf-connect-timeout-ms", o.nvmf_connect_timeout_ms,
                     "... and complete its Fabrics Connect within this time")
        ->capture_default_str();
    limits
        ->add_option("--nvmf-max-unconnected", o.nvmf_max_unconnected,
                     "NVMe/TCP connections that have not completed Connect")
        ->capture_default_str();
    app.add_option("--clusters", o.cluster_plan,
                   "cluster plan, e.g. '0:control:0;1:data:1-3;2:data:4-7' (default: cluster 0 = "
                   "control on the first core, one data cluster per L3 domain on the others)");
    app.add_flag("--cluster-processes", o.cluster_processes,
                 "run every data cluster but the first as its own process on the shared NoC, "
                 "restarted when it dies (the control plane and the first data cluster stay "
                 "here)");
    app.add_option("--cluster-child", o.child_cluster)->group("");  // internal: set by the parent
    app.add_option("--noc-fds", o.noc_fds)->group("");
    app.add_option("--idle-sleep-us", o.idle_sleep_us,
                   "a reactor sleeps after this long without work (µs)")
        ->capture_default_str();
    bool no_sleep = false;
    app.add_flag("--no-sleep", no_sleep, "reactors spin even when idle (like SPDK)");
    bool no_adaptive_spin = false;
    app.add_flag("--no-adaptive-spin", no_adaptive_spin,
                 "always spin --idle-sleep-us before sleeping, even when work comes rarely "
                 "(default: after 20 µs while the gaps between bursts of work average over "
                 "200 µs)");
    app.add_option("--io-pool-size", o.bdev_io_pool_size, "bdev_io objects per thread")
        ->capture_default_str()
        ->check(CLI::Range(16u, 1u << 20));
    app.add_option("--small-buffers", o.small_buffers,
                   "8 KiB data buffers in the shared arena, split evenly over the data clusters")
        ->capture_default_str()
        ->check(CLI::Range(64u, 1u << 20));
    app.add_option("--large-buffers", o.large_buffers,
                   "132 KiB data buffers in the shared arena, split evenly over the data clusters")
        ->capture_default_str()
        ->check(CLI::Range(16u, 1u << 16));
    app.add_option("-S,--vhost-socket-dir", o.vhost_socket_dir,
                   "directory of the vhost-user sockets of controllers created with a plain name "
                   "(vhost_create_blk_controller ctrlr; a ctrlr with a '/' is a path of its own)")
        ->capture_default_str();
    std::string sock_impl = "posix";
    app.add_option("--sock-impl", sock_impl,
                   "NVMe/TCP socket driver: 'posix' (epoll + recvmsg/sendmsg) or 'uring' "
                   "(io_uring; see docs/benchmarks.md for the comparison)")
        ->capture_default_str()
        ->check(CLI::IsMember({"posix", "uring"}));
    app.add_option("-L,--log-level", log_spec,
                   "log level for all components (trace, debug, info, warn, error) or per "
                   "component: 'info,nvmf=debug,bdev=trace'")
        ->capture_default_str();
    app.set_version_flag("-v,--version", "nocstor 0.1.0");
    CLI11_PARSE(app, argc, argv);
    o.http_enabled = !no_http;
    o.allow_sleep = !no_sleep;
    o.adaptive_spin = !no_adaptive_spin;
    nocstor::nvmf::parse_sock_impl(sock_impl, &o.sock_impl);
    if (o.child_cluster >= 0 && o.noc_fds.empty()) {
        fprintf(stderr, "nocstor: --cluster-child is started by the daemon itself\n");
        return 2;
    }
    if (o.persist && o.config_path.empty()) {
        fprintf(stderr, "nocstor: --persist needs --config FILE\n");
        return 2;
    }
    std::string err;
    if (!nocstor::apply_log_spec(log_spec, &err)) {
        fprintf(stderr, "nocstor: --log-level: %s\n", err.c_str());
        return 2;
    }
    return nocstor::control::run_daemon(o);
}
