// Fuzzes what a peer or an operator controls of TLS PSKs: the interchange form of a key
// ("NVMeTLSkey-1:..." from a key file), the PSK identity a client offers, and arbitrary bytes as
// the ciphertext a secure channel listener receives (the server session with its identity
// callback). The first byte picks which.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "security/tls_psk.h"
#include "security/tls_session.h"

using namespace nocstor::security;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t which = data[0] % 3;
    ++data;
    --size;
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (which == 0) {
        TlsPsk p;
        std::string err;
        if (parse_tls_psk(text, &p, &err)) {
            TlsPsk back;
            if (!parse_tls_psk(format_tls_psk(p), &back, &err) || back.key != p.key)
                __builtin_trap();
            (void)connection_psk(p, "nqn.2014-08.org.nvmexpress:uuid:fuzz", "nqn.2024-01.io.x:y");
        }
    } else if (which == 1) {
        TlsCipher c;
        std::string h, s;
        if (parse_psk_identity(text, &c, &h, &s) && psk_identity(c, h, s) != text) __builtin_trap();
    } else {
        std::string err;
        auto t = TlsSession::server(
            [](std::string_view id, TlsCipher c) {
                return derive_tls_psk(std::vector<uint8_t>(32, 7), c, id);
            },
            &err);
        if (!t) return 0;
        size_t off = 0;
        char plain[4096];
        while (off < size && !t->failed()) {
            auto room = t->rx_space();
            const size_t n = std::min(room.size(), size - off);
            if (n == 0) break;
            std::memcpy(room.data(), data + off, n);
            t->rx_commit(n);
            off += n;
            while (t->read(plain, sizeof plain) > 0) {
            }
            auto out = t->tx_data();
            t->tx_consume(out.size());
        }
    }
    return 0;
}
