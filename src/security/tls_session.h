// One TLS 1.3 session with an external pre-shared key (NVMe/TCP secure channel), driven
// without a socket: the caller moves ciphertext between the socket and the session, so the
// poll group keeps its own non-blocking I/O and batching. OpenSSL does the TLS; the
// ciphertext goes through a fixed-size BIO pair (no buffer growth once the session exists).
//
//   receive:  recv(fd, rx_space()) -> rx_commit(n) -> read(plaintext) until it returns 0
//   send:     write(plaintext) -> send(fd, tx_data()) -> tx_consume(n)
// The handshake runs inside read()/write(); whatever it produces shows up in tx_data().
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "security/tls_psk.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;
typedef struct ssl_session_st SSL_SESSION;
typedef struct evp_md_st EVP_MD;

namespace nocstor::security {

class TlsSession {
  public:
    // Server side: maps the PSK identity a client offers to the TLS PSK (empty: no such host,
    // the handshake fails). Runs inside read() on the caller's thread.
    using PskLookup = std::function<std::vector<uint8_t>(std::string_view identity, TlsCipher c)>;

    static std::unique_ptr<TlsSession> server(PskLookup lookup, std::string* err);
    static std::unique_ptr<TlsSession> client(std::string identity, std::vector<uint8_t> psk,
                                              TlsCipher cipher, std::string* err);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // Ciphertext in: room to receive into (may be empty while plaintext waits to be read).
    std::span<uint8_t> rx_space();
    void rx_commit(size_t n);
    // Plaintext out: > 0 bytes; 0 when more ciphertext is needed; kFailed (see error()) or
    // kClosed (the peer sent close_notify).
    static constexpr long kFailed = -1;
    static constexpr long kClosed = -2;
    long read(void* buf, size_t len);
    // Plaintext in: bytes accepted, 0 when the ciphertext buffer is full (send tx_data()
    // first) or the handshake is still under way; kFailed.
    long write(const void* buf, size_t len);
    // The same for a gather list: as much of it as fits one record (16 KiB) is copied into the
    // session's record buffer and written, so small PDUs share records.
    long writev(const iovec* iov, int iovcnt);
    // Ciphertext out.
    std::span<const uint8_t> tx_data();
    void tx_consume(size_t n);
    // Sends pending ciphertext on a non-blocking socket: 0 all of it went, 1 the socket is
    // full (wait for EPOLLOUT), -errno. *sent (may be null) adds the bytes that went.
    int send_to(int fd, size_t* sent = nullptr);

    bool established() const;
    bool failed() const { return failed_; }
    const std::string& error() const { return error_; }
    // The PSK identity of the session (server: what the client offered and we accepted).
    const std::string& identity() const { return identity_; }
    const char* cipher() const;

  private:
    TlsSession() = default;
    long fail(int ssl_rc, const char* what);
    static int find_session(SSL* ssl, const unsigned char* id, size_t id_len, SSL_SESSION** sess);
    static int use_session(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* id_len,
                           SSL_SESSION** sess);
    SSL_SESSION* new_session(std::span<const uint8_t> key) const;

    SSL* ssl_ = nullptr;
    BIO* net_ = nullptr;  // our end of the BIO pair
    PskLookup lookup_;
    std::string identity_;
    std::vector<uint8_t> psk_;           // client: the TLS PSK
    std::unique_ptr<uint8_t[]> record_;  // writev's gathered plaintext
    TlsCipher cipher_ = TlsCipher::Aes128GcmSha256;
    bool failed_ = false;
    std::string error_;
};

}  // namespace nocstor::security
