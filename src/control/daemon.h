// The nocstor daemon: runtime, bdev modules, NVMe-oF target, JSON-RPC and REST servers, config.
#pragma once

#include "control/connection_limits.h"
#include "nvmf/sock_impl.h"
#include "runtime/runtime.h"

#include <cstdint>
#include <optional>
#include <string>

namespace nocstor::control {

struct DaemonOptions {
    std::string config_path;    // empty: the default configuration
    bool persist = false;       // save the live configuration to config_path after changes
    bool empty_config = false;  // start with nothing configured (ignores the default)
    std::string rpc_socket = "/var/tmp/nocstor.sock";
    std::string rpc_group;  // --rpc-group: socket 0660 with this group instead of 0600
    bool http_enabled = true;
    std::string http_address = "127.0.0.1";
    uint16_t http_port = 8080;
    // HTTPS for REST/metrics (required for an address beyond loopback); see http_tls.h.
    std::string http_tls_cert, http_tls_key, http_client_ca;
    bool metrics_public = false;
    // The management token for the REST API; empty: "<rpc_socket>.token".
    std::string http_token_file;
    ConnectionLimits http_limits{.max_connections = 64,
                                 .max_per_peer = 16,
                                 .idle_timeout_ms = 60'000,
                                 .request_timeout_ms = 10'000};
    ConnectionLimits rpc_limits{.max_connections = 128,
                                .max_per_peer = 0,
                                .idle_timeout_ms = 300'000,
                                .request_timeout_ms = 30'000};
    // NVMe/TCP: deadlines of a new connection and the cap on connections without Connect.
    uint32_t nvmf_icreq_timeout_ms = 5'000;
    uint32_t nvmf_connect_timeout_ms = 10'000;
    uint32_t nvmf_max_unconnected = 256;
    std::string cluster_plan;  // "" = default plan from the topology
    // Run every data cluster but the first as a child process (docs/remote.md).
    bool cluster_processes = false;
    // Internal (set by the parent for a child): the cluster this process runs and the NoC's
    // inherited fds ("region,doorbell0,doorbell1,...").
    int child_cluster = -1;
    std::string noc_fds;
    uint64_t idle_sleep_us = 500;
    bool allow_sleep = true;
    bool adaptive_spin = true;
    uint32_t bdev_io_pool_size = 4096;
    uint32_t small_buffers = 4096;
    uint32_t large_buffers = 512;
    nvmf::SockImpl sock_impl = nvmf::SockImpl::kPosix;  // NVMe/TCP socket driver
    std::string vhost_socket_dir = ".";
};

// Runs until SIGINT/SIGTERM (or a failed start). Returns the process exit code.
int run_daemon(const DaemonOptions& opts);

}  // namespace nocstor::control
