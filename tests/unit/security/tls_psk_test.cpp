// NVMe/TCP TLS PSKs: the interchange form, identities, and the derivation checked against
// vectors computed by an independent implementation (Python's hmac, RFC 5869 HKDF, with the
// info layout SPDK and libnvme use); the interchange strings are also accepted by nvme-cli's
// `nvme check-tls-key` (libnvme), which reports "Key is valid" for both.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "security/tls_psk.h"

using namespace nocstor::security;

namespace {

const char* kHost = "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
const char* kSub = "nqn.2016-06.io.spdk:cnode1";
const char* kKey01 = "NVMeTLSkey-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
const char* kKey02 =
    "NVMeTLSkey-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:";

std::string hex(const std::vector<uint8_t>& v) {
    std::string s;
    char b[3];
    for (uint8_t c : v) {
        snprintf(b, sizeof b, "%02x", c);
        s += b;
    }
    return s;
}

std::vector<uint8_t> counting(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i);
    return v;
}

}  // namespace

TEST(TlsPsk, ParsesAndFormatsTheInterchangeForm) {
    TlsPsk p;
    std::string err;
    ASSERT_TRUE(parse_tls_psk(kKey01, &p, &err)) << err;
    EXPECT_EQ(p.hash, HashId::Sha256);
    EXPECT_EQ(p.key, counting(32));
    EXPECT_EQ(format_tls_psk(p), kKey01);
    ASSERT_TRUE(parse_tls_psk(std::string(kKey02) + "\n", &p, &err)) << err;
    EXPECT_EQ(p.hash, HashId::Sha384);
    EXPECT_EQ(p.key, counting(48));
    EXPECT_EQ(format_tls_psk(p), kKey02);
}

TEST(TlsPsk, RejectsMalformedKeysWithoutQuotingThem) {
    TlsPsk p;
    std::string err;
    EXPECT_FALSE(parse_tls_psk("DHHC-1:01:AAAA:", &p, &err));
    EXPECT_NE(err.find("NVMeTLSkey-1"), std::string::npos) << err;
    EXPECT_FALSE(parse_tls_psk(
        "NVMeTLSkey-1:03:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", &p, &err));
    EXPECT_NE(err.find("unknown hash 03"), std::string::npos) << err;
    // One base64 character changed: the CRC catches it.
    EXPECT_FALSE(parse_tls_psk(
        "NVMeTLSkey-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaS:", &p, &err));
    EXPECT_NE(err.find("CRC"), std::string::npos) << err;
    EXPECT_EQ(err.find("AAEC"), std::string::npos) << err;
    // A 48-byte key labelled SHA-256.
    EXPECT_FALSE(parse_tls_psk(std::string(kKey02).replace(13, 2, "01"), &p, &err));
    EXPECT_NE(err.find("48 key bytes"), std::string::npos) << err;
    EXPECT_FALSE(parse_tls_psk("NVMeTLSkey-1:01:", &p, &err));
    EXPECT_FALSE(parse_tls_psk("NVMeTLSkey-1:01:=:", &p, &err));
}

TEST(TlsPsk, GeneratedKeysRoundTrip) {
    for (HashId h : {HashId::Sha256, HashId::Sha384}) {
        TlsPsk g = generate_tls_psk(h);
        ASSERT_EQ(g.key.size(), hash_length(h));
        TlsPsk back;
        std::string err;
        ASSERT_TRUE(parse_tls_psk(format_tls_psk(g), &back, &err)) << err;
        EXPECT_EQ(back.key, g.key);
        EXPECT_EQ(back.hash, h);
    }
}

TEST(TlsPsk, IdentityNamesCipherHostAndSubsystem) {
    EXPECT_EQ(psk_identity(TlsCipher::Aes128GcmSha256, kHost, kSub),
              std::string("NVMe0R01 ") + kHost + " " + kSub);
    TlsCipher c;
    std::string h, s;
    ASSERT_TRUE(
        parse_psk_identity(psk_identity(TlsCipher::Aes256GcmSha384, kHost, kSub), &c, &h, &s));
    EXPECT_EQ(c, TlsCipher::Aes256GcmSha384);
    EXPECT_EQ(h, kHost);
    EXPECT_EQ(s, kSub);
    for (const char* bad : {"", "NVMe0R01", "NVMe0R03 a b", "NVMe1R01 a b", "NVMe0R01 a",
                            "NVMe0R01  b", "NVMe0R01 a b c", "Client_identity"})
        EXPECT_FALSE(parse_psk_identity(bad, &c, &h, &s)) << bad;
}

TEST(TlsPsk, DerivationMatchesIndependentVectors) {
    TlsPsk p;
    std::string err;
    ASSERT_TRUE(parse_tls_psk(kKey01, &p, &err));
    EXPECT_EQ(hex(retained_psk(p, kHost)),
              "2777170cfb82b52c5ec8cb00cc26fa9145d942315f2c892822b0772f5debe85d");
    EXPECT_EQ(hex(connection_psk(p, kHost, kSub)),
              "90da01aec6268cc94ee1618b06b0350a0003550394c3ef78956f8866ae50dba8");
    ASSERT_TRUE(parse_tls_psk(kKey02, &p, &err));
    EXPECT_EQ(hex(retained_psk(p, kHost)),
              "9199e9844a95310712a6436350cb36769e36bb02461989493acb7f9419f9d1ca81374a176479e879"
              "94f6c7c17c5f2800");
    EXPECT_EQ(hex(connection_psk(p, kHost, kSub)),
              "ea440db81efc27082414976e1e426cc85c7be8d744a56075fe3ef829b53ec3f292401dccb759c751"
              "354bbca8208cdf05");
    // hh 00: the configured key is the retained key.
    TlsPsk raw{HashId::None, counting(32)};
    EXPECT_EQ(retained_psk(raw, kHost), counting(32));
    // Another host or subsystem: another key.
    EXPECT_NE(connection_psk(p, kHost, "nqn.2016-06.io.spdk:cnode2"),
              connection_psk(p, kHost, kSub));
}
