#include "control/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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

// The connection: plain, or TLS over the same non-blocking socket.
struct Channel {
    int fd = -1;
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    short want = 0;  // what the last operation waits for (POLLIN / POLLOUT)
    ~Channel() {
        if (ssl) SSL_free(ssl);
        if (ctx) SSL_CTX_free(ctx);
        if (fd >= 0) ::close(fd);
    }
    // > 0 bytes, 0 EOF, -1: errno EAGAIN (wait for `want`) or an error.
    ssize_t io(bool write, char* buf, size_t len) {
        if (!ssl) {
            want = write ? POLLOUT : POLLIN;
            return write ? ::send(fd, buf, len, MSG_NOSIGNAL) : ::recv(fd, buf, len, 0);
        }
        ERR_clear_error();
        const int n = write ? SSL_write(ssl, buf, int(len)) : SSL_read(ssl, buf, int(len));
        if (n > 0) return n;
        return tls_result(n);
    }
    ssize_t tls_result(int n) {
        switch (SSL_get_error(ssl, n)) {
            case SSL_ERROR_WANT_READ:
                want = POLLIN;
                errno = EAGAIN;
                return -1;
            case SSL_ERROR_WANT_WRITE:
                want = POLLOUT;
                errno = EAGAIN;
                return -1;
            case SSL_ERROR_ZERO_RETURN:
                return 0;
            default:
                errno = EPROTO;
                return -1;
        }
    }
};

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    if (e == 0) return "the connection was closed";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    return buf;
}

// TLS handshake on ch.fd: the server's certificate must chain to the CA and name the host.
bool start_tls(Channel& ch, const HttpEndpoint& ep, Clock::time_point deadline,
               std::string* error) {
    ch.ctx = SSL_CTX_new(TLS_client_method());
    if (!ch.ctx) {
        *error = "SSL_CTX_new: " + openssl_error();
        return false;
    }
    SSL_CTX_set_min_proto_version(ch.ctx, TLS1_2_VERSION);
    const bool ca_ok = ep.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ch.ctx) == 1
                                          : SSL_CTX_load_verify_locations(
                                                ch.ctx, ep.ca_file.c_str(), nullptr) == 1;
    if (!ca_ok) {
        *error =
            fmt::format("CA {}: {}", ep.ca_file.empty() ? "(system)" : ep.ca_file, openssl_error());
        return false;
    }
    if (!ep.cert_file.empty() &&
        (SSL_CTX_use_certificate_chain_file(ch.ctx, ep.cert_file.c_str()) != 1 ||
         SSL_CTX_use_PrivateKey_file(ch.ctx,
                                     (ep.key_file.empty() ? ep.cert_file : ep.key_file).c_str(),
                                     SSL_FILETYPE_PEM) != 1)) {
        *error = fmt::format("client certificate {}: {}", ep.cert_file, openssl_error());
        return false;
    }
    SSL_CTX_set_verify(ch.ctx, SSL_VERIFY_PEER, nullptr);
    ch.ssl = SSL_new(ch.ctx);
    if (!ch.ssl || SSL_set_fd(ch.ssl, ch.fd) != 1) {
        *error = "SSL_new: " + openssl_error();
        return false;
    }
    X509_VERIFY_PARAM* param = SSL_get0_param(ch.ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, ep.host.c_str()) != 1) {  // not an IP: a name
        SSL_set_tlsext_host_name(ch.ssl, ep.host.c_str());
        SSL_set1_host(ch.ssl, ep.host.c_str());
    }
    for (;;) {
        ERR_clear_error();
        const int n = SSL_connect(ch.ssl);
        if (n == 1) return true;
        if (ch.tls_result(n) < 0 && errno == EAGAIN && wait_ready(ch.fd, ch.want, deadline))
            continue;
        const long verify = SSL_get_verify_result(ch.ssl);
        *error = fmt::format(
            "TLS handshake with {}:{} failed: {}", ep.host, ep.port,
            verify != X509_V_OK ? X509_verify_cert_error_string(verify) : openssl_error());
        return false;
    }
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
    HttpEndpoint ep = *out;  // keeps the TLS files
    ep.tls = false;
    ep.port = "80";
    if (rest.compare(0, 7, "http://") == 0) {
        rest.erase(0, 7);
    } else if (rest.compare(0, 8, "https://") == 0) {
        rest.erase(0, 8);
        ep.tls = true;
        ep.port = "443";
    } else if (rest.find("://") != std::string::npos) {
        *error = "'" + url + "': only http:// and https:// URLs are supported";
        return false;
    }
    rest = rest.substr(0, rest.find('/'));
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
    Channel ch;
    ch.fd = connect_to(endpoint, deadline, &reply.error);
    if (ch.fd < 0) return reply;
    if (endpoint.tls && !start_tls(ch, endpoint, deadline, &reply.error)) return reply;
    const int fd = ch.fd;
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
        const ssize_t n = ch.io(true, request.data() + sent, request.size() - sent);
        if (n > 0) {
            sent += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_ready(fd, ch.want, deadline)) break;
        } else {
            break;
        }
    }
    std::string raw;
    char buf[16384];
    while (sent == request.size()) {
        const ssize_t n = ch.io(false, buf, sizeof(buf));
        if (n > 0) {
            raw.append(buf, static_cast<size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (!wait_ready(fd, ch.want, deadline)) {
                reply.error = fmt::format("no answer from {}:{} within {} ms", endpoint.host,
                                          endpoint.port, timeout.count());
                return reply;
            }
        } else {
            break;
        }
    }
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
