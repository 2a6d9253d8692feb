#include "test_helpers.h"

#include "control/jsonrpc_framer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace nocstor::control::test {

TempDir::TempDir() {
    char tmpl[] = "/tmp/nocstor-ctl-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

bool pump_until(const std::function<void()>& poll, const std::function<bool()>& done,
                std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        poll();
        std::this_thread::sleep_for(100us);
    }
    return true;
}

RawSocket RawSocket::unix_stream(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(fd);
        return RawSocket(-1);
    }
    return RawSocket(fd);
}

RawSocket RawSocket::tcp(const std::string& address, int port) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        len = sizeof(*v4);
    } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        len = sizeof(*v6);
    } else {
        return RawSocket(-1);
    }
    int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return RawSocket(-1);
    }
    return RawSocket(fd);
}

RawSocket::~RawSocket() {
    close();
}

void RawSocket::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void RawSocket::send_all(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            return;
        }
        sent += static_cast<std::size_t>(n);
    }
}

void RawSocket::send_all(const std::string& bytes, const std::function<void()>& poll) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n =
            ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            poll();
        } else {
            return;
        }
    }
}

void RawSocket::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

bool RawSocket::read_available(std::string* into) {
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            into->append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
        return false;
    }
}

nlohmann::json read_json(RawSocket& sock, std::string* buffer, const std::function<void()>& poll,
                         std::chrono::milliseconds limit) {
    nlohmann::json result = nlohmann::json::value_t::discarded;
    bool open = true;
    // One framer fed only what arrives: rescanning the whole buffer on every pass made a
    // multi-megabyte answer quadratic (too slow under the sanitizers' build).
    JsonStreamFramer framer(1u << 30);
    size_t fed = 0;
    pump_until(
        poll,
        [&] {
            if (open) open = sock.read_available(buffer);
            framer.append(std::string_view(*buffer).substr(fed));
            fed = buffer->size();
            std::string text;
            if (framer.next(&text) == JsonStreamFramer::Status::kValue) {
                result = nlohmann::json::parse(text, nullptr, false);
                buffer->erase(0, buffer->find(text) + text.size());
                return true;
            }
            return !open;
        },
        limit);
    return result;
}

bool wait_closed(RawSocket& sock, const std::function<void()>& poll,
                 std::chrono::milliseconds limit) {
    std::string sink;
    return pump_until(
        poll, [&] { return !sock.read_available(&sink); }, limit);
}

PollThread::PollThread(std::function<void()> poll)
    : thread_([this, poll = std::move(poll)] {
          while (!stop_.load()) {
              poll();
              std::this_thread::sleep_for(200us);
          }
      }) {}

PollThread::~PollThread() {
    stop_.store(true);
    thread_.join();
}

}  // namespace nocstor::control::test
