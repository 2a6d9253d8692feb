#include "control/jsonrpc_reply.h"

#include "control/jsonrpc_connection.h"
#include "control/jsonrpc_protocol.h"

namespace nocstor::control::detail {

JsonRpcReply::JsonRpcReply(std::weak_ptr<JsonRpcConnection> conn, bool is_batch,
                           std::size_t entries)
    : connection(std::move(conn)),
      batch(is_batch),
      responses(entries),
      done(entries, false),
      remaining(entries) {}

bool JsonRpcReply::complete(std::size_t index, nlohmann::json response) {
    if (index >= done.size() || done[index]) return false;
    done[index] = true;
    responses[index] = std::move(response);
    if (--remaining > 0) return true;

    auto conn = connection.lock();
    if (!conn) return true;  // the client went away; nothing to send
    nlohmann::json out;
    if (batch) {
        out = nlohmann::json::array();
        for (auto& r : responses) {
            if (!r.is_null()) out.push_back(std::move(r));
        }
        if (out.empty()) out = nullptr;  // a batch of notifications gets no response at all
    } else {
        out = std::move(responses[0]);
    }
    if (!out.is_null()) conn->send(dump_json(out));
    conn->message_finished();
    responses.clear();
    return true;
}

}  // namespace nocstor::control::detail
