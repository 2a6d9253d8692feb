// Remote bdev methods (nocstor's own): bdev_remote_create {name, base_bdev_name, cluster,
// timeout_ms, uuid} presents on data cluster `cluster` a bdev owned by another cluster,
// bdev_remote_delete {name} removes it. The `cluster` parameter is taken out by RpcRegistry
// (see rpc_registry.cpp) and arrives here as the creation scope's cluster.
#include "bdev/bdev.h"
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "modules/remote/remote_bdev.h"

#include <cerrno>

namespace nocstor::control {

using nlohmann::json;

namespace {

void create(const json& params, RpcReply reply) {
    remote::RemoteCreateOptions o;
    ParamsDecoder d("bdev_remote_create");
    d.required("name", &o.name)
        .required("base_bdev_name", &o.base_bdev_name)
        .optional("timeout_ms", &o.timeout_ms)
        .range(1, 3'600'000)
        .optional("uuid", &o.uuid);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    o.cluster = bdev_scope_cluster();
    auto finish = [o, reply] {
        std::string err;
        const int rc = remote::remote_bdev_create(o, &err);
        if (rc == -EINVAL) return reply.invalid("bdev_remote_create: " + err);
        if (rc) return reply.error(rc, "bdev_remote_create: " + err);
        reply.result(o.name);
    };
    // Loading a configuration: the base may be an lvol its store's examine is still opening.
    if (!bdev_get_by_name(o.base_bdev_name)) return bdev_wait_for_examine(finish);
    finish();
}

void remove(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("bdev_remote_delete");
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    remote::remote_bdev_delete(name, [reply](int rc, std::string e) {
        if (rc) return reply.error(rc, "bdev_remote_delete: " + e);
        reply.result(true);
    });
}

}  // namespace

void register_remote_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_remote_create", create, true);
    r.add("bdev_remote_delete", remove, true);
}

}  // namespace nocstor::control
