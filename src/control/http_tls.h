// TLS for the REST/metrics server (OpenSSL): a server context from a certificate chain and key,
// optionally verifying clients against a CA, and a non-blocking TLS session per connection.
// The REST API may only listen beyond loopback with TLS (daemon.cpp).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace nocstor::control {

struct HttpTlsOptions {
    std::string cert_file;        // PEM certificate chain
    std::string key_file;         // PEM private key
    std::string client_ca_file;   // set: clients need a certificate signed by this CA
    bool metrics_public = false;  // with client_ca_file: GET /metrics without a certificate
};

class HttpTlsContext {
  public:
    // nullptr with *err (file, key mismatch, CA) on failure.
    static std::shared_ptr<HttpTlsContext> create(const HttpTlsOptions& o, std::string* err);
    ~HttpTlsContext();
    SSL_CTX* ctx() const { return ctx_; }
    bool verifies_clients() const { return verify_clients_; }
    bool metrics_public() const { return metrics_public_; }

  private:
    SSL_CTX* ctx_ = nullptr;
    bool verify_clients_ = false;
    bool metrics_public_ = false;
};

// One connection's TLS session on a non-blocking socket, server side. The handshake runs
// inside the first reads and writes.
class TlsSession {
  public:
    TlsSession(std::shared_ptr<HttpTlsContext> ctx, int fd);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // Like recv/send: > 0 bytes, 0 at the peer's close_notify or EOF (read), -1 with errno
    // EAGAIN (try again when the socket is ready: readable, or writable if wants_write()) or
    // EPROTO/ECONNRESET (the session is dead).
    ssize_t read(char* buf, size_t len);
    ssize_t write(const char* buf, size_t len);
    // The last operation needs the socket writable to progress (handshake, key update).
    bool wants_write() const { return wants_write_; }
    // Plaintext already decrypted and buffered (no epoll event will announce it).
    bool pending() const;
    // The client presented a certificate that the CA verified.
    bool peer_verified() const;
    const std::string& error() const { return error_; }

  private:
    ssize_t result(int n, const char* what);

    std::shared_ptr<HttpTlsContext> ctx_;
    SSL* ssl_ = nullptr;
    bool wants_write_ = false;
    std::string error_;
};

}  // namespace nocstor::control
