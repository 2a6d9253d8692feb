#include "control/jsonrpc_protocol.h"

namespace nocstor::control {

using nlohmann::json;

namespace {

JsonRpcEntry invalid(const json& id) {
    JsonRpcEntry entry;
    entry.response = make_error_response(id, rpc_error::kInvalidRequest, "Invalid request");
    return entry;
}

bool valid_id(const json& id) {
    return id.is_number() || id.is_string() || id.is_null();
}

}  // namespace

JsonRpcEntry decode_jsonrpc_request(const json& request) {
    if (!request.is_object()) return invalid(nullptr);
    JsonRpcEntry entry;
    auto id = request.find("id");
    if (id != request.end()) {
        if (!valid_id(*id)) return invalid(nullptr);
        entry.call.id = *id;
    } else {
        entry.call.notification = true;
    }
    auto version = request.find("jsonrpc");
    if (version == request.end() || !version->is_string() || *version != "2.0") {
        return invalid(entry.call.id);
    }
    auto method = request.find("method");
    if (method == request.end() || !method->is_string()) return invalid(entry.call.id);
    entry.call.method = method->get<std::string>();
    auto params = request.find("params");
    if (params != request.end()) {
        if (!params->is_object() && !params->is_array()) return invalid(entry.call.id);
        entry.call.params = *params;
    }
    entry.valid = true;
    return entry;
}

JsonRpcMessage decode_jsonrpc_message(std::string_view text) {
    JsonRpcMessage message;
    json value = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return message;  // kParseError
    if (!value.is_array()) {
        message.kind = JsonRpcMessage::Kind::kSingle;
        message.entries.push_back(decode_jsonrpc_request(value));
        return message;
    }
    if (value.empty()) {  // JSON-RPC 2.0: an empty batch is a single invalid request
        message.kind = JsonRpcMessage::Kind::kSingle;
        message.entries.push_back(invalid(nullptr));
        return message;
    }
    message.kind = JsonRpcMessage::Kind::kBatch;
    message.entries.reserve(value.size());
    for (const json& element : value) message.entries.push_back(decode_jsonrpc_request(element));
    return message;
}

json make_result_response(const json& id, json result) {
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json make_error_response(const json& id, int code, std::string_view message) {
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

std::string dump_json(const json& value, int indent) {
    return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace nocstor::control
