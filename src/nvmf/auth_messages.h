// The wire format of NVMe in-band authentication (NVMe base spec 2.0, 5.25/8.13.5): the
// AUTH_Send/AUTH_Receive fabrics commands and the DH-HMAC-CHAP messages they carry. Values as
// Linux's include/linux/nvme.h names them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nocstor::nvmf::auth {

constexpr uint8_t kSecpDhchap = 0xE9;  // SECP of AUTH_Send/Receive: the DH-HMAC-CHAP protocol
constexpr uint8_t kSpsp = 0x01;        // SPSP0 and SPSP1

// auth_type
constexpr uint8_t kCommonMessages = 0x00;
constexpr uint8_t kDhchapMessages = 0x01;
// auth_id
constexpr uint8_t kNegotiate = 0x00;
constexpr uint8_t kChallenge = 0x01;
constexpr uint8_t kReply = 0x02;
constexpr uint8_t kSuccess1 = 0x03;
constexpr uint8_t kSuccess2 = 0x04;
constexpr uint8_t kFailure2 = 0xF0;
constexpr uint8_t kFailure1 = 0xF1;

constexpr uint8_t kDhchapAuthId = 0x01;  // protocol descriptor authid

// DH group identifiers.
constexpr uint8_t kDhNull = 0x00;

// Failure reason code and explanations.
constexpr uint8_t kReasonFailed = 0x01;
constexpr uint8_t kFailed = 0x01;
constexpr uint8_t kNotUsable = 0x02;
constexpr uint8_t kConcatMismatch = 0x03;
constexpr uint8_t kHashUnusable = 0x04;
constexpr uint8_t kDhgroupUnusable = 0x05;
constexpr uint8_t kIncorrectPayload = 0x06;
constexpr uint8_t kIncorrectMessage = 0x07;

// The AUTHREQ field of the Connect response (DW0 bits 17:16): ATR, authentication required.
constexpr uint32_t kConnectAuthreqAtr = 1u << 17;

#pragma pack(push, 1)
struct CommandFields {  // bytes 40-47 of AUTH_Send / AUTH_Receive
    uint8_t nssf;
    uint8_t spsp0;
    uint8_t spsp1;
    uint8_t secp;
    uint32_t length;  // TL (send) / AL (receive)
};

struct ProtocolDescriptor {
    uint8_t authid;
    uint8_t rsvd;
    uint8_t halen;
    uint8_t dhlen;
    uint8_t idlist[60];  // hash ids at [0, halen), DH group ids at [30, 30 + dhlen)
};

struct Header {
    uint8_t auth_type;
    uint8_t auth_id;
    uint16_t rsvd;
    uint16_t t_id;
};

struct Negotiate {
    Header h;
    uint8_t sc_c;
    uint8_t napd;
    ProtocolDescriptor protocols[1];
};

struct Challenge {
    Header h;
    uint8_t hl;
    uint8_t rsvd2;
    uint8_t hashid;
    uint8_t dhgid;
    uint16_t dhvlen;
    uint32_t seqnum;
    // hl bytes of challenge, then dhvlen bytes of DH value
};

struct Reply {
    Header h;
    uint8_t hl;
    uint8_t rsvd2;
    uint8_t cvalid;
    uint8_t rsvd3;
    uint16_t dhvlen;
    uint32_t seqnum;
    // hl bytes of response, hl bytes of the host's challenge (cvalid), dhvlen bytes of DH value
};

struct Success1 {
    Header h;
    uint8_t hl;
    uint8_t rsvd2;
    uint8_t rvalid;
    uint8_t rsvd3[7];
    // hl bytes of the controller's response (rvalid)
};

struct Success2 {
    Header h;
    uint8_t rsvd2[10];
};

struct Failure {
    Header h;
    uint8_t rescode;
    uint8_t rescode_exp;
};
#pragma pack(pop)

static_assert(sizeof(CommandFields) == 8);
static_assert(sizeof(ProtocolDescriptor) == 64);
static_assert(sizeof(Negotiate) == 72);
static_assert(sizeof(Challenge) == 16);
static_assert(sizeof(Reply) == 16);
static_assert(sizeof(Success1) == 16);
static_assert(sizeof(Success2) == 16);
static_assert(sizeof(Failure) == 8);

}  // namespace nocstor::nvmf::auth
