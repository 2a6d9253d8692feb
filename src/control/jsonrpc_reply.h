// Collects the responses of one top-level message (a request or a batch) and sends them to the
// connection once every call is answered (internal to the control library).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <vector>

namespace nocstor::control::detail {

class JsonRpcConnection;

struct JsonRpcReply {
    JsonRpcReply(std::weak_ptr<JsonRpcConnection> conn, bool is_batch, std::size_t entries);

    // Records the response of one entry (nullptr for a notification). Returns false if that
    // entry was already answered. Sends everything when the last entry is answered.
    bool complete(std::size_t index, nlohmann::json response);
    bool answered(std::size_t index) const { return done[index]; }
    bool connection_alive() const { return !connection.expired(); }

    std::weak_ptr<JsonRpcConnection> connection;
    bool batch;
    std::vector<nlohmann::json> responses;
    std::vector<bool> done;
    std::size_t remaining;
};

}  // namespace nocstor::control::detail
