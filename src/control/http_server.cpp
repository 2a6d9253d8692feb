#include "control/http_server.h"

#include "control/http_connection.h"
#include "control/mgmt_token.h"
#include "util/log.h"
#include "util/tick.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>

namespace nocstor::control {

namespace {

constexpr std::uint64_t kListenerKey = 0;
constexpr int kMaxEventsPerPoll = 32;
constexpr int kMaxAcceptsPerPoll = 16;
constexpr std::size_t kReadChunk = 64 * 1024;

// Parses an IPv4 or IPv6 literal (brackets allowed) into a socket address.
bool make_address(const std::string& address, std::uint16_t port, sockaddr_storage* storage,
                  socklen_t* len) {
    std::string host = address;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    std::memset(storage, 0, sizeof(*storage));
    auto* v4 = reinterpret_cast<sockaddr_in*>(storage);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof(sockaddr_in);
        return true;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(storage);
    if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

// The peer's address without the port ("127.0.0.1", "::1"), for the per-peer cap and logs.
std::string peer_address(const sockaddr_storage& ss) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (ss.ss_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, text,
                    sizeof(text));
    } else if (ss.ss_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, text,
                    sizeof(text));
    }
    return text;
}

constexpr std::uint64_t kAuthLogIntervalNs = 5'000'000'000;

}  // namespace

HttpResponder& HttpResponder::operator=(HttpResponder&& other) noexcept {
    if (this != &other) {
        if (pending()) error(500, "request abandoned");
        exchange_ = std::move(other.exchange_);
    }
    return *this;
}

HttpResponder::~HttpResponder() {
    if (exchange_ && !exchange_->answered) {
        NOC_WARN("http", "request dropped without a response");
        error(500, "handler returned no response");
    }
}

bool HttpResponder::pending() const {
    return exchange_ && !exchange_->answered && !exchange_->connection.expired();
}

void HttpResponder::send(HttpResponse response) {
    if (!exchange_ || exchange_->answered) return;
    exchange_->answered = true;
    if (auto conn = exchange_->connection.lock()) {
        conn->respond(response, /*keep_alive=*/true, exchange_->head_only);
    }
    exchange_.reset();
}

HttpServer::HttpServer(HttpServerOptions options) : options_(std::move(options)) {}

HttpServer::~HttpServer() {
    stop();
}

bool HttpServer::start(std::string* error) {
    if (listen_fd_ >= 0) return true;
    sockaddr_storage addr;
    socklen_t addr_len = 0;
    if (!make_address(options_.address, options_.port, &addr, &addr_len)) {
        *error = fmt::format("invalid HTTP listen address '{}' (expected an IPv4 or IPv6 literal)",
                             options_.address);
        return false;
    }
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    listen_fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (epoll_fd_ < 0 || listen_fd_ < 0) {
        *error = fmt::format("cannot create HTTP socket: {}", std::strerror(errno));
        stop();
        return false;
    }
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 ||
        ::listen(listen_fd_, 128) != 0) {
        *error = fmt::format("cannot listen on {}:{}: {}", options_.address, options_.port,
                             std::strerror(errno));
        stop();
        return false;
    }
    sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len);
    bound_port_ =
        ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                         : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerKey;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) {
        *error = fmt::format("epoll_ctl: {}", std::strerror(errno));
        stop();
        return false;
    }
    accept_guard_ = std::make_unique<AcceptGuard>(
        "http", fmt::format("HTTP {}:{}", options_.address, bound_port_));
    NOC_INFO("http", "HTTP server listening on {}:{}", options_.address, bound_port_);
    return true;
}

void HttpServer::stop() {
    connections_.clear();
    closed_.clear();
    resume_.clear();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    listen_fd_ = epoll_fd_ = -1;
    accept_guard_.reset();
    listener_paused_ = false;
}

bool HttpServer::poll() {
    if (epoll_fd_ < 0) return false;
    bool worked = false;
    if (!resume_.empty()) {
        std::vector<std::uint64_t> ids;
        ids.swap(resume_);
        for (std::uint64_t id : ids) {
            auto it = connections_.find(id);
            if (it == connections_.end()) continue;
            ConnectionPtr conn = it->second;
            process(conn);
            worked = true;
        }
    }
    epoll_event events[kMaxEventsPerPoll];
    const int n = ::epoll_wait(epoll_fd_, events, kMaxEventsPerPoll, 0);
    for (int i = 0; i < n; ++i) {
        const std::uint64_t key = events[i].data.u64;
        if (key == kListenerKey) {
            worked |= accept_connections();
            continue;
        }
        auto it = connections_.find(key);
        if (it == connections_.end()) continue;
        ConnectionPtr conn = it->second;
        worked = true;
        const bool abandoned = (events[i].events & EPOLLRDHUP) && conn->busy();
        if (abandoned || (events[i].events & (EPOLLHUP | EPOLLERR))) {
            conn->close();
            continue;
        }
        if (events[i].events & EPOLLOUT) {
            conn->flush();
            if (conn->tls_read_wants_write() && conn->wants_input()) read_from(conn);
        }
        if ((events[i].events & EPOLLIN) && conn->tls_write_wants_read()) conn->flush();
        if ((events[i].events & EPOLLIN) && conn->wants_input()) read_from(conn);
    }
    if (!closed_.empty()) {
        for (std::uint64_t id : closed_) connections_.erase(id);
        closed_.clear();
        worked = true;
    }
    return worked;
}

