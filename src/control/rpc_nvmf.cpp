// NVMe-oF methods with SPDK's names and parameters, over nvmf::NvmfTarget, and the "nvmf"
// section of save_config.
#include "bdev/bdev.h"
#include "control/config.h"
#include "control/json_params.h"
#include "control/rest_api.h"
#include "control/rpc_decode.h"
#include "control/rpc_registry.h"
#include "nvmf/poll_group.h"
#include "nvmf/spec.h"
#include "nvmf/target.h"
#include "security/dhchap.h"
#include "security/dhchap_names.h"
#include "security/keyring.h"

#include <fmt/format.h>

#include <cerrno>

namespace nocstor::control {

using nlohmann::json;
using nvmf::NvmfTarget;

namespace {

// Transport options as given (SPDK has many; TCP is the only transport here). Kept for
// nvmf_get_transports and save_config.
json g_transport = nullptr;

NvmfTarget* target(const RpcReply& reply) {
    NvmfTarget* t = NvmfTarget::instance();
    if (!t) reply.error(rpc_error::kInvalidState, "the NVMe-oF target is not running");
    return t;
}

// Answers a DoneFn-style completion: rc 0 → result, else an error with the target's message.
nvmf::DoneFn answer(RpcReply reply, json result = true) {
    return [reply, result](int rc, std::string err) {
        if (rc == 0)
            reply.result(result);
        else if (rc == -EINVAL)
            reply.invalid(err);
        else
            reply.error(rc, err);
    };
}

// SPDK can run several NVMe-oF targets in one process, named by tgt_name; nocstor has one, which
// answers to SPDK's default name.
ParamsDecoder& one_target(ParamsDecoder& d) {
    return d.unsupported("tgt_name", "more than one NVMe-oF target (tgt_name)", {"nvmf_tgt"});
}

// {"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"4420"}
bool decode_listen_address(const char* method, const json& j, nvmf::ListenAddress* out,
                           const RpcReply& reply) {
    std::string trtype, adrfam = "IPv4", traddr, trsvcid = "4420";
    ParamsDecoder d(std::string(method) + ": listen_address");
    d.required("trtype", &trtype)
        .optional("adrfam", &adrfam)
        .required("traddr", &traddr)
        .optional("trsvcid", &trsvcid);
    if (!decode_or_reply(d, j, reply)) return false;
    if (trtype != "TCP" && trtype != "tcp") {
        reply.invalid(std::string(method) + ": only trtype TCP is supported");
        return false;
    }
    if (adrfam != "IPv4" && adrfam != "IPv6" && adrfam != "ipv4" && adrfam != "ipv6") {
        reply.invalid(std::string(method) + ": adrfam must be IPv4 or IPv6");
        return false;
    }
    char* end = nullptr;
    unsigned long port = strtoul(trsvcid.c_str(), &end, 10);
    if (trsvcid.empty() || *end || port > 65535) {
        reply.invalid(std::string(method) + ": trsvcid must be a port number (0-65535)");
        return false;
    }
    bool v6 = adrfam == "IPv6" || adrfam == "ipv6";
    if (v6 != (traddr.find(':') != std::string::npos)) {
        reply.invalid(std::string(method) + ": traddr '" + traddr + "' is not an " + adrfam +
                      " address");
        return false;
    }
    out->traddr = traddr;
    out->port = uint16_t(port);
    return true;
}

json listen_address_json(const nvmf::ListenAddress& a) {
    return {{"trtype", "TCP"},
            {"adrfam", a.ipv6() ? "IPv6" : "IPv4"},
            {"traddr", a.traddr},
            {"trsvcid", std::to_string(a.port)}};
}

std::string nguid_hex(const Uuid& u) {
    std::string s;
    for (uint8_t b : u) s += fmt::format("{:02X}", b);
    return s;
}

void create_transport(const json& params, RpcReply reply) {
    std::string trtype;
    ParamsDecoder d("nvmf_create_transport");
    d.required("trtype", &trtype);
    one_target(d);
    // SPDK's tuning knobs, and those of its other transports (RDMA, vfio-user) that rpc.py may
    // send: accepted and kept for nvmf_get_transports/save_config; nocstor's TCP transport sizes
    // itself (limits.h).
    for (const char* key :
         {"max_queue_depth", "max_io_qpairs_per_ctrlr", "in_capsule_data_size", "max_io_size",
          "io_unit_size", "max_aq_depth", "num_shared_buffers", "buf_cache_size",
          "iobuf_small_cache_size", "iobuf_large_cache_size", "max_srq_depth", "sock_priority",
          "abort_timeout_sec", "control_msg_num", "acceptor_poll_rate", "ack_timeout",
          "data_wr_pool_size", "kas", "min_kato"})
        d.hint(key, ParamKind::kUnsigned);
    for (const char* key : {"num_cqe", "acceptor_backlog"}) d.hint(key, ParamKind::kInteger);
    for (const char* key :
         {"zcopy", "c2h_success", "no_srq", "no_wr_batching", "disable_mappable_bar0",
          "disable_adaptive_irq", "disable_shadow_doorbells", "disable_command_passthru"})
        d.hint(key, ParamKind::kBool);
    d.unsupported("dif_insert_or_strip", "DIF insert/strip")
        .unsupported("masked_oncs", "masking optional NVM commands (masked_oncs)")
        .unsupported("masked_fuses", "masking fused operations (masked_fuses)");
    if (!decode_or_reply(d, params, reply)) return;
    if (trtype != "TCP" && trtype != "tcp")
        return reply.invalid("nvmf_create_transport: only trtype TCP is supported, not '" + trtype +
                             "'");
    if (!g_transport.is_null())
        return reply.error(-EEXIST, "nvmf_create_transport: the TCP transport already exists");
    g_transport = params;
    g_transport["trtype"] = "TCP";
    reply.result(true);
}

void get_transports(const json& params, RpcReply reply) {
    std::optional<std::string> trtype;
    ParamsDecoder d("nvmf_get_transports");
    d.optional("trtype", &trtype);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    json out = json::array();
    if (!g_transport.is_null()) out.push_back(g_transport);
    reply.result(out);
}

void create_subsystem(const json& params, RpcReply reply) {
    nvmf::SubsystemParams p;
    std::optional<std::string> serial, model;
    std::optional<bool> allow_any;
    std::optional<uint32_t> max_ns;
    ParamsDecoder d("nvmf_create_subsystem");
    d.required("nqn", &p.nqn)
        .optional("serial_number", &serial)
        .optional("model_number", &model)
        .optional("allow_any_host", &allow_any)
        .optional("max_namespaces", &max_ns)
        // The default CNTLID range is the only one (each poll group owns a slice of it).
        .unsupported("min_cntlid", "a CNTLID range (min_cntlid)", {1})
        .unsupported("max_cntlid", "a CNTLID range (max_cntlid)", {0xFFEF})
        .unsupported("ana_reporting", "ANA reporting")
        .unsupported("passthrough", "passthrough subsystems")
        .unsupported("enable_nssr", "NVM subsystem reset")
        // Limits on DSM/write-zeroes sizes: the bdev layer splits large requests anyway.
        .hint("max_discard_size_kib", ParamKind::kUnsigned)
        .hint("max_write_zeroes_size_kib", ParamKind::kUnsigned)
        .hint("dmrsl", ParamKind::kUnsigned)
        .hint("wzsl", ParamKind::kUnsigned);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    if (serial) {
        if (serial->empty() || serial->size() > 20)
            return reply.invalid("nvmf_create_subsystem: serial_number must be 1-20 characters");
        p.serial = *serial;
    }
    if (model) {
        if (model->empty() || model->size() > 40)
            return reply.invalid("nvmf_create_subsystem: model_number must be 1-40 characters");
        p.model = *model;
    }
    if (allow_any) p.allow_any_host = *allow_any;
    if (max_ns) p.max_namespaces = *max_ns == 0 ? 32 : *max_ns;
    NvmfTarget* t = target(reply);
    if (!t) return;
    t->create_subsystem(p, answer(reply));
}

void delete_subsystem(const json& params, RpcReply reply) {
    std::string nqn;
    ParamsDecoder d("nvmf_delete_subsystem");
    d.required("nqn", &nqn);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    if (NvmfTarget* t = target(reply)) t->delete_subsystem(nqn, answer(reply));
}

// A host's key names as nvmf_subsystem_add_host takes them.
void add_key_names(const nvmf::HostKeys& k, json* out) {
    if (k.dhchap()) (*out)["dhchap_key"] = k.key_name;
    if (!k.ctrlr_key_name.empty()) (*out)["dhchap_ctrlr_key"] = k.ctrlr_key_name;
    if (!k.psk_name.empty()) (*out)["psk"] = k.psk_name;
}

json subsystem_json(const nvmf::SubsystemConfig& s) {
    json listeners = json::array();
    for (const auto& l : s.listeners) listeners.push_back(listen_address_json(l));
    bool discovery = s.params.nqn == nvme::kDiscoveryNqn;
    json out = {{"nqn", s.params.nqn},
                {"subtype", discovery ? "Discovery" : "NVMe"},
                {"listen_addresses", listeners},
                {"allow_any_host", discovery ? true : s.params.allow_any_host}};
    json hosts = json::array();
    for (const auto& h : s.params.hosts) {
        json hj = {{"nqn", h}};
        auto k = s.params.host_keys.find(h);
        if (k != s.params.host_keys.end()) add_key_names(*k->second, &hj);
        hosts.push_back(hj);
    }
    out["hosts"] = hosts;
    if (!discovery) {
        out["serial_number"] = s.params.serial;
        out["model_number"] = s.params.model;
        out["max_namespaces"] = s.params.max_namespaces;
        json nss = json::array();
        for (const auto& ns : s.namespaces)
            nss.push_back({{"nsid", ns->nsid},
                           {"bdev_name", ns->bdev_name},
                           {"name", ns->bdev_name},
                           {"uuid", uuid_to_string(ns->uuid)},
                           {"nguid", nguid_hex(ns->uuid)}});
        out["namespaces"] = nss;
    }
    return out;
}

void get_subsystems(const json& params, RpcReply reply) {
    std::optional<std::string> nqn;
    ParamsDecoder d("nvmf_get_subsystems");
    d.optional("nqn", &nqn);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    NvmfTarget* t = target(reply);
    if (!t) return;
    json out = json::array();
    for (const auto& s : t->list_subsystems())
        if (!nqn || s.params.nqn == *nqn) out.push_back(subsystem_json(s));
    if (nqn && out.empty())
        return reply.error(-ENODEV, "nvmf_get_subsystems: no subsystem " + *nqn);
    reply.result(out);
}

void listener_method(const json& params, RpcReply reply, bool add) {
    const char* method = add ? "nvmf_subsystem_add_listener" : "nvmf_subsystem_remove_listener";
    std::string nqn;
    json addr;
    int cluster = -1;
    bool secure = false;
    ParamsDecoder d(method);
    d.required("nqn", &nqn).required_object("listen_address", &addr);
    one_target(d);
    if (add) {
        // nocstor: bind the listener to a data cluster (docs/remote.md).
        d.optional("cluster", &cluster).range(0, 1024);
        d.optional("secure_channel", &secure)
            .unsupported("ana_state", "ANA states (ana_state)", {"optimized"})
            // The socket driver is chosen for the whole target (--sock-impl).
            .hint("sock_impl", ParamKind::kString)
            .hint("numa_id", ParamKind::kInteger);
    }
    if (!decode_or_reply(d, params, reply)) return;
    nvmf::ListenAddress la;
    if (!decode_listen_address(method, addr, &la, reply)) return;
    NvmfTarget* t = target(reply);
    if (!t) return;
    if (add)
        t->add_listener(nqn, la, answer(reply), cluster, secure);
    else
        t->remove_listener(nqn, la, answer(reply));
}

void get_listeners(const json& params, RpcReply reply) {
    std::string nqn;
    ParamsDecoder d("nvmf_subsystem_get_listeners");
    d.required("nqn", &nqn);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    NvmfTarget* t = target(reply);
    if (!t) return;
    for (const auto& s : t->list_subsystems()) {
        if (s.params.nqn != nqn) continue;
        // SPDK adds "ana_states" only for subsystems with ANA reporting, which nocstor lacks.
        json out = json::array();
        for (const auto& l : s.listeners) {
            json e = {{"address", listen_address_json(l)}};
            if (const int c = t->listener_cluster(l); c >= 0) e["cluster"] = c;
            if (t->listener_secure(l)) e["secure_channel"] = true;
            out.push_back(e);
        }
        return reply.result(out);
    }
    reply.error(-ENODEV, "nvmf_subsystem_get_listeners: no subsystem " + nqn);
}

void add_ns(const json& params, RpcReply reply) {
    std::string nqn;
    json ns;
    ParamsDecoder d("nvmf_subsystem_add_ns");
    d.required("nqn", &nqn).required_object("namespace", &ns);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    nvmf::NamespaceParams p;
    std::optional<uint32_t> nsid;
    std::optional<std::string> uuid;
    ParamsDecoder nd("nvmf_subsystem_add_ns: namespace");
    nd.required("bdev_name", &p.bdev_name)
        .optional("nsid", &nsid)
        .optional("uuid", &uuid)
        .unsupported("nguid", "setting the nguid (derived from the uuid: give 'uuid')")
        .unsupported("eui64", "setting the eui64 (derived from the uuid: give 'uuid')")
        .unsupported("ptpl_file", "persistent reservations (ptpl_file)")
        .unsupported("anagrpid", "ANA groups (anagrpid)")
        .unsupported("no_auto_visible", "per-host namespace visibility (no_auto_visible)")
        .hint("hide_metadata", ParamKind::kBool);  // namespaces have no metadata here
    if (!decode_or_reply(nd, ns, reply)) return;
    if (nsid) {
        if (*nsid == 0xFFFFFFFFu)
            return reply.invalid("nvmf_subsystem_add_ns: nsid 0xFFFFFFFF is reserved");
        p.nsid = *nsid;
    }
    if (uuid) {
        Uuid u;
        if (!uuid_parse(*uuid, &u))
            return reply.invalid("nvmf_subsystem_add_ns: uuid '" + *uuid + "' is not a UUID");
        p.uuid = u;
    }
    NvmfTarget* t = target(reply);
    if (!t) return;
    t->add_namespace(nqn, p, [reply](int rc, std::string err, uint32_t nsid) {
        if (rc == 0)
            reply.result(nsid);
        else if (rc == -EINVAL)
            reply.invalid(err);
        else
            reply.error(rc, err);
    });
}

void remove_ns(const json& params, RpcReply reply) {
    std::string nqn;
    uint32_t nsid = 0;
    ParamsDecoder d("nvmf_subsystem_remove_ns");
    d.required("nqn", &nqn).required("nsid", &nsid);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    if (NvmfTarget* t = target(reply)) t->remove_namespace(nqn, nsid, answer(reply));
}

// The keys named by nvmf_subsystem_add_host, from the keyring. nullptr with *err when a name
// is unknown or its secret is of the wrong kind; nullptr without error when no key.
std::shared_ptr<const nvmf::HostKeys> host_keys(const std::string& key, const std::string& ctrlr,
                                                const std::string& psk, std::string* err) {
    if (key.empty() && ctrlr.empty() && psk.empty()) return nullptr;
    if (key.empty() && !ctrlr.empty()) {
        *err = "dhchap_ctrlr_key needs dhchap_key (the host authenticates first)";
        return nullptr;
    }
    auto load = [&](const std::string& name, security::DhchapSecret* out) {
        return security::Keyring::instance().dhchap_secret(name, out, err);
    };
    auto k = std::make_shared<nvmf::HostKeys>();
    k->key_name = key;
    k->ctrlr_key_name = ctrlr;
    if (!key.empty() && !load(key, &k->host)) return nullptr;
    if (!ctrlr.empty()) {
        k->ctrl.emplace();
        if (!load(ctrlr, &*k->ctrl)) return nullptr;
    }
    if (!psk.empty()) {
        k->psk_name = psk;
        k->psk.emplace();
        if (!security::Keyring::instance().tls_psk(psk, &*k->psk, err)) return nullptr;
    }
    return k;
}

void host_method(const json& params, RpcReply reply, bool add) {
    const char* method = add ? "nvmf_subsystem_add_host" : "nvmf_subsystem_remove_host";
    std::string nqn, host, key, ctrlr_key, psk;
    ParamsDecoder d(method);
    d.required("nqn", &nqn).required("host", &host);
    one_target(d);
    if (add) {
        d.optional("psk", &psk)
            .optional("dhchap_key", &key)
            .optional("dhchap_ctrlr_key", &ctrlr_key);
    } else {
        // How long to wait for the host's connections to go: they are dropped at once here.
        d.hint("timeout_ms", ParamKind::kUnsigned);
    }
    if (!decode_or_reply(d, params, reply)) return;
    NvmfTarget* t = target(reply);
    if (!t) return;
    if (add) {
        std::string err;
        auto keys = host_keys(key, ctrlr_key, psk, &err);
        if (!keys && !err.empty()) return reply.invalid(std::string(method) + ": " + err);
        t->add_host(nqn, host, std::move(keys), answer(reply));
    } else
        t->remove_host(nqn, host, answer(reply));
}

void allow_any_host(const json& params, RpcReply reply) {
    std::string nqn;
    bool allow = false;
    ParamsDecoder d("nvmf_subsystem_allow_any_host");
    d.required("nqn", &nqn).required("allow_any_host", &allow);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    if (NvmfTarget* t = target(reply)) t->set_allow_any_host(nqn, allow, answer(reply));
}

bool subsystem_exists(NvmfTarget* t, const std::string& nqn) {
    for (const auto& s : t->list_subsystems())
        if (s.params.nqn == nqn) return true;
    return false;
}

void get_controllers(const json& params, RpcReply reply) {
    std::string nqn;
    ParamsDecoder d("nvmf_subsystem_get_controllers");
    d.required("nqn", &nqn);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    NvmfTarget* t = target(reply);
    if (!t) return;
    if (!subsystem_exists(t, nqn))
        return reply.error(-ENODEV, "nvmf_subsystem_get_controllers: no subsystem " + nqn);
    t->list_controllers(nqn, [reply](std::vector<nvmf::ControllerInfo> cs) {
        json out = json::array();
        for (const auto& c : cs)
            out.push_back({{"cntlid", c.cntlid},
                           {"hostnqn", c.hostnqn},
                           {"kato_ms", c.kato_ms},
                           {"poll_group", c.poll_group},
                           {"num_io_qpairs", c.io_queues}});
        reply.result(out);
    });
}

void get_qpairs(const json& params, RpcReply reply) {
    std::string nqn;
    ParamsDecoder d("nvmf_subsystem_get_qpairs");
    d.required("nqn", &nqn);
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    NvmfTarget* t = target(reply);
    if (!t) return;
    if (!subsystem_exists(t, nqn))
        return reply.error(-ENODEV, "nvmf_subsystem_get_qpairs: no subsystem " + nqn);
    t->list_qpairs(nqn, [reply, t](std::vector<nvmf::QpairInfo> qs) {
        json out = json::array();
        for (const auto& q : qs) {
            json e = {{"cntlid", q.cntlid},
                      {"qid", q.qid},
                      {"state", "active"},
                      {"thread", "poll_group_" + std::to_string(q.poll_group)},
                      {"listen_address", q.listen_address},
                      {"commands", q.commands}};
            if (q.poll_group < t->poll_groups().size())
                e["cluster"] = t->poll_groups()[q.poll_group]->thread()->cluster_id();
            out.push_back(e);
        }
        reply.result(out);
    });
}

void get_stats(const json& params, RpcReply reply) {
    ParamsDecoder d("nvmf_get_stats");
    one_target(d);
    if (!decode_or_reply(d, params, reply)) return;
    NvmfTarget* t = target(reply);
    if (!t) return;
    t->get_stats([reply](nvmf::TargetStats s) {
        json groups = json::array();
        for (const auto& g : s.poll_groups)
            groups.push_back({{"name", "poll_group_" + std::to_string(g.index)},
                              {"current_qpairs", g.connections},
                              {"accepted_connections", g.accepted},
                              {"commands", g.commands},
                              {"term_reqs_sent", g.term_reqs_sent},
                              {"keep_alive_timeouts", g.kato_expired},
                              {"unconnected_qpairs", g.unconnected},
                              {"icreq_timeouts", g.icreq_timeouts},
                              {"connect_timeouts", g.connect_timeouts},
                              {"auth_timeouts", g.auth_timeouts},
                              {"tls_established", g.tls_established},
                              {"tls_failures", g.tls_failures},
                              {"unconnected_evicted", g.unconnected_evicted},
                              {"transports", json::array({{{"trtype", "TCP"}}})}});
        reply.result({{"tick_rate", 1000000000}, {"poll_groups", groups}});
    });
}

// nvmf_set_config: the DH-HMAC-CHAP digests and DH groups the target accepts, in the order it
// prefers them. SPDK's other knobs (acceptor poll rate, passthru, poll group mask, discovery
// filter, duplicate host policy) tune SPDK itself and are accepted without effect.
void set_config(const json& params, RpcReply reply) {
    std::optional<std::vector<std::string>> digests, groups;
    ParamsDecoder d("nvmf_set_config");
    d.optional("dhchap_digests", &digests).optional("dhchap_dhgroups", &groups).allow_unknown();
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    nvmf::AuthPolicy p = *nvmf::target_auth_policy();
    const nvmf::AuthPolicy all;  // an empty list: every one, in our order
    if (!security::apply_digest_names(digests, all.digests, &p.digests, &err) ||
        !security::apply_dhgroup_names(groups, all.dhgroups, &p.dhgroups, &err))
        return reply.invalid("nvmf_set_config: " + err);
    nvmf::set_target_auth_policy(std::move(p));
    reply.result(true);
}

json nvmf_section() {
    json calls = json::array();
    {
        const auto p = nvmf::target_auth_policy();
        const nvmf::AuthPolicy defaults;
        if (p->digests != defaults.digests || p->dhgroups != defaults.dhgroups)
            calls.push_back({{"method", "nvmf_set_config"},
                             {"params",
                              {{"dhchap_digests", security::digest_names(p->digests)},
                               {"dhchap_dhgroups", security::dhgroup_names(p->dhgroups)}}}});
    }
    NvmfTarget* t = NvmfTarget::instance();
    if (!t) return calls;
    if (!g_transport.is_null())
        calls.push_back({{"method", "nvmf_create_transport"}, {"params", g_transport}});
    for (const auto& [host, k] : t->discovery_keys()) {
        json hp = {{"nqn", nvme::kDiscoveryNqn}, {"host", host}, {"dhchap_key", k->key_name}};
        if (!k->ctrlr_key_name.empty()) hp["dhchap_ctrlr_key"] = k->ctrlr_key_name;
        calls.push_back({{"method", "nvmf_subsystem_add_host"}, {"params", hp}});
    }
    for (const auto& s : t->list_subsystems()) {
        const std::string& nqn = s.params.nqn;
        if (nqn != nvme::kDiscoveryNqn) {
            calls.push_back({{"method", "nvmf_create_subsystem"},
                             {"params",
                              {{"nqn", nqn},
                               {"serial_number", s.params.serial},
                               {"model_number", s.params.model},
                               {"max_namespaces", s.params.max_namespaces},
                               {"allow_any_host", s.params.allow_any_host}}}});
            for (const auto& h : s.params.hosts) {
                json hp = {{"nqn", nqn}, {"host", h}};
                auto k = s.params.host_keys.find(h);
                if (k != s.params.host_keys.end()) add_key_names(*k->second, &hp);
                calls.push_back({{"method", "nvmf_subsystem_add_host"}, {"params", hp}});
            }
            for (const auto& ns : s.namespaces)
                calls.push_back({{"method", "nvmf_subsystem_add_ns"},
                                 {"params",
                                  {{"nqn", nqn},
                                   {"namespace",
                                    {{"nsid", ns->nsid},
                                     {"bdev_name", ns->bdev_name},
                                     {"uuid", uuid_to_string(ns->uuid)}}}}}});
        }
        for (const auto& l : s.listeners) {
            json params = {{"nqn", nqn}, {"listen_address", listen_address_json(l)}};
            if (const int c = t->listener_cluster(l); c >= 0) params["cluster"] = c;
            if (t->listener_secure(l)) params["secure_channel"] = true;
            calls.push_back({{"method", "nvmf_subsystem_add_listener"}, {"params", params}});
        }
    }
    return calls;
}

void nvmf_metrics(std::string& out) {
    NvmfTarget* t = NvmfTarget::instance();
    if (!t) return;
    prometheus_family(out, "nocstor_nvmf_namespaces", "gauge", "Namespaces per subsystem.");
    for (const auto& s : t->list_subsystems())
        if (s.params.nqn != nvme::kDiscoveryNqn)
            out += fmt::format("nocstor_nvmf_namespaces{{subsystem=\"{}\"}} {}\n",
                               escape_prometheus_label(s.params.nqn), s.namespaces.size());
}

// Connection counters of every poll group (gathered on their threads).
void nvmf_connection_metrics(std::function<void(std::string)> done) {
    NvmfTarget* t = NvmfTarget::instance();
    if (!t) return done("");
    t->get_stats([done = std::move(done)](nvmf::TargetStats s) {
        std::string out;
        using Group = nvmf::TargetStats::Group;
        static const PollGroupFamily<Group> kFamilies[] = {
            {"nocstor_nvmf_connections", "gauge", "Open NVMe/TCP connections (queue pairs).",
             &Group::connections},
            {"nocstor_nvmf_connections_unconnected", "gauge",
             "Open NVMe/TCP connections that have not completed a Fabrics Connect.",
             &Group::unconnected},
            {"nocstor_nvmf_connections_accepted_total", "counter", "NVMe/TCP connections accepted.",
             &Group::accepted},
            {"nocstor_nvmf_commands_total", "counter", "NVMe commands received.", &Group::commands},
            {"nocstor_nvmf_term_reqs_sent_total", "counter",
             "Connections terminated with a C2HTermReq (protocol errors).", &Group::term_reqs_sent},
            {"nocstor_nvmf_keep_alive_timeouts_total", "counter",
             "Controllers torn down for a missed keep-alive.", &Group::kato_expired},
            {"nocstor_nvmf_icreq_timeouts_total", "counter",
             "Connections closed for sending no ICReq in time.", &Group::icreq_timeouts},
            {"nocstor_nvmf_connect_timeouts_total", "counter",
             "Connections closed for completing no Connect in time.", &Group::connect_timeouts},
            {"nocstor_nvmf_auth_timeouts_total", "counter",
             "Queues closed for completing no DH-HMAC-CHAP authentication in time.",
             &Group::auth_timeouts},
            {"nocstor_nvmf_tls_established_total", "counter",
             "TLS secure channels set up (secure_channel listeners).", &Group::tls_established},
            {"nocstor_nvmf_tls_failures_total", "counter",
             "Connections closed for a failed TLS handshake or record (wrong or unknown PSK, "
             "plain NVMe/TCP on a secure listener).",
             &Group::tls_failures},
            {"nocstor_nvmf_unconnected_evicted_total", "counter",
             "Connections without Connect closed to make room for new ones.",
             &Group::unconnected_evicted},
        };
        prometheus_poll_groups(out, kFamilies, s.poll_groups);
        done(std::move(out));
    });
}

}  // namespace

void register_nvmf_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("nvmf_set_config", set_config, true);
    r.add("nvmf_create_transport", create_transport, true);
    r.add("nvmf_get_transports", get_transports);
    r.add("nvmf_create_subsystem", create_subsystem, true);
    r.add("nvmf_delete_subsystem", delete_subsystem, true);
    r.add("nvmf_get_subsystems", get_subsystems);
    r.add(
        "nvmf_subsystem_add_listener",
        [](const json& p, RpcReply r) { listener_method(p, std::move(r), true); }, true);
    r.add(
        "nvmf_subsystem_remove_listener",
        [](const json& p, RpcReply r) { listener_method(p, std::move(r), false); }, true);
    r.add("nvmf_subsystem_get_listeners", get_listeners);
    r.add("nvmf_subsystem_add_ns", add_ns, true);
    r.add("nvmf_subsystem_remove_ns", remove_ns, true);
    r.add(
        "nvmf_subsystem_add_host",
        [](const json& p, RpcReply r) { host_method(p, std::move(r), true); }, true);
    r.add(
        "nvmf_subsystem_remove_host",
        [](const json& p, RpcReply r) { host_method(p, std::move(r), false); }, true);
    r.add("nvmf_subsystem_allow_any_host", allow_any_host, true);
    r.add("nvmf_subsystem_get_controllers", get_controllers);
    r.add("nvmf_subsystem_get_qpairs", get_qpairs);
    r.add("nvmf_get_stats", get_stats);
    register_config_section("nvmf", nvmf_section);
    add_metrics_source(nvmf_metrics);
    add_async_metrics_source(nvmf_connection_metrics);
}

}  // namespace nocstor::control
