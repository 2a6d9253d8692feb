// JSON-RPC 2.0 server on a Unix stream socket, compatible with SPDK's scripts/rpc.py.
//
// Polled model: register fd() with epoll (it is an internal epoll instance covering the
// listener and all connections) and call poll() when it is readable or whenever the owning
// poller runs; poll() does a bounded amount of work and returns true if it did any.
// Everything, including completing a Responder, must happen on the thread that calls poll().
//
//   server.register_method("bdev_get_bdevs", [](const nlohmann::json& params, Responder r) {
//       send_to_bdev_cluster(..., [r = std::move(r)](auto bdevs) mutable { r.result(bdevs); });
//   });
#pragma once

#include "control/connection_limits.h"
#include "control/jsonrpc_protocol.h"
#include "util/accept_guard.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace nocstor::control {

namespace detail {
class JsonRpcConnection;
struct JsonRpcReply;
}  // namespace detail

// SPDK RPC states: methods declare in which states they may be called (a bit mask).
inline constexpr std::uint32_t kRpcStartup = 0x1;  // before framework_start_init
inline constexpr std::uint32_t kRpcRuntime = 0x2;  // normal operation

// Completes one call, now or later. Move-only; completing twice, or after the client went away
// (or the server was destroyed), is a harmless no-op. Dropping it unanswered sends an internal
// error so that the client never waits forever.
class Responder {
  public:
    Responder() = default;
    Responder(Responder&& other) noexcept;
    Responder& operator=(Responder&& other) noexcept;
    Responder(const Responder&) = delete;
    Responder& operator=(const Responder&) = delete;
    ~Responder();

    void result(nlohmann::json value);
    void error(int code, std::string message);

    const nlohmann::json& id() const { return id_; }
    bool is_notification() const { return notification_; }
    // False once answered, or when there is nobody left to answer to.
    bool pending() const;

  private:
    friend class JsonRpcServer;
    Responder(std::shared_ptr<detail::JsonRpcReply> reply, std::size_t index, nlohmann::json id,
              bool notification);
    void complete(nlohmann::json response);

    std::shared_ptr<detail::JsonRpcReply> reply_;
    std::size_t index_ = 0;
    nlohmann::json id_;
    bool notification_ = false;
};

using RpcHandler = std::function<void(const nlohmann::json& params, Responder r)>;

struct JsonRpcServerOptions {
    std::string socket_path = "/var/tmp/nocstor.sock";
    std::string socket_group;  // "": the socket is 0600; else 0660 owned by this group
    std::size_t max_request_size = 16 * 1024 * 1024;
    // No per-peer cap: every client is a local process allowed to open the socket. The idle
    // deadline is long because SPDK's `rpc.py --server` keeps one connection for a session; under
    // pressure idle connections make room for new ones anyway.
    ConnectionLimits connections{.max_connections = 128,
                                 .max_per_peer = 0,
                                 .idle_timeout_ms = 300'000,
                                 .request_timeout_ms = 30'000};
};

class JsonRpcServer {
  public:
    explicit JsonRpcServer(JsonRpcServerOptions options = {});
    ~JsonRpcServer();
    JsonRpcServer(const JsonRpcServer&) = delete;
    JsonRpcServer& operator=(const JsonRpcServer&) = delete;

    // Binds the socket. False with a readable *error (e.g. another daemon answers there).
    bool start(std::string* error);
    // Closes all connections and removes the socket file. Also done by the destructor.
    void stop();

    // False if the name is taken. allowed_states is a mask of kRpcStartup/kRpcRuntime.
    bool register_method(std::string name, RpcHandler handler,
                         std::uint32_t allowed_states = kRpcRuntime);
    bool unregister_method(const std::string& name);
    bool has_method(const std::string& name) const { return methods_.count(name) != 0; }
    void set_state(std::uint32_t state) { state_ = state; }
    std::uint32_t state() const { return state_; }

    int fd() const { return epoll_fd_; }
    bool poll();
    // Closes connections past their deadlines (connection_limits.h) and resumes a listener
    // paused for lack of file descriptors. Call periodically (the daemon: every 100 ms).
    void expire(std::uint64_t now_ns);

    std::size_t connection_count() const { return connections_.size(); }
    const ConnectionCounters& stats() const { return stats_; }
    const std::string& socket_path() const { return options_.socket_path; }

  private:
    struct Method {
        RpcHandler handler;
        std::uint32_t allowed_states;
    };
    using ConnectionPtr = std::shared_ptr<detail::JsonRpcConnection>;

    bool accept_connections();
    bool admit();
    void set_listener_armed(bool armed);
    enum class ReadResult { kData, kAgain, kEof, kClosed };

    bool service(const ConnectionPtr& conn);
    ReadResult read_from(detail::JsonRpcConnection& conn);
    bool process_messages(const ConnectionPtr& conn);
    void dispatch(const ConnectionPtr& conn, const std::string& text);
    void invoke(const JsonRpcCall& call, Responder responder);
    void reap_closed();
    void register_builtin_methods();

    JsonRpcServerOptions options_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    std::uint32_t state_ = kRpcRuntime;
    bool owns_socket_file_ = false;
    std::uint64_t socket_inode_ = 0;
    std::unique_ptr<AcceptGuard> accept_guard_;
    bool listener_paused_ = false;
    ConnectionCounters stats_;
    std::uint64_t next_connection_id_ = 1;
    std::map<std::string, Method> methods_;  // ordered: rpc_get_methods lists sorted names
    std::unordered_map<std::uint64_t, ConnectionPtr> connections_;
    std::vector<std::uint64_t> closed_;   // connections that closed their fd, to erase
    std::vector<std::uint64_t> backlog_;  // connections with buffered, unprocessed requests
};

}  // namespace nocstor::control
