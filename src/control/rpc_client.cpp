#include "control/rpc_client.h"

#include "control/jsonrpc_framer.h"
#include "control/jsonrpc_protocol.h"
#include "control/jsonrpc_unix_socket.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nocstor::control {

using Clock = std::chrono::steady_clock;

namespace {

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

RpcClient::RpcClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

RpcClient::~RpcClient() {
    close();
}

bool RpcClient::connect(std::string* error) {
    if (fd_ >= 0) return true;
    fd_ = connect_unix_socket(socket_path_, timeout_, error);
    return fd_ >= 0;
}

void RpcClient::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

RpcResult RpcClient::transport_error(std::string message) {
    close();  // the stream state is unknown now
    RpcResult r;
    r.kind = RpcResult::Kind::kTransport;
    r.message = std::move(message);
    return r;
}

RpcResult RpcClient::call(std::string_view method, const nlohmann::json& params) {
    std::string error;
    if (!connect(&error)) return transport_error(error);
    const Clock::time_point deadline = Clock::now() + timeout_;
    const std::int64_t id = next_id_++;
    nlohmann::json request = {{"jsonrpc", "2.0"}, {"method", method}, {"id", id}};
    if (!params.is_null()) request["params"] = params;
    const std::string text = dump_json(request);

    std::size_t sent = 0;
    while (sent < text.size()) {
        pollfd pfd{fd_, POLLOUT, 0};
        if (::poll(&pfd, 1, remaining_ms(deadline)) <= 0) {
            return transport_error(fmt::format("timed out sending {} to {}", method, socket_path_));
        }
        ssize_t n = ::send(fd_, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            return transport_error(
                fmt::format("lost connection to {}: {}", socket_path_, std::strerror(errno)));
        }
        sent += static_cast<std::size_t>(n);
    }

    JsonStreamFramer framer(256 * 1024 * 1024);
    std::string response_text;
    for (;;) {
        const auto status = framer.next(&response_text);
        if (status == JsonStreamFramer::Status::kValue) {
            nlohmann::json response =
                nlohmann::json::parse(response_text, nullptr, /*allow_exceptions=*/false);
            if (!response.is_object()) {
                return transport_error(fmt::format("invalid response to {}", method));
            }
            if (response.value("id", nlohmann::json()) != nlohmann::json(id)) {
                continue;  // not ours (the server should not send those; be lenient)
            }
            RpcResult r;
            auto err = response.find("error");
            if (err != response.end() && err->is_object()) {
                r.kind = RpcResult::Kind::kRpcError;
                r.code = err->value("code", 0);
                r.message = err->value("message", std::string("unknown error"));
                r.data = err->value("data", nlohmann::json());
            } else {
                r.kind = RpcResult::Kind::kOk;
                r.result = response.value("result", nlohmann::json());
            }
            return r;
        }
        if (status != JsonStreamFramer::Status::kNeedMore) {
            return transport_error(fmt::format("invalid response to {}", method));
        }
        pollfd pfd{fd_, POLLIN, 0};
        const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
        if (ready == 0) {
            return transport_error(
                fmt::format("timed out after {} ms waiting for {}", timeout_.count(), method));
        }
        if (ready < 0 && errno == EINTR) continue;
        char buf[64 * 1024];
        ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            return transport_error(
                fmt::format("connection to {} closed while waiting for {}", socket_path_, method));
        }
        framer.append(std::string_view(buf, static_cast<std::size_t>(n)));
    }
}

}  // namespace nocstor::control
