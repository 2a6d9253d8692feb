// Distributed volume methods (nocstor's own): nocstor_volume_create, nocstor_volume_delete,
// nocstor_volume_get, and nocstor_volume_register (written by save_config into the "volume"
// section; it records a volume whose parts already exist). REST: /api/v1/volumes.
#include "control/config.h"
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "control/volume/volume.h"

#include <cerrno>
#include <optional>

namespace nocstor::control {

using nlohmann::json;

namespace {

void create(const json& params, RpcReply reply) {
    volume::VolumeSpec s;
    std::optional<uint64_t> size, size_mib;
    json clusters;
    ParamsDecoder d("nocstor_volume_create");
    d.required("name", &s.name)
        .optional("size", &size)
        .optional("size_in_mib", &size_mib)
        .optional("clusters", &clusters)
        .optional("front_cluster", &s.front_cluster)
        .optional("stripe_kb", &s.stripe_kb)
        .optional("layout", &s.layout)
        .optional("thin_provision", &s.thin)
        .optional("nqn", &s.nqn);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (size.has_value() == size_mib.has_value())
        return reply.invalid(
            "nocstor_volume_create: give exactly one of size (bytes) and size_in_mib");
    s.size_bytes = size ? *size : *size_mib << 20;
    if (!clusters.is_null()) {
        if (!clusters.is_array())
            return reply.invalid("nocstor_volume_create: clusters must be an array of cluster ids");
        for (const auto& c : clusters) {
            if (!c.is_number_integer() || c.get<int64_t>() < 0 || c.get<int64_t>() > 1024)
                return reply.invalid("nocstor_volume_create: clusters must be cluster ids");
            s.clusters.push_back(c.get<int>());
        }
    }
    const std::string name = s.name;
    volume::create(s, [reply, name](int rc, std::string e) {
        if (rc == -EINVAL) return reply.invalid("nocstor_volume_create: " + e);
        if (rc) return reply.error(rc, "nocstor_volume_create: " + e);
        volume::describe(name, [reply, name](int, json out) {
            reply.result(out.empty() ? json(name) : out[0]);
        });
    });
}

void remove(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("nocstor_volume_delete");
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    volume::remove(name, [reply](int rc, std::string e) {
        if (rc) return reply.error(rc, "nocstor_volume_delete: " + e);
        reply.result(true);
    });
}

void get(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("nocstor_volume_get");
    d.optional("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    volume::describe(name, [reply, name](int rc, json out) {
        if (rc) return reply.error(-ENODEV, "no volume named " + name);
        reply.result(out);
    });
}

void register_existing(const json& params, RpcReply reply) {
    std::string err;
    const int rc = volume::register_existing(params, &err);
    if (rc == -EINVAL) return reply.invalid("nocstor_volume_register: " + err);
    if (rc) return reply.error(rc, "nocstor_volume_register: " + err);
    reply.result(true);
}

}  // namespace

void register_volume_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("nocstor_volume_create", create, true);
    r.add("nocstor_volume_delete", remove, true);
    r.add("nocstor_volume_get", get);
    r.add("nocstor_volume_register", register_existing, true);
    register_config_section("volume", volume::config_section, /*optional=*/true);
}

}  // namespace nocstor::control
