// Cache methods with SPDK's names and parameters (bdev_ocf_*), served by nocstor's own cache
// engine (modules/cache): bdev_ocf_create, bdev_ocf_delete, bdev_ocf_get_bdevs,
// bdev_ocf_get_stats, bdev_ocf_reset_stats, bdev_ocf_set_cache_mode, bdev_ocf_set_seqcutoff,
// bdev_ocf_flush_start, bdev_ocf_flush_status, and nocstor's bdev_ocf_set_cleaning and
// bdev_ocf_set_promotion. A cache comes back after a restart by itself (examine), so save_config
// has no entry for it.
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "modules/cache/cache.h"

#include <cerrno>

namespace nocstor::control {

using nlohmann::json;

namespace {

void reply_done(const RpcReply& reply, const char* method, int rc, const std::string& err) {
    if (rc == -EINVAL) return reply.invalid(std::string(method) + ": " + err);
    if (rc) return reply.error(rc, std::string(method) + ": " + err);
    reply.result(true);
}

void create(const json& params, RpcReply reply) {
    cache::CacheCreateOptions o;
    uint64_t line_kb = 4;
    ParamsDecoder d("bdev_ocf_create");
    d.required("name", &o.name)
        .required("mode", &o.mode)
        .optional("cache_line_size", &line_kb)
        .required("cache_bdev_name", &o.cache_bdev_name)
        .required("core_bdev_name", &o.core_bdev_name)
        .optional("format", &o.format);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (line_kb != 4 && line_kb != 8 && line_kb != 16 && line_kb != 32 && line_kb != 64)
        return reply.invalid("bdev_ocf_create: cache_line_size must be 4, 8, 16, 32 or 64 (KiB)");
    o.cache_line_size = uint32_t(line_kb);
    cache::cache_create(o, [reply](int rc, std::string err) {
        if (rc) return reply_done(reply, "bdev_ocf_create", rc, err);
        reply.result(true);
    });
}

void remove(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("bdev_ocf_delete");
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    cache::cache_delete(
        name, [reply](int rc, std::string err) { reply_done(reply, "bdev_ocf_delete", rc, err); });
}

void get_bdevs(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("bdev_ocf_get_bdevs");
    d.optional("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    json out = cache::cache_get_bdevs(name);
    if (!name.empty() && out.empty())
        return reply.error(-ENODEV, "bdev_ocf_get_bdevs: no cache uses a bdev named " + name);
    reply.result(out);
}

// The methods that take only {name} of a cache.
std::string decode_name(const char* method, const json& params, const RpcReply& reply) {
    std::string name;
    ParamsDecoder d(method);
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) {
        reply.invalid(err);
        return {};
    }
    return name;
}

void get_stats(const json& params, RpcReply reply) {
    const std::string name = decode_name("bdev_ocf_get_stats", params, reply);
    if (name.empty()) return;
    json out;
    if (cache::cache_get_stats(name, &out))
        return reply.error(-ENODEV, "bdev_ocf_get_stats: no cache bdev named " + name);
    reply.result(out);
}

void reset_stats(const json& params, RpcReply reply) {
    const std::string name = decode_name("bdev_ocf_reset_stats", params, reply);
    if (name.empty()) return;
    if (cache::cache_reset_stats(name))
        return reply.error(-ENODEV, "bdev_ocf_reset_stats: no cache bdev named " + name);
    reply.result(true);
}

void set_cache_mode(const json& params, RpcReply reply) {
    std::string name, mode;
    ParamsDecoder d("bdev_ocf_set_cache_mode");
    d.required("name", &name).required("mode", &mode);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    cache::cache_set_mode(name, mode, [reply](int rc, std::string err) {
        reply_done(reply, "bdev_ocf_set_cache_mode", rc, err);
    });
}

void set_seqcutoff(const json& params, RpcReply reply) {
    std::string name, policy;
    uint32_t threshold = 0, promotion = 0;
    ParamsDecoder d("bdev_ocf_set_seqcutoff");
    d.required("name", &name)
        .required("policy", &policy)
        .optional("threshold", &threshold)
        .optional("promotion_count", &promotion);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    cache::cache_set_seqcutoff(
        name, policy, threshold, promotion,
        [reply](int rc, std::string err) { reply_done(reply, "bdev_ocf_set_seqcutoff", rc, err); });
}

// nocstor's own: the background cleaner's settings.
void set_cleaning(const json& params, RpcReply reply) {
    std::string name;
    cache::CleaningOptions o;
    int64_t max_lines = -1;
    ParamsDecoder d("bdev_ocf_set_cleaning");
    d.required("name", &name)
        .optional("policy", &o.policy)
        .optional("stale_ms", &o.stale_ms)
        .range(1, 86'400'000)
        .optional("dirty_high_pct", &o.dirty_high_pct)
        .range(1, 100)
        .optional("dirty_low_pct", &o.dirty_low_pct)
        .range(1, 99)
        .optional("max_lines_per_sec", &max_lines)
        .range(0, 100'000'000);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    o.max_lines_per_sec = max_lines;
    cache::cache_set_cleaning(name, o, [reply](int rc, std::string err) {
        reply_done(reply, "bdev_ocf_set_cleaning", rc, err);
    });
}

// nocstor's own: when a missed core line gets a cache line.
void set_promotion(const json& params, RpcReply reply) {
    std::string name, policy;
    uint32_t hits = 2;
    ParamsDecoder d("bdev_ocf_set_promotion");
    d.required("name", &name).required("policy", &policy).optional("hits", &hits);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    cache::cache_set_promotion(name, policy, hits, [reply](int rc, std::string err) {
        reply_done(reply, "bdev_ocf_set_promotion", rc, err);
    });
}

void flush_start(const json& params, RpcReply reply) {
    const std::string name = decode_name("bdev_ocf_flush_start", params, reply);
    if (name.empty()) return;
    std::string err;
    const int rc = cache::cache_flush_start(name, &err);
    reply_done(reply, "bdev_ocf_flush_start", rc, err);
}

void flush_status(const json& params, RpcReply reply) {
    const std::string name = decode_name("bdev_ocf_flush_status", params, reply);
    if (name.empty()) return;
    json out;
    if (cache::cache_flush_status(name, &out))
        return reply.error(-ENODEV, "bdev_ocf_flush_status: no cache bdev named " + name);
    reply.result(out);
}

}  // namespace

void register_cache_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_ocf_create", create, true);
    r.add("bdev_ocf_delete", remove, true);
    r.add("bdev_ocf_get_bdevs", get_bdevs);
    r.add("bdev_ocf_get_stats", get_stats);
    r.add("bdev_ocf_reset_stats", reset_stats, true);
    r.add("bdev_ocf_set_cache_mode", set_cache_mode, true);
    r.add("bdev_ocf_set_seqcutoff", set_seqcutoff, true);
    r.add("bdev_ocf_set_cleaning", set_cleaning, true);
    r.add("bdev_ocf_set_promotion", set_promotion, true);
    r.add("bdev_ocf_flush_start", flush_start);
    r.add("bdev_ocf_flush_status", flush_status);
}

}  // namespace nocstor::control