bool HttpServer::accept_connections() {
    bool worked = false;
    for (int i = 0; i < kMaxAcceptsPerPoll; ++i) {
        sockaddr_storage peer{};
        socklen_t peer_len = sizeof(peer);
        const AcceptGuard::Result r =
            accept_guard_->accept(listen_fd_, SOCK_NONBLOCK | SOCK_CLOEXEC,
                                  reinterpret_cast<sockaddr*>(&peer), &peer_len);
        if (r.kind == AcceptGuard::Kind::kShed) {
            worked = true;
            continue;
        }
        if (r.kind == AcceptGuard::Kind::kPause) set_listener_armed(false);
        if (r.kind != AcceptGuard::Kind::kAccepted) break;
        worked = true;
        const std::string address = peer_address(peer);
        if (!admit(address)) {
            ++stats_.connections.refused;
            NOC_DEBUG("http", "refusing a connection from {}: all {} connections are busy", address,
                      connections_.size());
            ::close(r.fd);
            continue;
        }
        ++stats_.connections.accepted;
        const std::uint64_t id = next_connection_id_++;
        auto conn = std::make_shared<detail::HttpConnection>(id, r.fd, epoll_fd_, options_.limits,
                                                             &closed_, &resume_, options_.tls);
        conn->clock().peer = address;
        if (!conn->closed()) connections_.emplace(id, std::move(conn));
    }
    return worked;
}

// Makes room for a new connection from peer: closes the longest-idle (or slowest) connection
// when the server or that peer is at its cap. False when every connection is busy.
bool HttpServer::admit(const std::string& peer) {
    for (std::uint64_t id : closed_) connections_.erase(id);
    closed_.clear();
    const std::uint64_t victim = admission_victim(connections_, peer, options_.connections);
    if (victim == 0) return true;
    if (victim == kRefuse) return false;
    auto it = connections_.find(victim);
    NOC_DEBUG("http", "closing idle connection {} from {} to make room", victim,
              it->second->clock().peer);
    it->second->close();
    connections_.erase(it);
    ++stats_.connections.evicted;
    return true;
}

void HttpServer::set_listener_armed(bool armed) {
    if (listen_fd_ < 0 || listener_paused_ == !armed) return;
    epoll_event ev{};
    ev.events = armed ? std::uint32_t{EPOLLIN} : 0u;
    ev.data.u64 = kListenerKey;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
    listener_paused_ = !armed;
}

void HttpServer::expire(std::uint64_t now) {
    if (listener_paused_ && !accept_guard_->paused(now)) set_listener_armed(true);
    for (auto& [id, conn] : connections_) {
        if (conn->closed()) continue;
        switch (passed_deadline(*conn, options_.connections, now)) {
            case Deadline::kNone:
                break;
            case Deadline::kIdle:
                ++stats_.connections.idle_timeouts;
                conn->close();
                break;
            case Deadline::kRequest:
                ++stats_.connections.request_timeouts;
                NOC_DEBUG("http", "connection {} from {}: request not complete within {} ms", id,
                          conn->clock().peer, options_.connections.request_timeout_ms);
                if (conn->output_pending()) {
                    conn->close();  // the client does not read its answers
                } else {
                    conn->input().clear();
                    conn->respond(HttpResponse::error(
                                      408, fmt::format("the request did not arrive within {} ms",
                                                       options_.connections.request_timeout_ms)),
                                  /*keep_alive=*/false, /*head_only=*/false);
                }
                break;
        }
    }
    for (std::uint64_t id : closed_) connections_.erase(id);
    closed_.clear();
}

