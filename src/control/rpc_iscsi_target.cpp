// iSCSI target methods with SPDK's names and parameters (iscsi_*), the "iscsi" section of
// save_config, and the target's counters on /metrics.
#include <cerrno>

#include "control/config.h"
#include "control/json_params.h"
#include "control/rest_api.h"
#include "control/rpc_decode.h"
#include "control/rpc_registry.h"
#include "iscsi/target.h"
#include "util/prometheus.h"

#include <fmt/format.h>

namespace nocstor::control {

using nlohmann::json;
using namespace nocstor::iscsi_tgt;

namespace {

IscsiTarget* target_or_fail(const RpcReply& reply) {
    IscsiTarget* t = IscsiTarget::instance();
    if (!t) reply.error(-ENODEV, "the iSCSI target is not running");
    return t;
}

DoneFn answer(RpcReply reply, std::string method) {
    return [reply, method](int rc, std::string err) {
        if (rc == -EINVAL) return reply.invalid(method + ": " + err);
        if (rc) return reply.error(rc, method + ": " + err);
        reply.result(true);
    };
}

// AuthSettings fields shared by several methods.
struct AuthFields {
    std::optional<bool> disable, require, mutual;
    std::optional<int32_t> group;
    void add(ParamsDecoder& d) {
        d.optional("disable_chap", &disable)
            .optional("require_chap", &require)
            .optional("mutual_chap", &mutual)
            .optional("chap_group", &group);
    }
    AuthSettings apply(AuthSettings a) const {
        if (disable) a.disable_chap = *disable;
        if (require) a.require_chap = *require;
        if (mutual) a.mutual_chap = *mutual;
        if (group) a.chap_group = *group;
        return a;
    }
};

json auth_json(const AuthSettings& a) {
    return {{"disable_chap", a.disable_chap},
            {"require_chap", a.require_chap},
            {"mutual_chap", a.mutual_chap},
            {"chap_group", a.chap_group}};
}

bool parse_port(const json& v, uint16_t* out) {
    if (v.is_number_unsigned() && v.get<uint64_t>() <= 65535) {
        *out = uint16_t(v.get<uint64_t>());
        return true;
    }
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
            return false;
        const unsigned long n = std::stoul(s);
        if (n > 65535) return false;
        *out = uint16_t(n);
        return true;
    }
    return false;
}

bool parse_pg_ig_maps(const json& a, std::vector<std::pair<int, int>>* out, std::string* err) {
    for (const auto& m : a) {
        if (!m.is_object() || !m.contains("pg_tag") || !m.contains("ig_tag") ||
            !m["pg_tag"].is_number_integer() || !m["ig_tag"].is_number_integer() || m.size() != 2) {
            *err = "each pg_ig_maps entry is {pg_tag, ig_tag} with integer tags";
            return false;
        }
        out->emplace_back(m["pg_tag"].get<int>(), m["ig_tag"].get<int>());
    }
    return true;
}

// --- options ---

void set_options(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    IscsiOptions o = t->options();
    AuthFields af;
    ParamsDecoder d("iscsi_set_options");
    d.optional("node_base", &o.node_base)
        .optional("nop_timeout", &o.nop_timeout)
        .range(1, 3600)
        .optional("nop_in_interval", &o.nop_in_interval)
        .range(0, 3600)
        .optional("max_sessions", &o.max_sessions)
        .range(1, 65535)
        .optional("max_queue_depth", &o.max_queue_depth)
        .range(1, 4096)
        .optional("max_connections_per_session", &o.max_connections_per_session)
        .optional("default_time2wait", &o.default_time2wait)
        .range(0, 3600)
        .optional("default_time2retain", &o.default_time2retain)
        .range(0, 3600)
        .optional("first_burst_length", &o.first_burst_length)
        .optional("immediate_data", &o.immediate_data)
        .optional("error_recovery_level", &o.error_recovery_level)
        .optional("allow_duplicated_isid", &o.allow_duplicated_isid)
        .optional("max_recv_data_segment_length", &o.max_recv_data_segment_length)
        .optional("max_burst_length", &o.max_burst_length)
        .range(512, 16 * 1024 * 1024)
        .unsupported("auth_file", "a CHAP secret file (use iscsi_create_auth_group)")
        .hint("max_large_datain_per_connection", ParamKind::kUnsigned)
        .hint("max_r2t_per_connection", ParamKind::kUnsigned)
        .hint("pdu_pool_size", ParamKind::kUnsigned)
        .hint("immediate_data_pool_size", ParamKind::kUnsigned)
        .hint("data_out_pool_size", ParamKind::kUnsigned);
    af.add(d);
    if (!decode_or_reply(d, params, reply)) return;
    o.discovery_auth = af.apply(o.discovery_auth);
    t->set_options(o, answer(reply, "iscsi_set_options"));
}

json options_json(const IscsiOptions& o) {
    json j = {{"node_base", o.node_base},
              {"nop_timeout", o.nop_timeout},
              {"nop_in_interval", o.nop_in_interval},
              {"max_sessions", o.max_sessions},
              {"max_queue_depth", o.max_queue_depth},
              {"max_connections_per_session", o.max_connections_per_session},
              {"default_time2wait", o.default_time2wait},
              {"default_time2retain", o.default_time2retain},
              {"first_burst_length", o.first_burst_length},
              {"immediate_data", o.immediate_data},
              {"error_recovery_level", o.error_recovery_level},
              {"allow_duplicated_isid", o.allow_duplicated_isid},
              {"max_recv_data_segment_length", o.max_recv_data_segment_length},
              {"max_burst_length", o.max_burst_length}};
    j.update(auth_json(o.discovery_auth));
    return j;
}

void get_options(const json& params, RpcReply reply) {
    ParamsDecoder d("iscsi_get_options");
    if (!decode_or_reply(d, params, reply)) return;
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    reply.result(options_json(t->options()));
}

void set_discovery_auth(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    AuthFields af;
    ParamsDecoder d("iscsi_set_discovery_auth");
    af.add(d);
    if (!decode_or_reply(d, params, reply)) return;
    t->set_discovery_auth(af.apply(AuthSettings{}), answer(reply, "iscsi_set_discovery_auth"));
}

// --- auth groups ---

bool parse_secret(const json& s, ChapSecret* out, std::string* err) {
    ParamsDecoder d("secret");
    d.required("user", &out->user)
        .required("secret", &out->secret)
        .optional("muser", &out->muser)
        .optional("msecret", &out->msecret);
    return d.decode(s, err);
}

void create_auth_group(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    int32_t tag = 0;
    json secrets = json::array();
    ParamsDecoder d("iscsi_create_auth_group");
    d.required("tag", &tag).optional_array("secrets", &secrets);
    if (!decode_or_reply(d, params, reply)) return;
    std::vector<ChapSecret> v;
    for (const auto& s : secrets) {
        ChapSecret c;
        std::string err;
        if (!parse_secret(s, &c, &err)) return reply.invalid("iscsi_create_auth_group: " + err);
        v.push_back(std::move(c));
    }
    t->create_auth_group(tag, std::move(v), answer(reply, "iscsi_create_auth_group"));
}

void delete_auth_group(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    int32_t tag = 0;
    ParamsDecoder d("iscsi_delete_auth_group");
    d.required("tag", &tag);
    if (!decode_or_reply(d, params, reply)) return;
    t->delete_auth_group(tag, answer(reply, "iscsi_delete_auth_group"));
}

void auth_group_add_secret(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    int32_t tag = 0;
    ChapSecret s;
    ParamsDecoder d("iscsi_auth_group_add_secret");
    d.required("tag", &tag)
        .required("user", &s.user)
        .required("secret", &s.secret)
        .optional("muser", &s.muser)
        .optional("msecret", &s.msecret);
    if (!decode_or_reply(d, params, reply)) return;
    t->auth_group_add_secret(tag, std::move(s), answer(reply, "iscsi_auth_group_add_secret"));
}

void auth_group_remove_secret(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    int32_t tag = 0;
    std::string user;
    ParamsDecoder d("iscsi_auth_group_remove_secret");
    d.required("tag", &tag).required("user", &user);
    if (!decode_or_reply(d, params, reply)) return;
    t->auth_group_remove_secret(tag, user, answer(reply, "iscsi_auth_group_remove_secret"));
}

json auth_groups_json(IscsiTarget* t) {
    json out = json::array();
    for (const auto& g : t->auth_groups()) {
        json secrets = json::array();
        for (const auto& s : g.secrets) {
            json j = {{"user", s.user}, {"secret", s.secret}};
            if (!s.muser.empty()) {
                j["muser"] = s.muser;
                j["msecret"] = s.msecret;
            }
            secrets.push_back(j);
        }
        out.push_back({{"tag", g.tag}, {"secrets", secrets}});
    }
    return out;
}

void get_auth_groups(const json& params, RpcReply reply) {
    ParamsDecoder d("iscsi_get_auth_groups");
    if (!decode_or_reply(d, params, reply)) return;
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    reply.result(auth_groups_json(t));
}

// --- portal groups ---

void create_portal_group(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    PortalGroup pg;
    json portals;
    bool wait = false;
    ParamsDecoder d("iscsi_create_portal_group");
    d.required("tag", &pg.tag)
        .required_array("portals", &portals)
        .optional("private", &pg.is_private)
        .optional("wait", &wait);
    if (!decode_or_reply(d, params, reply)) return;
    for (const auto& p : portals) {
        Portal portal;
        // The port defaults to iSCSI's well-known 3260.
        if (!p.is_object() || !p.contains("host") || !p["host"].is_string() ||
            (p.contains("port") && !parse_port(p["port"], &portal.port)))
            return reply.invalid(
                "iscsi_create_portal_group: each portal is {host, port} with a numeric port");
        portal.host = p["host"].get<std::string>();
        pg.portals.push_back(std::move(portal));
    }
    t->create_portal_group(std::move(pg), wait, answer(reply, "iscsi_create_portal_group"));
}

void tag_method(const json& params, RpcReply reply, const char* name,
                void (IscsiTarget::*fn)(int, DoneFn)) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    int32_t tag = 0;
    ParamsDecoder d(name);
    d.required("tag", &tag);
    if (!decode_or_reply(d, params, reply)) return;
    (t->*fn)(tag, answer(reply, name));
}

