// DH-HMAC-CHAP secrets and HMACs. The DHHC-1 vectors were made by nvme-cli 2.3 (Debian 12):
// `nvme gen-dhchap-key --secret=<hex> [--key-length=N] --hmac=H [--nqn=NQN]`; with --nqn it
// prints the key already transformed, HMAC(H, secret, NQN || "NVMe-over-Fabrics"), which is
// what transform_key must compute.
#include <gtest/gtest.h>

#include <numeric>

#include "security/dhchap.h"

using namespace nocstor::security;

namespace {

const char* kNqn = "nqn.2014-08.org.nvmexpress:uuid:test";

std::vector<uint8_t> counting(size_t n) {
    std::vector<uint8_t> v(n);
    std::iota(v.begin(), v.end(), uint8_t(0));
    return v;
}

std::vector<uint8_t> from_hex(const std::string& h) {
    std::vector<uint8_t> v;
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        v.push_back(uint8_t(std::stoi(h.substr(i, 2), nullptr, 16)));
    return v;
}

}  // namespace

TEST(Dhchap, ParsesAndFormatsUntransformedSecrets) {
    DhchapSecret s;
    std::string err;
    const std::string k32 = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
    ASSERT_TRUE(parse_dhchap_secret(k32, &s, &err)) << err;
    EXPECT_EQ(s.transform, HashId::None);
    EXPECT_EQ(s.key, counting(32));
    EXPECT_EQ(format_dhchap_secret(s), k32);
    const std::string k64 =
        "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4"
        "OTo7PD0+P4zODhA=:";
    ASSERT_TRUE(parse_dhchap_secret(k64 + "\n", &s, &err)) << err;  // a file's newline is fine
    EXPECT_EQ(s.key, counting(64));
    EXPECT_EQ(format_dhchap_secret(s), k64);
}

TEST(Dhchap, TransformIsNvmeClisForEachHash) {
    struct Case {
        HashId h;
        size_t len;
        const char* transformed;
    } cases[] = {
        {HashId::Sha256, 32, "DHHC-1:01:WulleCBkG4oCs0iIC3Cit9gBDCLWiZ9PNXuhqytWkBIZkvGy:"},
        {HashId::Sha384, 48,
         "DHHC-1:02:JzC2BNNCN092uBY9oK1bbG/xrkLudbjqzPRjAtH00YqVJN1+2TpCZUPYxrwS09Qxpo/5Jw==:"},
        {HashId::Sha512, 64,
         "DHHC-1:03:d9FmVEvkZD5WUqUkzVMj3JFzwudZt1EtUNK4zK6+"
         "E9Dd42mroGA4ub4Yju0aNPtAr2w0xZFyCxz8d1Q1"
         "2rImDko3x34=:"},
    };
    for (const auto& c : cases) {
        DhchapSecret want;
        std::string err;
        ASSERT_TRUE(parse_dhchap_secret(c.transformed, &want, &err)) << err;
        EXPECT_EQ(want.transform, c.h);
        const DhchapSecret secret{c.h, counting(c.len)};
        EXPECT_EQ(transform_key(secret, kNqn), want.key) << hash_name(c.h);
        EXPECT_EQ(hash_length(c.h), c.len);
    }
    // No transform: the key as it is.
    const DhchapSecret plain{HashId::None, counting(32)};
    EXPECT_EQ(transform_key(plain, kNqn), counting(32));
}

TEST(Dhchap, RejectsMalformedSecretsWithoutQuotingThem) {
    DhchapSecret s;
    std::string err;
    const std::string good = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
    std::string bad_crc = good;
    bad_crc[12] = bad_crc[12] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(parse_dhchap_secret(bad_crc, &s, &err));
    EXPECT_NE(err.find("CRC"), std::string::npos) << err;
    EXPECT_EQ(err.find("AAEC"), std::string::npos) << "the secret must not appear in errors";
    EXPECT_FALSE(parse_dhchap_secret("DHHC-2:00:" + good.substr(10), &s, &err));
    EXPECT_FALSE(parse_dhchap_secret("DHHC-1:04:" + good.substr(10), &s, &err));
    EXPECT_NE(err.find("transform"), std::string::npos) << err;
    EXPECT_FALSE(parse_dhchap_secret("DHHC-1:00:AAECAwQF:", &s, &err));  // 2 key bytes
    EXPECT_FALSE(parse_dhchap_secret("DHHC-1:00:!!!!:", &s, &err));
    EXPECT_FALSE(parse_dhchap_secret(good.substr(0, good.size() - 1), &s, &err));  // no final ':'
    EXPECT_FALSE(parse_dhchap_secret("", &s, &err));
}

TEST(Dhchap, HmacMatchesRfc4231) {
    // RFC 4231 test case 2.
    const std::string key = "Jefe", data = "what do ya want for nothing?";
    const std::vector<uint8_t> k(key.begin(), key.end()), d(data.begin(), data.end());
    EXPECT_EQ(hmac(HashId::Sha256, k, d),
              from_hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    EXPECT_EQ(
        hmac(HashId::Sha512, k, d),
        from_hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a"
                 "6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"));
    EXPECT_TRUE(hmac(HashId::None, k, d).empty());
}
