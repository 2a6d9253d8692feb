// nocstorctl's connection to the daemon: JSON-RPC over the Unix socket, or the REST API with the
// management token (--http); errors printed once, mapped to the exit codes below.
#pragma once

#include "control/rpc_client.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace nocstor::ctl {

constexpr int kExitOk = 0;
constexpr int kExitRpcError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoDaemon = 3;

class Ctl {
  public:
    std::string socket = "/var/tmp/nocstor.sock";
    std::string http_url;  // non-empty: call methods over REST instead of the socket
    std::string http_ca, http_cert, http_key;  // https: CA of the server, client cert/key
    std::string token_file;                    // default: the socket's token file
    bool json_output = false;
    double timeout_s = 60;

    // Calls a method; on failure prints the error and returns the exit code to use.
    int call(const std::string& method, const nlohmann::json& params, nlohmann::json* result);
    // Calls a method and prints its result as pretty JSON (--json) or "ok"-style text.
    int call_and_report(const std::string& method, const nlohmann::json& params,
                        const std::string& done);

  private:
    // POST /api/v1/rpc/<method> with the management token.
    int call_http(const std::string& method, const nlohmann::json& params, nlohmann::json* result);
    std::optional<control::RpcClient> client_;
};

}  // namespace nocstor::ctl
