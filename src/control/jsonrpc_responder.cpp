#include "control/jsonrpc_reply.h"
#include "control/jsonrpc_server.h"
#include "util/log.h"

namespace nocstor::control {

Responder::Responder(std::shared_ptr<detail::JsonRpcReply> reply, std::size_t index,
                     nlohmann::json id, bool notification)
    : reply_(std::move(reply)), index_(index), id_(std::move(id)), notification_(notification) {}

Responder::Responder(Responder&& other) noexcept
    : reply_(std::move(other.reply_)),
      index_(other.index_),
      id_(std::move(other.id_)),
      notification_(other.notification_) {}

Responder& Responder::operator=(Responder&& other) noexcept {
    if (this != &other) {
        if (pending()) error(rpc_error::kInternalError, "Internal error: request abandoned");
        reply_ = std::move(other.reply_);
        index_ = other.index_;
        id_ = std::move(other.id_);
        notification_ = other.notification_;
    }
    return *this;
}

Responder::~Responder() {
    if (reply_ && !reply_->answered(index_)) {
        NOC_WARN("rpc", "request {} dropped without a response", dump_json(id_));
        error(rpc_error::kInternalError, "Internal error: method returned no response");
    }
}

bool Responder::pending() const {
    return reply_ && !reply_->answered(index_) && reply_->connection_alive();
}

void Responder::result(nlohmann::json value) {
    complete(notification_ ? nlohmann::json() : make_result_response(id_, std::move(value)));
}

void Responder::error(int code, std::string message) {
    complete(notification_ ? nlohmann::json() : make_error_response(id_, code, message));
}

void Responder::complete(nlohmann::json response) {
    if (!reply_) return;
    reply_->complete(index_, std::move(response));
    reply_.reset();  // releases the batch state as soon as this call is answered
}

}  // namespace nocstor::control
