#include "security/tls_session.h"

#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace nocstor::security {

namespace {

// Ciphertext buffered per direction: a few full TLS records (16 KiB + overhead each).
constexpr size_t kBioSize = 64 * 1024;
constexpr size_t kRecord = 16 * 1024;  // TLS's largest record

const unsigned char kAes128Gcm[] = {0x13, 0x01};
const unsigned char kAes256Gcm[] = {0x13, 0x02};

SSL_CTX* make_ctx(bool server) {
    SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx) return nullptr;
    // NVMe/TCP secure channels are TLS 1.3 with a PSK (and ECDHE: psk_dhe_ke), nothing older.
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);  // no resumption tickets: every connection uses the PSK
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

SSL_CTX* shared_ctx(bool server) {
    static SSL_CTX* ctx[2];
    static std::once_flag once[2];
    std::call_once(once[server], [server] { ctx[server] = make_ctx(server); });
    return ctx[server];
}

std::string openssl_errors() {
    std::string out;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out;
}

}  // namespace

SSL_SESSION* TlsSession::new_session(std::span<const uint8_t> key) const {
    const SSL_CIPHER* c =
        SSL_CIPHER_find(ssl_, cipher_ == TlsCipher::Aes256GcmSha384 ? kAes256Gcm : kAes128Gcm);
    SSL_SESSION* s = SSL_SESSION_new();
    if (!s || !c || !SSL_SESSION_set1_master_key(s, key.data(), key.size()) ||
        !SSL_SESSION_set_cipher(s, c) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return nullptr;
    }
    return s;
}

int TlsSession::find_session(SSL* ssl, const unsigned char* id, size_t id_len, SSL_SESSION** sess) {
    auto* self = static_cast<TlsSession*>(SSL_get_app_data(ssl));
    *sess = nullptr;
    const std::string_view identity(reinterpret_cast<const char*>(id), id_len);
    TlsCipher c;
    std::string host, sub;
    if (!parse_psk_identity(identity, &c, &host, &sub)) {
        self->error_ = "the client's PSK identity is not an NVMe one (NVMe0R0c hostnqn subnqn)";
        return 1;  // no PSK: without a certificate the handshake then fails
    }
    std::vector<uint8_t> key = self->lookup_(identity, c);
    if (key.empty()) {
        self->error_ = "no PSK for identity '" + std::string(identity) + "'";
        return 1;
    }
    self->cipher_ = c;
    *sess = self->new_session(key);
    wipe(key);
    if (*sess) self->identity_ = std::string(identity);
    return *sess ? 1 : 0;
}

int TlsSession::use_session(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* id_len,
                            SSL_SESSION** sess) {
    auto* self = static_cast<TlsSession*>(SSL_get_app_data(ssl));
    *sess = nullptr;
    *id = nullptr;
    *id_len = 0;
    SSL_SESSION* s = self->new_session(self->psk_);
    if (!s) return 0;
    // After a HelloRetryRequest OpenSSL asks again with the negotiated hash: offer the PSK only
    // if it goes with it.
    if (md && SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s)) != md) {
        SSL_SESSION_free(s);
        return 1;
    }
    *id = reinterpret_cast<const unsigned char*>(self->identity_.data());
    *id_len = self->identity_.size();
    *sess = s;
    return 1;
}

std::unique_ptr<TlsSession> TlsSession::server(PskLookup lookup, std::string* err) {
    SSL_CTX* ctx = shared_ctx(true);
    std::unique_ptr<TlsSession> t(new TlsSession);
    t->lookup_ = std::move(lookup);
    BIO* internal = nullptr;
    if (!ctx || !(t->ssl_ = SSL_new(ctx)) ||
        !BIO_new_bio_pair(&internal, kBioSize, &t->net_, kBioSize)) {
        *err = "TLS: cannot create a session: " + openssl_errors();
        return nullptr;
    }
    SSL_set_bio(t->ssl_, internal, internal);
    SSL_set_app_data(t->ssl_, t.get());
    SSL_set_psk_find_session_callback(t->ssl_, &TlsSession::find_session);
    SSL_set_accept_state(t->ssl_);
    return t;
}

