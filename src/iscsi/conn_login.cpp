// Login (RFC 7143 sections 6 and 11.12-11.13): the security stage with CHAP (one-way and
// mutual, per target node or for discovery), the operational stage's negotiation, and the move
// to the full feature phase. Any failure answers with the right status class and closes this
// connection only.
#include <strings.h>

#include <cstring>

#include "iscsi/chap.h"
#include "iscsi/conn.h"
#include "iscsi/login_state.h"
#include "iscsi/poll_group.h"
#include "iscsi/target.h"
#include "util/log.h"

namespace nocstor::iscsi_tgt {

namespace {
constexpr uint8_t kStageSecurity = 0;
constexpr uint8_t kStageOperational = 1;
constexpr uint8_t kStageFullFeature = 3;
}  // namespace

void Conn::on_login_header(const Bhs& h) {
    (void)h;
    rx_text_.clear();
    sink_ = Sink::Text;
}

void Conn::login_fail(uint16_t status, const std::string& why) {
    NOC_WARN("iscsi", "login from {} ({}{}) refused: {} (status 0x{:04x})", peer_addr_,
             initiator_.empty() ? "?" : initiator_,
             target_name_.empty() ? "" : " -> " + target_name_, why, status);
    ++pg_->stats().login_failures;
    login_reply(status, nullptr, false, 0, 0);
    closing_after_tx_ = true;
    rx_blocked_ = true;  // nothing more is read
}

void Conn::login_reply(uint16_t status, const TextParams* keys, bool transit, uint8_t csg,
                       uint8_t nsg) {
    CtlPdu* c = alloc_ctl();
    if (!c) return;
    uint8_t* h = c->pdu.hdr;
    h[0] = uint8_t(TOp::LoginRsp);
    if (status == kLoginSuccess) h[1] = uint8_t((transit ? kLoginTransit : 0) | csg << 2 | nsg);
    h[2] = 0x00;  // Version-max
    h[3] = 0x00;  // Version-active
    std::memcpy(h + 8, isid_, 6);
    put16(h + 14, tsih_);
    put32(h + off::kItt, login_ ? login_->itt : 0);
    put_sns(h, stat_sn_++);
    if (transit && nsg == kStageFullFeature)
        put32(h + off::kMaxCmdSn, exp_cmd_sn_ + queue_depth_ - 1);  // the window opens now
    h[36] = uint8_t(status >> 8);
    h[37] = uint8_t(status);
    const std::string text = keys ? keys->serialize() : std::string();
    send_ctl(c, reinterpret_cast<const uint8_t*>(text.data()), uint32_t(text.size()));
}

const AuthSettings& Conn::auth_settings() const {
    const IscsiSnapshot& s = pg_->snapshot();
    if (!discovery_ && node_) return node_->auth;
    // Discovery: the portal group's own settings (iscsi_portal_group_set_auth), else the global.
    auto it = s.portal_groups.find(pg_tag_);
    if (it != s.portal_groups.end() && it->second.discovery_auth) return *it->second.discovery_auth;
    return s.options.discovery_auth;
}

bool Conn::chap_required(bool* mutual, int* group) const {
    const IscsiSnapshot& s = pg_->snapshot();
    const AuthSettings& a = auth_settings();
    *mutual = a.mutual_chap;
    *group = a.chap_group ? a.chap_group : s.options.discovery_auth.chap_group;
    if (!discovery_ && node_ && a.chap_group == 0) *group = s.options.discovery_auth.chap_group;
    return a.require_chap && !a.disable_chap;
}

bool Conn::first_login_keys(const TextParams& in) {
    auto name = in.get("InitiatorName");
    if (!name || name->empty()) {
        login_fail(kLoginMissingParameter, "no InitiatorName");
        return false;
    }
    initiator_ = std::string(*name);
    const std::string type(in.get("SessionType").value_or("Normal"));
    if (type == "Discovery") {
        discovery_ = true;
    } else if (type != "Normal") {
        login_fail(kLoginSessionTypeUnsupported, "SessionType " + type);
        return false;
    }
    if (tsih_ != 0) {
        login_fail(kLoginSessionDoesNotExist,
                   "adding a connection to a session (MaxConnections is 1)");
        return false;
    }
    const IscsiSnapshot& snap = pg_->snapshot();
    if (discovery_) {
        offer_ = snap.offer_for(nullptr);
        queue_depth_ = 1;
        return true;
    }
    auto target = in.get("TargetName");
    if (!target || target->empty()) {
        login_fail(kLoginMissingParameter, "no TargetName in a normal session");
        return false;
    }
    target_name_ = std::string(*target);
    node_ = pg_->find_target(target_name_);
    if (!node_) {
        login_fail(kLoginTargetNotFound, "no such target");
        return false;
    }
    target_name_ = node_->name;
    if (!snap.allowed(*node_, pg_tag_, initiator_, peer_addr_)) {
        login_fail(kLoginForbidden,
                   "initiator not allowed on portal group " + std::to_string(pg_tag_));
        return false;
    }
    offer_ = snap.offer_for(node_.get());
    queue_depth_ = std::max<uint32_t>(1, std::min(node_->queue_depth, 4096u));
    return true;
}

bool Conn::login_security(const TextParams& in, TextParams* out, bool* auth_ok) {
    LoginState& L = *login_;
    bool mutual = false;
    int group = 0;
    const bool required = chap_required(&mutual, &group);
    const IscsiSnapshot& snap = pg_->snapshot();
    const AuthSettings& a = auth_settings();
    if (auto methods = in.get("AuthMethod")) {
        bool has_chap = false, has_none = false;
        std::string_view list = *methods;
        size_t i = 0;
        while (i <= list.size()) {
            size_t comma = list.find(',', i);
            if (comma == std::string_view::npos) comma = list.size();
            const std::string_view m = list.substr(i, comma - i);
            has_chap |= m == "CHAP";
            has_none |= m == "None";
            i = comma + 1;
        }
        std::string choice;
        if (a.disable_chap) {
            choice = has_none ? "None" : "Reject";
        } else if (required || mutual) {
            choice = has_chap ? "CHAP" : "Reject";
        } else {
            choice = has_none ? "None" : (has_chap ? "CHAP" : "Reject");
        }
        if (choice == "Reject") {
            login_fail(kLoginAuthFailed, "no acceptable AuthMethod in " + std::string(list));
            return false;
        }
        out->add("AuthMethod", choice);
        if (choice == "None") {
            L.auth_done = true;
        } else {
            L.chap = LoginState::Chap::WaitAlgorithm;
            L.mutual = mutual;
            L.chap_group = group;
        }
    }
    if (auto alg = in.get("CHAP_A")) {
        if (L.chap != LoginState::Chap::WaitAlgorithm) {
            login_fail(kLoginInitiatorError, "CHAP_A out of order");
            return false;
        }
        bool md5 = false;
        std::string_view list = *alg;
        size_t i = 0;
        while (i <= list.size()) {
            size_t comma = list.find(',', i);
            if (comma == std::string_view::npos) comma = list.size();
            md5 |= list.substr(i, comma - i) == "5";
            i = comma + 1;
        }
        if (!md5) {
            login_fail(kLoginAuthFailed, "CHAP_A without MD5 (5)");
            return false;
        }
        if (!chap_new_challenge(&L.chap_id, &L.chap_challenge)) {
            login_fail(kLoginTargetError, "no random bytes for a CHAP challenge");
            return false;
        }
        out->add("CHAP_A", "5");
        out->add("CHAP_I", std::to_string(L.chap_id));
        out->add("CHAP_C", encode_hex(L.chap_challenge.data(), L.chap_challenge.size()));
        L.chap = LoginState::Chap::WaitResponse;
    }
    auto chap_n = in.get("CHAP_N");
    auto chap_r = in.get("CHAP_R");
    if (chap_n || chap_r) {
        if (L.chap != LoginState::Chap::WaitResponse || !chap_n || !chap_r) {
            login_fail(kLoginInitiatorError, "CHAP_N/CHAP_R out of order");
            return false;
        }
        const ChapSecret* s = snap.find_secret(L.chap_group, *chap_n);
        std::vector<uint8_t> resp;
        if (!s || !decode_binary(*chap_r, &resp) ||
            !chap_equal(resp, chap_response(L.chap_id, s->secret, L.chap_challenge))) {
            login_fail(kLoginAuthFailed,
                       "CHAP authentication failed for user '" + std::string(*chap_n) + "'");
            return false;
        }
        auto mi = in.get("CHAP_I");
        auto mc = in.get("CHAP_C");
        if (mi || mc) {
            uint64_t id = 0;
            std::vector<uint8_t> challenge;
            if (!mi || !mc || !parse_number(*mi, 0, 255, &id) || !decode_binary(*mc, &challenge) ||
                challenge.size() < kChapMinChallengeLen ||
                challenge.size() > kChapMaxChallengeLen) {
                login_fail(kLoginAuthFailed, "malformed mutual CHAP challenge");
                return false;
            }
            if (challenge == L.chap_challenge) {
                login_fail(kLoginAuthFailed, "mutual CHAP challenge reflects ours");
                return false;
            }
            if (s->muser.empty() || s->msecret.empty()) {
                login_fail(kLoginAuthFailed, "mutual CHAP asked, no target secret configured");
                return false;
            }
            const auto r = chap_response(uint8_t(id), s->msecret, challenge);
            out->add("CHAP_N", s->muser);
            out->add("CHAP_R", encode_hex(r.data(), r.size()));
        } else if (L.mutual) {
            login_fail(kLoginAuthFailed, "the target requires mutual CHAP");
            return false;
        }
        L.chap = LoginState::Chap::Done;
        L.auth_done = true;
    }
    *auth_ok = L.auth_done;
    return true;
}

bool Conn::login_operational(const TextParams& in, TextParams* out) {
    std::string err;
    if (!negotiate(in, offer_, true, &login_->mrdsl_declared, &params_, out, &err)) {
        login_fail(kLoginInitiatorError, err);
        return false;
    }
    return true;
}

void Conn::handle_login() {
    const Bhs h{rx_hdr_};
    LoginState& L = *login_;
    const uint8_t flags = h.flags();
    const bool transit = flags & kLoginTransit;
    const bool cont = flags & kLoginContinue;
    const uint8_t csg = (flags >> 2) & 3;
    uint8_t nsg = flags & 3;
    if (L.first) {
        std::memcpy(isid_, rx_hdr_ + 8, 6);
        tsih_ = get16(rx_hdr_ + 14);
        cid_ = get16(rx_hdr_ + 20);
        exp_cmd_sn_ = h.cmd_sn();
        stat_sn_ = h.exp_stat_sn();
        L.itt = h.itt();
        if (rx_hdr_[3] > 0x00) {  // Version-min above ours
            login_fail(kLoginUnsupportedVersion, "unsupported iSCSI version");
            return;
        }
    } else if (std::memcmp(isid_, rx_hdr_ + 8, 6) != 0 || get16(rx_hdr_ + 20) != cid_) {
        login_fail(kLoginInitiatorError, "ISID or CID changed during login");
        return;
    }
    L.itt = h.itt();
    if (transit && cont) {
        login_fail(kLoginInitiatorError, "T and C bits both set");
        return;
    }
    if (csg == 2 || (transit && (nsg == 2 || nsg <= csg))) {
        login_fail(kLoginInitiatorError, "invalid login stage transition");
        return;
    }
    if (!L.first && csg < L.stage) {
        login_fail(kLoginInitiatorError, "login stage went back");
        return;
    }
    L.partial.append(reinterpret_cast<const char*>(rx_text_.data()), rx_text_.size());
    if (L.partial.size() > 64 * 1024) {
        login_fail(kLoginInitiatorError, "login text over 64 KiB");
        return;
    }
    if (cont) {  // more text follows: acknowledge with an empty response
        login_reply(kLoginSuccess, nullptr, false, csg, csg);
        return;
    }
    TextParams in;
    std::string err;
    if (!in.parse(reinterpret_cast<const uint8_t*>(L.partial.data()), L.partial.size(), &err)) {
        login_fail(kLoginInitiatorError, "malformed login text: " + err);
        return;
    }
    L.partial.clear();
    for (const auto& [k, v] : in.pairs())
        if (!L.seen.has(k)) L.seen.add(k, v);
    const bool first = L.first;
    if (L.first) {
        L.first = false;
        if (!first_login_keys(in)) return;
    }
    L.stage = csg;
    TextParams out;
    bool auth_ok = L.auth_done;
    bool mutual = false;
    int group = 0;
    const bool chap_needed = chap_required(&mutual, &group);
    if (csg == kStageSecurity) {
        if (!login_security(in, &out, &auth_ok)) return;
        // Operational keys may come in the security stage too.
        TextParams ops;
        for (const auto& [k, v] : in.pairs())
            if (!is_login_key(k)) ops.add(k, v);
        if (!ops.empty() && !login_operational(ops, &out)) return;
    } else {
        if (chap_needed && !L.auth_done) {
            login_fail(kLoginAuthFailed, "the target requires CHAP");
            return;
        }
        L.auth_done = true;
        auth_ok = true;
        if (!login_operational(in, &out)) return;
    }
    if (first && !discovery_ && node_) {
        out.add("TargetPortalGroupTag", std::to_string(pg_tag_));
        if (!node_->alias.empty()) out.add("TargetAlias", node_->alias);
    }
    bool go = transit;
    if (csg == kStageSecurity && transit && !auth_ok) go = false;  // CHAP still running
    if (!go) nsg = csg;
    if (go && nsg == kStageFullFeature) {
        if (!enter_full_feature()) return;
        login_reply(kLoginSuccess, &out, true, csg, nsg);
        phase_ = ConnPhase::FullFeature;
        login_.reset();
        ++pg_->stats().logins;
        NOC_INFO("iscsi",
                 "login: {} from {} -> {} (TSIH {}, queue depth {}, digests {}/{}, "
                 "MaxRecvDataSegmentLength {}/{}, MaxBurstLength {}, FirstBurstLength {}, "
                 "ImmediateData {})",
                 initiator_, peer_addr_, discovery_ ? "discovery" : target_name_, tsih_,
                 queue_depth_, params_.header_digest ? "CRC32C" : "None",
                 params_.data_digest ? "CRC32C" : "None", params_.initiator_mrdsl,
                 params_.target_mrdsl, params_.max_burst_length, params_.first_burst_length,
                 params_.immediate_data ? "Yes" : "No");
        if (!discovery_ && pg_->target()) {
            std::string isid(reinterpret_cast<const char*>(isid_), 6);
            pg_->target()->reinstate(initiator_, isid, target_name_, id_);
        }
        return;
    }
    login_reply(kLoginSuccess, &out, go, csg, nsg);
}

bool Conn::enter_full_feature() {
    std::string err;
    if (!finish_negotiation(offer_, login_->seen, &params_, &err)) {
        login_fail(kLoginInitiatorError, err);
        return false;
    }
    if (!login_->mrdsl_declared) params_.target_mrdsl = 8192;  // never declared: RFC default
    tsih_ = pg_->alloc_tsih();
    static const char* kHex = "0123456789abcdef";
    initiator_port_ = initiator_ + ",i,0x";
    for (uint8_t b : isid_) {
        initiator_port_ += kHex[b >> 4];
        initiator_port_ += kHex[b & 15];
    }
    nexus_ = std::hash<std::string>{}(initiator_port_ + ",t," + std::to_string(pg_tag_)) | 1;
    // Tasks: the window, the immediate commands, and the ones still sending their response.
    ntasks_ = 2 * queue_depth_ + 16;
    tasks_.reset(new ConnTask[ntasks_]);
    free_tasks_ = nullptr;
    for (uint32_t i = ntasks_; i-- > 0;) {
        ConnTask* t = &tasks_[i];
        t->kind = TxItem::Kind::Task;
        t->conn = this;
        t->index = uint16_t(i);
        t->next = free_tasks_;
        free_tasks_ = t;
    }
    return true;
}

}  // namespace nocstor::iscsi_tgt
