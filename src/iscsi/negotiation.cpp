#include "iscsi/negotiation.h"

#include <algorithm>
#include <set>

namespace nocstor::iscsi_tgt {

namespace {

bool yes_no(std::string_view v, bool* out) {
    if (v == "Yes") {
        *out = true;
        return true;
    }
    if (v == "No") {
        *out = false;
        return true;
    }
    return false;
}

const char* yn(bool b) {
    return b ? "Yes" : "No";
}

// Picks the first value of the initiator's list the policy allows.
bool pick_digest(std::string_view list, DigestPolicy policy, bool* use) {
    size_t i = 0;
    while (i <= list.size()) {
        size_t comma = list.find(',', i);
        if (comma == std::string_view::npos) comma = list.size();
        std::string_view v = list.substr(i, comma - i);
        if (v == "CRC32C" && policy != DigestPolicy::None) {
            *use = true;
            return true;
        }
        if (v == "None" && policy != DigestPolicy::Required) {
            *use = false;
            return true;
        }
        i = comma + 1;
    }
    return false;
}

bool session_wide(const std::string& k) {
    static const std::set<std::string> s = {
        "MaxConnections",   "InitialR2T",          "ImmediateData",      "MaxBurstLength",
        "FirstBurstLength", "DefaultTime2Wait",    "DefaultTime2Retain", "MaxOutstandingR2T",
        "DataPDUInOrder",   "DataSequenceInOrder", "ErrorRecoveryLevel"};
    return s.count(k) > 0;
}

}  // namespace

bool is_login_key(const std::string& key) {
    static const std::set<std::string> s = {"InitiatorName",
                                            "TargetName",
                                            "SessionType",
                                            "InitiatorAlias",
                                            "TargetAlias",
                                            "AuthMethod",
                                            "CHAP_A",
                                            "CHAP_I",
                                            "CHAP_C",
                                            "CHAP_N",
                                            "CHAP_R",
                                            "TargetAddress",
                                            "TargetPortalGroupTag"};
    return s.count(key) > 0;
}

bool negotiate(const TextParams& in, const TargetOffer& offer, bool leading, bool* declared,
               NegotiatedParams* out, TextParams* reply, std::string* err) {
    for (const auto& [k, v] : in.pairs()) {
        if (is_login_key(k)) continue;
        if (session_wide(k) && !leading) {
            reply->add(k, "Irrelevant");
            continue;
        }
        uint64_t n = 0;
        bool b = false;
        if (k == "HeaderDigest" || k == "DataDigest") {
            const bool hdr = k == "HeaderDigest";
            bool use = false;
            if (!pick_digest(v, hdr ? offer.header_digest : offer.data_digest, &use)) {
                if ((hdr ? offer.header_digest : offer.data_digest) == DigestPolicy::Required) {
                    *err = k + "=CRC32C is required by the target, the initiator offered " + v;
                    return false;
                }
                reply->add(k, "Reject");
                continue;
            }
            (hdr ? out->header_digest : out->data_digest) = use;
            reply->add(k, use ? "CRC32C" : "None");
        } else if (k == "MaxRecvDataSegmentLength") {
            if (!parse_number(v, 512, 16777215, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->initiator_mrdsl = uint32_t(n);  // declarative: no answer of its own
        } else if (k == "MaxConnections") {
            if (!parse_number(v, 1, 65535, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->max_connections = std::min<uint32_t>(uint32_t(n), offer.max_connections);
            reply->add(k, std::to_string(out->max_connections));
        } else if (k == "InitialR2T") {
            if (!yes_no(v, &b)) {
                reply->add(k, "Reject");
                continue;
            }
            out->initial_r2t = b || offer.initial_r2t;  // OR
            reply->add(k, yn(out->initial_r2t));
        } else if (k == "ImmediateData") {
            if (!yes_no(v, &b)) {
                reply->add(k, "Reject");
                continue;
            }
            out->immediate_data = b && offer.immediate_data;  // AND
            reply->add(k, yn(out->immediate_data));
        } else if (k == "DataPDUInOrder" || k == "DataSequenceInOrder") {
            if (!yes_no(v, &b)) {
                reply->add(k, "Reject");
                continue;
            }
            // OR with our Yes: data always in order (the target relies on it).
            (k == "DataPDUInOrder" ? out->data_pdu_in_order : out->data_sequence_in_order) = true;
            reply->add(k, "Yes");
        } else if (k == "MaxBurstLength") {
            if (!parse_number(v, 512, 16777215, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->max_burst_length = std::min<uint32_t>(uint32_t(n), offer.max_burst_length);
            reply->add(k, std::to_string(out->max_burst_length));
        } else if (k == "FirstBurstLength") {
            if (!parse_number(v, 512, 16777215, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->first_burst_length = std::min<uint32_t>(uint32_t(n), offer.first_burst_length);
            reply->add(k, std::to_string(out->first_burst_length));
        } else if (k == "DefaultTime2Wait") {
            if (!parse_number(v, 0, 3600, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->default_time2wait = std::max<uint32_t>(uint32_t(n), offer.default_time2wait);
            reply->add(k, std::to_string(out->default_time2wait));
        } else if (k == "DefaultTime2Retain") {
            if (!parse_number(v, 0, 3600, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->default_time2retain = std::min<uint32_t>(uint32_t(n), offer.default_time2retain);
            reply->add(k, std::to_string(out->default_time2retain));
        } else if (k == "MaxOutstandingR2T") {
            if (!parse_number(v, 1, 65535, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->max_outstanding_r2t = std::min<uint32_t>(uint32_t(n), offer.max_outstanding_r2t);
            reply->add(k, std::to_string(out->max_outstanding_r2t));
        } else if (k == "ErrorRecoveryLevel") {
            if (!parse_number(v, 0, 2, &n)) {
                reply->add(k, "Reject");
                continue;
            }
            out->error_recovery_level = std::min<uint32_t>(uint32_t(n), offer.error_recovery_level);
            reply->add(k, std::to_string(out->error_recovery_level));
        } else if (k == "IFMarker" || k == "OFMarker") {
            reply->add(k, "No");
        } else if (k == "IFMarkInt" || k == "OFMarkInt") {
            reply->add(k, "Irrelevant");
        } else {
            reply->add(k, "NotUnderstood");
        }
    }
    if (out->first_burst_length > out->max_burst_length)
        out->first_burst_length = out->max_burst_length;
    if (!*declared) {
        out->target_mrdsl = offer.max_recv_data_segment_length;
        reply->add("MaxRecvDataSegmentLength", std::to_string(offer.max_recv_data_segment_length));
        *declared = true;
    }
    return true;
}

bool finish_negotiation(const TargetOffer& offer, const TextParams& seen, NegotiatedParams* out,
                        std::string* err) {
    // Keys the initiator never sent keep the RFC default, combined with our offer the way the
    // key's result function would have.
    if (!seen.has("InitialR2T")) out->initial_r2t = true;
    if (!seen.has("ImmediateData")) out->immediate_data = offer.immediate_data;
    if (!seen.has("MaxBurstLength"))
        out->max_burst_length = std::min<uint32_t>(262144, offer.max_burst_length);
    if (!seen.has("FirstBurstLength"))
        out->first_burst_length = std::min<uint32_t>(65536, offer.first_burst_length);
    if (out->first_burst_length > out->max_burst_length)
        out->first_burst_length = out->max_burst_length;
    if (!seen.has("HeaderDigest") && offer.header_digest == DigestPolicy::Required) {
        *err = "the target requires HeaderDigest=CRC32C; the initiator did not negotiate it";
        return false;
    }
    if (!seen.has("DataDigest") && offer.data_digest == DigestPolicy::Required) {
        *err = "the target requires DataDigest=CRC32C; the initiator did not negotiate it";
        return false;
    }
    return true;
}

}  // namespace nocstor::iscsi_tgt
