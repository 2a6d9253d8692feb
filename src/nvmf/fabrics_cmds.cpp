// Fabrics commands: Connect (admin: new controller; I/O: join a controller that may live on
// another poll group, by message), Property Get/Set, Disconnect.
#include <cstring>
#include <string>

#include "nvmf/auth.h"
#include "nvmf/auth_messages.h"
#include "nvmf/commands.h"
#include "nvmf/controller.h"
#include "nvmf/limits.h"
#include "nvmf/nqn.h"
#include "nvmf/poll_group.h"
#include "nvmf/target.h"
#include "nvmf/tcp_conn.h"
#include "runtime/runtime.h"
#include "runtime/thread.h"
#include "util/log.h"

namespace nocstor::nvmf {

using nvme::Status;

namespace {

constexpr uint16_t kIpoQid = offsetof(nvme::ConnectCommand, qid);
constexpr uint16_t kIpoSqsize = offsetof(nvme::ConnectCommand, sqsize);
constexpr uint16_t kIpoCntlid = offsetof(nvme::ConnectData, cntlid);
constexpr uint16_t kIpoSubnqn = offsetof(nvme::ConnectData, subnqn);
constexpr uint16_t kIpoHostnqn = offsetof(nvme::ConnectData, hostnqn);

// A host with DH-HMAC-CHAP keys must authenticate this queue before anything else: the
// Connect response says so (AUTHREQ.ATR).
uint32_t maybe_require_auth(TcpConn* c, const SubsystemInfo* info, const std::string& hostnqn) {
    if (!info) return 0;
    auto keys = info->keys_of(hostnqn);
    if (!keys || !keys->dhchap()) return 0;
    auto a =
        std::make_unique<QueueAuth>(std::move(keys), hostnqn, info->nqn, *target_auth_policy());
    a->set_deferred_dh(Runtime::offload_thread() != nullptr);
    c->require_auth(std::move(a));
    return auth::kConnectAuthreqAtr;
}

// Why a Connect may not use this connection as far as TLS goes, or nullptr: a TLS session
// speaks for the host and subsystem of its PSK identity and no other; a host with a PSK on the
// subsystem never comes in the clear.
const char* secure_channel_refusal(const TcpConn* c, const SubsystemInfo* info,
                                   const std::string& hostnqn, const std::string& subnqn) {
    if (const security::TlsSession* tls = c->tls()) {
        security::TlsCipher cipher;
        std::string host, sub;
        if (!security::parse_psk_identity(tls->identity(), &cipher, &host, &sub) ||
            host != hostnqn || sub != subnqn)
            return "the TLS PSK identity names another host or subsystem";
        return nullptr;
    }
    if (info) {
        const auto keys = info->keys_of(hostnqn);
        if (keys && keys->psk) return "the host has a TLS PSK here and must use a secure channel";
    }
    return nullptr;
}

uint32_t invalid_param(uint8_t iattr, uint16_t ipo) {
    return ipo | (static_cast<uint32_t>(iattr) << 16);
}

void connect_fail(Request* r, uint8_t sc, uint32_t dw0 = 0) {
    r->rsp.dw0 = dw0;
    r->conn->complete(r, Status::command_specific(sc, true));
}

void invalid_params(Request* r, uint8_t iattr, uint16_t ipo) {
    connect_fail(r, nvme::sc_cmd::kConnectInvalidParameters, invalid_param(iattr, ipo));
}

// An I/O queue Connect travelling to the controller's poll group and back.
struct IoConnect {
    TcpConn* conn;
    Request* req;
    PollGroup* from;
    PollGroup* owner;
    uint64_t conn_id;
    uint16_t cntlid, qid, sqsize;
    std::string subnqn, hostnqn;
    Status status{};
    uint32_t dw0 = 0;
};

void io_connect_reply(IoConnect* x) {
    TcpConn* c = x->conn;
    Request* r = x->req;
    const bool registered = x->status.ok();
    if (c->end_external(r)) {
        PgSubsystem* s = x->from->find_subsystem(x->subnqn);
        if (registered && s) {
            c->set_io(s, x->cntlid, x->qid, static_cast<uint16_t>(x->sqsize + 1));
            NOC_DEBUG("nvmf", "I/O queue {} of controller {} ({}) connected", x->qid, x->cntlid,
                      x->subnqn);
            r->rsp.dw0 = x->dw0 | maybe_require_auth(c, s->info.get(), x->hostnqn);
            c->complete(r, Status::success());
            delete x;
            return;
        }
        r->rsp.dw0 = x->dw0;
        c->complete(r, registered ? Status::generic(nvme::sc::kCommandSequenceError) : x->status);
    }
    // The queue did not come up here (connection gone, subsystem deleted meanwhile): take it
    // back off the controller.
    if (registered) {
        PollGroup* owner = x->owner;
        const uint16_t cntlid = x->cntlid, qid = x->qid;
        const uint64_t id = x->conn_id;
        owner->thread()->send([owner, cntlid, qid, id] {
            if (Controller* ctrl = owner->find_controller(cntlid)) ctrl->remove_io_queue(qid, id);
        });
    }
    delete x;
}

// On the controller's poll group.
void io_connect_at_owner(IoConnect* x) {
    Controller* ctrl = x->owner->find_controller(x->cntlid);
    const uint16_t limit = ctrl && ctrl->io_queues_set() ? ctrl->io_queues_granted() : kMaxIoQueues;
    if (!ctrl || ctrl->discovery() || ctrl->subnqn() != x->subnqn ||
        ctrl->hostnqn() != x->hostnqn) {
        x->status = Status::command_specific(nvme::sc_cmd::kConnectInvalidParameters, true);
        x->dw0 = invalid_param(nvme::kConnectIattrData, kIpoCntlid);
    } else if (!ctrl->ready()) {
        x->status = Status::generic(nvme::sc::kCommandSequenceError, true);
    } else if (x->qid > limit || ctrl->qid_in_use(x->qid)) {
        x->status = Status::command_specific(nvme::sc_cmd::kConnectInvalidParameters, true);
        x->dw0 = invalid_param(nvme::kConnectIattrCommand, kIpoQid);
    } else {
        ctrl->add_io_queue(IoQueueRef{x->qid, x->from->index(), x->conn_id});
        x->dw0 = x->cntlid;
    }
    x->from->thread()->send([x] { io_connect_reply(x); });
}

void connect_with_data(Request* r) {
    TcpConn* c = r->conn;
    PollGroup* pg = c->pg();
    const auto& cmd = reinterpret_cast<const nvme::ConnectCommand&>(r->cmd);
    const auto* data = reinterpret_cast<const nvme::ConnectData*>(r->buf.data);
    if (cmd.recfmt != 0) {
        connect_fail(
            r, nvme::sc_cmd::kConnectIncompatibleFormat,
            invalid_param(nvme::kConnectIattrCommand, offsetof(nvme::ConnectCommand, recfmt)));
        return;
    }
    std::string subnqn = nqn_from_field(data->subnqn, sizeof data->subnqn);
    std::string hostnqn = nqn_from_field(data->hostnqn, sizeof data->hostnqn);
    if (cmd.sqsize == 0 || cmd.sqsize >= kMaxQueueEntries) {
        invalid_params(r, nvme::kConnectIattrCommand, kIpoSqsize);
        return;
    }
    // The host NQN is an identity, not an address: like SPDK's and the kernel's targets we
    // only require a terminated string of legal length. SPDK's initiator tools send an empty
    // one unless told otherwise (an anonymous host: allowed only where any host is).
    if (hostnqn.size() > nvme::kNqnMaxLength) {
        NOC_INFO("nvmf", "Connect to {} refused: host NQN of {} bytes (at most {})", subnqn,
                 hostnqn.size(), nvme::kNqnMaxLength);
        invalid_params(r, nvme::kConnectIattrData, kIpoHostnqn);
        return;
    }
    const bool discovery = subnqn == nvme::kDiscoveryNqn;
    PgSubsystem* s = nullptr;
    if (!discovery) {
        s = pg->find_subsystem(subnqn);
        if (!s || !s->info->listener_allowed(c->listener_id())) {
            NOC_INFO("nvmf", "Connect from host '{}' refused: {} {}", hostnqn, subnqn,
                     s ? "is not served on this listener" : "is not a subsystem here");
            invalid_params(r, nvme::kConnectIattrData, kIpoSubnqn);
            return;
        }
        if (!s->info->host_allowed(hostnqn)) {
            NOC_INFO("nvmf", "Connect refused: host '{}' may not connect to {}", hostnqn, subnqn);
            connect_fail(r, nvme::sc_cmd::kConnectInvalidHost,
                         invalid_param(nvme::kConnectIattrData, kIpoHostnqn));
            return;
        }
    }
    const SubsystemInfo* tls_info = s ? s->info.get() : nullptr;
    if (const char* why = secure_channel_refusal(c, tls_info, hostnqn, subnqn)) {
        NOC_INFO("nvmf", "Connect from host '{}' to {} refused: {}", hostnqn, subnqn, why);
        connect_fail(r, nvme::sc_cmd::kConnectInvalidHost,
                     invalid_param(nvme::kConnectIattrData, kIpoHostnqn));
        return;
    }
    if (cmd.qid == 0) {
        if (data->cntlid != nvme::kCntlidDynamic) {
            invalid_params(r, nvme::kConnectIattrData, kIpoCntlid);
            return;
        }
        const uint16_t cntlid = pg->alloc_cntlid();
        if (cntlid == 0) {
            connect_fail(r, nvme::sc_cmd::kConnectControllerBusy);
            return;
        }
        auto* ctrl = new Controller(pg, c, s, cntlid, hostnqn, data->hostid, cmd.kato);
        pg->add_controller(ctrl);
        c->set_admin(ctrl, s, cntlid, static_cast<uint16_t>(cmd.sqsize + 1));
        NOC_INFO("nvmf", "controller {} of {} for host {} on poll group {} (KATO {} ms)", cntlid,
                 subnqn, hostnqn, pg->index(), uint32_t{cmd.kato});
        const SubsystemInfo* info = s ? s->info.get() : pg->snapshot().discovery.get();
        r->rsp.dw0 = cntlid | maybe_require_auth(c, info, hostnqn);
        c->complete(r, Status::success());
        return;
    }
    if (discovery) {
        invalid_params(r, nvme::kConnectIattrCommand, kIpoQid);
        return;
    }
    PollGroup* owner = pg->target()->owner_of_cntlid(data->cntlid);
    if (!owner) {
        invalid_params(r, nvme::kConnectIattrData, kIpoCntlid);
        return;
    }
    auto* x = new IoConnect{c,
                            r,
                            pg,
                            owner,
                            c->id(),
                            data->cntlid,
                            cmd.qid,
                            cmd.sqsize,
                            std::move(subnqn),
                            std::move(hostnqn)};
    c->begin_external(r);
    owner->thread()->send([x] { io_connect_at_owner(x); });
}

void property_get(Request* r, Controller* ctrl) {
    const auto& cmd = reinterpret_cast<const nvme::PropertyGetCommand&>(r->cmd);
    const bool eight = cmd.attrib & 1;
    uint64_t v;
    switch (cmd.offset) {
        case nvme::prop::kCap:
            v = ctrl->cap();
            break;
        case nvme::prop::kVs:
            v = nvme::make_version(1, 3);
            break;
        case nvme::prop::kCc:
            v = ctrl->cc();
            break;
        case nvme::prop::kCsts:
            v = ctrl->csts();
            break;
        default:
            r->conn->complete(r, Status::generic(nvme::sc::kInvalidField, true));
            return;
    }
    if (!eight && cmd.offset == nvme::prop::kCap) {
        // A 4-byte read of CAP returns its low half; CAP+4 is not separately addressable here.
        v &= 0xFFFFFFFF;
    }
    r->rsp.dw0 = static_cast<uint32_t>(v);
    r->rsp.dw1 = eight ? static_cast<uint32_t>(v >> 32) : 0;
    r->conn->complete(r, Status::success());
}

void property_set(Request* r, Controller* ctrl) {
    const auto& cmd = reinterpret_cast<const nvme::PropertySetCommand&>(r->cmd);
    if (cmd.offset != nvme::prop::kCc || (cmd.attrib & 1) ||
        !ctrl->set_cc(static_cast<uint32_t>(cmd.value))) {
        r->conn->complete(r, Status::generic(nvme::sc::kInvalidField, true));
        return;
    }
    r->conn->complete(r, Status::success());
}

// AUTH_Send / AUTH_Receive: bytes 40-47 carry SECP/SPSP and the transfer length.
const auth::CommandFields& auth_fields(const Request* r) {
    return *reinterpret_cast<const auth::CommandFields*>(reinterpret_cast<const uint8_t*>(&r->cmd) +
                                                         40);
}

void log_auth_outcome(TcpConn* c, QueueAuth* a, bool was_authenticated) {
    if (a->authenticated() && !was_authenticated)
        NOC_INFO("nvmf",
                 "controller {} queue {}: host authenticated (DH-HMAC-CHAP, hmac({}), DH group "
                 "{}{})",
                 c->cntlid(), c->qid(), security::hash_name(a->hash()),
                 security::dh_group_name(a->dh_group()),
                 a->bidirectional() ? ", controller authenticated too" : "");
    else if (a->failed() && !a->last_error().empty())
        NOC_WARN("nvmf", "controller {} queue {}: authentication failed: {}", c->cntlid(), c->qid(),
                 a->last_error());
}

// A key pair to generate or a shared secret to derive, on the DH thread; the AUTH_Send waits
// for it (as for a bdev I/O: an external request) and completes when it comes back.
struct DhJob {
    TcpConn* conn;
    Request* req;
    Thread* home;
    bool keygen;
    uint8_t group;
    std::shared_ptr<const security::DhKeyPair> kp;  // for the shared secret
    std::vector<uint8_t> peer;
    std::shared_ptr<security::DhKeyPair> generated;
    std::vector<uint8_t> key;
    std::string err;
};

void dh_done(DhJob* job) {
    std::unique_ptr<DhJob> j(job);
    TcpConn* c = j->conn;
    Request* r = j->req;
    if (!c->end_external(r)) return;  // the connection closed meanwhile
    QueueAuth* a = c->auth();
    if (j->keygen)
        a->set_key_pair(std::move(j->generated), j->err);
    else
        a->finish_reply(std::move(j->key), j->err);
    log_auth_outcome(c, a, false);
    c->complete(r, Status::success());
}

void auth_send_with_data(Request* r) {
    TcpConn* c = r->conn;
    QueueAuth* a = c->auth();
    const bool was = a->authenticated();
    a->on_send(reinterpret_cast<const uint8_t*>(r->buf.data), r->data_len);
    if (was && !a->authenticated()) c->restart_auth_clock();  // a re-authentication began
    Thread* helper = Runtime::offload_thread();
    if (helper && (a->needs_key_pair() || a->needs_session_key())) {
        auto* job = new DhJob{c,
                              r,
                              Thread::current(),
                              a->needs_key_pair(),
                              a->dh_group(),
                              a->dh(),
                              a->peer_value(),
                              nullptr,
                              {},
                              {}};
        c->begin_external(r);
        helper->send([job] {
            if (job->keygen)
                job->generated = security::DhKeyPair::generate(job->group, &job->err);
            else
                job->key = job->kp->shared_secret(job->peer, &job->err);
            job->home->send([job] { dh_done(job); });
        });
        return;
    }
    log_auth_outcome(c, a, was);
    c->complete(r, Status::success());
}

void auth_receive_with_data(Request* r) {
    TcpConn* c = r->conn;
    QueueAuth* a = c->auth();
    const bool was = a->authenticated();
    if (a->on_receive(reinterpret_cast<uint8_t*>(r->buf.data), r->data_len) != 0) {
        c->complete(r, Status::generic(nvme::sc::kInvalidField, true));
        return;
    }
    log_auth_outcome(c, a, was);
    c->complete_c2h(r, r->data_len);
}

void auth_command(Request* r, bool send) {
    TcpConn* c = r->conn;
    const auth::CommandFields& f = auth_fields(r);
    if (!c->auth()) {
        // Nobody asked this queue to authenticate.
        c->complete(r, Status::generic(nvme::sc::kCommandSequenceError, true));
        return;
    }
    if (f.secp != auth::kSecpDhchap || f.spsp0 != auth::kSpsp || f.spsp1 != auth::kSpsp ||
        f.length == 0 || f.length > 8192) {
        c->complete(r, Status::generic(nvme::sc::kInvalidField, true));
        return;
    }
    c->with_data(r, f.length, send, send ? auth_send_with_data : auth_receive_with_data);
}

}  // namespace

void fabrics_command(Request* r) {
    TcpConn* c = r->conn;
    const uint8_t fct = r->cmd.fabrics_type();
    if (fct == nvme::fctype::kConnect) {
        if (c->connected()) {
            c->complete(r, Status::generic(nvme::sc::kCommandSequenceError, true));
            return;
        }
        c->with_data(r, sizeof(nvme::ConnectData), true, connect_with_data);
        return;
    }
    if (!c->connected()) {
        c->complete(r, Status::generic(nvme::sc::kCommandSequenceError, true));
        return;
    }
    switch (fct) {
        case nvme::fctype::kPropertyGet:
        case nvme::fctype::kPropertySet: {
            Controller* ctrl = c->ctrl();
            if (c->auth_pending()) {
                c->complete(r,
                            Status::command_specific(nvme::sc_cmd::kAuthenticationRequired, true));
            } else if (c->qid() != 0 || !ctrl) {
                c->complete(r, Status::generic(nvme::sc::kInvalidField, true));
            } else if (fct == nvme::fctype::kPropertyGet) {
                property_get(r, ctrl);
            } else {
                property_set(r, ctrl);
            }
            return;
        }
        case nvme::fctype::kDisconnect:
            c->complete(r, Status::success());
            return;
        case nvme::fctype::kAuthSend:
        case nvme::fctype::kAuthReceive:
            auth_command(r, fct == nvme::fctype::kAuthSend);
            return;
        default:
            c->complete(r, Status::generic(nvme::sc::kInvalidOpcode, true));
            return;
    }
}

}  // namespace nocstor::nvmf
