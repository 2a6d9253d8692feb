#include "modules/bdev_config.h"

#include "modules/delay.h"
#include "modules/error.h"
#include "modules/malloc.h"
#include "modules/module_util.h"
#include "modules/null.h"
#include "modules/passthru.h"
#include "modules/uring.h"
#include "util/log.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <fstream>
#include <limits>

namespace nocstor {

namespace {

using json = nlohmann::json;

// Reads params[key] into *out when present. Keys other modules' SPDK configs carry (md_size,
// dif_type...) are ignored, so that an SPDK save_config loads.
class Params {
  public:
    Params(const json& p, std::string* err) : p_(p), err_(err) {
        if (!p_.is_object() && !p_.is_null()) ok_ = set_err("params must be an object");
    }
    bool ok() const { return ok_; }

    void str(const char* key, std::string* out, bool required = false) {
        const json* v = find(key, required);
        if (!v) return;
        if (!v->is_string()) {
            ok_ = set_err(std::string(key) + " must be a string");
            return;
        }
        *out = v->get<std::string>();
    }
    void boolean(const char* key, bool* out) {
        const json* v = find(key, false);
        if (!v) return;
        if (!v->is_boolean()) {
            ok_ = set_err(std::string(key) + " must be a boolean");
            return;
        }
        *out = v->get<bool>();
    }
    template <typename T>
    void uint(const char* key, T* out, bool required = false) {
        const json* v = find(key, required);
        if (!v) return;
        if (!v->is_number_unsigned() || v->get<uint64_t>() > std::numeric_limits<T>::max()) {
            ok_ = set_err(std::string(key) + " must be an unsigned integer that fits " +
                          std::to_string(sizeof(T) * 8) + " bits");
            return;
        }
        *out = T(v->get<uint64_t>());
    }

