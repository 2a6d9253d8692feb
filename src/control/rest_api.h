// REST resources over the same method registry as JSON-RPC, and GET /metrics.
#pragma once

#include "control/http_server.h"

#include <functional>
#include <string>

namespace nocstor::control {

void register_rest_routes(HttpServer& server);

// Prometheus text exposition of the live state; done runs on the control thread.
void render_metrics(std::function<void(std::string)> done);
// Lets the NVMe-oF target add its own metric families to /metrics.
void add_metrics_source(std::function<void(std::string& out)> source);

}  // namespace nocstor::control