void portal_group_set_auth(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    int32_t tag = 0;
    AuthFields af;
    ParamsDecoder d("iscsi_portal_group_set_auth");
    d.required("tag", &tag);
    af.add(d);
    if (!decode_or_reply(d, params, reply)) return;
    t->portal_group_set_auth(tag, af.apply(AuthSettings{}),
                             answer(reply, "iscsi_portal_group_set_auth"));
}

json portal_groups_json(IscsiTarget* t) {
    json out = json::array();
    for (const auto& v : t->portal_groups()) {
        json portals = json::array();
        for (size_t i = 0; i < v.pg.portals.size(); ++i) {
            const Portal& p = v.pg.portals[i];
            json pj = {{"host", p.host}, {"port", std::to_string(p.port)}};
            if (i < v.bound_ports.size() && v.bound_ports[i] != p.port)
                pj["bound_port"] = std::to_string(v.bound_ports[i]);
            portals.push_back(pj);
        }
        json pj = {{"tag", v.pg.tag},
                   {"portals", portals},
                   {"private", v.pg.is_private},
                   {"started", v.started}};
        if (v.pg.discovery_auth) pj.update(auth_json(*v.pg.discovery_auth));
        out.push_back(pj);
    }
    return out;
}

void get_portal_groups(const json& params, RpcReply reply) {
    ParamsDecoder d("iscsi_get_portal_groups");
    if (!decode_or_reply(d, params, reply)) return;
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    reply.result(portal_groups_json(t));
}