  private:
    const json* find(const char* key, bool required) {
        if (!ok_) return nullptr;
        if (p_.is_object()) {
            auto it = p_.find(key);
            if (it != p_.end() && !it->is_null()) return &*it;
        }
        if (required) ok_ = set_err(std::string("missing parameter ") + key);
        return nullptr;
    }
    bool set_err(const std::string& m) {
        if (err_) *err_ = m;
        return false;
    }
    const json& p_;
    std::string* err_;
    bool ok_ = true;
};

int malloc_create(const json& j, std::string* err) {
    MallocBdevOptions o;
    Params p(j, err);
    p.str("name", &o.name, true);
    p.uint("num_blocks", &o.num_blocks, true);
    p.uint("block_size", &o.block_size);
    p.str("uuid", &o.uuid);
    p.uint("optimal_io_boundary", &o.optimal_io_boundary);
    p.uint("max_transfer_blocks", &o.max_transfer_blocks);
    return p.ok() ? malloc_bdev_create(o, err) : -EINVAL;
}

int null_create(const json& j, std::string* err) {
    NullBdevOptions o;
    Params p(j, err);
    p.str("name", &o.name, true);
    p.uint("num_blocks", &o.num_blocks, true);
    p.uint("block_size", &o.block_size);
    p.str("uuid", &o.uuid);
    return p.ok() ? null_bdev_create(o, err) : -EINVAL;
}

int uring_create(const json& j, std::string* err) {
    UringBdevOptions o;
    Params p(j, err);
    p.str("name", &o.name, true);
    p.str("filename", &o.filename, true);
    p.uint("block_size", &o.block_size);
    p.str("uuid", &o.uuid);
    return p.ok() ? uring_bdev_create(o, err) : -EINVAL;
}

int aio_create(const json& j, std::string* err) {
    UringBdevOptions o;
    o.aio = true;
    Params p(j, err);
    p.str("name", &o.name, true);
    p.str("filename", &o.filename, true);
    p.uint("block_size", &o.block_size);
    p.str("uuid", &o.uuid);
    p.boolean("readonly", &o.readonly);
    p.boolean("fallocate", &o.fallocate);
    p.boolean("nowait", &o.nowait);
    return p.ok() ? uring_bdev_create(o, err) : -EINVAL;
}

int passthru_create(const json& j, std::string* err) {
    PassthruBdevOptions o;
    Params p(j, err);
    p.str("base_bdev_name", &o.base_bdev_name, true);
    p.str("name", &o.name, true);
    p.str("uuid", &o.uuid);
    return p.ok() ? passthru_bdev_create(o, err) : -EINVAL;
}

int delay_create(const json& j, std::string* err) {
    DelayBdevOptions o;
    Params p(j, err);
    p.str("base_bdev_name", &o.base_bdev_name, true);
    p.str("name", &o.name, true);
    p.str("uuid", &o.uuid);
    p.uint("avg_read_latency", &o.avg_read_latency, true);
    p.uint("p99_read_latency", &o.p99_read_latency, true);
    p.uint("avg_write_latency", &o.avg_write_latency, true);
    p.uint("p99_write_latency", &o.p99_write_latency, true);
    return p.ok() ? delay_bdev_create(o, err) : -EINVAL;
}

int delay_update(const json& j, std::string* err) {
    std::string name, type;
    uint64_t us = 0;
    Params p(j, err);
    p.str("delay_bdev_name", &name, true);
    p.str("latency_type", &type, true);
    p.uint("latency_us", &us, true);
    return p.ok() ? delay_bdev_update_latency(name, type, us, err) : -EINVAL;
}

int error_create(const json& j, std::string* err) {
    ErrorBdevOptions o;
    Params p(j, err);
    p.str("base_name", &o.base_name, true);
    p.str("uuid", &o.uuid);
    return p.ok() ? error_bdev_create(o, err) : -EINVAL;
}

int error_inject(const json& j, std::string* err) {
    ErrorInjectOptions o;
    Params p(j, err);
    p.str("name", &o.name, true);
    p.str("io_type", &o.io_type, true);
    p.str("error_type", &o.error_type);
    p.uint("num", &o.num);
    p.uint("queue_depth", &o.queue_depth);
    p.uint("percent", &o.percent);
    p.uint("sct", &o.sct);
    p.uint("sc", &o.sc);
    p.uint("nvme_sct", &o.sct);  // SPDK's names for sct/sc
    p.uint("nvme_sc", &o.sc);
    p.uint("corrupt_offset", &o.corrupt_offset);
    uint8_t value = 0;
    bool have_value = j.is_object() && j.contains("corrupt_value") && !j["corrupt_value"].is_null();
    p.uint("corrupt_value", &value);
    if (have_value) o.corrupt_value = value;
    if (p.ok() && o.io_type != "clear" && o.error_type.empty())
        return fail(err, -EINVAL, "missing parameter error_type");
    return p.ok() ? error_bdev_inject(o, err) : -EINVAL;
}

struct Method {
    const char* name;
    int (*fn)(const json&, std::string*);
};
const Method kMethods[] = {
    {"bdev_malloc_create", malloc_create},       {"bdev_null_create", null_create},
    {"bdev_uring_create", uring_create},         {"bdev_aio_create", aio_create},
    {"bdev_passthru_create", passthru_create},   {"bdev_delay_create", delay_create},
    {"bdev_delay_update_latency", delay_update}, {"bdev_error_create", error_create},
    {"bdev_error_inject_error", error_inject},
};

}  // namespace

bool is_bdev_config_method(const std::string& method) {
    for (const auto& m : kMethods)
        if (method == m.name) return true;
    return false;
}

int apply_bdev_method(const std::string& method, const json& params, std::string* err) {
    for (const auto& m : kMethods)
        if (method == m.name) return m.fn(params, err);
    return fail(err, -ENOTSUP, "unknown method " + method);
}

int apply_bdev_subsystem_config(const json& config, std::string* err) {
    if (!config.is_object() || !config.contains("subsystems") || !config["subsystems"].is_array())
        return fail(err, -EINVAL, "config: expected {\"subsystems\": [...]}");
    for (const auto& sub : config["subsystems"]) {
        if (!sub.is_object() || sub.value("subsystem", "") != "bdev") continue;
        const json& entries = sub.contains("config") ? sub["config"] : json();
        if (entries.is_null()) continue;
        if (!entries.is_array())
            return fail(err, -EINVAL, "config: bdev \"config\" must be an array");
        for (size_t i = 0; i < entries.size(); ++i) {
            const json& e = entries[i];
            if (!e.is_object() || !e.contains("method") || !e["method"].is_string())
                return fail(err, -EINVAL,
                            "config: bdev entry " + std::to_string(i) + " has no method");
            std::string method = e["method"].get<std::string>();
            if (!is_bdev_config_method(method)) {
                NOC_WARN("bdev", "config: skipping unsupported method {}", method);
                continue;
            }
            std::string why;
            int rc = apply_bdev_method(method, e.contains("params") ? e["params"] : json(), &why);
            if (rc) return fail(err, rc, "config: " + method + ": " + why);
        }
    }
    return 0;
}

int load_bdev_config_file(const std::string& path, std::string* err) {
    std::ifstream in(path);
    if (!in) return fail(err, -ENOENT, "cannot open config file " + path);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded()) return fail(err, -EINVAL, "config file " + path + " is not valid JSON");
    return apply_bdev_subsystem_config(j, err);
}

}  // namespace nocstor
