// One client connection of the HTTP server (internal to the control library).
#pragma once

#include "control/connection_limits.h"
#include "control/http_message.h"
#include "control/http_parser.h"
#include "control/http_tls.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace nocstor::control::detail {

class HttpConnection;

// The request currently being answered on a connection.
struct HttpExchange {
    std::weak_ptr<HttpConnection> connection;
    bool head_only = false;
    bool answered = false;
};

class HttpConnection {
  public:
    // closed_list / resume_list: see JsonRpcConnection.
    HttpConnection(std::uint64_t id, int fd, int epoll_fd, const HttpLimits& limits,
                   std::vector<std::uint64_t>* closed_list, std::vector<std::uint64_t>* resume_list,
                   std::shared_ptr<HttpTlsContext> tls = nullptr);
    ~HttpConnection();
    HttpConnection(const HttpConnection&) = delete;
    HttpConnection& operator=(const HttpConnection&) = delete;

    std::uint64_t id() const { return id_; }
    int fd() const { return fd_; }
    bool closed() const { return fd_ < 0; }
    std::string& input() { return in_; }
    HttpRequestParser& parser() { return parser_; }

    // A request is being handled; no further input is read until it is answered.
    bool busy() const { return busy_; }
    void set_busy() {
        busy_ = true;
        update_interest();
    }
    // Input is read when no request is in flight and the last answer went out (a client that
    // pipelines requests without reading the answers is not served further).
    bool wants_input() const {
        return fd_ >= 0 && !busy_ && !closing_ && !read_eof_ && out_.empty();
    }

    // For the server's connection limits (connection_limits.h).
    ConnectionClock& clock() { return clock_; }
    const ConnectionClock& clock() const { return clock_; }
    bool handling() const { return busy_; }
    bool output_pending() const { return !out_.empty(); }
    // Something happened: restarts the idle clock and notes whether an incomplete request is
    // buffered.
    void touch(std::uint64_t now) { clock_.on_input(now, !busy_ && !in_.empty()); }

    // Queues the response of the current request; keeps the connection open if keep_alive.
    void respond(const HttpResponse& response, bool keep_alive, bool head_only);
    // Sends "100 Continue" once per request.
    void send_continue();
    void flush();
    void on_read_eof();
    void close();

    // Reads what arrived (decrypted on a TLS connection): like recv(MSG_DONTWAIT).
    ssize_t receive(char* buf, std::size_t len);
    bool tls() const { return tls_ != nullptr; }
    // TLS: decrypted input is buffered (no epoll event will come for it), or a read waits for
    // the socket to be writable.
    bool tls_input_pending() const { return tls_ && tls_->pending(); }
    bool tls_read_wants_write() const { return tls_ && tls_read_wants_write_; }
    bool tls_write_wants_read() const { return tls_ && tls_write_wants_read_; }
    // The client showed a certificate the configured CA verified.
    bool client_verified() const { return tls_ && tls_->peer_verified(); }

  private:
    void send(std::string_view bytes);
    void update_interest();
    void close_if_done();

    std::uint64_t id_;
    int fd_;
    int epoll_fd_;
    std::vector<std::uint64_t>* closed_list_;
    std::vector<std::uint64_t>* resume_list_;
    HttpRequestParser parser_;
    ConnectionClock clock_;
    std::string in_;
    std::string out_;
    std::size_t out_offset_ = 0;
    std::uint32_t interest_ = 0;
    bool busy_ = false;
    bool continue_sent_ = false;
    bool closing_ = false;  // close once the output is flushed
    bool read_eof_ = false;
    std::unique_ptr<TlsSession> tls_;
    bool tls_read_wants_write_ = false;
    bool tls_write_wants_read_ = false;
};

}  // namespace nocstor::control::detail