// --- initiator groups ---

void create_initiator_group(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    InitiatorGroup ig;
    ParamsDecoder d("iscsi_create_initiator_group");
    d.required("tag", &ig.tag)
        .required("initiators", &ig.initiators)
        .required("netmasks", &ig.netmasks);
    if (!decode_or_reply(d, params, reply)) return;
    t->create_initiator_group(std::move(ig), answer(reply, "iscsi_create_initiator_group"));
}

void initiator_group_change(const json& params, RpcReply reply, bool add) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    const char* name =
        add ? "iscsi_initiator_group_add_initiators" : "iscsi_initiator_group_remove_initiators";
    int32_t tag = 0;
    std::vector<std::string> initiators, netmasks;
    ParamsDecoder d(name);
    d.required("tag", &tag).optional("initiators", &initiators).optional("netmasks", &netmasks);
    if (!decode_or_reply(d, params, reply)) return;
    if (add) {
        t->initiator_group_add(tag, initiators, netmasks, answer(reply, name));
    } else {
        t->initiator_group_remove(tag, initiators, netmasks, answer(reply, name));
    }
}

json initiator_groups_json(IscsiTarget* t) {
    json out = json::array();
    for (const auto& g : t->initiator_groups())
        out.push_back({{"tag", g.tag}, {"initiators", g.initiators}, {"netmasks", g.netmasks}});
    return out;
}

void get_initiator_groups(const json& params, RpcReply reply) {
    ParamsDecoder d("iscsi_get_initiator_groups");
    if (!decode_or_reply(d, params, reply)) return;
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    reply.result(initiator_groups_json(t));
}

