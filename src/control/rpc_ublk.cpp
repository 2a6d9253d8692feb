// ublk methods with SPDK's names and parameters (ublk_*), the "ublk" section of save_config,
// and the disks' counters on /metrics.
#include <cerrno>

#include "control/config.h"
#include "control/json_params.h"
#include "control/rest_api.h"
#include "control/rpc_decode.h"
#include "control/rpc_registry.h"
#include "ublk/ublk_target.h"
#include "util/prometheus.h"

#include <fmt/format.h>

namespace nocstor::control {

using nlohmann::json;
using namespace nocstor::ublk;

namespace {

UblkTarget* target_or_fail(const RpcReply& reply, const char* method) {
    UblkTarget* t = UblkTarget::instance();
    if (!t)
        reply.error(-ENODEV,
                    std::string(method) + ": the ublk target does not exist (ublk_create_target)");
    return t;
}

void fail(const RpcReply& reply, const char* method, int rc, const std::string& err) {
    if (rc == -EINVAL) return reply.invalid(std::string(method) + ": " + err);
    reply.error(rc, std::string(method) + ": " + err);
}

void create_target(const json& params, RpcReply reply) {
    TargetOptions o;
    ParamsDecoder d("ublk_create_target");
    d.optional("cpumask", &o.cpumask).optional("disable_user_copy", &o.disable_user_copy);
    if (!decode_or_reply(d, params, reply)) return;
    std::string err;
    const int rc = UblkTarget::create(std::move(o), &err);
    if (rc) return fail(reply, "ublk_create_target", rc, err);
    reply.result(true);
}

void destroy_target(const json& params, RpcReply reply) {
    ParamsDecoder d("ublk_destroy_target");
    if (!decode_or_reply(d, params, reply)) return;
    if (!target_or_fail(reply, "ublk_destroy_target")) return;
    UblkTarget::destroy([reply] { reply.result(true); });
}

void start_disk(const json& params, RpcReply reply) {
    DiskParams p;
    ParamsDecoder d("ublk_start_disk");
    d.required("bdev_name", &p.bdev_name)
        .required("ublk_id", &p.id)
        .range(0, UblkTarget::kMaxId)
        .optional("queue_depth", &p.queue_depth)
        .range(1, UBLK_MAX_QUEUE_DEPTH)
        .optional("num_queues", &p.num_queues)
        .range(1, UblkTarget::kMaxQueues);
    if (!decode_or_reply(d, params, reply)) return;
    UblkTarget* t = target_or_fail(reply, "ublk_start_disk");
    if (!t) return;
    const uint32_t id = p.id;
    t->start_disk(std::move(p), [reply, id](int rc, std::string err) {
        if (rc) return fail(reply, "ublk_start_disk", rc, err);
        reply.result(id);
    });
}

void recover_disk(const json& params, RpcReply reply) {
    std::string bdev_name;
    uint32_t id = 0;
    ParamsDecoder d("ublk_recover_disk");
    d.required("bdev_name", &bdev_name).required("ublk_id", &id).range(0, UblkTarget::kMaxId);
    if (!decode_or_reply(d, params, reply)) return;
    UblkTarget* t = target_or_fail(reply, "ublk_recover_disk");
    if (!t) return;
    t->recover_disk(bdev_name, id, [reply, id](int rc, std::string err) {
        if (rc) return fail(reply, "ublk_recover_disk", rc, err);
        reply.result(id);
    });
}

void stop_disk(const json& params, RpcReply reply) {
    uint32_t id = 0;
    ParamsDecoder d("ublk_stop_disk");
    d.required("ublk_id", &id).range(0, UblkTarget::kMaxId);
    if (!decode_or_reply(d, params, reply)) return;
    UblkTarget* t = target_or_fail(reply, "ublk_stop_disk");
    if (!t) return;
    t->stop_disk(id, [reply](int rc, std::string err) {
        if (rc) return fail(reply, "ublk_stop_disk", rc, err);
        reply.result(true);
    });
}

json stats_json(const QueueStats& s) {
    return {{"reads", s.reads},
            {"writes", s.writes},
            {"flushes", s.flushes},
            {"discards", s.discards},
            {"write_zeroes", s.write_zeroes},
            {"errors", s.errors},
            {"bytes_read", s.bytes_read},
            {"bytes_written", s.bytes_written},
            {"inflight", s.inflight}};
}

void get_disks(const json& params, RpcReply reply) {
    std::optional<uint32_t> id;
    ParamsDecoder d("ublk_get_disks");
    d.optional("ublk_id", &id);
    if (!decode_or_reply(d, params, reply)) return;
    UblkTarget* t = UblkTarget::instance();
    if (!t) return reply.result(json::array());  // no target: no disks (as SPDK)
    t->get_disks(id, [reply, id](int rc, std::vector<DiskInfo> v) {
        if (rc) return reply.error(-ENODEV, fmt::format("ublk_get_disks: no ublk device {}", *id));
        json out = json::array();
        for (const auto& di : v) {
            json queues = json::array();
            for (const auto& [q, thread] : di.queue_threads)
                queues.push_back({{"queue", q}, {"thread", thread}});
            out.push_back(
                {{"ublk_device", std::string(kBlockPrefix) + std::to_string(di.params.id)},
                 {"id", di.params.id},
                 {"queue_depth", di.params.queue_depth},
                 {"num_queues", di.params.num_queues},
                 {"bdev_name", di.params.bdev_name},
                 {"state", di.state},
                 {"num_blocks", di.num_blocks},
                 {"block_size", di.block_size},
                 {"queues", queues},
                 {"stats", stats_json(di.stats)}});
        }
        reply.result(out);
    });
}

void ublk_metrics(std::function<void(std::string)> done) {
    UblkTarget* t = UblkTarget::instance();
    if (!t) return done("");
    t->get_disks(std::nullopt, [done](int, std::vector<DiskInfo> v) {
        struct Family {
            const char* name;
            const char* help;
            uint64_t QueueStats::*field;
        };
        static const Family kFamilies[] = {
            {"nocstor_ublk_reads_total", "Read requests served.", &QueueStats::reads},
            {"nocstor_ublk_writes_total", "Write requests served.", &QueueStats::writes},
            {"nocstor_ublk_read_bytes_total", "Bytes read.", &QueueStats::bytes_read},
            {"nocstor_ublk_written_bytes_total", "Bytes written.", &QueueStats::bytes_written},
            {"nocstor_ublk_errors_total", "Requests answered with an error.", &QueueStats::errors},
        };
        std::string out;
        for (const auto& f : kFamilies) {
            prometheus_family(out, f.name, "counter", f.help);
            for (const auto& d : v)
                out += fmt::format("{}{{ublk_id=\"{}\",bdev=\"{}\"}} {}\n", f.name, d.params.id,
                                   escape_prometheus_label(d.params.bdev_name), d.stats.*f.field);
        }
        done(std::move(out));
    });
}

json ublk_section() {
    json calls = json::array();
    UblkTarget* t = UblkTarget::instance();
    if (!t) return calls;
    json tp = json::object();
    if (!t->options().cpumask.empty()) tp["cpumask"] = t->options().cpumask;
    calls.push_back({{"method", "ublk_create_target"}, {"params", tp}});
    for (const auto& p : t->saved())
        calls.push_back({{"method", "ublk_start_disk"},
                         {"params",
                          {{"bdev_name", p.bdev_name},
                           {"ublk_id", p.id},
                           {"queue_depth", p.queue_depth},
                           {"num_queues", p.num_queues}}}});
    return calls;
}

}  // namespace

void register_ublk_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("ublk_create_target", create_target, true);
    r.add("ublk_destroy_target", destroy_target, true);
    r.add("ublk_start_disk", start_disk, true);
    r.add("ublk_recover_disk", recover_disk, true);
    r.add("ublk_stop_disk", stop_disk, true);
    r.add("ublk_get_disks", get_disks);
    register_config_section("ublk", ublk_section, true);
    add_async_metrics_source(ublk_metrics);
}

}  // namespace nocstor::control
