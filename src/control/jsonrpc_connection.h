// One client connection of the JSON-RPC server (internal to the control library).
#pragma once

#include "control/connection_limits.h"
#include "control/jsonrpc_framer.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nocstor::control::detail {

class JsonRpcConnection {
  public:
    // closed_list receives the id when the fd is closed, so the server can erase the object;
    // resume_list receives it when output drained while complete requests wait in the framer.
    JsonRpcConnection(std::uint64_t id, int fd, int epoll_fd, std::size_t max_request_size,
                      std::vector<std::uint64_t>* closed_list,
                      std::vector<std::uint64_t>* resume_list);
    ~JsonRpcConnection();
    JsonRpcConnection(const JsonRpcConnection&) = delete;
    JsonRpcConnection& operator=(const JsonRpcConnection&) = delete;

    std::uint64_t id() const { return id_; }
    int fd() const { return fd_; }
    bool closed() const { return fd_ < 0; }
    JsonStreamFramer& framer() { return framer_; }

    // Queues a serialised response and sends what the socket accepts right away.
    void send(std::string_view text);
    // Sends buffered output (on EPOLLOUT).
    void flush();

    // A message (request or batch) started / finished; responses may be outstanding meanwhile.
    void message_started() { ++pending_messages_; }
    void message_finished();

    // The peer closed its write side; answer what is outstanding, then close.
    void on_read_eof();
    // Answer what is queued, then close (after a parse error or an oversized request).
    void close_after_flush();
    // Closes immediately; idempotent.
    void close();

    // Buffered requests may be processed (not closing, output not backed up).
    bool accepts_requests() const;
    // More input should be read: accepts requests and the peer has not shut down writing.
    bool wants_input() const { return accepts_requests() && !read_eof_; }

    // For the server's connection limits (connection_limits.h).
    ConnectionClock& clock() { return clock_; }
    const ConnectionClock& clock() const { return clock_; }
    bool handling() const { return pending_messages_ > 0; }
    bool output_pending() const { return !out_.empty(); }
    // Bytes arrived and were processed: restarts the idle clock, notes an incomplete request.
    void touch(std::uint64_t now) { clock_.on_input(now, framer_.in_value()); }

  private:
    void update_interest();
    void close_if_done();

    std::uint64_t id_;
    int fd_;
    int epoll_fd_;
    std::size_t max_output_;
    std::vector<std::uint64_t>* closed_list_;
    std::vector<std::uint64_t>* resume_list_;
    JsonStreamFramer framer_;
    ConnectionClock clock_;
    std::string out_;
    std::size_t out_offset_ = 0;
    std::size_t pending_messages_ = 0;
    std::uint32_t interest_ = 0;
    bool read_eof_ = false;
    bool closing_ = false;
};

}  // namespace nocstor::control::detail
