// Text keys, operational negotiation and CHAP of the iSCSI target.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "iscsi/chap.h"
#include "iscsi/negotiation.h"
#include "iscsi/pdu.h"
#include "iscsi/text_params.h"

namespace nocstor::iscsi_tgt {
namespace {

// A string literal with its embedded NULs.
template <size_t N>
std::string lit(const char (&s)[N]) {
    return std::string(s, N - 1);
}

TextParams parse_ok(const std::string& s) {
    TextParams p;
    std::string err;
    EXPECT_TRUE(p.parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &err)) << err;
    return p;
}

bool parse_fails(const std::string& s) {
    TextParams p;
    std::string err;
    const bool ok = p.parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &err);
    EXPECT_TRUE(ok || !err.empty());
    return !ok;
}

TEST(IscsiText, ParsesPairsInOrderAndSerializesBack) {
    const std::string s = lit("InitiatorName=iqn.x\0SessionType=Normal\0MaxBurstLength=262144\0");
    TextParams p = parse_ok(s);
    ASSERT_EQ(p.pairs().size(), 3u);
    EXPECT_EQ(p.get("SessionType").value(), "Normal");
    EXPECT_FALSE(p.get("TargetName").has_value());
    EXPECT_EQ(p.serialize(), s);
}

TEST(IscsiText, ToleratesPaddingAndAMissingLastNul) {
    TextParams p = parse_ok(lit("A=1\0\0\0B=2"));
    EXPECT_EQ(p.get("B").value(), "2");
}

TEST(IscsiText, RefusesMalformedText) {
    EXPECT_TRUE(parse_fails(lit("NoEquals\0")));
    EXPECT_TRUE(parse_fails(lit("=value\0")));
    EXPECT_TRUE(parse_fails(lit("A=1\0A=2\0")));  // a key twice
    EXPECT_TRUE(parse_fails(lit("Bad Key=1\0")));
    EXPECT_TRUE(parse_fails("K=" + std::string(8193, 'x')));
    EXPECT_TRUE(parse_fails(std::string(64, 'K') + "=1"));
}

TEST(IscsiText, NumbersAndBinaryValues) {
    uint64_t n = 0;
    EXPECT_TRUE(parse_number("8192", 512, 16777215, &n));
    EXPECT_EQ(n, 8192u);
    EXPECT_TRUE(parse_number("0x2000", 512, 16777215, &n));
    EXPECT_EQ(n, 8192u);
    EXPECT_FALSE(parse_number("100", 512, 16777215, &n));
    EXPECT_FALSE(parse_number("12ab", 0, 100000, &n));
    EXPECT_FALSE(parse_number("", 0, 1, &n));
    std::vector<uint8_t> b;
    EXPECT_TRUE(decode_binary("0x00ff10", &b));
    EXPECT_EQ(b, (std::vector<uint8_t>{0x00, 0xff, 0x10}));
    EXPECT_TRUE(decode_binary("0bAAEC", &b));  // base64 of 00 01 02
    EXPECT_EQ(b, (std::vector<uint8_t>{0x00, 0x01, 0x02}));
    EXPECT_EQ(encode_hex(b.data(), b.size()), "0x000102");
    EXPECT_FALSE(decode_binary("0x0", &b));
    EXPECT_FALSE(decode_binary("0xzz", &b));
    EXPECT_FALSE(decode_binary("12", &b));
}

NegotiatedParams negotiate_ok(const std::string& text, const TargetOffer& offer,
                              TextParams* reply) {
    NegotiatedParams p;
    bool declared = false;
    std::string err;
    EXPECT_TRUE(negotiate(parse_ok(text), offer, true, &declared, &p, reply, &err)) << err;
    EXPECT_TRUE(declared);
    return p;
}

TEST(IscsiNegotiation, ResultFunctionsOfRfc7143) {
    TargetOffer offer;
    offer.max_burst_length = 1 << 20;
    offer.first_burst_length = 65536;
    offer.immediate_data = true;
    TextParams reply;
    const std::string text =
        lit("HeaderDigest=CRC32C,None\0DataDigest=None\0MaxRecvDataSegmentLength=65536\0"
            "MaxBurstLength=16776192\0FirstBurstLength=262144\0ImmediateData=No\0"
            "InitialR2T=No\0MaxOutstandingR2T=8\0ErrorRecoveryLevel=2\0DefaultTime2Wait=0\0"
            "DefaultTime2Retain=60\0MaxConnections=4\0X-com.example.Foo=1\0IFMarker=Yes\0");
    NegotiatedParams p = negotiate_ok(text, offer, &reply);
    EXPECT_TRUE(p.header_digest);
    EXPECT_FALSE(p.data_digest);
    EXPECT_EQ(p.initiator_mrdsl, 65536u);     // declarative
    EXPECT_EQ(p.max_burst_length, 1u << 20);  // min
    EXPECT_EQ(p.first_burst_length, 65536u);  // min
    EXPECT_FALSE(p.immediate_data);           // AND
    EXPECT_TRUE(p.initial_r2t);               // OR with our Yes
    EXPECT_EQ(p.max_outstanding_r2t, 1u);     // min
    EXPECT_EQ(p.error_recovery_level, 0u);    // min
    EXPECT_EQ(p.default_time2wait, 2u);       // max
    EXPECT_EQ(p.default_time2retain, 20u);    // min
    EXPECT_EQ(p.max_connections, 1u);         // min
    EXPECT_EQ(reply.get("HeaderDigest").value(), "CRC32C");
    EXPECT_EQ(reply.get("InitialR2T").value(), "Yes");
    EXPECT_EQ(reply.get("X-com.example.Foo").value(), "NotUnderstood");
    EXPECT_EQ(reply.get("IFMarker").value(), "No");
    EXPECT_EQ(reply.get("MaxRecvDataSegmentLength").value(),
              std::to_string(offer.max_recv_data_segment_length));
    EXPECT_FALSE(reply.has("InitiatorName"));
}

