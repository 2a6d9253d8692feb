// JSON-RPC 2.0 message decoding and response construction, independent of any transport.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace nocstor::control {

// Standard JSON-RPC 2.0 error codes, plus SPDK's code for a method called in the wrong state.
namespace rpc_error {
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kInvalidState = -1;
}  // namespace rpc_error

// One well-formed call. A notification has no id and receives no response.
struct JsonRpcCall {
    std::string method;
    nlohmann::json params;  // null when absent, otherwise an object or an array
    nlohmann::json id;      // number, string or null
    bool notification = false;
};

// One element of a message: a call to dispatch, or a ready error response (invalid request).
struct JsonRpcEntry {
    bool valid = false;
    JsonRpcCall call;         // when valid
    nlohmann::json response;  // when !valid: the error response to send
};

struct JsonRpcMessage {
    enum class Kind { kParseError, kSingle, kBatch };
    Kind kind = Kind::kParseError;
    std::vector<JsonRpcEntry> entries;  // one for kSingle, one or more for kBatch
};

// Decodes the text of one framed top-level value. Never throws.
JsonRpcMessage decode_jsonrpc_message(std::string_view text);

// Validates one parsed request object (also used for batch elements).
JsonRpcEntry decode_jsonrpc_request(const nlohmann::json& request);

nlohmann::json make_result_response(const nlohmann::json& id, nlohmann::json result);
nlohmann::json make_error_response(const nlohmann::json& id, int code, std::string_view message);

// Serialises without throwing: invalid UTF-8 from a handler is replaced, not fatal.
std::string dump_json(const nlohmann::json& value, int indent = -1);

}  // namespace nocstor::control
