#include "control/jsonrpc_server.h"

#include "control/jsonrpc_connection.h"
#include "control/jsonrpc_reply.h"
#include "control/jsonrpc_unix_socket.h"
#include "util/log.h"
#include "util/tick.h"

#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

namespace nocstor::control {

namespace {

constexpr std::uint64_t kListenerKey = 0;  // epoll key of the listener; connections use ids >= 1
constexpr int kMaxEventsPerPoll = 32;
constexpr int kMaxAcceptsPerPoll = 16;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr int kMaxMessagesPerPoll = 16;  // per connection

const char* state_error(std::uint32_t state) {
    return state == kRpcStartup
               ? "Method may only be called after framework is initialized using "
                 "framework_start_init RPC."
               : "Method may only be called before framework is initialized. Use --wait-for-rpc "
                 "command line parameter and then issue this RPC before the "
                 "framework_start_init RPC.";
}

}  // namespace

JsonRpcServer::JsonRpcServer(JsonRpcServerOptions options) : options_(std::move(options)) {
    register_builtin_methods();
}

JsonRpcServer::~JsonRpcServer() {
    stop();
}

bool JsonRpcServer::start(std::string* error) {
    if (listen_fd_ >= 0) return true;
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
        *error = fmt::format("epoll_create1: {}", std::strerror(errno));
        return false;
    }
    listen_fd_ = listen_unix_socket(options_.socket_path, 128, error, options_.socket_group);
    if (listen_fd_ < 0) {
        stop();
        return false;
    }
    struct stat st;
    if (::stat(options_.socket_path.c_str(), &st) == 0) socket_inode_ = st.st_ino;
    owns_socket_file_ = true;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerKey;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) {
        *error = fmt::format("epoll_ctl: {}", std::strerror(errno));
        stop();
        return false;
    }
    accept_guard_ =
        std::make_unique<AcceptGuard>("rpc", fmt::format("JSON-RPC {}", options_.socket_path));
    NOC_INFO("rpc", "JSON-RPC server listening on {}", options_.socket_path);
    return true;
}

void JsonRpcServer::stop() {
    connections_.clear();  // closes the fds; pending Responders become no-ops
    closed_.clear();
    backlog_.clear();
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        listen_fd_ = -1;
    }
    if (owns_socket_file_) {
        // Only remove the file if it is still ours (not replaced by another instance).
        struct stat st;
        if (::stat(options_.socket_path.c_str(), &st) == 0 && st.st_ino == socket_inode_) {
            ::unlink(options_.socket_path.c_str());
        }
        owns_socket_file_ = false;
    }
    if (epoll_fd_ >= 0) {
        ::close(epoll_fd_);
        epoll_fd_ = -1;
    }
    accept_guard_.reset();
    listener_paused_ = false;
}

bool JsonRpcServer::register_method(std::string name, RpcHandler handler,
                                    std::uint32_t allowed_states) {
    return methods_.emplace(std::move(name), Method{std::move(handler), allowed_states}).second;
}

bool JsonRpcServer::unregister_method(const std::string& name) {
    return methods_.erase(name) != 0;
}

void JsonRpcServer::register_builtin_methods() {
    register_method(
        "rpc_get_methods",
        [this](const nlohmann::json& params, Responder r) {
            bool current = false;
            if (params.is_object()) {
                for (const auto& [key, value] : params.items()) {
                    if (key == "current" && value.is_boolean()) {
                        current = value.get<bool>();
                    } else if (key != "include_aliases" || !value.is_boolean()) {
                        return r.error(rpc_error::kInvalidParams,
                                       fmt::format("rpc_get_methods: invalid parameter '{}'", key));
                    }
                }
            } else if (!params.is_null()) {
                return r.error(rpc_error::kInvalidParams,
                               "rpc_get_methods: params must be an object");
            }
            auto names = nlohmann::json::array();
            for (const auto& [name, method] : methods_) {
                if (!current || (method.allowed_states & state_) == state_) names.push_back(name);
            }
            r.result(std::move(names));
        },
        kRpcStartup | kRpcRuntime);
}

