// TLS 1.3 PSK sessions in memory: a client and a server pumped against each other, as the poll
// group and the initiator drive them over sockets.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "security/tls_session.h"

using namespace nocstor::security;

namespace {

const char* kHost = "nqn.2014-08.org.nvmexpress:uuid:0f0e0d0c-0b0a-0908-0706-050403020100";
const char* kSub = "nqn.2016-06.io.nocstor:tls";

TlsPsk key(HashId h, uint8_t seed) {
    TlsPsk p{h, std::vector<uint8_t>(hash_length(h))};
    for (size_t i = 0; i < p.key.size(); ++i) p.key[i] = uint8_t(seed + i);
    return p;
}

// Moves ciphertext from a to b; returns the bytes moved.
size_t pump(TlsSession& a, TlsSession& b) {
    size_t moved = 0;
    for (;;) {
        auto d = a.tx_data();
        auto room = b.rx_space();
        const size_t n = std::min(d.size(), room.size());
        if (n == 0) return moved;
        std::memcpy(room.data(), d.data(), n);
        b.rx_commit(n);
        a.tx_consume(n);
        moved += n;
    }
}

// Drives both ends until neither moves; each end's readable plaintext is appended to *got.
void run(TlsSession& c, TlsSession& s, std::string* c_got, std::string* s_got) {
    for (int i = 0; i < 100; ++i) {
        char buf[4096];
        long n;
        while ((n = s.read(buf, sizeof buf)) > 0) s_got->append(buf, size_t(n));
        while ((n = c.read(buf, sizeof buf)) > 0) c_got->append(buf, size_t(n));
        if (pump(c, s) + pump(s, c) == 0) return;
    }
}

struct Pair {
    std::unique_ptr<TlsSession> client, server;
    std::string lookups;
};

Pair make_pair(const TlsPsk& host_key, const TlsPsk& target_key, const std::string& sub = kSub) {
    Pair p;
    std::string err;
    const TlsCipher c = cipher_for(host_key);
    p.client = TlsSession::client(psk_identity(c, kHost, sub), connection_psk(host_key, kHost, sub),
                                  c, &err);
    EXPECT_TRUE(p.client) << err;
    std::string* lookups = &p.lookups;
    p.server = TlsSession::server(
        [target_key, lookups](std::string_view id, TlsCipher cipher) {
            *lookups += std::string(id) + ";";
            TlsCipher c2;
            std::string h, s;
            if (!parse_psk_identity(id, &c2, &h, &s) || s != kSub) return std::vector<uint8_t>{};
            return derive_tls_psk(retained_psk(target_key, h), cipher, id);
        },
        &err);
    EXPECT_TRUE(p.server) << err;
    return p;
}

}  // namespace

TEST(TlsSession, HandshakeAndDataBothWaysWithEitherCipher) {
    for (HashId h : {HashId::Sha256, HashId::Sha384}) {
        Pair p = make_pair(key(h, 7), key(h, 7));
        const char* hello = "ICReq";
        ASSERT_EQ(p.client->write(hello, 0), 0);
        std::string c_got, s_got;
        // The client's first write starts the handshake; it is accepted once established.
        long w = p.client->write(hello, 5);
        run(*p.client, *p.server, &c_got, &s_got);
        if (w == 0) {
            w = p.client->write(hello, 5);
            run(*p.client, *p.server, &c_got, &s_got);
        }
        EXPECT_EQ(w, 5);
        ASSERT_TRUE(p.server->established()) << p.server->error();
        ASSERT_TRUE(p.client->established()) << p.client->error();
        EXPECT_EQ(s_got, "ICReq");
        EXPECT_EQ(p.server->identity(), psk_identity(cipher_for(key(h, 7)), kHost, kSub));
        EXPECT_STREQ(p.server->cipher(), cipher_name(cipher_for(key(h, 7))));
        // 1 MiB from the server: more than the ciphertext buffers hold, so writes stall and
        // resume as the other side drains.
        std::string big(1 << 20, 'x');
        for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 26);
        size_t off = 0;
        for (int i = 0; i < 10000 && (off < big.size() || c_got.size() < big.size()); ++i) {
            if (off < big.size()) {
                const long n = p.server->write(big.data() + off, big.size() - off);
                ASSERT_GE(n, 0) << p.server->error();
                off += size_t(n);
            }
            run(*p.client, *p.server, &c_got, &s_got);
        }
        EXPECT_EQ(c_got, big);
    }
}

TEST(TlsSession, AWrongKeyFailsTheHandshakeOnBothSides) {
    Pair p = make_pair(key(HashId::Sha256, 1), key(HashId::Sha256, 2));
    std::string c_got, s_got;
    p.client->write("x", 1);
    run(*p.client, *p.server, &c_got, &s_got);
    EXPECT_FALSE(p.server->established());
    EXPECT_TRUE(p.server->failed() || p.client->failed());
    EXPECT_TRUE(s_got.empty());
    EXPECT_NE(p.lookups.find("NVMe0R01 "), std::string::npos);
}

TEST(TlsSession, AnUnknownIdentityIsRefused) {
    Pair p = make_pair(key(HashId::Sha256, 1), key(HashId::Sha256, 1), "nqn.2016-06.io.other:x");
    std::string c_got, s_got;
    p.client->write("x", 1);
    run(*p.client, *p.server, &c_got, &s_got);
    EXPECT_FALSE(p.server->established());
    EXPECT_TRUE(p.server->failed());
    EXPECT_NE(p.server->error().find("no PSK for identity"), std::string::npos)
        << p.server->error();
}

TEST(TlsSession, GarbageInsteadOfAClientHelloFails) {
    std::string err;
    auto s = TlsSession::server(
        [](std::string_view, TlsCipher) { return std::vector<uint8_t>(32, 1); }, &err);
    ASSERT_TRUE(s);
    // What a plain NVMe/TCP host sends first: an ICReq PDU.
    uint8_t icreq[128] = {0x00, 0x00, 128, 0, 128, 0, 0, 0};
    auto room = s->rx_space();
    std::memcpy(room.data(), icreq, sizeof icreq);
    s->rx_commit(sizeof icreq);
    char buf[64];
    EXPECT_EQ(s->read(buf, sizeof buf), TlsSession::kFailed);
    EXPECT_TRUE(s->failed());
    EXPECT_FALSE(s->error().empty());
}
