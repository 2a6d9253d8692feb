#include "control/server_metrics.h"

#include "control/http_server.h"
#include "control/jsonrpc_server.h"
#include "control/rest_api.h"
#include "util/accept_guard.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

namespace nocstor::control {

void render_server_metrics(std::string& out, const JsonRpcServer* rpc, const HttpServer* http) {
    std::vector<std::pair<const char*, const ConnectionCounters*>> servers;
    std::vector<std::pair<const char*, size_t>> open;
    if (rpc) {
        servers.emplace_back("rpc", &rpc->stats());
        open.emplace_back("rpc", rpc->connection_count());
    }
    if (http) {
        servers.emplace_back("http", &http->stats().connections);
        open.emplace_back("http", http->connection_count());
    }
    prometheus_family(out, "nocstor_mgmt_connections", "gauge",
                      "Open connections to a management server.");
    for (const auto& [name, n] : open)
        out += fmt::format("nocstor_mgmt_connections{{server=\"{}\"}} {}\n", name, n);
    struct Family {
        const char* name;
        const char* help;
        std::uint64_t ConnectionCounters::*field;
    };
    static const Family kFamilies[] = {
        {"nocstor_mgmt_connections_accepted_total", "Connections accepted by a management server.",
         &ConnectionCounters::accepted},
        {"nocstor_mgmt_connections_refused_total",
         "Connections refused because every connection was busy.", &ConnectionCounters::refused},
        {"nocstor_mgmt_connections_evicted_total",
         "Idle or slow connections closed to make room for a new one.",
         &ConnectionCounters::evicted},
        {"nocstor_mgmt_idle_timeouts_total", "Connections closed after the idle deadline.",
         &ConnectionCounters::idle_timeouts},
        {"nocstor_mgmt_request_timeouts_total",
         "Connections closed because a request did not arrive (or its answer was not read) in "
         "time.",
         &ConnectionCounters::request_timeouts},
    };
    for (const Family& f : kFamilies) {
        prometheus_family(out, f.name, "counter", f.help);
        for (const auto& [name, c] : servers)
            out += fmt::format("{}{{server=\"{}\"}} {}\n", f.name, name, c->*f.field);
    }
    prometheus_family(out, "nocstor_http_auth_failures_total", "counter",
                      "REST requests refused for a missing or wrong management token.");
    out += fmt::format("nocstor_http_auth_failures_total {}\n",
                       http ? http->stats().auth_failures : 0);

    const auto accept = AcceptGuard::counters();
    struct AcceptFamily {
        const char* name;
        const char* help;
        std::atomic<std::uint64_t> AcceptCounters::*field;
    };
    static const AcceptFamily kAccept[] = {
        {"nocstor_accept_fd_exhausted_total",
         "accept() failures for lack of file descriptors or memory.",
         &AcceptCounters::fd_exhausted},
        {"nocstor_accept_shed_total",
         "Pending connections closed unserved because no file descriptor was free.",
         &AcceptCounters::shed},
        {"nocstor_accept_pauses_total",
         "Times a listener was left alone for a while because nothing could be accepted.",
         &AcceptCounters::pauses},
    };
    for (const AcceptFamily& f : kAccept) {
        prometheus_family(out, f.name, "counter", f.help);
        for (const auto& [kind, c] : accept)
            out += fmt::format("{}{{listener=\"{}\"}} {}\n", f.name, kind,
                               (c->*f.field).load(std::memory_order_relaxed));
    }
}

}  // namespace nocstor::control
