// Create/delete methods of the built-in bdev modules, with SPDK's names and parameters, and the
// "bdev" section of save_config. Parameters are checked strictly here (unknown keys rejected, as
// SPDK does); the module code in src/modules validates the values.
#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "control/config.h"
#include "control/rpc_registry.h"
#include "modules/bdev_config.h"
#include "modules/delay.h"
#include "modules/error.h"
#include "modules/malloc.h"
#include "modules/null.h"
#include "modules/passthru.h"
#include "modules/uring.h"

#include <cerrno>
#include <set>

namespace nocstor::control {

using nlohmann::json;

namespace {

struct CreateMethod {
    const char* name;
    std::set<std::string> keys;
    const char* result_key;  // the param naming the new bdev (SPDK returns its name)
};

const std::vector<CreateMethod>& create_methods() {
    static const std::vector<CreateMethod> m = {
        {"bdev_malloc_create",
         {"name", "num_blocks", "block_size", "uuid", "optimal_io_boundary", "max_transfer_blocks"},
         "name"},
        {"bdev_null_create", {"name", "num_blocks", "block_size", "uuid"}, "name"},
        {"bdev_uring_create", {"name", "filename", "block_size", "uuid"}, "name"},
        {"bdev_passthru_create", {"base_bdev_name", "name", "uuid"}, "name"},
        {"bdev_delay_create",
         {"base_bdev_name", "name", "uuid", "avg_read_latency", "p99_read_latency",
          "avg_write_latency", "p99_write_latency"},
         "name"},
        {"bdev_delay_update_latency", {"delay_bdev_name", "latency_type", "latency_us"}, nullptr},
        {"bdev_error_create", {"base_name", "uuid"}, nullptr},
        {"bdev_error_inject_error",
         {"name", "io_type", "error_type", "num", "queue_depth", "percent", "sct", "sc"},
         nullptr},
    };
    return m;
}

// Parameters SPDK's rpc.py sends by default for these methods. They are accepted when their value
// asks for nothing nocstor lacks (no metadata, no DIF) and otherwise rejected with a reason.
bool spdk_compat_key(const std::string& method, const std::string& key, const json& v,
                     std::string* why) {
    bool md_method = method == "bdev_malloc_create" || method == "bdev_null_create";
    if (!md_method) return false;
    auto zero = [&](const char* what) {
        if (v.is_null() || (v.is_number_integer() && v.get<int64_t>() == 0)) return true;
        *why = std::string(what) + " is not supported (must be 0)";
        return true;
    };
    if (key == "md_size") return zero("separate metadata (md_size)");
    if (key == "dif_type") return zero("DIF protection (dif_type)");
    if (key == "dif_pi_format") return zero("DIF PI formats (dif_pi_format)");
    if (key == "md_interleave" || key == "dif_is_head_of_md") {
        if (!v.is_null() && !v.is_boolean()) *why = "'" + key + "' must be a boolean";
        return true;
    }
    // Hints with no effect here: accepted and ignored.
    static const std::set<std::string> hints = {
        "physical_block_size",        "numa_id",
        "preferred_write_alignment",  "preferred_write_granularity",
        "optimal_write_size",         "preferred_unmap_alignment",
        "preferred_unmap_granularity"};
    if (hints.count(key)) {
        if (!v.is_null() && !v.is_number_integer()) *why = "'" + key + "' must be an integer";
        return true;
    }
    return false;
}

bool check_keys(const char* method, const std::set<std::string>& allowed, const json& params,
                const RpcReply& reply, json* cleaned = nullptr) {
    if (params.is_null()) return true;
    if (!params.is_object()) {
        reply.invalid(std::string(method) + ": params must be an object");
        return false;
    }
    for (auto it = params.begin(); it != params.end(); ++it) {
        if (allowed.count(it.key())) continue;
        std::string why;
        if (spdk_compat_key(method, it.key(), it.value(), &why)) {
            if (!why.empty()) {
                reply.invalid(std::string(method) + ": " + why);
                return false;
            }
            if (cleaned) cleaned->erase(it.key());
            continue;
        }
        std::string list;
        for (const auto& k : allowed) list += (list.empty() ? "" : ", ") + k;
        reply.invalid(std::string(method) + ": unknown parameter '" + it.key() +
                      "' (accepted: " + list + ")");
        return false;
    }
    return true;
}

void bind_create(const CreateMethod& m) {
    RpcRegistry::instance().add(
        m.name,
        [&m](const json& params, RpcReply reply) {
            json cleaned = params;
            if (!check_keys(m.name, m.keys, params, reply, &cleaned)) return;
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
            if (!check_keys(method, {"name"}, params, reply)) return;
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

json bdev_section() {
    json calls = json::array();
    // Module-wide calls first (the nvme module's attach_controller calls among them): local
    // vbdevs may be stacked on the namespaces they create.
    for (BdevModule* m : bdev_modules()) m->write_config_json(calls);
    // Registration order puts base bdevs before the vbdevs stacked on them.
    for (Bdev* b : bdev_list()) {
        json call;
        b->write_config_json(call);
        if (!call.is_null()) calls.push_back(call);
    }
    return calls;
}

}  // namespace

void register_bdev_module_rpcs() {
    for (const auto& m : create_methods()) bind_create(m);
    bind_delete("bdev_malloc_delete", "malloc", malloc_bdev_delete);
    bind_delete("bdev_null_delete", "null", null_bdev_delete);
    bind_delete("bdev_uring_delete", "uring", uring_bdev_delete);
    bind_delete("bdev_passthru_delete", "passthru", passthru_bdev_delete);
    bind_delete("bdev_delay_delete", "delay", delay_bdev_delete);
    bind_delete("bdev_error_delete", "error", error_bdev_delete);
    register_config_section("bdev", bdev_section);
}

}  // namespace nocstor::control
