// Shared helpers for the control-plane unit tests: temp dirs, raw socket clients, and driving
// a polled server from the test thread (bounded in time) or from a helper thread.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace nocstor::control::test {

using namespace std::chrono_literals;

class TempDir {
  public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

// Calls poll() until done() is true or the time runs out; returns done().
bool pump_until(const std::function<void()>& poll, const std::function<bool()>& done,
                std::chrono::milliseconds limit = 3000ms);

// A plain blocking-with-timeouts stream socket for talking raw bytes to a server.
class RawSocket {
  public:
    static RawSocket unix_stream(const std::string& path);
    static RawSocket tcp(const std::string& address, int port);  // IPv4 or IPv6 literal
    RawSocket(RawSocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    ~RawSocket();

    bool connected() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    void send_all(const std::string& bytes);
    // Sends without blocking, calling poll() whenever the socket is full (large requests).
    void send_all(const std::string& bytes, const std::function<void()>& poll);
    void shutdown_write();
    void close();
    // Non-blocking read of what is available; false once the peer closed (EOF/error).
    bool read_available(std::string* into);

  private:
    explicit RawSocket(int fd) : fd_(fd) {}
    int fd_ = -1;
};

// Reads from sock while polling, until buffer holds one complete JSON value; returns it (or a
// discarded value on timeout/EOF). Leftover bytes stay in *buffer.
nlohmann::json read_json(RawSocket& sock, std::string* buffer, const std::function<void()>& poll,
                         std::chrono::milliseconds limit = 3000ms);

// True if the peer closes the socket within the limit (reading and discarding data).
bool wait_closed(RawSocket& sock, const std::function<void()>& poll,
                 std::chrono::milliseconds limit = 3000ms);

// Runs poll() on its own thread until destroyed (for blocking clients and child processes).
class PollThread {
  public:
    explicit PollThread(std::function<void()> poll);
    ~PollThread();

  private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace nocstor::control::test