// --- target nodes ---

void create_target_node(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    TargetNodeParams p;
    json maps, luns;
    int32_t qd = 0;
    AuthFields af;
    ParamsDecoder d("iscsi_create_target_node");
    d.required("name", &p.name)
        .required("alias_name", &p.alias)
        .required_array("pg_ig_maps", &maps)
        .required_array("luns", &luns)
        .required("queue_depth", &qd)
        .optional("header_digest", &p.header_digest)
        .optional("data_digest", &p.data_digest);
    af.add(d);
    if (!decode_or_reply(d, params, reply)) return;
    std::string err;
    if (!parse_pg_ig_maps(maps, &p.pg_ig_maps, &err))
        return reply.invalid("iscsi_create_target_node: " + err);
    for (const auto& l : luns) {
        if (!l.is_object() || !l.contains("bdev_name") || !l["bdev_name"].is_string())
            return reply.invalid("iscsi_create_target_node: each LUN is {bdev_name, lun_id}");
        int lun_id = -1;
        if (l.contains("lun_id")) {
            if (!l["lun_id"].is_number_integer() || l["lun_id"].get<int64_t>() < 0)
                return reply.invalid("iscsi_create_target_node: lun_id must be >= 0");
            lun_id = l["lun_id"].get<int>();
        }
        p.luns.emplace_back(l["bdev_name"].get<std::string>(), lun_id);
    }
    if (qd <= 0) return reply.invalid("iscsi_create_target_node: queue_depth must be > 0");
    p.queue_depth = uint32_t(qd);
    p.auth = af.apply(AuthSettings{});
    t->create_target_node(std::move(p), answer(reply, "iscsi_create_target_node"));
}

void delete_target_node(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    std::string name;
    ParamsDecoder d("iscsi_delete_target_node");
    d.required("name", &name);
    if (!decode_or_reply(d, params, reply)) return;
    t->delete_target_node(name, answer(reply, "iscsi_delete_target_node"));
}

void target_node_add_lun(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    std::string name, bdev;
    std::optional<int32_t> lun_id;
    ParamsDecoder d("iscsi_target_node_add_lun");
    d.required("name", &name).required("bdev_name", &bdev).optional("lun_id", &lun_id);
    if (!decode_or_reply(d, params, reply)) return;
    if (lun_id && *lun_id < 0) return reply.invalid("iscsi_target_node_add_lun: lun_id >= 0");
    t->target_node_add_lun(name, bdev, lun_id ? *lun_id : -1,
                           [reply](int rc, std::string err, int) {
                               if (rc == -EINVAL)
                                   return reply.invalid("iscsi_target_node_add_lun: " + err);
                               if (rc) return reply.error(rc, "iscsi_target_node_add_lun: " + err);
                               reply.result(true);
                           });
}

void pg_ig_maps_method(const json& params, RpcReply reply, bool add) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    const char* method =
        add ? "iscsi_target_node_add_pg_ig_maps" : "iscsi_target_node_remove_pg_ig_maps";
    std::string name;
    json maps;
    ParamsDecoder d(method);
    d.required("name", &name).required_array("pg_ig_maps", &maps);
    if (!decode_or_reply(d, params, reply)) return;
    std::vector<std::pair<int, int>> v;
    std::string err;
    if (!parse_pg_ig_maps(maps, &v, &err) || v.empty())
        return reply.invalid(std::string(method) + ": " + (err.empty() ? "empty pg_ig_maps" : err));
    if (add) {
        t->target_node_add_pg_ig_maps(name, v, answer(reply, method));
    } else {
        t->target_node_remove_pg_ig_maps(name, v, answer(reply, method));
    }
}

void target_node_set_auth(const json& params, RpcReply reply) {
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    std::string name;
    AuthFields af;
    ParamsDecoder d("iscsi_target_node_set_auth");
    d.required("name", &name);
    af.add(d);
    if (!decode_or_reply(d, params, reply)) return;
    t->target_node_set_auth(name, af.apply(AuthSettings{}),
                            answer(reply, "iscsi_target_node_set_auth"));
}

json target_node_json(const TargetNode& n) {
    json maps = json::array(), luns = json::array();
    for (const auto& [pg, ig] : n.pg_ig_maps) maps.push_back({{"pg_tag", pg}, {"ig_tag", ig}});
    for (const auto& l : n.luns) luns.push_back({{"lun_id", l->id}, {"bdev_name", l->bdev_name}});
    json j = {{"name", n.name},
              {"alias_name", n.alias},
              {"pg_ig_maps", maps},
              {"luns", luns},
              {"queue_depth", n.queue_depth},
              {"header_digest", n.header_digest},
              {"data_digest", n.data_digest}};
    j.update(auth_json(n.auth));
    return j;
}

