// JSON-RPC methods of the nvme bdev module, with SPDK's names and parameters:
// bdev_nvme_attach_controller, bdev_nvme_detach_controller, bdev_nvme_get_controllers.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "nvme_host/bdev_nvme.h"
#include "security/dhchap_names.h"
#include "security/keyring.h"

namespace nocstor::control {

using nlohmann::json;
using namespace nocstor::nvme_host;

namespace {

bool parse_trtype(const std::string& v, std::string* err) {
    std::string u = v;
    for (auto& ch : u) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    if (u == "TCP") return true;
    *err = fmt::format("trtype '{}' is not supported (only TCP)", v);
    return false;
}

void attach_controller(const json& params, RpcReply reply) {
    const char* kMethod = "bdev_nvme_attach_controller";
    NvmeAttachOptions o;
    std::string trtype, adrfam = "IPv4", traddr, trsvcid = "4420", subnqn, hostnqn;
    std::string dhchap_key, dhchap_ctrlr_key, psk;
    ParamsDecoder d(kMethod);
    d.required("name", &o.name)
        .required("trtype", &trtype)
        .required("traddr", &traddr)
        .optional("adrfam", &adrfam)
        .optional("trsvcid", &trsvcid)
        .optional("subnqn", &subnqn)
        .optional("hostnqn", &hostnqn)
        .optional("hdgst", &o.hdgst)
        .optional("ddgst", &o.ddgst)
        .optional("reconnect_delay_sec", &o.reconnect_delay_sec)
        .optional("fast_io_fail_timeout_sec", &o.fast_io_fail_timeout_sec)
        .optional("ctrlr_loss_timeout_sec", &o.ctrlr_loss_timeout_sec)
        .range(-1, INT32_MAX)
        // Sizing hints: nocstor makes one I/O queue per data thread and one bdev per namespace.
        .hint("num_io_queues", ParamKind::kUnsigned)
        .hint("max_bdevs", ParamKind::kUnsigned)
        .hint("fabrics_connect_timeout_us", ParamKind::kUnsigned)
        .hint("priority", ParamKind::kString)
        // With a new name "failover" (SPDK's default) and "disable" mean the same: one path.
        .unsupported("multipath", "several paths to one controller (multipath)",
                     {"failover", "disable"})
        .unsupported("multipath_opts", "multipath policies (multipath_opts)")
        .unsupported("hostaddr", "binding to a host address (hostaddr)")
        .unsupported("hostsvcid", "binding to a host port (hostsvcid)")
        .unsupported("prchk_reftag", "protection information checks (prchk_reftag)")
        .unsupported("prchk_guard", "protection information checks (prchk_guard)")
        .optional("psk", &psk)
        .optional("dhchap_key", &dhchap_key)
        .optional("dhchap_ctrlr_key", &dhchap_ctrlr_key)
        .unsupported("allow_unrecognized_csi",
                     "namespaces of unrecognized command sets (allow_unrecognized_csi)");
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    auto bad = [&](const std::string& m) { reply.invalid(fmt::format("{}: {}", kMethod, m)); };
    if (o.name.empty()) return bad("'name' must not be empty");
    if (!parse_trtype(trtype, &err)) return bad(err);
    if (!parse_adrfam(adrfam, &o.trid.adrfam))
        return bad(fmt::format("adrfam '{}' must be IPv4 or IPv6", adrfam));
    if (traddr.empty()) return bad("'traddr' must not be empty");
    if (subnqn.empty()) return bad("'subnqn' is required for an NVMe-oF controller");
    if (!valid_nqn(subnqn, &err)) return bad(err);
    if (!hostnqn.empty() && !valid_nqn(hostnqn, &err)) return bad(err);
    const std::string tid = fmt::format("traddr:{} trsvcid:{} adrfam:{}", traddr, trsvcid, adrfam);
    TransportId parsed;
    if (!parse_transport_id(tid, &parsed, &err)) return bad(err);
    o.trid.trtype = "TCP";
    o.trid.traddr = traddr;
    o.trid.trsvcid = trsvcid;
    o.trid.subnqn = subnqn;
    o.trid.hostnqn = hostnqn;
    if (!bdev_nvme_check_resiliency_params(o.ctrlr_loss_timeout_sec, o.reconnect_delay_sec,
                                           o.fast_io_fail_timeout_sec, &err))
        return bad(err);
    if (!dhchap_ctrlr_key.empty() && dhchap_key.empty())
        return bad("dhchap_ctrlr_key needs dhchap_key (the host authenticates first)");
    if (!dhchap_key.empty()) {
        auto cfg = std::make_shared<HostAuthConfig>();
        cfg->key_name = dhchap_key;
        cfg->ctrlr_key_name = dhchap_ctrlr_key;
        if (!security::Keyring::instance().dhchap_secret(dhchap_key, &cfg->host, &err))
            return bad(err);
        if (!dhchap_ctrlr_key.empty()) {
            cfg->ctrl.emplace();
            if (!security::Keyring::instance().dhchap_secret(dhchap_ctrlr_key, &*cfg->ctrl, &err))
                return bad(err);
        }
        cfg->digests = bdev_nvme_auth_lists().digests;
        cfg->dhgroups = bdev_nvme_auth_lists().dhgroups;
        o.auth = std::move(cfg);
    }
    if (!psk.empty()) {
        auto cfg = std::make_shared<HostTlsConfig>();
        cfg->psk_name = psk;
        if (!security::Keyring::instance().tls_psk(psk, &cfg->psk, &err)) return bad(err);
        o.tls = std::move(cfg);
    }
    bdev_nvme_attach(o, [reply](int rc, std::vector<std::string> names, std::string e) {
        if (rc != 0) return reply.error(rc, "bdev_nvme_attach_controller: " + e);
        reply.result(json(names));
    });
}

// SPDK's module options. The DH-HMAC-CHAP lists are what nocstor uses; the rest tunes SPDK's
// driver (timeouts, retry counts, polling) and is accepted without effect.
void set_options(const json& params, RpcReply reply) {
    std::optional<std::vector<std::string>> digests, groups;
    ParamsDecoder d("bdev_nvme_set_options");
    d.optional("dhchap_digests", &digests).optional("dhchap_dhgroups", &groups).allow_unknown();
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    NvmeAuthLists lists = bdev_nvme_auth_lists();
    const NvmeAuthLists all;
    if (!security::apply_digest_names(digests, all.digests, &lists.digests, &err) ||
        !security::apply_dhgroup_names(groups, all.dhgroups, &lists.dhgroups, &err))
        return reply.invalid("bdev_nvme_set_options: " + err);
    bdev_nvme_auth_lists() = lists;
    reply.result(true);
}

void detach_controller(const json& params, RpcReply reply) {
    std::string name;
    std::optional<std::string> trtype, traddr, adrfam, trsvcid, subnqn, hostaddr, hostsvcid;
    ParamsDecoder d("bdev_nvme_detach_controller");
    d.required("name", &name)
        .optional("trtype", &trtype)
        .optional("traddr", &traddr)
        .optional("adrfam", &adrfam)
        .optional("trsvcid", &trsvcid)
        .optional("subnqn", &subnqn)
        .optional("hostaddr", &hostaddr)
        .optional("hostsvcid", &hostsvcid);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (!bdev_nvme_exists(name))
        return reply.error(-ENODEV, fmt::format("bdev_nvme_detach_controller: controller '{}' "
                                                "does not exist",
                                                name));
    // The optional transport ID fields select a path; with one path they must match it.
    json c = bdev_nvme_get_controllers(name);
    if (!c.empty()) {
        const json& t = c[0]["ctrlrs"][0]["trid"];
        auto mismatch = [&](const std::optional<std::string>& v, const char* key) {
            return v && !t.contains(key) ? false : (v && t[key].get<std::string>() != *v);
        };
        if (mismatch(traddr, "traddr") || mismatch(trsvcid, "trsvcid") ||
            mismatch(subnqn, "subnqn"))
            return reply.error(-ENODEV,
                               "bdev_nvme_detach_controller: no such path for '" + name + "'");
    }
    bdev_nvme_detach(name, [reply](int rc, std::string e) {
        if (rc != 0) return reply.error(rc, "bdev_nvme_detach_controller: " + e);
        reply.result(true);
    });
}

void get_controllers(const json& params, RpcReply reply) {
    std::optional<std::string> name;
    ParamsDecoder d("bdev_nvme_get_controllers");
    d.optional("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (name && !bdev_nvme_exists(*name))
        return reply.error(-ENODEV, fmt::format("bdev_nvme_get_controllers: controller '{}' "
                                                "does not exist",
                                                *name));
    reply.result(bdev_nvme_get_controllers(name.value_or("")));
}

}  // namespace

void register_bdev_nvme_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_nvme_set_options", set_options, true);
    r.add("bdev_nvme_attach_controller", attach_controller, true);
    r.add("bdev_nvme_detach_controller", detach_controller, true);
    r.add("bdev_nvme_get_controllers", get_controllers);
}

}  // namespace nocstor::control
