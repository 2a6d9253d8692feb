// iSCSI initiator bdev methods with SPDK's names and parameters: bdev_iscsi_create {name,
// initiator_iqn, url} (+ nocstor's sessions, header_digest, data_digest), bdev_iscsi_delete,
// bdev_iscsi_set_options {timeout_sec}.
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "modules/iscsi/iscsi_bdev.h"

#include <cerrno>

namespace nocstor::control {

using nlohmann::json;

namespace {

void create(const json& params, RpcReply reply) {
    iscsi::IscsiCreateOptions o;
    ParamsDecoder d("bdev_iscsi_create");
    d.required("name", &o.name)
        .required("initiator_iqn", &o.initiator_iqn)
        .required("url", &o.url)
        .optional("sessions", &o.sessions)
        .optional("header_digest", &o.header_digest)
        .optional("data_digest", &o.data_digest);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    const std::string name = o.name;
    iscsi::iscsi_bdev_create(o, [reply, name](int rc, std::string err) {
        if (rc == -EINVAL) return reply.invalid("bdev_iscsi_create: " + err);
        if (rc) return reply.error(rc, "bdev_iscsi_create: " + err);
        reply.result(name);
    });
}

void remove(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("bdev_iscsi_delete");
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    iscsi::iscsi_bdev_delete(name, [reply, name](int rc) {
        if (rc == -ENODEV) return reply.error(rc, "bdev_iscsi_delete: no iSCSI bdev named " + name);
        if (rc) return reply.error(rc, "bdev_iscsi_delete: " + name + " could not be removed");
        reply.result(true);
    });
}

void set_options(const json& params, RpcReply reply) {
    iscsi::IscsiGlobalOptions o = iscsi::iscsi_get_options();
    ParamsDecoder d("bdev_iscsi_set_options");
    d.optional("timeout_sec", &o.timeout_sec);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (iscsi::iscsi_set_options(o, &err)) return reply.invalid("bdev_iscsi_set_options: " + err);
    reply.result(true);
}

}  // namespace

void register_iscsi_bdev_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_iscsi_create", create, true);
    r.add("bdev_iscsi_delete", remove, true);
    r.add("bdev_iscsi_set_options", set_options, true);
}

}  // namespace nocstor::control
