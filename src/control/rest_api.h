// REST resources over the same method registry as JSON-RPC, and GET /metrics.
#pragma once

#include "control/http_server.h"
#include "util/prometheus.h"

#include <functional>
#include <string>

namespace nocstor::control {

void register_rest_routes(HttpServer& server);

// Prometheus text exposition of the live state; done runs on the control thread.
void render_metrics(std::function<void(std::string)> done);
// Prometheus text helpers (util/prometheus.h): a label value escaped; HELP and TYPE lines.
using ::nocstor::escape_prometheus_label;
using ::nocstor::prometheus_family;
using ::nocstor::PollGroupFamily;
using ::nocstor::prometheus_poll_groups;

// Lets the NVMe-oF target add its own metric families to /metrics.
void add_metrics_source(std::function<void(std::string& out)> source);
// The same for families gathered from other threads: the source calls done(text) later, on the
// control thread.
void add_async_metrics_source(std::function<void(std::function<void(std::string)> done)> source);

}  // namespace nocstor::control
