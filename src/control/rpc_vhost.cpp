// vhost-user-blk methods with SPDK's names and parameters (vhost_*), the "vhost_blk" section of
// save_config, and the controllers' counters on /metrics.
#include <cerrno>

#include "control/config.h"
#include "control/json_params.h"
#include "control/rest_api.h"
#include "control/rpc_decode.h"
#include "control/rpc_registry.h"
#include "util/prometheus.h"
#include "vhost/vhost_target.h"

#include <fmt/format.h>

namespace nocstor::control {

using nlohmann::json;
using namespace nocstor::vhost;

namespace {

VhostTarget* target_or_fail(const RpcReply& reply) {
    VhostTarget* t = VhostTarget::instance();
    if (!t) reply.error(-ENODEV, "the vhost target is not running");
    return t;
}

void fail(const RpcReply& reply, const char* method, int rc, const std::string& err) {
    if (rc == -EINVAL) return reply.invalid(std::string(method) + ": " + err);
    reply.error(rc, std::string(method) + ": " + err);
}

void create_blk_controller(const json& params, RpcReply reply) {
    VhostTarget* t = target_or_fail(reply);
    if (!t) return;
    CreateBlkParams p;
    std::string transport;
    uint32_t num_queues = 0;
    ParamsDecoder d("vhost_create_blk_controller");
    d.required("ctrlr", &p.ctrlr)
        .required("dev_name", &p.dev_name)
        .optional("readonly", &p.readonly)
        .optional("cpumask", &p.cpumask)
        .optional("num_queues", &num_queues)
        .range(1, kMaxQueues)
        .optional("transport", &transport)
        .unsupported("packed_ring", "packed virtqueues");
    if (!decode_or_reply(d, params, reply)) return;
    if (!transport.empty() && transport != "vhost_user_blk")
        return reply.invalid("vhost_create_blk_controller: transport '" + transport +
                             "' is not supported (only vhost_user_blk)");
    p.num_queues = num_queues;
    std::string err;
    const int rc = t->create_blk_controller(p, &err);
    if (rc) return fail(reply, "vhost_create_blk_controller", rc, err);
    reply.result(true);
}

void delete_controller(const json& params, RpcReply reply) {
    VhostTarget* t = target_or_fail(reply);
    if (!t) return;
    std::string name;
    ParamsDecoder d("vhost_delete_controller");
    d.required("ctrlr", &name);
    if (!decode_or_reply(d, params, reply)) return;
    t->delete_controller(name, [reply](int rc, std::string err) {
        if (rc) return fail(reply, "vhost_delete_controller", rc, err);
        reply.result(true);
    });
}

void set_coalescing(const json& params, RpcReply reply) {
    VhostTarget* t = target_or_fail(reply);
    if (!t) return;
    std::string name;
    Coalescing c;
    ParamsDecoder d("vhost_controller_set_coalescing");
    d.required("ctrlr", &name)
        .required("delay_base_us", &c.delay_base_us)
        .required("iops_threshold", &c.iops_threshold);
    if (!decode_or_reply(d, params, reply)) return;
    std::string err;
    const int rc = t->set_coalescing(name, c, &err);
    if (rc) return fail(reply, "vhost_controller_set_coalescing", rc, err);
    reply.result(true);
}

json stats_json(const QueueStats& s) {
    return {{"requests", s.requests},
            {"reads", s.reads},
            {"writes", s.writes},
            {"flushes", s.flushes},
            {"discards", s.discards},
            {"write_zeroes", s.write_zeroes},
            {"get_ids", s.get_ids},
            {"errors", s.errors},
            {"unsupported", s.unsupported},
            {"bytes_read", s.bytes_read},
            {"bytes_written", s.bytes_written},
            {"interrupts", s.interrupts},
            {"wakeups", s.wakeups},
            {"resubmitted", s.resubmitted},
            {"inflight", s.inflight}};
}

void get_controllers(const json& params, RpcReply reply) {
    VhostTarget* t = target_or_fail(reply);
    if (!t) return;
    std::optional<std::string> name;
    ParamsDecoder d("vhost_get_controllers");
    d.optional("name", &name);
    if (!decode_or_reply(d, params, reply)) return;
    std::map<std::string, Coalescing> coalescing;
    for (const auto& [p, c] : t->saved()) coalescing[p.ctrlr] = c;
    t->get_controllers(name, [reply, name, coalescing](int rc, std::vector<ControllerInfo> v) {
        if (rc)
            return reply.error(rc,
                               "vhost_get_controllers: controller " + *name + " does not exist");
        json out = json::array();
        for (const auto& c : v) {
            json queues = json::array();
            for (const auto& [q, thread] : c.queue_threads)
                queues.push_back({{"queue", q}, {"thread", thread}});
            const auto it = coalescing.find(c.name);
            const Coalescing co = it == coalescing.end() ? Coalescing{} : it->second;
            out.push_back({{"ctrlr", c.name},
                           {"cpumask", c.cpumask.empty() ? "all data cores" : c.cpumask},
                           {"delay_base_us", co.delay_base_us},
                           {"iops_threshold", co.iops_threshold},
                           {"socket", c.socket_path},
                           {"sessions",
                            c.connected ? json::array({{{"vid", 0},
                                                        {"features", c.features},
                                                        {"protocol_features", c.protocol_features},
                                                        {"active_queues", c.active_queues},
                                                        {"queues", queues}}})
                                        : json::array()},
                           {"backend_specific",
                            {{"block",
                              {{"readonly", c.readonly},
                               {"bdev", c.bdev_removed ? json(nullptr) : json(c.bdev_name)},
                               {"transport", "vhost_user_blk"},
                               {"num_queues", c.num_queues}}}}},
                           {"stats", stats_json(c.stats)}});
        }
        reply.result(out);
    });
}

void vhost_metrics(std::function<void(std::string)> done) {
    VhostTarget* t = VhostTarget::instance();
    if (!t) return done("");
    t->get_controllers(std::nullopt, [done](int, std::vector<ControllerInfo> v) {
        struct Family {
            const char* name;
            const char* type;
            const char* help;
            uint64_t QueueStats::*field;
        };
        static const Family kFamilies[] = {
            {"nocstor_vhost_requests_total", "counter", "virtio-blk requests received.",
             &QueueStats::requests},
            {"nocstor_vhost_read_bytes_total", "counter", "Bytes read by guests.",
             &QueueStats::bytes_read},
            {"nocstor_vhost_written_bytes_total", "counter", "Bytes written by guests.",
             &QueueStats::bytes_written},
            {"nocstor_vhost_errors_total", "counter", "Requests answered with VIRTIO_BLK_S_IOERR.",
             &QueueStats::errors},
            {"nocstor_vhost_interrupts_total", "counter", "Interrupts (call eventfd writes) sent.",
             &QueueStats::interrupts},
            {"nocstor_vhost_wakeups_total", "counter", "Kicks that woke a sleeping data thread.",
             &QueueStats::wakeups},
            {"nocstor_vhost_resubmitted_total", "counter",
             "Requests resubmitted from the inflight region after a restart.",
             &QueueStats::resubmitted},
        };
        std::string out;
        for (const auto& f : kFamilies) {
            prometheus_family(out, f.name, f.type, f.help);
            for (const auto& c : v)
                out += fmt::format("{}{{ctrlr=\"{}\"}} {}\n", f.name,
                                   escape_prometheus_label(c.name), c.stats.*f.field);
        }
        prometheus_family(out, "nocstor_vhost_connected", "gauge",
                          "Whether a VMM is connected to the controller.");
        for (const auto& c : v)
            out += fmt::format("nocstor_vhost_connected{{ctrlr=\"{}\"}} {}\n",
                               escape_prometheus_label(c.name), c.connected ? 1 : 0);
        done(std::move(out));
    });
}

json vhost_section() {
    json calls = json::array();
    VhostTarget* t = VhostTarget::instance();
    if (!t) return calls;
    for (const auto& [p, c] : t->saved()) {
        json params = {{"ctrlr", p.ctrlr}, {"dev_name", p.dev_name}, {"readonly", p.readonly}};
        if (!p.cpumask.empty()) params["cpumask"] = p.cpumask;
        if (p.num_queues) params["num_queues"] = p.num_queues;
        calls.push_back({{"method", "vhost_create_blk_controller"}, {"params", params}});
        if (c.delay_base_us || c.iops_threshold)
            calls.push_back({{"method", "vhost_controller_set_coalescing"},
                             {"params",
                              {{"ctrlr", p.ctrlr},
                               {"delay_base_us", c.delay_base_us},
                               {"iops_threshold", c.iops_threshold}}}});
    }
    return calls;
}

}  // namespace

void register_vhost_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("vhost_create_blk_controller", create_blk_controller, true);
    r.add("vhost_delete_controller", delete_controller, true);
    r.add("vhost_controller_set_coalescing", set_coalescing, true);
    r.add("vhost_get_controllers", get_controllers);
    register_config_section("vhost_blk", vhost_section, true);
    add_async_metrics_source(vhost_metrics);
}

}  // namespace nocstor::control