void get_target_nodes(const json& params, RpcReply reply) {
    ParamsDecoder d("iscsi_get_target_nodes");
    if (!decode_or_reply(d, params, reply)) return;
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    json out = json::array();
    for (const auto& n : t->target_nodes()) out.push_back(target_node_json(*n));
    reply.result(out);
}

void get_connections(const json& params, RpcReply reply) {
    ParamsDecoder d("iscsi_get_connections");
    if (!decode_or_reply(d, params, reply)) return;
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    t->get_connections([reply](std::vector<ConnectionInfo> v) {
        json out = json::array();
        for (const auto& c : v) {
            out.push_back({{"id", c.id},
                           {"cid", c.cid},
                           {"tsih", c.tsih},
                           {"isid", c.isid},
                           {"poll_group", c.poll_group},
                           {"initiator_name", c.initiator},
                           {"initiator_addr", c.peer},
                           {"target_addr", c.local},
                           {"target_node_name", c.target},
                           {"session_type", c.discovery ? "discovery" : "normal"},
                           {"full_feature", c.full_feature},
                           {"header_digest", c.header_digest},
                           {"data_digest", c.data_digest},
                           {"commands", c.commands},
                           {"pdus_in", c.pdus_in},
                           {"pdus_out", c.pdus_out},
                           {"bytes_read", c.bytes_read},
                           {"bytes_written", c.bytes_written}});
        }
        reply.result(out);
    });
}

void get_stats(const json& params, RpcReply reply) {
    ParamsDecoder d("iscsi_get_stats");
    if (!decode_or_reply(d, params, reply)) return;
    IscsiTarget* t = target_or_fail(reply);
    if (!t) return;
    t->get_stats([reply](IscsiStats s) {
        uint64_t running = 0;
        json groups = json::array();
        for (const auto& g : s.poll_groups) {
            running += g.connections;
            groups.push_back({{"poll_group", g.index},
                              {"connections", g.connections},
                              {"accepted", g.accepted},
                              {"logins", g.logins},
                              {"login_failures", g.login_failures},
                              {"commands", g.commands},
                              {"rejects", g.rejects},
                              {"nop_timeouts", g.nop_timeouts},
                              {"login_timeouts", g.login_timeouts}});
        }
        // SPDK's four counters, then ours per poll group.
        reply.result({{"invalid", 0},
                      {"running", running},
                      {"exiting", 0},
                      {"logged_out", 0},
                      {"poll_groups", groups}});
    });
}

// --- /metrics ---

void iscsi_metrics(std::function<void(std::string)> done) {
    IscsiTarget* t = IscsiTarget::instance();
    if (!t) return done("");
    t->get_stats([done = std::move(done)](IscsiStats s) {
        using Group = IscsiStats::Group;
        static const PollGroupFamily<Group> kFamilies[] = {
            {"nocstor_iscsi_connections", "gauge", "Open iSCSI connections (one per session).",
             &Group::connections},
            {"nocstor_iscsi_connections_accepted_total", "counter", "iSCSI connections accepted.",
             &Group::accepted},
            {"nocstor_iscsi_logins_total", "counter", "Logins that reached the full feature phase.",
             &Group::logins},
            {"nocstor_iscsi_login_failures_total", "counter",
             "Logins refused (authentication, access, negotiation, malformed).",
             &Group::login_failures},
            {"nocstor_iscsi_commands_total", "counter", "SCSI commands received.",
             &Group::commands},
            {"nocstor_iscsi_rejects_total", "counter", "Reject PDUs sent.", &Group::rejects},
            {"nocstor_iscsi_nop_timeouts_total", "counter",
             "Sessions closed for not answering a NOP-In.", &Group::nop_timeouts},
            {"nocstor_iscsi_login_timeouts_total", "counter",
             "Connections closed for not logging in within 30 s.", &Group::login_timeouts},
        };
        std::string out;
        prometheus_poll_groups(out, kFamilies, s.poll_groups);
        done(std::move(out));
    });
}

// --- save_config ---

