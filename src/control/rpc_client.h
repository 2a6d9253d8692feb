// Blocking JSON-RPC client over the Unix socket, for tools (nocstorctl) and tests.
//
//   RpcClient client("/var/tmp/nocstor.sock", std::chrono::seconds(30));
//   RpcResult r = client.call("bdev_get_bdevs");
//   if (!r.ok()) fmt::print(stderr, "error: {}\n", r.message);
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace nocstor::control {

struct RpcResult {
    enum class Kind {
        kOk,         // result holds the method's result
        kRpcError,   // the server answered with an error: code, message (and data)
        kTransport,  // cannot connect, timeout, connection lost, unparsable response
    };
    Kind kind = Kind::kTransport;
    nlohmann::json result;
    int code = 0;
    std::string message;
    nlohmann::json data;

    bool ok() const { return kind == Kind::kOk; }
};

class RpcClient {
  public:
    explicit RpcClient(std::string socket_path,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60));
    ~RpcClient();
    RpcClient(const RpcClient&) = delete;
    RpcClient& operator=(const RpcClient&) = delete;

    // Connects now (call() also connects on demand). False with *error, e.g. "cannot connect
    // to /var/tmp/nocstor.sock: is nocstor running? (No such file or directory)".
    bool connect(std::string* error);
    void close();

    // Sends one request and waits (up to the timeout) for its response. After a transport
    // error the connection is closed; the next call reconnects.
    RpcResult call(std::string_view method, const nlohmann::json& params = nullptr);

    const std::string& socket_path() const { return socket_path_; }
    void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  private:
    RpcResult transport_error(std::string message);

    std::string socket_path_;
    std::chrono::milliseconds timeout_;
    int fd_ = -1;
    std::int64_t next_id_ = 1;
};

}  // namespace nocstor::control