std::unique_ptr<TlsSession> TlsSession::client(std::string identity, std::vector<uint8_t> psk,
                                               TlsCipher cipher, std::string* err) {
    SSL_CTX* ctx = shared_ctx(false);
    std::unique_ptr<TlsSession> t(new TlsSession);
    t->identity_ = std::move(identity);
    t->psk_ = std::move(psk);
    t->cipher_ = cipher;
    BIO* internal = nullptr;
    if (!ctx || !(t->ssl_ = SSL_new(ctx)) ||
        !BIO_new_bio_pair(&internal, kBioSize, &t->net_, kBioSize) ||
        SSL_set_ciphersuites(t->ssl_, cipher_name(cipher)) != 1) {
        *err = "TLS: cannot create a session: " + openssl_errors();
        return nullptr;
    }
    SSL_set_bio(t->ssl_, internal, internal);
    SSL_set_app_data(t->ssl_, t.get());
    SSL_set_psk_use_session_callback(t->ssl_, &TlsSession::use_session);
    SSL_set_connect_state(t->ssl_);
    return t;
}

TlsSession::~TlsSession() {
    if (ssl_) SSL_free(ssl_);  // frees the internal BIO too
    if (net_) BIO_free(net_);
    wipe(psk_);
}

std::span<uint8_t> TlsSession::rx_space() {
    char* p = nullptr;
    const int n = BIO_nwrite0(net_, &p);
    if (n <= 0) return {};
    return {reinterpret_cast<uint8_t*>(p), size_t(n)};
}

void TlsSession::rx_commit(size_t n) {
    char* p = nullptr;
    if (n) BIO_nwrite(net_, &p, int(n));
}

std::span<const uint8_t> TlsSession::tx_data() {
    char* p = nullptr;
    const int n = BIO_nread0(net_, &p);
    if (n <= 0) return {};
    return {reinterpret_cast<const uint8_t*>(p), size_t(n)};
}

void TlsSession::tx_consume(size_t n) {
    char* p = nullptr;
    if (n) BIO_nread(net_, &p, int(n));
}

long TlsSession::fail(int ssl_rc, const char* what) {
    const int e = SSL_get_error(ssl_, ssl_rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return kClosed;
    failed_ = true;
    std::string detail = openssl_errors();
    if (error_.empty())
        error_ = std::string(what) + (detail.empty() ? "" : ": " + detail);
    else if (!detail.empty())
        error_ += " (" + detail + ")";
    return kFailed;
}

long TlsSession::read(void* buf, size_t len) {
    if (failed_) return kFailed;
    size_t got = 0;
    const int rc = SSL_read_ex(ssl_, buf, len, &got);
    if (rc == 1) return long(got);
    return fail(rc, established() ? "TLS receive failed" : "TLS handshake failed");
}

long TlsSession::write(const void* buf, size_t len) {
    if (failed_) return kFailed;
    if (len == 0) return 0;
    size_t put = 0;
    const int rc = SSL_write_ex(ssl_, buf, len, &put);
    if (rc == 1) return long(put);
    return fail(rc, established() ? "TLS send failed" : "TLS handshake failed");
}

long TlsSession::writev(const iovec* iov, int iovcnt) {
    if (!record_) record_ = std::make_unique<uint8_t[]>(kRecord);
    size_t len = 0;
    for (int i = 0; i < iovcnt && len < kRecord; ++i) {
        const size_t take = std::min(iov[i].iov_len, kRecord - len);
        std::memcpy(record_.get() + len, iov[i].iov_base, take);
        len += take;
    }
    return write(record_.get(), len);
}

int TlsSession::send_to(int fd, size_t* sent) {
    for (;;) {
        const std::span<const uint8_t> out = tx_data();
        if (out.empty()) return 0;
        const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
            return -errno;
        }
        tx_consume(size_t(n));
        if (sent) *sent += size_t(n);
        if (size_t(n) < out.size()) return 1;
    }
}

bool TlsSession::established() const {
    return SSL_is_init_finished(ssl_);
}

const char* TlsSession::cipher() const {
    const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
    return c ? SSL_CIPHER_get_name(c) : "";
}

}  // namespace nocstor::security
