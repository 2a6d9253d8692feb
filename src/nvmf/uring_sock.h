// The io_uring socket driver of a poll group (the alternative to epoll + recvmsg/sendmsg, chosen
// with NvmfTargetOptions::sock_impl / `--sock-impl uring`). One ring per data thread; every
// connection keeps one RECVMSG armed (straight into the buffer of a large PDU being received,
// else into the connection's own staging buffer) and at most one SENDMSG in flight carrying its
// whole TX queue. New SQEs are submitted once per poll pass, completions are reaped from the
// shared CQ ring without a syscall, and the reactor sleeps on an eventfd that the ring signals
// only while the reactor is going to sleep.
#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "nvmf/sock_impl.h"
#include "nvmf/tcp_conn.h"

namespace nocstor {
class Reactor;
}  // namespace nocstor

namespace nocstor::nvmf {

// Per-connection io_uring state: the iovecs and msghdrs must stay put while the kernel owns them.
struct UringConnIo {
    static constexpr size_t kStagingSize = 64 * 1024;
    std::unique_ptr<uint8_t[]> staging = std::make_unique<uint8_t[]>(kStagingSize);
    iovec rx_iov[2]{};
    msghdr rx_msg{};
    iovec tx_iov[TcpConn::kMaxTxIov]{};
    msghdr tx_msg{};
    bool send_inflight = false;
    size_t inflight_bytes = 0;  // what the SENDMSG in flight carries
    uint32_t ops = 0;           // SQEs whose completion has not been reaped
};

class UringSock {
  public:
    UringSock() = default;
    ~UringSock();
    UringSock(const UringSock&) = delete;
    UringSock& operator=(const UringSock&) = delete;

    // Creates the ring and hooks it into the reactor's sleep. -errno (with *err) on failure.
    int init(unsigned entries, std::string* err);
    void shutdown();  // unhooks from the reactor; every connection must be reaped already

    void add(TcpConn* c);   // gives the connection its state and arms the first receive
    void send(TcpConn* c);  // a SENDMSG of the TX queue, unless one is in flight
    // Submits prepared SQEs and handles completions. Returns the completions handled.
    int poll();
    // Submits what poll()'s callers prepared since (sends queued by the poll group's flush).
    void submit();

  private:
    io_uring_sqe* get_sqe();
    void arm_recv(TcpConn* c);
    void on_recv(TcpConn* c, int res);
    void on_send(TcpConn* c, int res);
    void op_done(TcpConn* c);

    io_uring ring_{};
    bool ok_ = false;
    int efd_ = -1;
    Reactor* reactor_ = nullptr;
    unsigned prepared_ = 0;  // SQEs not submitted yet
};

}  // namespace nocstor::nvmf
