#include "control/http_connection.h"

#include "util/log.h"
#include "util/tick.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nocstor::control::detail {

HttpConnection::HttpConnection(std::uint64_t id, int fd, int epoll_fd, const HttpLimits& limits,
                               std::vector<std::uint64_t>* closed_list,
                               std::vector<std::uint64_t>* resume_list,
                               std::shared_ptr<HttpTlsContext> tls)
    : id_(id),
      fd_(fd),
      epoll_fd_(epoll_fd),
      closed_list_(closed_list),
      resume_list_(resume_list),
      parser_(limits) {
    clock_.last_activity_ns = now_ns();
    if (tls) tls_ = std::make_unique<TlsSession>(std::move(tls), fd_);
    epoll_event ev{};
    ev.events = interest_ = EPOLLIN;
    ev.data.u64 = id_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd_, &ev) != 0) {
        NOC_ERROR("http", "epoll_ctl(ADD) failed: {}", std::strerror(errno));
        close();
    }
}

HttpConnection::~HttpConnection() {
    tls_.reset();
    if (fd_ >= 0) ::close(fd_);
}

ssize_t HttpConnection::receive(char* buf, std::size_t len) {
    if (!tls_) return ::recv(fd_, buf, len, MSG_DONTWAIT);
    const ssize_t n = tls_->read(buf, len);
    tls_read_wants_write_ = n < 0 && errno == EAGAIN && tls_->wants_write();
    if (n < 0 && errno != EAGAIN)
        NOC_DEBUG("http", "connection {} from {}: {}", id_, clock_.peer, tls_->error());
    update_interest();
    return n;
}

void HttpConnection::respond(const HttpResponse& response, bool keep_alive, bool head_only) {
    if (fd_ < 0) return;
    keep_alive = keep_alive && !closing_ && !read_eof_;
    busy_ = false;
    continue_sent_ = false;
    parser_.reset();
    send(serialize_http_response(response, keep_alive, head_only));
    if (!keep_alive) {
        closing_ = true;
        close_if_done();
    }
    // A pipelined request already buffered is resumed by flush() once this answer is out.
    touch(now_ns());
    update_interest();
}

void HttpConnection::send_continue() {
    if (continue_sent_) return;
    continue_sent_ = true;
    send("HTTP/1.1 100 Continue\r\n\r\n");
}

void HttpConnection::send(std::string_view bytes) {
    if (fd_ < 0) return;
    out_.append(bytes);
    flush();
}

void HttpConnection::flush() {
    tls_write_wants_read_ = false;
    while (fd_ >= 0 && out_offset_ < out_.size()) {
        ssize_t n = tls_ ? tls_->write(out_.data() + out_offset_, out_.size() - out_offset_)
                         : ::send(fd_, out_.data() + out_offset_, out_.size() - out_offset_,
                                  MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            out_offset_ += static_cast<std::size_t>(n);
            clock_.last_activity_ns = now_ns();
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // TLS: a write that needs input first is retried on the next EPOLLIN.
            tls_write_wants_read_ = tls_ && !tls_->wants_write();
            break;
        } else {
            close();
            return;
        }
    }
    if (out_offset_ == out_.size() && !out_.empty()) {
        out_.clear();
        out_offset_ = 0;
        // Input was not read while the answer was unsent; bytes may be waiting in the socket
        // (level-triggered EPOLLIN reports them) or already buffered.
        if (!in_.empty() && !busy_) resume_list_->push_back(id_);
    }
    close_if_done();
    update_interest();
}

void HttpConnection::on_read_eof() {
    read_eof_ = true;
    if (!busy_) closing_ = true;  // otherwise: answer the request in flight, then close
    close_if_done();
    update_interest();
}

void HttpConnection::close_if_done() {
    if (fd_ >= 0 && out_.empty() && closing_) close();
}

void HttpConnection::close() {
    if (fd_ < 0) return;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd_, nullptr);
    ::close(fd_);
    fd_ = -1;
    closed_list_->push_back(id_);
}

void HttpConnection::update_interest() {
    if (fd_ < 0) return;
    // While a request is in flight, input is not read; EPOLLRDHUP still reports a client that
    // went away so the request can be abandoned (its Responder becomes a no-op).
    std::uint32_t want = (wants_input() || tls_write_wants_read_ ? EPOLLIN : 0u) |
                         (out_.empty() && !tls_read_wants_write_ ? 0u : EPOLLOUT) |
                         (busy_ ? EPOLLRDHUP : 0u);
    if (want == interest_) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = id_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd_, &ev) == 0) interest_ = want;
}

}  // namespace nocstor::control::detail
