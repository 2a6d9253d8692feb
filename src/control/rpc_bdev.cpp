// Bdev methods that belong to the layer itself: bdev_get_bdevs, bdev_get_iostat. The module
// create/delete methods are in rpc_bdev_modules.cpp.
#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "control/json_params.h"
#include "control/rpc_registry.h"

#include <cerrno>

namespace nocstor::control {

using nlohmann::json;

json describe_bdev(const Bdev* b) {
    json io_types;
    static const IoType kTypes[] = {IoType::Read,  IoType::Write,       IoType::Flush,
                                    IoType::Unmap, IoType::WriteZeroes, IoType::Reset};
    for (IoType t : kTypes) io_types[io_type_name(t)] = b->io_type_supported(t);
    // Write zeroes is always available: the layer emulates it with writes.
    io_types["write_zeroes"] = true;
    json driver = json::object();
    b->dump_info_json(driver);
    return {{"name", b->name},
            {"aliases", b->aliases},
            {"product_name", b->product_name},
            {"module", b->module ? b->module->name() : ""},
            {"block_size", b->block_size},
            {"num_blocks", b->num_blocks},
            {"uuid", uuid_to_string(b->uuid)},
            {"claimed", b->claimed_by() != nullptr},
            {"claim_type", b->claimed_by() ? "exclusive_write" : "none"},
            {"zoned", false},
            {"write_cache", b->write_cache},
            {"optimal_io_boundary", b->optimal_io_boundary},
            {"max_transfer_blocks", b->max_transfer_blocks},
            {"supported_io_types", io_types},
            {"driver_specific", driver}};
}

namespace {

void get_bdevs(const json& params, RpcReply reply) {
    std::optional<std::string> name;
    int64_t timeout = 0;
    ParamsDecoder d("bdev_get_bdevs");
    d.optional("name", &name).optional("timeout", &timeout);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    json out = json::array();
    if (name) {
        Bdev* b = bdev_get_by_name(*name);
        if (!b) return reply.error(-ENODEV, "bdev '" + *name + "' does not exist");
        out.push_back(describe_bdev(b));
    } else {
        for (Bdev* b : bdev_list()) out.push_back(describe_bdev(b));
    }
    reply.result(out);
}

json iostat_json(const std::string& name, const BdevStats& s) {
    auto& r = s.by_type[size_t(IoType::Read)];
    auto& w = s.by_type[size_t(IoType::Write)];
    auto& u = s.by_type[size_t(IoType::Unmap)];
    auto& f = s.by_type[size_t(IoType::Flush)];
    auto& z = s.by_type[size_t(IoType::WriteZeroes)];
    auto min0 = [](uint64_t v) { return v == UINT64_MAX ? 0 : v; };
    return {{"name", name},
            {"bytes_read", r.bytes},
            {"num_read_ops", r.ops},
            {"bytes_written", w.bytes},
            {"num_write_ops", w.ops},
            {"bytes_unmapped", u.bytes},
            {"num_unmap_ops", u.ops},
            {"num_flush_ops", f.ops},
            {"num_write_zeroes_ops", z.ops},
            {"read_latency_ticks", r.latency_sum_ns},
            {"max_read_latency_ticks", r.latency_max_ns},
            {"min_read_latency_ticks", min0(r.latency_min_ns)},
            {"write_latency_ticks", w.latency_sum_ns},
            {"max_write_latency_ticks", w.latency_max_ns},
            {"min_write_latency_ticks", min0(w.latency_min_ns)},
            {"unmap_latency_ticks", u.latency_sum_ns},
            {"io_error", r.errors + w.errors + u.errors + f.errors + z.errors},
            {"nomem_retries", s.nomem_retries},
            {"latency_p50_ns", s.latency.percentile(50)},
            {"latency_p99_ns", s.latency.percentile(99)},
            {"latency_p999_ns", s.latency.percentile(99.9)}};
}

void get_iostat(const json& params, RpcReply reply) {
    std::optional<std::string> name;
    bool per_channel = false;
    ParamsDecoder d("bdev_get_iostat");
    d.optional("name", &name).optional("per_channel", &per_channel);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    std::vector<Bdev*> bdevs;
    if (name) {
        Bdev* b = bdev_get_by_name(*name);
        if (!b) return reply.error(-ENODEV, "bdev '" + *name + "' does not exist");
        bdevs.push_back(b);
    } else {
        bdevs = bdev_list();
    }
    auto list = std::make_shared<std::vector<Bdev*>>(std::move(bdevs));
    auto out = std::make_shared<json>(json::array());
    auto next = std::make_shared<std::function<void(size_t)>>();
    *next = [list, out, next, reply](size_t i) {
        if (i == list->size()) {
            json result = {{"tick_rate", 1000000000}, {"bdevs", *out}};
            RpcReply r = reply;
            *next = nullptr;  // destroys this closure: only locals from here on
            r.result(std::move(result));
            return;
        }
        std::string n = (*list)[i]->name;
        bdev_get_stats((*list)[i], [out, next, i, n](const BdevStats& s) {
            out->push_back(iostat_json(n, s));
            (*next)(i + 1);
        });
    };
    (*next)(0);
}

}  // namespace

void register_bdev_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_get_bdevs", get_bdevs);
    r.add("bdev_get_iostat", get_iostat);
    register_bdev_module_rpcs();
}

}  // namespace nocstor::control
