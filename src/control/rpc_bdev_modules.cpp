// Create/delete methods of the built-in bdev modules, with SPDK's names and parameters, and the
// "bdev" section of save_config. Parameters are checked strictly here (unknown keys rejected, as
// SPDK does); the module code in src/modules validates the values.
#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "control/config.h"
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "modules/bdev_config.h"
#include "modules/delay.h"
#include "modules/error.h"
#include "modules/malloc.h"
#include "modules/null.h"
#include "modules/passthru.h"
#include "modules/uring.h"
#include "runtime/runtime.h"

#include <algorithm>
#include <cerrno>
#include <set>

namespace nocstor::control {

using nlohmann::json;

namespace {

// Declares the SPDK parameters of a method that nocstor's module does not take (hints it ignores,
// features it lacks); see ParamsDecoder::hint/unsupported.
using CompatFn = void (*)(ParamsDecoder&);

struct CreateMethod {
    const char* name;
    std::set<std::string> keys;  // passed on to the module, which checks their values
    const char* result_key;      // the param naming the new bdev (SPDK returns its name)
    CompatFn compat = nullptr;
};

// Metadata and protection information: nocstor's bdevs have neither.
void no_metadata(ParamsDecoder& d) {
    d.unsupported("md_size", "separate metadata (md_size)")
        .unsupported("md_interleave", "interleaved metadata (md_interleave)")
        .unsupported("dif_type", "DIF protection (dif_type)")
        .unsupported("dif_is_head_of_md", "DIF protection (dif_is_head_of_md)")
        .unsupported("dif_pi_format", "DIF PI formats (dif_pi_format)")
        .hint("physical_block_size", ParamKind::kUnsigned);
}

void malloc_compat(ParamsDecoder& d) {
    no_metadata(d);
    d.hint("numa_id", ParamKind::kInteger);
}

void null_compat(ParamsDecoder& d) {
    no_metadata(d);
    for (const char* k :
         {"preferred_write_granularity", "preferred_write_alignment", "optimal_write_size",
          "preferred_unmap_granularity", "preferred_unmap_alignment"})
        d.hint(k, ParamKind::kUnsigned);
}

const std::vector<CreateMethod>& create_methods() {
    static const std::vector<CreateMethod> m = {
        {"bdev_malloc_create",
         {"name", "num_blocks", "block_size", "uuid", "optimal_io_boundary", "max_transfer_blocks"},
         "name",
         malloc_compat},
        {"bdev_null_create", {"name", "num_blocks", "block_size", "uuid"}, "name", null_compat},
        {"bdev_uring_create", {"name", "filename", "block_size", "uuid"}, "name"},
        {"bdev_aio_create",
         {"name", "filename", "block_size", "uuid", "readonly", "fallocate", "nowait"},
         "name"},
        {"bdev_passthru_create", {"base_bdev_name", "name", "uuid"}, "name"},
        {"bdev_delay_create",
         {"base_bdev_name", "name", "uuid", "avg_read_latency", "p99_read_latency",
          "avg_write_latency", "p99_write_latency"},
         "name"},
        {"bdev_delay_update_latency", {"delay_bdev_name", "latency_type", "latency_us"}, nullptr},
        {"bdev_error_create", {"base_name", "uuid"}, nullptr},
        {"bdev_error_inject_error",
         {"name", "io_type", "error_type", "num", "queue_depth", "percent", "sct", "sc", "nvme_sct",
          "nvme_sc", "corrupt_offset", "corrupt_value"},
         nullptr},
    };
    return m;
}

// Checks the keys of params: those in `allowed` go on to the module (which checks values),
// those compat declares are checked here and dropped from *cleaned, anything else is refused.
bool check_keys(const char* method, const std::set<std::string>& allowed, CompatFn compat,
                const json& params, const RpcReply& reply, json* cleaned = nullptr) {
    if (params.is_null()) return true;
    if (!params.is_object()) {
        reply.invalid(std::string(method) + ": params must be an object");
        return false;
    }
    ParamsDecoder d(method);
    json ignored;
    for (const auto& k : allowed) d.optional(k, &ignored);
    if (compat) compat(d);
    std::string err;
    if (!d.decode(params, &err)) {
        if (err.find("unknown parameter") != std::string::npos) {
            std::string list;
            for (const auto& k : allowed) list += (list.empty() ? "" : ", ") + k;
            err += " (accepted: " + list + ")";
        }
        reply.invalid(err);
        return false;
    }
    if (cleaned) {
        for (auto it = params.begin(); it != params.end(); ++it)
            if (!allowed.count(it.key())) cleaned->erase(it.key());
    }
    return true;
}

void bind_create(const CreateMethod& m) {
    RpcRegistry::instance().add(
        m.name,
        [&m](const json& params, RpcReply reply) {
            json cleaned = params;
            if (!check_keys(m.name, m.keys, m.compat, params, reply, &cleaned)) return;
            std::string err;
            int rc = apply_bdev_method(m.name, cleaned, &err);
            if (rc == -EINVAL) return reply.invalid(std::string(m.name) + ": " + err);
            if (rc != 0) return reply.error(rc, std::string(m.name) + ": " + err);
            if (m.result_key)
                reply.result(params.at(m.result_key));
            else if (std::string(m.name) == "bdev_error_create")
                reply.result("EE_" + params.at("base_name").get<std::string>());
            else
                reply.result(true);
        },
        true);
}

using DeleteFn = void (*)(const std::string&, std::function<void(int)>);

void bind_delete(const char* method, const char* module, DeleteFn fn) {
    RpcRegistry::instance().add(
        method,
        [method, module, fn](const json& params, RpcReply reply) {
            if (!check_keys(method, {"name"}, nullptr, params, reply)) return;
            if (!params.is_object() || !params.contains("name") || !params["name"].is_string())
                return reply.invalid(std::string(method) + ": 'name' (a string) is required");
            std::string name = params["name"];
            Bdev* b = bdev_get_by_name(name);
            if (!b || !b->module || b->module->name() != module)
                return reply.error(
                    -ENODEV, std::string(method) + ": no " + module + " bdev named '" + name + "'");
            if (b->claimed_by())
                return reply.error(-EBUSY, std::string(method) + ": bdev '" + name +
                                               "' is used by a " + b->claimed_by()->name() +
                                               " bdev stacked on it; delete that first");
            if (b->open_descriptors() > 0)
                return reply.error(-EBUSY, std::string(method) + ": bdev '" + name +
                                               "' is open (e.g. an NVMe-oF namespace); remove "
                                               "the namespace first");
            fn(name, [reply, method, name](int rc) {
                if (rc != 0)
                    reply.error(rc, std::string(method) + ": cannot delete '" + name + "'");
                else
                    reply.result(true);
            });
        },
        true);
}

// bdev_aio_rescan / bdev_uring_rescan {name}: the file's new size becomes the bdev's.
void bind_rescan(const char* method, bool aio) {
    RpcRegistry::instance().add(method, [method, aio](const json& params, RpcReply reply) {
        std::string name;
        ParamsDecoder d(method);
        d.required("name", &name);
        std::string err;
        if (!d.decode(params, &err)) return reply.invalid(err);
        const int rc = uring_bdev_rescan(name, aio, &err);
        if (rc) return reply.error(rc, std::string(method) + ": " + err);
        reply.result(true);
    });
}

json bdev_section() {
    json calls = json::array();
    // Module-wide calls first (the nvme module's attach_controller calls among them): local
    // vbdevs may be stacked on the namespaces they create.
    for (BdevModule* m : bdev_modules()) m->write_config_json(calls);
    // Registration order puts base bdevs before the vbdevs stacked on them.
    for (Bdev* b : bdev_list()) {
        json call;
        b->write_config_json(call);
        // The owning cluster, where there is a choice (a single-cluster config stays SPDK's).
        if (call.is_object() && call.contains("params") && bdev_data_cluster_count() > 1)
            call["params"]["cluster"] = b->cluster;
        if (!call.is_null()) calls.push_back(call);
        const BdevHistogramConfig h = b->histogram_config();
        if (h.enabled) {
            json params = {{"name", b->name},
                           {"enable", true},
                           {"granularity", h.granularity},
                           {"min_nsec", h.min_ns},
                           {"max_nsec", h.max_ns}};
            if (h.io_type >= 0) params["opc"] = io_type_name(IoType(h.io_type));
            calls.push_back({{"method", "bdev_enable_histogram"}, {"params", params}});
        }
    }
    // Arrays assembled from superblocks come back by themselves: what follows may name them.
    calls.push_back({{"method", "bdev_wait_for_examine"}});
    return calls;
}

}  // namespace

void register_bdev_module_rpcs() {
    for (const auto& m : create_methods()) bind_create(m);
    bind_delete("bdev_malloc_delete", "malloc", malloc_bdev_delete);
    bind_delete("bdev_null_delete", "null", null_bdev_delete);
    bind_delete("bdev_uring_delete", "uring", uring_bdev_delete);
    bind_delete("bdev_aio_delete", "aio", aio_bdev_delete);
    bind_rescan("bdev_aio_rescan", true);
    bind_rescan("bdev_uring_rescan", false);
    bind_delete("bdev_passthru_delete", "passthru", passthru_bdev_delete);
    bind_delete("bdev_delay_delete", "delay", delay_bdev_delete);
    bind_delete("bdev_error_delete", "error", error_bdev_delete);
    register_config_section("bdev", bdev_section);
}

}  // namespace nocstor::control