bool JsonRpcServer::poll() {
    if (epoll_fd_ < 0) return false;
    bool worked = false;

    // Connections that still hold complete requests from an earlier read (budget ran out).
    if (!backlog_.empty()) {
        std::vector<std::uint64_t> ids;
        ids.swap(backlog_);
        for (std::uint64_t id : ids) {
            auto it = connections_.find(id);
            if (it != connections_.end()) worked |= process_messages(it->second);
        }
    }

    epoll_event events[kMaxEventsPerPoll];
    int n = ::epoll_wait(epoll_fd_, events, kMaxEventsPerPoll, 0);
    for (int i = 0; i < n; ++i) {
        const std::uint64_t key = events[i].data.u64;
        if (key == kListenerKey) {
            worked |= accept_connections();
            continue;
        }
        auto it = connections_.find(key);
        if (it == connections_.end()) continue;
        ConnectionPtr conn = it->second;  // keeps it alive while handlers run
        const std::uint32_t ev = events[i].events;
        if (ev & (EPOLLHUP | EPOLLERR)) {
            // Nobody can read our answers any more; drop the connection and its pending work.
            conn->close();
            worked = true;
            continue;
        }
        if (ev & EPOLLOUT) {
            conn->flush();
            worked = true;
        }
        if ((ev & EPOLLIN) && conn->wants_input()) worked |= service(conn);
    }
    if (!closed_.empty()) {
        reap_closed();
        worked = true;
    }
    return worked;
}

