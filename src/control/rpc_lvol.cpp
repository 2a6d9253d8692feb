// Logical volume methods with SPDK's names and parameters (bdev_lvol_*). Lvstores come back by
// themselves when their base bdev appears (examine), so save_config needs no lvol entries.
#include "control/json_params.h"
#include "control/rest_api.h"
#include "control/rpc_registry.h"
#include "modules/lvol/lvol.h"

#include <cerrno>

namespace nocstor::control {

using nlohmann::json;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Replies with `result` on success, otherwise the error with the method's name in front.
lvol::Result reply_with(RpcReply reply, std::string method, json result) {
    return [reply, method, result](int rc, std::string msg) {
        if (rc == -EINVAL) return reply.invalid(method + ": " + msg);
        if (rc) return reply.error(rc, method + ": " + msg);
        reply.result(result.is_null() ? json(msg) : result);
    };
}

bool parse_clear(const std::string& s, lvol::ClearMethod* out, const std::string& method,
                 RpcReply& reply) {
    if (s.empty()) return true;
    if (lvol::clear_method_parse(s, out)) return true;
    reply.invalid(method + ": clear_method '" + s + "' is not none, unmap or write_zeroes");
    return false;
}

void create_lvstore(const json& params, RpcReply reply) {
    lvol::LvsCreateOptions o;
    uint32_t cluster_sz = 0;
    std::string clear;
    ParamsDecoder d("bdev_lvol_create_lvstore");
    d.required("bdev_name", &o.bdev_name)
        .required("lvs_name", &o.lvs_name)
        .optional("cluster_sz", &cluster_sz)
        .optional("clear_method", &clear)
        .hint("num_md_pages_per_cluster_ratio", ParamKind::kUnsigned)
        .hint("md_page_size", ParamKind::kUnsigned);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (cluster_sz) o.cluster_bytes = cluster_sz;
    if (!parse_clear(clear, &o.clear_method, "bdev_lvol_create_lvstore", reply)) return;
    lvol::lvs_create(o, reply_with(reply, "bdev_lvol_create_lvstore", nullptr));
}

// uuid or lvs_name, exactly one.
bool store_key(const json& params, const char* method, const char* uuid_key, const char* name_key,
               std::string* uuid, std::string* name, RpcReply& reply, bool required = true) {
    ParamsDecoder d(method);
    d.optional(uuid_key, uuid).optional(name_key, name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err), false;
    if (required && uuid->empty() == name->empty())
        return reply.invalid(std::string(method) + ": give either " + uuid_key + " or " + name_key),
               false;
    return true;
}

void delete_lvstore(const json& params, RpcReply reply) {
    std::string uuid, name;
    if (!store_key(params, "bdev_lvol_delete_lvstore", "uuid", "lvs_name", &uuid, &name, reply))
        return;
    lvol::lvs_delete(uuid, name, reply_with(reply, "bdev_lvol_delete_lvstore", true));
}

void get_lvstores(const json& params, RpcReply reply) {
    std::string uuid, name;
    if (!store_key(params, "bdev_lvol_get_lvstores", "uuid", "lvs_name", &uuid, &name, reply,
                   false))
        return;
    json out;
    if (lvol::lvs_list(uuid, name, &out))
        return reply.error(-ENODEV,
                           "bdev_lvol_get_lvstores: no lvstore " + (uuid.empty() ? name : uuid));
    reply.result(out);
}

void rename_lvstore(const json& params, RpcReply reply) {
    std::string old_name, new_name;
    ParamsDecoder d("bdev_lvol_rename_lvstore");
    d.required("old_name", &old_name).required("new_name", &new_name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvs_rename(old_name, new_name, reply_with(reply, "bdev_lvol_rename_lvstore", true));
}

void grow_lvstore(const json& params, RpcReply reply) {
    std::string uuid, name;
    if (!store_key(params, "bdev_lvol_grow_lvstore", "uuid", "lvs_name", &uuid, &name, reply))
        return;
    lvol::lvs_grow(uuid, name, reply_with(reply, "bdev_lvol_grow_lvstore", true));
}

void create(const json& params, RpcReply reply) {
    lvol::LvolCreateOptions o;
    uint64_t mib = 0;
    std::string clear;
    ParamsDecoder d("bdev_lvol_create");
    d.required("lvol_name", &o.name)
        .required("size_in_mib", &mib)
        .range(1, UINT64_MAX / kMiB)
        .optional("thin_provision", &o.thin)
        .optional("uuid", &o.lvs_uuid)
        .optional("lvs_name", &o.lvs_name)
        .optional("clear_method", &clear);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (o.lvs_uuid.empty() == o.lvs_name.empty())
        return reply.invalid("bdev_lvol_create: give either uuid or lvs_name");
    if (!parse_clear(clear, &o.clear_method, "bdev_lvol_create", reply)) return;
    o.size_bytes = mib * kMiB;
    lvol::lvol_create(o, reply_with(reply, "bdev_lvol_create", nullptr));
}

// Methods of the form {key: lvol, key2: name} answering a UUID or true.
void snapshot(const json& params, RpcReply reply) {
    std::string lvol_name, snap;
    ParamsDecoder d("bdev_lvol_snapshot");
    d.required("lvol_name", &lvol_name).required("snapshot_name", &snap);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvol_snapshot(lvol_name, snap, reply_with(reply, "bdev_lvol_snapshot", nullptr));
}

void clone(const json& params, RpcReply reply) {
    std::string snap, name;
    ParamsDecoder d("bdev_lvol_clone");
    d.required("snapshot_name", &snap).required("clone_name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvol_clone(snap, name, reply_with(reply, "bdev_lvol_clone", nullptr));
}

void clone_bdev(const json& params, RpcReply reply) {
    std::string bdev, lvs, name;
    ParamsDecoder d("bdev_lvol_clone_bdev");
    d.required("bdev", &bdev).required("lvs_name", &lvs).required("clone_name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvol_clone_bdev(bdev, lvs, name, reply_with(reply, "bdev_lvol_clone_bdev", nullptr));
}

void set_parent(const json& params, RpcReply reply) {
    std::string name, parent;
    ParamsDecoder d("bdev_lvol_set_parent");
    d.required("lvol_name", &name).required("parent_name", &parent);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvol_set_parent(name, parent, reply_with(reply, "bdev_lvol_set_parent", true));
}

void set_parent_bdev(const json& params, RpcReply reply) {
    std::string name, parent;
    ParamsDecoder d("bdev_lvol_set_parent_bdev");
    d.required("lvol_name", &name).required("parent_name", &parent);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvol_set_parent_bdev(name, parent, reply_with(reply, "bdev_lvol_set_parent_bdev", true));
}

void rename(const json& params, RpcReply reply) {
    std::string old_name, new_name;
    ParamsDecoder d("bdev_lvol_rename");
    d.required("old_name", &old_name).required("new_name", &new_name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvol_rename(old_name, new_name, reply_with(reply, "bdev_lvol_rename", true));
}

void resize(const json& params, RpcReply reply) {
    std::string name;
    uint64_t mib = 0;
    ParamsDecoder d("bdev_lvol_resize");
    d.required("name", &name).required("size_in_mib", &mib).range(1, UINT64_MAX / kMiB);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    lvol::lvol_resize(name, mib * kMiB, reply_with(reply, "bdev_lvol_resize", true));
}

// {name} -> true
template <void (*Fn)(const std::string&, lvol::Result)>
void by_name(const char* method, const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d(method);
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    Fn(name, reply_with(reply, method, true));
}

void get_lvols(const json& params, RpcReply reply) {
    std::string uuid, name;
    if (!store_key(params, "bdev_lvol_get_lvols", "lvs_uuid", "lvs_name", &uuid, &name, reply,
                   false))
        return;
    json out;
    if (lvol::lvol_list(uuid, name, &out))
        return reply.error(-ENODEV,
                           "bdev_lvol_get_lvols: no lvstore " + (uuid.empty() ? name : uuid));
    reply.result(out);
}

}  // namespace

void register_lvol_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_lvol_create_lvstore", create_lvstore, true);
    r.add("bdev_lvol_delete_lvstore", delete_lvstore, true);
    r.add("bdev_lvol_get_lvstores", get_lvstores);
    r.add("bdev_lvol_rename_lvstore", rename_lvstore, true);
    r.add("bdev_lvol_grow_lvstore", grow_lvstore, true);
    r.add("bdev_lvol_create", create, true);
    r.add("bdev_lvol_snapshot", snapshot, true);
    r.add("bdev_lvol_clone", clone, true);
    r.add("bdev_lvol_clone_bdev", clone_bdev, true);
    r.add("bdev_lvol_set_parent", set_parent, true);
    r.add("bdev_lvol_set_parent_bdev", set_parent_bdev, true);
    r.add("bdev_lvol_rename", rename, true);
    r.add("bdev_lvol_resize", resize, true);
    r.add(
        "bdev_lvol_set_read_only",
        [](const json& p, RpcReply reply) {
            by_name<lvol::lvol_set_read_only>("bdev_lvol_set_read_only", p, reply);
        },
        true);
    r.add(
        "bdev_lvol_delete",
        [](const json& p, RpcReply reply) {
            by_name<lvol::lvol_delete>("bdev_lvol_delete", p, reply);
        },
        true);
    r.add(
        "bdev_lvol_inflate",
        [](const json& p, RpcReply reply) {
            by_name<lvol::lvol_inflate>("bdev_lvol_inflate", p, reply);
        },
        true);
    r.add(
        "bdev_lvol_decouple_parent",
        [](const json& p, RpcReply reply) {
            by_name<lvol::lvol_decouple_parent>("bdev_lvol_decouple_parent", p, reply);
        },
        true);
    r.add("bdev_lvol_get_lvols", get_lvols);
    add_metrics_source(lvol::lvol_metrics);
}

}  // namespace nocstor::control