json iscsi_section() {
    json calls = json::array();
    IscsiTarget* t = IscsiTarget::instance();
    if (!t) return calls;
    json opts = options_json(t->options());
    // The discovery CHAP settings go through iscsi_set_discovery_auth.
    for (const char* k : {"disable_chap", "require_chap", "mutual_chap", "chap_group"})
        opts.erase(k);
    calls.push_back({{"method", "iscsi_set_options"}, {"params", opts}});
    for (const auto& g : auth_groups_json(t))
        calls.push_back({{"method", "iscsi_create_auth_group"}, {"params", g}});
    calls.push_back({{"method", "iscsi_set_discovery_auth"},
                     {"params", auth_json(t->options().discovery_auth)}});
    for (const auto& v : t->portal_groups()) {
        json portals = json::array();
        for (const auto& p : v.pg.portals)
            portals.push_back({{"host", p.host}, {"port", std::to_string(p.port)}});
        calls.push_back({{"method", "iscsi_create_portal_group"},
                         {"params",
                          {{"tag", v.pg.tag},
                           {"portals", portals},
                           {"private", v.pg.is_private},
                           {"wait", !v.started}}}});
        if (v.pg.discovery_auth) {
            json a = auth_json(*v.pg.discovery_auth);
            a["tag"] = v.pg.tag;
            calls.push_back({{"method", "iscsi_portal_group_set_auth"}, {"params", a}});
        }
    }
    for (const auto& g : initiator_groups_json(t))
        calls.push_back({{"method", "iscsi_create_initiator_group"}, {"params", g}});
    for (const auto& n : t->target_nodes())
        calls.push_back({{"method", "iscsi_create_target_node"}, {"params", target_node_json(*n)}});
    return calls;
}

}  // namespace

void register_iscsi_target_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("iscsi_set_options", set_options, true);
    r.add("iscsi_get_options", get_options);
    r.add("iscsi_set_discovery_auth", set_discovery_auth, true);
    r.add("iscsi_create_auth_group", create_auth_group, true);
    r.add("iscsi_delete_auth_group", delete_auth_group, true);
    r.add("iscsi_auth_group_add_secret", auth_group_add_secret, true);
    r.add("iscsi_auth_group_remove_secret", auth_group_remove_secret, true);
    r.add("iscsi_get_auth_groups", get_auth_groups);
    r.add("iscsi_create_portal_group", create_portal_group, true);
    r.add(
        "iscsi_start_portal_group",
        [](const json& p, RpcReply r) {
            tag_method(p, std::move(r), "iscsi_start_portal_group",
                       &IscsiTarget::start_portal_group);
        },
        true);
    r.add(
        "iscsi_delete_portal_group",
        [](const json& p, RpcReply r) {
            tag_method(p, std::move(r), "iscsi_delete_portal_group",
                       &IscsiTarget::delete_portal_group);
        },
        true);
    r.add("iscsi_get_portal_groups", get_portal_groups);
    r.add("iscsi_portal_group_set_auth", portal_group_set_auth, true);
    r.add("iscsi_create_initiator_group", create_initiator_group, true);
    r.add(
        "iscsi_initiator_group_add_initiators",
        [](const json& p, RpcReply r) { initiator_group_change(p, std::move(r), true); }, true);
    r.add(
        "iscsi_initiator_group_remove_initiators",
        [](const json& p, RpcReply r) { initiator_group_change(p, std::move(r), false); }, true);
    r.add(
        "iscsi_delete_initiator_group",
        [](const json& p, RpcReply r) {
            tag_method(p, std::move(r), "iscsi_delete_initiator_group",
                       &IscsiTarget::delete_initiator_group);
        },
        true);
    r.add("iscsi_get_initiator_groups", get_initiator_groups);
    r.add("iscsi_create_target_node", create_target_node, true);
    r.add("iscsi_delete_target_node", delete_target_node, true);
    r.add("iscsi_target_node_add_lun", target_node_add_lun, true);
    r.add(
        "iscsi_target_node_add_pg_ig_maps",
        [](const json& p, RpcReply r) { pg_ig_maps_method(p, std::move(r), true); }, true);
    r.add(
        "iscsi_target_node_remove_pg_ig_maps",
        [](const json& p, RpcReply r) { pg_ig_maps_method(p, std::move(r), false); }, true);
    r.add("iscsi_target_node_set_auth", target_node_set_auth, true);
    r.add("iscsi_get_target_nodes", get_target_nodes);
    r.add("iscsi_get_connections", get_connections);
    r.add("iscsi_get_stats", get_stats);
    register_config_section("iscsi", iscsi_section);
    add_async_metrics_source(iscsi_metrics);
}

}  // namespace nocstor::control
