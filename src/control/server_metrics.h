// /metrics families of the management servers and of every listener's accept loop: connections,
// refusals, evictions, deadlines, failed authentications, file-descriptor exhaustion.
#pragma once

#include <string>

namespace nocstor::control {

class JsonRpcServer;
class HttpServer;

// Appends the families; either server may be null (not started, --no-http).
void render_server_metrics(std::string& out, const JsonRpcServer* rpc, const HttpServer* http);

}  // namespace nocstor::control
