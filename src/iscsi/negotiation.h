// Operational text negotiation (RFC 7143 section 13): the target's offers, the values a session
// and connection end up with, and the answers to an initiator's keys. Keys that belong to login
// itself (names, SessionType, AuthMethod, CHAP_*) are left to the login code.
#pragma once

#include <cstdint>
#include <string>

#include "iscsi/text_params.h"

namespace nocstor::iscsi_tgt {

enum class DigestPolicy : uint8_t { None, Optional, Required };

// What the target offers (iscsi_set_options and the target node's digest settings).
struct TargetOffer {
    uint32_t max_recv_data_segment_length = 256 * 1024;  // what the initiator may send us per PDU
    uint32_t max_burst_length = 1024 * 1024;
    uint32_t first_burst_length = 64 * 1024;
    bool immediate_data = true;
    bool initial_r2t = true;
    uint32_t max_connections = 1;
    uint32_t max_outstanding_r2t = 1;
    uint32_t default_time2wait = 2;
    uint32_t default_time2retain = 20;
    uint32_t error_recovery_level = 0;
    DigestPolicy header_digest = DigestPolicy::Optional;
    DigestPolicy data_digest = DigestPolicy::Optional;
};

// Negotiated values (RFC defaults until keys say otherwise).
struct NegotiatedParams {
    bool header_digest = false;
    bool data_digest = false;
    uint32_t initiator_mrdsl = 8192;  // the most we send per PDU
    uint32_t target_mrdsl = 8192;     // the most the initiator sends per PDU (our declaration)
    uint32_t max_burst_length = 262144;
    uint32_t first_burst_length = 65536;
    bool immediate_data = true;
    bool initial_r2t = true;
    uint32_t max_connections = 1;
    uint32_t max_outstanding_r2t = 1;
    uint32_t default_time2wait = 2;
    uint32_t default_time2retain = 20;
    uint32_t error_recovery_level = 0;
    bool data_pdu_in_order = true;
    bool data_sequence_in_order = true;
};

// Keys the login code handles itself; negotiate() skips them.
bool is_login_key(const std::string& key);

// Answers every operational key of `in` into `reply` and updates `out`. `leading`: the first
// connection of a session (session-wide keys are only allowed there). `declared`: whether our
// MaxRecvDataSegmentLength was already sent on this connection (it is declared once).
// Returns false with *err when the keys cannot be accepted (a digest the target requires was
// refused): the login must fail.
bool negotiate(const TextParams& in, const TargetOffer& offer, bool leading, bool* declared,
               NegotiatedParams* out, TextParams* reply, std::string* err);

// After the operational stage: values the initiator did not negotiate keep the RFC default
// except where the target's offer is stricter. False with *err if a required digest was never
// negotiated.
bool finish_negotiation(const TargetOffer& offer, const TextParams& seen_keys,
                        NegotiatedParams* out, std::string* err);

}  // namespace nocstor::iscsi_tgt