TEST(IscsiNegotiation, OutOfRangeValuesAreRejectedKeyByKey) {
    TargetOffer offer;
    TextParams reply;
    NegotiatedParams p =
        negotiate_ok(lit("MaxBurstLength=100\0ImmediateData=Maybe\0MaxRecvDataSegmentLength=1\0"),
                     offer, &reply);
    EXPECT_EQ(reply.get("MaxBurstLength").value(), "Reject");
    EXPECT_EQ(reply.get("ImmediateData").value(), "Reject");
    EXPECT_EQ(p.initiator_mrdsl, 8192u);  // unchanged default
}

TEST(IscsiNegotiation, RequiredDigestRefusedFailsTheLogin) {
    TargetOffer offer;
    offer.header_digest = DigestPolicy::Required;
    NegotiatedParams p;
    TextParams reply;
    bool declared = false;
    std::string err;
    EXPECT_FALSE(
        negotiate(parse_ok(lit("HeaderDigest=None\0")), offer, true, &declared, &p, &reply, &err));
    EXPECT_NE(err.find("HeaderDigest"), std::string::npos);
    // Never negotiated at all: finish_negotiation refuses it.
    NegotiatedParams q;
    EXPECT_FALSE(finish_negotiation(offer, TextParams{}, &q, &err));
    // A target that offers no digest answers a CRC32C-only list with Reject.
    TargetOffer none;
    none.data_digest = DigestPolicy::None;
    TextParams reply2;
    negotiate_ok(lit("DataDigest=CRC32C\0"), none, &reply2);
    EXPECT_EQ(reply2.get("DataDigest").value(), "Reject");
}

TEST(IscsiNegotiation, SessionKeysOnASecondConnectionAreIrrelevant) {
    TargetOffer offer;
    NegotiatedParams p;
    TextParams reply;
    bool declared = true;
    std::string err;
    ASSERT_TRUE(negotiate(parse_ok(lit("MaxBurstLength=4096\0")), offer, false, &declared, &p,
                          &reply, &err));
    EXPECT_EQ(reply.get("MaxBurstLength").value(), "Irrelevant");
    EXPECT_FALSE(reply.has("MaxRecvDataSegmentLength"));  // already declared
}

TEST(IscsiChap, Md5OfIdSecretChallenge) {
    std::vector<uint8_t> challenge;
    for (int i = 0; i < 16; ++i) challenge.push_back(uint8_t(i));
    const auto r = chap_response(7, "secret12345678", challenge);
    EXPECT_EQ(encode_hex(r.data(), r.size()), "0xc736ca9fbe1d4d03ca7c57645a277251");
    uint8_t id1, id2;
    std::vector<uint8_t> c1, c2;
    ASSERT_TRUE(chap_new_challenge(&id1, &c1));
    ASSERT_TRUE(chap_new_challenge(&id2, &c2));
    EXPECT_EQ(c1.size(), kChapChallengeLen);
    EXPECT_NE(c1, c2);
    EXPECT_TRUE(chap_equal(r, r));
    EXPECT_FALSE(chap_equal(r, c1));
}

TEST(IscsiPdu, LunEncodingRoundTrips) {
    EXPECT_EQ(decode_lun(encode_lun(0)), 0u);
    EXPECT_EQ(decode_lun(encode_lun(5)), 5u);
    EXPECT_EQ(decode_lun(encode_lun(300)), 300u);  // flat space
    EXPECT_EQ(encode_lun(1), 0x0001000000000000ull);
    EXPECT_EQ(decode_lun(0x0001000000000001ull), UINT32_MAX);  // second level
    EXPECT_EQ(decode_lun(0x0101000000000000ull), UINT32_MAX);  // bus 1
    EXPECT_TRUE(sn_lt(0xffffffffu, 0u));
    EXPECT_TRUE(sn_le(5, 5));
    EXPECT_FALSE(sn_lt(6, 5));
}

}  // namespace
}  // namespace nocstor::iscsi_tgt
