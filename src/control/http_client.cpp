#include "control/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace nocstor::control {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<long long>(0, left.count()));
}

// Waits for fd to become ready for `events` before the deadline.
bool wait_ready(int fd, short events, Clock::time_point deadline) {
    pollfd p{fd, events, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, remaining_ms(deadline));
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
}

int connect_to(const HttpEndpoint& ep, Clock::time_point deadline, std::string* error) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(ep.host.c_str(), ep.port.c_str(), &hints, &list);
    if (rc != 0) {
        *error = fmt::format("cannot resolve {}: {}", ep.host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    std::string last = "no address";
    for (addrinfo* ai = list; ai && fd < 0; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      ai->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS && wait_ready(fd, POLLOUT, deadline)) {
            int err = 0;
            socklen_t len = sizeof(err);
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == 0) break;
            last = std::strerror(err);
        } else {
            last = errno == EINPROGRESS ? "timed out" : std::strerror(errno);
        }
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(list);
    if (fd < 0) *error = fmt::format("cannot connect to {}:{}: {}", ep.host, ep.port, last);
    return fd;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Parses "HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\nbody" into *reply.
bool parse_reply(const std::string& raw, HttpClientReply* reply) {
    const size_t head_end = raw.find("\r\n\r\n");
    if (raw.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos || raw.size() < 12)
        return false;
    reply->status = std::atoi(raw.c_str() + 9);
    size_t pos = raw.find("\r\n") + 2;
    while (pos < head_end) {
        const size_t eol = raw.find("\r\n", pos);
        const std::string line = raw.substr(pos, eol - pos);
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            reply->headers.emplace_back(lower(line.substr(0, colon)), value);
        }
        pos = eol + 2;
    }
    reply->body = raw.substr(head_end + 4);
    for (const auto& [name, value] : reply->headers) {
        if (name == "content-length") {
            const size_t length = std::strtoull(value.c_str(), nullptr, 10);
            if (reply->body.size() < length) return false;  // cut short
            reply->body.resize(length);
        }
    }
    return reply->status >= 100;
}

}  // namespace

bool parse_http_url(const std::string& url, HttpEndpoint* out, std::string* error) {
    std::string rest = url;
    if (rest.compare(0, 7, "http://") == 0) {
        rest.erase(0, 7);
    } else if (rest.find("://") != std::string::npos) {
        *error = "'" + url + "': only http:// URLs are supported";
        return false;
    }
    rest = rest.substr(0, rest.find('/'));
    HttpEndpoint ep;
    if (!rest.empty() && rest.front() == '[') {
        const size_t close = rest.find(']');
        if (close == std::string::npos) {
            *error = "'" + url + "': unterminated [IPv6 address]";
            return false;
        }
        ep.host = rest.substr(1, close - 1);
        rest.erase(0, close + 1);
        if (!rest.empty() && rest.front() == ':') ep.port = rest.substr(1);
    } else {
        const size_t colon = rest.find(':');
        ep.host = rest.substr(0, colon);
        if (colon != std::string::npos) ep.port = rest.substr(colon + 1);
    }
    if (ep.host.empty() || ep.port.empty() ||
        !std::all_of(ep.port.begin(), ep.port.end(),
                     [](unsigned char c) { return std::isdigit(c); })) {
        *error = "'" + url + "' is not an http://HOST:PORT URL";
        return false;
    }
    *out = ep;
    return true;
}

HttpClientReply http_call(const HttpEndpoint& endpoint, const std::string& method,
                          const std::string& path, const std::string& body,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::chrono::milliseconds timeout) {
    HttpClientReply reply;
    const auto deadline = Clock::now() + timeout;
    const int fd = connect_to(endpoint, deadline, &reply.error);
    if (fd < 0) return reply;
    const bool v6 = endpoint.host.find(':') != std::string::npos;
    std::string request =
        fmt::format("{} {} HTTP/1.1\r\nHost: {}{}{}:{}\r\nConnection: close\r\n", method, path,
                    v6 ? "[" : "", endpoint.host, v6 ? "]" : "", endpoint.port);
    for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
    if (!body.empty() || method == "POST" || method == "PUT")
        request += fmt::format("Content-Length: {}\r\n", body.size());
    request += "\r\n" + body;
    size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_ready(fd, POLLOUT, deadline)) break;
        } else {
            break;
        }
    }
    std::string raw;
    char buf[16384];
    while (sent == request.size()) {
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            raw.append(buf, static_cast<size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (!wait_ready(fd, POLLIN, deadline)) {
                reply.error = fmt::format("no answer from {}:{} within {} ms", endpoint.host,
                                          endpoint.port, timeout.count());
                ::close(fd);
                return reply;
            }
        } else {
            break;
        }
    }
    ::close(fd);
    if (sent != request.size()) {
        reply.error = fmt::format("cannot send the request to {}:{}", endpoint.host, endpoint.port);
    } else if (!parse_reply(raw, &reply)) {
        reply.status = 0;
        reply.error = raw.empty() ? "the server closed the connection without an answer"
                                  : "malformed HTTP answer";
    }
    return reply;
}

}  // namespace nocstor::control
