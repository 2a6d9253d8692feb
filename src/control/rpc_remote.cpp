// Remote bdev methods (nocstor's own): bdev_remote_create {name, base_bdev_name, cluster,
// timeout_ms, uuid, base_cluster} presents on data cluster `cluster` a bdev owned by another
// cluster, bdev_remote_delete {name} removes it. The `cluster` parameter is taken out by
// RpcRegistry (see rpc_registry.cpp) and arrives here as the creation scope's cluster.
// Between processes (--cluster-processes, control/cluster_process/remote_link.h) the owner's
// process serves nocstor_remote_export {base_bdev_name, client_cluster} -> the export's id and
// geometry (the client cluster is told over the NoC when the base is resized), and
// nocstor_remote_unexport {export_id}.
#include "bdev/bdev.h"
#include "control/cluster_process/remote_link.h"
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "modules/remote/remote_bdev.h"
#include "modules/remote/remote_export.h"

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
        .optional("uuid", &o.uuid)
        .optional("base_cluster", &o.base_cluster)
        .range(0, 1023);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    o.cluster = bdev_scope_cluster();
    if (remote_link_possible(o)) {
        return remote_link_create(o, [reply, name = o.name](int rc, std::string e) {
            if (rc == -EINVAL) return reply.invalid("bdev_remote_create: " + e);
            if (rc) return reply.error(rc, "bdev_remote_create: " + e);
            reply.result(name);
        });
    }
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

json export_json(const remote::ExportInfo& i) {
    return {{"export_id", i.id},
            {"cluster", i.cluster},
            {"base_bdev_name", i.base_name},
            {"block_size", i.block_size},
            {"num_blocks", i.num_blocks},
            {"write_cache", i.write_cache},
            {"required_alignment", i.required_alignment},
            {"optimal_io_boundary", i.optimal_io_boundary},
            {"max_transfer_blocks", i.max_transfer_blocks},
            {"io_types", i.io_types}};
}

void export_for_peer(const json& params, RpcReply reply) {
    std::string base;
    int client = -1;
    ParamsDecoder d("nocstor_remote_export");
    d.required("base_bdev_name", &base).optional("client_cluster", &client).range(0, 1023);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    remote::ExportInfo info;
    if (int rc = remote::peer_export_create(base, client, &info, &err))
        return reply.error(rc, "nocstor_remote_export: " + err);
    reply.result(export_json(info));
}

void unexport_for_peer(const json& params, RpcReply reply) {
    uint32_t id = 0;
    ParamsDecoder d("nocstor_remote_unexport");
    d.required("export_id", &id);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (remote::peer_export_delete(id, [reply] { reply.result(true); }))
        reply.error(-ENOENT, "nocstor_remote_unexport: no export " + std::to_string(id));
}

}  // namespace

void register_remote_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_remote_create", create, true);
    r.add("bdev_remote_delete", remove, true);
    r.add("nocstor_remote_export", export_for_peer);
    r.add("nocstor_remote_unexport", unexport_for_peer);
}

}  // namespace nocstor::control
