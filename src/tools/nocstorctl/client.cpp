#include "tools/nocstorctl/client.h"

#include "control/http_client.h"
#include "control/mgmt_token.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdint>

namespace nocstor::ctl {

using control::RpcClient;
using control::RpcResult;
using nlohmann::json;

int Ctl::call(const std::string& method, const json& params, json* result) {
    if (!http_url.empty()) return call_http(method, params, result);
    if (!client_) {
        client_.emplace(socket,
                        std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000)));
    }
    RpcResult r = client_->call(method, params);
    if (r.ok()) {
        *result = std::move(r.result);
        return kExitOk;
    }
    if (r.kind == RpcResult::Kind::kRpcError) {
        fmt::print(stderr, "error: {} (code {})\n", r.message, r.code);
        return kExitRpcError;
    }
    fmt::print(stderr, "error: {}\n", r.message);
    return kExitNoDaemon;
}

int Ctl::call_and_report(const std::string& method, const json& params, const std::string& done) {
    json result;
    if (int rc = call(method, params, &result)) return rc;
    if (json_output || done.empty()) {
        fmt::print("{}\n", result.dump(2));
    } else {
        fmt::print("{}\n", done);
    }
    return kExitOk;
}

int Ctl::call_http(const std::string& method, const json& params, json* result) {
    using namespace nocstor::control;
    HttpEndpoint ep;
    ep.ca_file = http_ca;
    ep.cert_file = http_cert;
    ep.key_file = http_key;
    std::string error, token;
    if (!parse_http_url(http_url, &ep, &error)) {
        fmt::print(stderr, "error: --http: {}\n", error);
        return kExitUsage;
    }
    const std::string path = token_file.empty() ? default_token_path(socket) : token_file;
    if (!read_token_file(path, &token, &error)) {
        fmt::print(stderr, "error: {}\n", error);
        return kExitNoDaemon;
    }
    const auto reply =
        http_call(ep, "POST", "/api/v1/rpc/" + method, params.is_null() ? "{}" : params.dump(),
                  {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}},
                  std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000)));
    if (reply.status == 0) {
        fmt::print(stderr, "error: {}\n", reply.error);
        return kExitNoDaemon;
    }
    json body = json::parse(reply.body, nullptr, false);
    if (reply.status / 100 == 2 && !body.is_discarded()) {
        *result = std::move(body);
        return kExitOk;
    }
    std::string message = reply.body;
    if (!body.is_discarded() && body.contains("error") && body["error"].is_object())
        message = body["error"].value("message", reply.body);
    fmt::print(stderr, "error: {} (HTTP {})\n", message, reply.status);
    return kExitRpcError;
}

}  // namespace nocstor::ctl
