// HTTP/1.1 server (REST API, Prometheus /metrics) in the same polled model as JsonRpcServer:
// register fd() (an internal epoll instance) with the reactor's epoll and call poll().
//
//   http.route("GET", "/api/v1/bdevs/{name}", [](const HttpRequest& req, HttpResponder r) {
//       std::string name = req.path_params.at("name");  // copy what an async handler needs
//       r.json(200, {{"name", name}});
//   });
//
// One request per connection is handled at a time (HTTP/1.1 responses must stay in order);
// pipelined requests wait in the socket until the previous response is queued.
#pragma once

#include "control/connection_limits.h"
#include "control/http_message.h"
#include "control/http_parser.h"
#include "control/http_router.h"
#include "control/http_tls.h"
#include "util/accept_guard.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nocstor::control {

namespace detail {
class HttpConnection;
struct HttpExchange;
}  // namespace detail

// Answers one request, now or later, on the server's thread. Move-only; answering twice or
// after the client disconnected is a no-op. Dropped unanswered, it answers 500.
class HttpResponder {
  public:
    HttpResponder() = default;
    HttpResponder(HttpResponder&&) noexcept = default;
    HttpResponder& operator=(HttpResponder&& other) noexcept;
    HttpResponder(const HttpResponder&) = delete;
    HttpResponder& operator=(const HttpResponder&) = delete;
    ~HttpResponder();

    void send(HttpResponse response);
    void json(int status, const nlohmann::json& body) { send(HttpResponse::json(status, body)); }
    void text(int status, std::string body,
              std::string content_type = "text/plain; charset=utf-8") {
        send(HttpResponse::text(status, std::move(body), std::move(content_type)));
    }
    // JSON error body: {"error": {"code": status, "message": message}}
    void error(int status, std::string_view message) { send(HttpResponse::error(status, message)); }
    bool pending() const;

  private:
    friend class HttpServer;
    explicit HttpResponder(std::shared_ptr<detail::HttpExchange> exchange)
        : exchange_(std::move(exchange)) {}

    std::shared_ptr<detail::HttpExchange> exchange_;
};

// Prometheus text exposition format.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

struct HttpServerOptions {
    std::string address = "127.0.0.1";  // IPv4 or IPv6 literal ("::1", "[::1]", "0.0.0.0")
    std::uint16_t port = 8080;          // 0 picks a free port (see port())
    HttpLimits limits;
    ConnectionLimits connections{.max_connections = 64,
                                 .max_per_peer = 16,
                                 .idle_timeout_ms = 60'000,
                                 .request_timeout_ms = 10'000};
    // The management token. When set, requests that change something (and routes registered
    // with HttpAccess::kToken) need "Authorization: Bearer <token>"; anything else stays
    // readable without it. Empty: no access control (tests, embedding).
    std::string token;
    std::string token_hint;  // appended to 401 answers, e.g. where the token file is
    // HTTPS: every connection speaks TLS (http_tls.h); with a client CA, requests other than
    // GET /metrics need a verified client certificate.
    std::shared_ptr<HttpTlsContext> tls;
};

struct HttpServerStats {
    ConnectionCounters connections;
    std::uint64_t auth_failures = 0;  // 401 answers
};

class HttpServer {
  public:
    explicit HttpServer(HttpServerOptions options = {});
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    bool start(std::string* error);
    void stop();

    // False if the pattern is malformed or already registered for that method.
    bool route(std::string method, std::string_view pattern, HttpHandler handler,
               HttpAccess access = HttpAccess::kDefault) {
        return router_.add(std::move(method), pattern, std::move(handler), access);
    }

    int fd() const { return epoll_fd_; }
    bool poll();
    // Closes connections past their deadlines (connection_limits.h) and resumes a listener
    // paused for lack of file descriptors. Call periodically (the daemon: every 100 ms).
    void expire(std::uint64_t now_ns);

    std::uint16_t port() const { return bound_port_; }
    std::size_t connection_count() const { return connections_.size(); }
    const HttpServerStats& stats() const { return stats_; }

  private:
    using ConnectionPtr = std::shared_ptr<detail::HttpConnection>;

    bool accept_connections();
    bool admit(const std::string& peer);
    void set_listener_armed(bool armed);
    void read_from(const ConnectionPtr& conn);
    void process(const ConnectionPtr& conn);
    void dispatch(const ConnectionPtr& conn, HttpRequest& request);
    bool authorized(const HttpRequest& request, HttpAccess access, const ConnectionPtr& conn);

    HttpServerOptions options_;
    HttpRouter router_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    std::uint16_t bound_port_ = 0;
    std::unique_ptr<AcceptGuard> accept_guard_;
    bool listener_paused_ = false;
    HttpServerStats stats_;
    std::uint64_t auth_log_ns_ = 0;
    std::uint64_t auth_unlogged_ = 0;
    std::uint64_t next_connection_id_ = 1;
    std::unordered_map<std::uint64_t, ConnectionPtr> connections_;
    std::vector<std::uint64_t> closed_;
    std::vector<std::uint64_t> resume_;  // connections with a buffered next request
};

}  // namespace nocstor::control