bool JsonRpcServer::accept_connections() {
    bool worked = false;
    for (int i = 0; i < kMaxAcceptsPerPoll; ++i) {
        const AcceptGuard::Result r =
            accept_guard_->accept(listen_fd_, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (r.kind == AcceptGuard::Kind::kShed) {
            worked = true;
            continue;
        }
        if (r.kind == AcceptGuard::Kind::kPause) set_listener_armed(false);
        if (r.kind != AcceptGuard::Kind::kAccepted) break;
        worked = true;
        if (!admit()) {
            ++stats_.refused;
            NOC_DEBUG("rpc", "refusing a connection: all {} connections are busy",
                      connections_.size());
            ::close(r.fd);
            continue;
        }
        ++stats_.accepted;
        const std::uint64_t id = next_connection_id_++;
        auto conn = std::make_shared<detail::JsonRpcConnection>(
            id, r.fd, epoll_fd_, options_.max_request_size, &closed_, &backlog_);
        if (!conn->closed()) connections_.emplace(id, std::move(conn));
        NOC_DEBUG("rpc", "connection {} accepted", id);
    }
    return worked;
}

// Makes room for a new connection by closing the longest-idle (or slowest) one when the server
// is full. False when every connection is waiting for an answer.
bool JsonRpcServer::admit() {
    reap_closed();
    const std::uint64_t victim = admission_victim(connections_, "", options_.connections);
    if (victim == 0) return true;
    if (victim == kRefuse) return false;
    NOC_DEBUG("rpc", "closing idle connection {} to make room", victim);
    connections_.at(victim)->close();
    reap_closed();
    ++stats_.evicted;
    return true;
}

void JsonRpcServer::set_listener_armed(bool armed) {
    if (listen_fd_ < 0 || listener_paused_ == !armed) return;
    epoll_event ev{};
    ev.events = armed ? std::uint32_t{EPOLLIN} : 0u;
    ev.data.u64 = kListenerKey;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
    listener_paused_ = !armed;
}

void JsonRpcServer::expire(std::uint64_t now) {
    if (listener_paused_ && !accept_guard_->paused(now)) set_listener_armed(true);
    for (auto& [id, conn] : connections_) {
        if (conn->closed()) continue;
        switch (passed_deadline(*conn, options_.connections, now)) {
            case Deadline::kNone:
                break;
            case Deadline::kIdle:
                ++stats_.idle_timeouts;
                NOC_DEBUG("rpc", "connection {} idle for {} ms, closing", id,
                          options_.connections.idle_timeout_ms);
                conn->close();
                break;
            case Deadline::kRequest:
                ++stats_.request_timeouts;
                NOC_DEBUG("rpc", "connection {}: request not complete within {} ms, closing", id,
                          options_.connections.request_timeout_ms);
                if (!conn->output_pending()) {
                    conn->send(dump_json(make_error_response(
                        nullptr, rpc_error::kInvalidRequest,
                        fmt::format("Invalid request: not received completely within {} ms",
                                    options_.connections.request_timeout_ms))));
                    conn->close_after_flush();
                } else {
                    conn->close();
                }
                break;
        }
    }
    reap_closed();
}

bool JsonRpcServer::service(const ConnectionPtr& conn) {
    const ReadResult read = read_from(*conn);
    if (read == ReadResult::kClosed) return true;
    process_messages(conn);
    if (read == ReadResult::kData) conn->touch(now_ns());
    if (read == ReadResult::kEof && !conn->closed()) {
        if (conn->framer().in_value()) {
            NOC_DEBUG("rpc", "connection {} closed mid-request", conn->id());
            conn->close();
        } else {
            // Orderly shutdown of the client's write side: answer what is pending, then close.
            conn->on_read_eof();
        }
    }
    return true;
}

JsonRpcServer::ReadResult JsonRpcServer::read_from(detail::JsonRpcConnection& conn) {
    char buf[kReadChunk];
    ssize_t n;
    do {
        n = ::recv(conn.fd(), buf, sizeof(buf), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        conn.framer().append(std::string_view(buf, static_cast<std::size_t>(n)));
        return ReadResult::kData;
    }
    if (n == 0) return ReadResult::kEof;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadResult::kAgain;
    NOC_DEBUG("rpc", "connection {}: recv failed: {}", conn.id(), std::strerror(errno));
    conn.close();
    return ReadResult::kClosed;
}

bool JsonRpcServer::process_messages(const ConnectionPtr& conn) {
    bool worked = false;
    std::string text;
    for (int i = 0; i < kMaxMessagesPerPoll; ++i) {
        if (!conn->accepts_requests()) return worked;  // resumed on EPOLLOUT
        switch (conn->framer().next(&text)) {
            case JsonStreamFramer::Status::kNeedMore:
                return worked;
            case JsonStreamFramer::Status::kValue:
                dispatch(conn, text);
                worked = true;
                break;
            case JsonStreamFramer::Status::kError:
                conn->send(
                    dump_json(make_error_response(nullptr, rpc_error::kParseError, "Parse error")));
                conn->close_after_flush();
                return true;
            case JsonStreamFramer::Status::kTooLarge:
                conn->send(dump_json(
                    make_error_response(nullptr, rpc_error::kInvalidRequest,
                                        fmt::format("Invalid request: larger than {} bytes",
                                                    options_.max_request_size))));
                conn->close_after_flush();
                return true;
        }
    }
    if (!conn->closed()) backlog_.push_back(conn->id());  // more may be buffered: next poll
    return worked;
}

void JsonRpcServer::dispatch(const ConnectionPtr& conn, const std::string& text) {
    JsonRpcMessage message = decode_jsonrpc_message(text);
    if (message.kind == JsonRpcMessage::Kind::kParseError) {
        conn->send(dump_json(make_error_response(nullptr, rpc_error::kParseError, "Parse error")));
        conn->close_after_flush();
        return;
    }
    const bool batch = message.kind == JsonRpcMessage::Kind::kBatch;
    auto reply = std::make_shared<detail::JsonRpcReply>(conn, batch, message.entries.size());
    conn->message_started();
    // Invalid entries are answered first so the reply cannot complete before all are recorded.
    for (std::size_t i = 0; i < message.entries.size(); ++i) {
        if (!message.entries[i].valid) reply->complete(i, std::move(message.entries[i].response));
    }
    for (std::size_t i = 0; i < message.entries.size(); ++i) {
        JsonRpcEntry& entry = message.entries[i];
        if (!entry.valid) continue;
        invoke(entry.call, Responder(reply, i, entry.call.id, entry.call.notification));
    }
}

void JsonRpcServer::invoke(const JsonRpcCall& call, Responder responder) {
    auto it = methods_.find(call.method);
    if (it == methods_.end()) {
        NOC_DEBUG("rpc", "unknown method '{}'", call.method);
        return responder.error(rpc_error::kMethodNotFound, "Method not found");
    }
    if ((it->second.allowed_states & state_) != state_) {
        return responder.error(rpc_error::kInvalidState, state_error(state_));
    }
    NOC_DEBUG("rpc", "calling {}", call.method);
    // Copy: a handler may (un)register methods, invalidating the iterator.
    RpcHandler handler = it->second.handler;
    try {
        handler(call.params, std::move(responder));
    } catch (const std::exception& e) {
        // The Responder was destroyed during unwinding and answered with an internal error.
        NOC_ERROR("rpc", "method {} threw: {}", call.method, e.what());
    } catch (...) {
        NOC_ERROR("rpc", "method {} threw an unknown exception", call.method);
    }
}

void JsonRpcServer::reap_closed() {
    for (std::uint64_t id : closed_) {
        NOC_DEBUG("rpc", "connection {} closed", id);
        connections_.erase(id);
    }
    closed_.clear();
}

}  // namespace nocstor::control
