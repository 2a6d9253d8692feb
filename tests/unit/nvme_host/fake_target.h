// A small scriptable NVMe/TCP target for the initiator's tests: blocking sockets, one thread per
// connection, a RAM namespace of 512-byte blocks. It can stop and restart its listener (an
// outage), hold I/O unanswered, split C2H data, ask for data in several R2Ts, set the C2H
// SUCCESS flag, and serve a discovery log. Built on the project's PDU codec (target role).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace nocstor::test {

struct FakeTargetOptions {
    std::string subnqn = "nqn.2024-01.io.nocstor:fake";
    uint64_t num_blocks = 8192;  // 4 MiB of 512-byte blocks
    uint32_t maxh2cdata = 8192;
    uint32_t incapsule = 4096;  // IOCCSZ = (64 + incapsule) / 16
    uint32_t c2h_chunk = 3000;  // bytes per C2HData PDU
    uint32_t r2t_chunk = 0;     // 0: one R2T for the whole write
    bool c2h_success = false;   // last C2HData carries SUCCESS, no CapsuleResp
    uint8_t mdts = 5;           // 128 KiB
};

class FakeTarget {
  public:
    explicit FakeTarget(FakeTargetOptions o = {});
    ~FakeTarget();

    bool start();  // listens on 127.0.0.1 (port() picked on the first start, reused after)
    void stop();   // closes the listener and every connection (the target "dies")
    uint16_t port() const { return port_; }

    std::atomic<bool> hold_io{false};  // I/O commands are never answered
    std::atomic<uint64_t> io_commands{0};
    std::atomic<uint64_t> r2ts{0};
    std::atomic<uint64_t> h2c_pdus{0};
    std::atomic<uint64_t> incapsule_writes{0};
    std::atomic<uint64_t> connects{0};
    std::atomic<uint64_t> shutdowns{0};
    std::atomic<bool> saw_hdgst{false};
    std::atomic<bool> saw_ddgst{false};

    std::vector<uint8_t> read_blocks(uint64_t lba, uint32_t n);
    const FakeTargetOptions& options() const { return o_; }

    struct Conn;

  private:
    void accept_loop();
    void serve(Conn* c);

    FakeTargetOptions o_;
    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> running_{false};
    std::thread acceptor_;
    std::mutex mu_;  // conns_, storage_
    std::vector<Conn*> conns_;
    std::vector<std::thread> threads_;
    std::vector<uint8_t> storage_;
    uint16_t next_cntlid_ = 1;
    uint32_t cc_ = 0;
    friend struct Conn;
};

}  // namespace nocstor::test
