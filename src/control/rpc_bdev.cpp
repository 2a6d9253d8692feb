// Bdev methods that belong to the layer itself: bdev_get_bdevs, bdev_get_iostat. The module
// create/delete methods are in rpc_bdev_modules.cpp.
#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "runtime/thread.h"
#include "util/spdk_histogram.h"
#include "util/tick.h"

#include <openssl/evp.h>

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
            {"cluster", b->cluster},
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

// With a name and a timeout (ms), waits for a bdev that is still being created (an NVMe
// controller attaching, a RAID being assembled) instead of failing at once.
void get_bdevs(const json& params, RpcReply reply) {
    std::optional<std::string> name;
    uint64_t timeout_ms = 0;
    ParamsDecoder d("bdev_get_bdevs");
    d.optional("name", &name).optional("timeout", &timeout_ms);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (!name) {
        json out = json::array();
        for (Bdev* b : bdev_list()) out.push_back(describe_bdev(b));
        return reply.result(out);
    }
    if (Bdev* b = bdev_get_by_name(*name)) return reply.result(json::array({describe_bdev(b)}));
    if (timeout_ms == 0) return reply.error(-ENODEV, "bdev '" + *name + "' does not exist");
    Thread* t = Thread::current();
    const uint64_t deadline = now_ns() + timeout_ms * 1'000'000;
    auto poller = std::make_shared<Poller*>(nullptr);
    *poller = t->register_poller(
        "bdev_get_bdevs_wait",
        [t, poller, deadline, n = *name, reply] {
            Bdev* b = bdev_get_by_name(n);
            if (!b && now_ns() < deadline) return 0;
            t->unregister_poller(*poller);
            if (b)
                reply.result(json::array({describe_bdev(b)}));
            else
                reply.error(-ENODEV, "bdev '" + n + "' does not exist");
            return 1;
        },
        10'000);
}

StatsReset parse_reset_mode(const std::string& mode, bool* ok) {
    *ok = true;
    if (mode == "all") return StatsReset::All;
    if (mode == "maxmin") return StatsReset::MaxMin;
    if (mode == "error") return StatsReset::Errors;
    if (mode == "none") return StatsReset::None;
    *ok = false;
    return StatsReset::None;
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

// The named bdevs (all when names is empty); false with the reply answered if one is missing.
bool select_bdevs(const std::vector<std::string>& names, std::vector<Bdev*>* out,
                  const RpcReply& reply) {
    if (names.empty()) {
        *out = bdev_list();
        return true;
    }
    for (const auto& n : names) {
        Bdev* b = bdev_get_by_name(n);
        if (!b) {
            reply.error(-ENODEV, "bdev '" + n + "' does not exist");
            return false;
        }
        out->push_back(b);
    }
    return true;
}

// Runs fn(bdev, next) for each bdev in turn (each may call back later), then done().
void for_each_bdev(std::shared_ptr<std::vector<Bdev*>> list,
                   std::function<void(Bdev*, std::function<void()>)> fn, std::function<void()> done,
                   size_t i = 0) {
    if (i == list->size()) return done();
    Bdev* b = (*list)[i];
    fn(b, [list, fn, done, i] { for_each_bdev(list, fn, done, i + 1); });
}

void get_iostat(const json& params, RpcReply reply) {
    std::optional<std::string> name;
    std::vector<std::string> names;
    bool per_channel = false;
    std::string reset_mode = "none";
    ParamsDecoder d("bdev_get_iostat");
    d.optional("name", &name)
        .optional("names", &names)
        .optional("per_channel", &per_channel)
        .optional("reset_mode", &reset_mode);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    bool ok;
    const StatsReset reset = parse_reset_mode(reset_mode, &ok);
    if (!ok) return reply.invalid("bdev_get_iostat: reset_mode must be all, maxmin, error or none");
    if (name) names.push_back(*name);
    auto list = std::make_shared<std::vector<Bdev*>>();
    if (!select_bdevs(names, list.get(), reply)) return;
    auto out = std::make_shared<json>(json::array());
    for_each_bdev(
        list,
        [out, per_channel, reset](Bdev* b, std::function<void()> next) {
            std::string n = b->name;
            auto after = [b, reset, next] { bdev_reset_stats(b, reset, next); };
            if (per_channel) {
                bdev_get_channel_stats(b, [out, n, after](auto channels) {
                    json chs = json::array();
                    for (const auto& [thread, s] : channels) {
                        json c = iostat_json(n, s);
                        c.erase("name");
                        c["thread"] = thread;
                        chs.push_back(std::move(c));
                    }
                    out->push_back({{"name", n}, {"channels", chs}});
                    after();
                });
            } else {
                bdev_get_stats(b, [out, n, after](const BdevStats& s) {
                    out->push_back(iostat_json(n, s));
                    after();
                });
            }
        },
        [out, reply] {
            reply.result({{"tick_rate", 1000000000}, {"bdevs", *out}});
        });
}

// SPDK's I/O type names that never occur on nocstor bdevs (a histogram of them stays empty).
bool io_type_from_name(const std::string& name, int* type) {
    for (int t = 0; t < int(IoType::Count); ++t) {
        if (name == io_type_name(IoType(t))) {
            *type = t;
            return true;
        }
    }
    return false;
}

void enable_histogram(const json& params, RpcReply reply) {
    std::string name, opc;
    BdevHistogramConfig config;
    ParamsDecoder d("bdev_enable_histogram");
    d.required("name", &name)
        .required("enable", &config.enabled)
        .optional("opc", &opc)
        .optional("granularity", &config.granularity)
        .range(1, 24)
        .optional("min_nsec", &config.min_ns)
        .optional("max_nsec", &config.max_ns);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (!opc.empty() && !io_type_from_name(opc, &config.io_type))
        return reply.invalid("bdev_enable_histogram: opc '" + opc +
                             "' is not an I/O type of nocstor's bdevs (read, write, flush, unmap, "
                             "write_zeroes, reset)");
    if (config.min_ns >= config.max_ns)
        return reply.invalid("bdev_enable_histogram: min_nsec must be below max_nsec");
    Bdev* b = bdev_get_by_name(name);
    if (!b) return reply.error(-ENODEV, "bdev '" + name + "' does not exist");
    bdev_set_histogram(b, config, [reply] { reply.result(true); });
}

// {"histogram": base64 of the buckets (little-endian uint64, SPDK's histogram_data layout),
//  "granularity", "min_range", "max_range", "tsc_rate"}: what SPDK's scripts/histogram.py reads.
void get_histogram(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("bdev_get_histogram");
    d.required("name", &name);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    Bdev* b = bdev_get_by_name(name);
    if (!b) return reply.error(-ENODEV, "bdev '" + name + "' does not exist");
    bdev_get_histogram(b, [reply, name](std::unique_ptr<SpdkHistogram> h) {
        if (!h)
            return reply.error(-ENOENT, "bdev_get_histogram: the histogram of '" + name +
                                            "' is off (bdev_enable_histogram)");
        const auto& buckets = h->buckets();
        std::string raw(buckets.size() * sizeof(uint64_t), '\0');
        for (size_t i = 0; i < buckets.size(); ++i)
            for (size_t byte = 0; byte < 8; ++byte)
                raw[i * 8 + byte] = char(uint8_t(buckets[i] >> (8 * byte)));
        std::string b64(4 * ((raw.size() + 2) / 3) + 1, '\0');
        const int n =
            EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                            reinterpret_cast<const unsigned char*>(raw.data()), int(raw.size()));
        b64.resize(size_t(n));
        reply.result({{"histogram", b64},
                      {"granularity", h->granularity()},
                      {"min_range", h->min_range()},
                      {"max_range", h->max_range()},
                      {"tsc_rate", 1000000000}});
    });
}

void reset_iostat(const json& params, RpcReply reply) {
    std::optional<std::string> name;
    std::string mode = "all";
    ParamsDecoder d("bdev_reset_iostat");
    d.optional("name", &name).optional("mode", &mode);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    bool ok;
    const StatsReset reset = parse_reset_mode(mode, &ok);
    if (!ok) return reply.invalid("bdev_reset_iostat: mode must be all, maxmin, error or none");
    auto list = std::make_shared<std::vector<Bdev*>>();
    if (!select_bdevs(name ? std::vector<std::string>{*name} : std::vector<std::string>{},
                      list.get(), reply))
        return;
    for_each_bdev(
        list, [reset](Bdev* b, std::function<void()> next) { bdev_reset_stats(b, reset, next); },
        [reply] { reply.result(true); });
}

}  // namespace

void register_bdev_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("bdev_get_bdevs", get_bdevs);
    r.add("bdev_get_iostat", get_iostat);
    r.add("bdev_reset_iostat", reset_iostat);
    r.add("bdev_wait_for_examine", [](const json& params, RpcReply reply) {
        ParamsDecoder d("bdev_wait_for_examine");
        std::string err;
        if (!d.decode(params, &err)) return reply.invalid(err);
        bdev_wait_for_examine([reply] { reply.result(true); });
    });
    r.add("bdev_enable_histogram", enable_histogram, true);
    r.add("bdev_get_histogram", get_histogram);
    register_bdev_module_rpcs();
}

}  // namespace nocstor::control
