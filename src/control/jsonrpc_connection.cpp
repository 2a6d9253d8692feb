#include "control/jsonrpc_connection.h"

#include "util/log.h"
#include "util/tick.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nocstor::control::detail {

JsonRpcConnection::JsonRpcConnection(std::uint64_t id, int fd, int epoll_fd,
                                     std::size_t max_request_size,
                                     std::vector<std::uint64_t>* closed_list,
                                     std::vector<std::uint64_t>* resume_list)
    : id_(id),
      fd_(fd),
      epoll_fd_(epoll_fd),
      max_output_(max_request_size),
      closed_list_(closed_list),
      resume_list_(resume_list),
      framer_(max_request_size) {
    clock_.last_activity_ns = now_ns();
    epoll_event ev{};
    ev.events = interest_ = EPOLLIN;
    ev.data.u64 = id_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd_, &ev) != 0) {
        NOC_ERROR("rpc", "epoll_ctl(ADD) failed: {}", std::strerror(errno));
        close();
    }
}

JsonRpcConnection::~JsonRpcConnection() {
    if (fd_ >= 0) ::close(fd_);  // the epoll registration goes away with the fd
}

bool JsonRpcConnection::accepts_requests() const {
    return fd_ >= 0 && !closing_ && out_.size() - out_offset_ < max_output_;
}

void JsonRpcConnection::send(std::string_view text) {
    if (fd_ < 0) return;
    out_.append(text);
    flush();
}

void JsonRpcConnection::flush() {
    while (fd_ >= 0 && out_offset_ < out_.size()) {
        ssize_t n = ::send(fd_, out_.data() + out_offset_, out_.size() - out_offset_,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            out_offset_ += static_cast<std::size_t>(n);
            clock_.last_activity_ns = now_ns();
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            NOC_DEBUG("rpc", "connection {}: send failed: {}", id_, std::strerror(errno));
            close();
            return;
        }
    }
    if (fd_ >= 0 && out_offset_ == out_.size() && !out_.empty()) {
        out_.clear();
        out_offset_ = 0;
        if (framer_.buffered() > 0) resume_list_->push_back(id_);
    }
    close_if_done();
    update_interest();
}

void JsonRpcConnection::message_finished() {
    if (pending_messages_ > 0) --pending_messages_;
    clock_.last_activity_ns = now_ns();
    close_if_done();
    update_interest();
}

void JsonRpcConnection::on_read_eof() {
    read_eof_ = true;
    close_if_done();
    update_interest();
}

void JsonRpcConnection::close_after_flush() {
    closing_ = true;
    close_if_done();
    update_interest();
}

void JsonRpcConnection::close_if_done() {
    if (fd_ < 0 || !out_.empty()) return;
    if (closing_ || (read_eof_ && pending_messages_ == 0)) close();
}

void JsonRpcConnection::close() {
    if (fd_ < 0) return;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd_, nullptr);
    ::close(fd_);
    fd_ = -1;
    closed_list_->push_back(id_);
}

void JsonRpcConnection::update_interest() {
    if (fd_ < 0) return;
    std::uint32_t want = (wants_input() ? EPOLLIN : 0u) | (out_.empty() ? 0u : EPOLLOUT);
    if (want == interest_) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = id_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd_, &ev) == 0) interest_ = want;
}

}  // namespace nocstor::control::detail
