// RAID methods with SPDK's names and parameters: bdev_raid_create, bdev_raid_delete,
// bdev_raid_get_bdevs, bdev_raid_remove_base_bdev, bdev_raid_add_base_bdev,
// bdev_raid_set_options, and nocstor's bdev_raid_start_scrub. Arrays without a superblock come
// back through save_config (bdev_raid_create); those with one assemble from their members.
#include "control/json_params.h"
#include "control/rest_api.h"
#include "control/rpc_registry.h"
#include "modules/raid/raid.h"

#include <fmt/format.h>

#include <cerrno>
#include <sstream>

namespace nocstor::control {

using nlohmann::json;

namespace {

void create(const json& params, RpcReply reply) {
    raid::RaidCreateOptions o;
    std::string level;
    json bases;
    ParamsDecoder d("bdev_raid_create");
    d.required("name", &o.name)
        .required("raid_level", &level)
        .required("base_bdevs", &bases)
        .optional("strip_size_kb", &o.strip_size_kb)
        .optional("uuid", &o.uuid)
        .optional("superblock", &o.superblock)
        .optional("bitmap_region_kb", &o.bitmap_region_kb);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (!raid::parse_level(level, &o.level))
        return reply.invalid("bdev_raid_create: raid_level '" + level +
                             "' is not raid0, raid1, raid5, raid6 or concat");
    // An array of names, or (older rpc.py) one string of names separated by spaces.
    if (bases.is_string()) {
        std::istringstream in(bases.get<std::string>());
        for (std::string b; in >> b;) o.base_bdevs.push_back(b);
    } else if (bases.is_array()) {
        for (const auto& b : bases) {
            if (!b.is_string()) return reply.invalid("bdev_raid_create: base_bdevs must be names");
            o.base_bdevs.push_back(b.get<std::string>());
        }
    } else {
        return reply.invalid("bdev_raid_create: base_bdevs must be an array of bdev names");
    }
    raid::raid_create_async(o, [reply](int rc, std::string err) {
        if (rc == -EINVAL) return reply.invalid("bdev_raid_create: " + err);
        if (rc) return reply.error(rc, "bdev_raid_create: " + err);
        reply.result(true);
    });
}

void remove(const json& params, RpcReply reply) {
    std::string name;
    bool clear_sb = false;
    ParamsDecoder d("bdev_raid_delete");
    d.required("name", &name).optional("clear_sb", &clear_sb);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    raid::raid_delete(name, clear_sb, [reply, name](int rc) {
        if (rc == -ENODEV)
            return reply.error(rc, "bdev_raid_delete: no raid bdev named '" + name + "'");
        if (rc) return reply.error(rc, "bdev_raid_delete: cannot delete " + name);
        reply.result(true);
    });
}

void get_bdevs(const json& params, RpcReply reply) {
    std::string category;
    ParamsDecoder d("bdev_raid_get_bdevs");
    d.required("category", &category);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (category != "all" && category != "online" && category != "configuring" &&
        category != "offline")
        return reply.invalid(
            "bdev_raid_get_bdevs: category must be all, online, configuring or offline");
    reply.result(raid::raid_list(category));
}

void remove_base(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("bdev_raid_remove_base_bdev");
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    const int rc = raid::raid_remove_member(
        name, [reply] { reply.result(true); }, &err);
    if (rc) return reply.error(rc, "bdev_raid_remove_base_bdev: " + err);
}

void add_base(const json& params, RpcReply reply) {
    std::string raid, base;
    ParamsDecoder d("bdev_raid_add_base_bdev");
    d.required("raid_bdev", &raid).required("base_bdev", &base);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    // Answered once the rebuild runs, so that bdev_raid_get_bdevs shows it right after.
    const int rc = raid::raid_add_member(raid, base, &err, [reply] { reply.result(true); });
    if (rc == -EINVAL) return reply.invalid("bdev_raid_add_base_bdev: " + err);
    if (rc) return reply.error(rc, "bdev_raid_add_base_bdev: " + err);
}

void set_options(const json& params, RpcReply reply) {
    json current = raid::raid_process_options_json();
    uint32_t window = current["process_window_size_kb"],
             bw = current["process_max_bandwidth_mb_sec"],
             clear_ms = current["bitmap_clear_interval_ms"];
    ParamsDecoder d("bdev_raid_set_options");
    d.optional("process_window_size_kb", &window)
        .range(4, 1u << 20)
        .optional("process_max_bandwidth_mb_sec", &bw)
        .optional("bitmap_clear_interval_ms", &clear_ms)
        .range(100, 3'600'000);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    raid::raid_set_process_options(window, bw, clear_ms);
    reply.result(true);
}

void start_scrub(const json& params, RpcReply reply) {
    std::string name;
    bool repair = false;
    ParamsDecoder d("bdev_raid_start_scrub");
    d.required("name", &name).optional("repair", &repair);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    const int rc = raid::raid_start_scrub(name, repair, &err);
    if (rc == -EINVAL) return reply.invalid("bdev_raid_start_scrub: " + err);
    if (rc) return reply.error(rc, "bdev_raid_start_scrub: " + err);
    reply.result(true);
}

}  // namespace

void register_raid_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_raid_create", create, true);
    r.add("bdev_raid_delete", remove, true);
    r.add("bdev_raid_get_bdevs", get_bdevs);
    r.add("bdev_raid_remove_base_bdev", remove_base, true);
    r.add("bdev_raid_add_base_bdev", add_base, true);
    r.add("bdev_raid_set_options", set_options, true);
    r.add("bdev_raid_start_scrub", start_scrub);
    add_metrics_source(raid::raid_metrics);
}

}  // namespace nocstor::control