void HttpServer::read_from(const ConnectionPtr& conn) {
    char buf[kReadChunk];
    // TLS may hold decrypted bytes no epoll event announces: read them too (bounded).
    for (int round = 0; round < 16; ++round) {
        ssize_t n;
        do {
            n = conn->receive(buf, sizeof(buf));
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            conn->input().append(buf, static_cast<std::size_t>(n));
            process(conn);
            conn->touch(now_ns());
        } else if (n == 0) {
            if (!conn->input().empty()) {
                conn->close();  // disconnected in the middle of a request
            } else {
                conn->on_read_eof();
            }
            return;
        } else {
            if (errno != EAGAIN && errno != EWOULDBLOCK) conn->close();
            return;
        }
        if (conn->closed() || !conn->tls_input_pending() || !conn->wants_input()) return;
    }
}

void HttpServer::process(const ConnectionPtr& conn) {
    if (conn->closed() || conn->busy() || conn->input().empty()) return;
    std::size_t consumed = 0;
    switch (conn->parser().parse(conn->input(), &consumed)) {
        case HttpRequestParser::Status::kNeedMore:
            if (conn->parser().expects_continue()) conn->send_continue();
            return;
        case HttpRequestParser::Status::kError: {
            const int status = conn->parser().error_status();
            NOC_DEBUG("http", "bad request: {} {}", status, conn->parser().error_message());
            conn->input().clear();
            conn->respond(HttpResponse::error(status, conn->parser().error_message()),
                          /*keep_alive=*/false, /*head_only=*/false);
            return;
        }
        case HttpRequestParser::Status::kComplete:
            break;
    }
    HttpRequest request = std::move(conn->parser().request());
    conn->input().erase(0, consumed);
    conn->set_busy();
    dispatch(conn, request);
}

void HttpServer::dispatch(const ConnectionPtr& conn, HttpRequest& request) {
    auto exchange = std::make_shared<detail::HttpExchange>();
    exchange->connection = conn;
    exchange->head_only = request.method == "HEAD";
    const bool keep_alive = request.keep_alive;
    if (!keep_alive) conn->on_read_eof();  // stop reading; close after this response
    HttpResponder responder(exchange);

    HttpRouter::Match match = router_.match(request.method, request.path);
    if (match.kind == HttpRouter::Match::Kind::kNotFound) {
        return responder.error(404,
                               fmt::format("no route for {} {}", request.method, request.path));
    }
    if (match.kind == HttpRouter::Match::Kind::kMethodNotAllowed) {
        HttpResponse response = HttpResponse::error(
            405, fmt::format("method {} not allowed for {}", request.method, request.path));
        response.headers.emplace_back("Allow",
                                      fmt::format("{}", fmt::join(match.allowed_methods, ", ")));
        return responder.send(std::move(response));
    }
    if (options_.tls && options_.tls->verifies_clients() && !conn->client_verified() &&
        !(request.path == "/metrics" && (request.method == "GET" || request.method == "HEAD"))) {
        return responder.error(403,
                               "this request needs a client certificate signed by the CA of "
                               "--http-client-ca (only GET /metrics is public)");
    }
    if (!authorized(request, match.access, conn)) {
        HttpResponse response = HttpResponse::error(
            401, "this request needs the management token: send 'Authorization: Bearer <token>'" +
                     (options_.token_hint.empty() ? "" : " (" + options_.token_hint + ")"));
        response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nocstor\"");
        return responder.send(std::move(response));
    }
    request.path_params = std::move(match.params);
    HttpHandler handler = *match.handler;  // copy: the handler may add routes
    try {
        handler(request, std::move(responder));
    } catch (const std::exception& e) {
        NOC_ERROR("http", "handler for {} {} threw: {}", request.method, request.path, e.what());
    } catch (...) {
        NOC_ERROR("http", "handler for {} {} threw", request.method, request.path);
    }
}

bool HttpServer::authorized(const HttpRequest& request, HttpAccess access,
                            const ConnectionPtr& conn) {
    if (options_.token.empty()) return true;
    const std::string* header = request.header("authorization");
    const bool read_only = request.method == "GET" || request.method == "HEAD";
    if (!header && read_only && access == HttpAccess::kDefault) return true;
    // A token that is sent is checked even where none is needed: a client that believes it is
    // authenticated learns at once that it is not.
    if (header && bearer_token_matches(*header, options_.token)) return true;
    ++stats_.auth_failures;
    ++auth_unlogged_;
    const std::uint64_t now = now_ns();
    if (auth_log_ns_ == 0 || now - auth_log_ns_ >= kAuthLogIntervalNs) {
        NOC_WARN("http",
                 "{} {} from {} refused: {} management token ({} refused since the last "
                 "report)",
                 request.method, request.path, conn->clock().peer, header ? "wrong" : "no",
                 auth_unlogged_);
        auth_log_ns_ = now;
        auth_unlogged_ = 0;
    }
    return false;
}

}  // namespace nocstor::control
