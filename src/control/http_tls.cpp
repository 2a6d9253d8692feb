#include "control/http_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>

#include <fmt/format.h>

namespace nocstor::control {

namespace {

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    if (e == 0) return "unknown error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

}  // namespace

std::shared_ptr<HttpTlsContext> HttpTlsContext::create(const HttpTlsOptions& o, std::string* err) {
    auto c = std::shared_ptr<HttpTlsContext>(new HttpTlsContext());
    c->ctx_ = SSL_CTX_new(TLS_server_method());
    if (!c->ctx_) {
        *err = "SSL_CTX_new: " + openssl_error();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
    SSL_CTX_set_mode(c->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(c->ctx_, o.cert_file.c_str()) != 1) {
        *err = fmt::format("--http-tls-cert {}: {}", o.cert_file, openssl_error());
        return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx_, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        *err = fmt::format("--http-tls-key {}: {} (is it the key of {}?)", o.key_file,
                           openssl_error(), o.cert_file);
        return nullptr;
    }
    if (SSL_CTX_check_private_key(c->ctx_) != 1) {
        *err = fmt::format("--http-tls-key {}: is it the key of {}?", o.key_file, o.cert_file);
        return nullptr;
    }
    if (!o.client_ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(c->ctx_, o.client_ca_file.c_str(), nullptr) != 1) {
            *err = fmt::format("--http-client-ca {}: {}", o.client_ca_file, openssl_error());
            return nullptr;
        }
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str());
        if (names) SSL_CTX_set_client_CA_list(c->ctx_, names);
        // With public metrics a client without a certificate gets through the handshake; the
        // server then lets it reach /metrics only.
        SSL_CTX_set_verify(
            c->ctx_, SSL_VERIFY_PEER | (o.metrics_public ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
            nullptr);
        c->verify_clients_ = true;
        c->metrics_public_ = o.metrics_public;
    }
    return c;
}

HttpTlsContext::~HttpTlsContext() {
    if (ctx_) SSL_CTX_free(ctx_);
}

TlsSession::TlsSession(std::shared_ptr<HttpTlsContext> ctx, int fd) : ctx_(std::move(ctx)) {
    ssl_ = SSL_new(ctx_->ctx());
    if (ssl_) {
        SSL_set_fd(ssl_, fd);
        SSL_set_accept_state(ssl_);
    }
}

TlsSession::~TlsSession() {
    if (ssl_) SSL_free(ssl_);  // no close_notify: the socket is closed right after
}

ssize_t TlsSession::result(int n, const char* what) {
    wants_write_ = false;
    if (n > 0) return n;
    switch (SSL_get_error(ssl_, n)) {
        case SSL_ERROR_WANT_READ:
            errno = EAGAIN;
            return -1;
        case SSL_ERROR_WANT_WRITE:
            wants_write_ = true;
            errno = EAGAIN;
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0) {
                if (errno == 0 || errno == EAGAIN) return 0;  // EOF without close_notify
                error_ = fmt::format("{}: {}", what, std::strerror(errno));
                errno = ECONNRESET;
                return -1;
            }
            [[fallthrough]];
        default:
            error_ = fmt::format("{}: {}", what, openssl_error());
            errno = EPROTO;
            return -1;
    }
}

ssize_t TlsSession::read(char* buf, size_t len) {
    if (!ssl_) {
        errno = ENOMEM;
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    return result(SSL_read(ssl_, buf, int(len > 1 << 30 ? 1 << 30 : len)), "TLS read");
}

ssize_t TlsSession::write(const char* buf, size_t len) {
    if (!ssl_) {
        errno = ENOMEM;
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    return result(SSL_write(ssl_, buf, int(len > 1 << 30 ? 1 << 30 : len)), "TLS write");
}

bool TlsSession::pending() const {
    return ssl_ && SSL_pending(ssl_) > 0;
}

bool TlsSession::peer_verified() const {
    if (!ssl_ || !SSL_is_init_finished(ssl_)) return false;
    if (!SSL_get0_peer_certificate(ssl_)) return false;
    return SSL_get_verify_result(ssl_) == X509_V_OK;
}

}  // namespace nocstor::control
