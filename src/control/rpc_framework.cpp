// Framework methods: version, reactors, threads, clusters and NoC statistics, init state.
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "runtime/io_channel.h"
#include "runtime/runtime.h"

namespace nocstor::control {

namespace {

using nlohmann::json;

constexpr uint64_t kTickRate = 1'000'000'000;  // our "ticks" are nanoseconds

bool no_params(const char* method, const json& params, const RpcReply& reply) {
    ParamsDecoder d(method);
    std::string err;
    if (!d.decode(params, &err)) {
        reply.invalid(err);
        return false;
    }
    return true;
}

void get_version(const json& params, RpcReply reply) {
    if (!no_params("spdk_get_version", params, reply)) return;
    reply.result({{"version", "nocstor v0.1.0"},
                  {"fields", {{"major", 0}, {"minor", 1}, {"patch", 0}, {"suffix", ""}}}});
}

void get_reactors(const json& params, RpcReply reply) {
    if (!no_params("framework_get_reactors", params, reply)) return;
    Runtime* rt = Runtime::instance();
    json reactors = json::array();
    for (const auto& r : rt->reactors()) {
        ReactorStats s = r->stats();
        json threads = json::array();
        for (const auto& t : r->threads())
            threads.push_back({{"name", t->name()}, {"id", t->id()}, {"cluster", t->cluster_id()}});
        reactors.push_back({{"lcore", r->core()},
                            {"cluster", r->cluster_id()},
                            {"busy", s.busy_ns},
                            {"idle", s.idle_ns},
                            {"sleeps", s.sleeps},
                            {"in_interrupt", r->options().allow_sleep},
                            {"spin_window_us", s.spin_window_ns / 1000},
                            {"idle_gap_us", s.idle_gap_ns / 1000},
                            {"lw_threads", threads}});
    }
    reply.result({{"tick_rate", kTickRate}, {"reactors", reactors}});
}

void get_thread_stats(const json& params, RpcReply reply) {
    if (!no_params("thread_get_stats", params, reply)) return;
    // Each thread reads its own counters (they are not atomics), then the list comes back here.
    auto out = std::make_shared<std::vector<json>>(all_threads().size());
    auto threads = all_threads();
    auto index = std::make_shared<std::map<Thread*, size_t>>();
    for (size_t i = 0; i < threads.size(); ++i) (*index)[threads[i]] = i;
    run_on_threads(
        threads,
        [out, index](Thread* t) {
            size_t active = 0, timed = 0, paused = 0;
            for (const auto& p : t->pollers()) {
                if (p.state == Poller::State::Paused)
                    ++paused;
                else if (p.period_ns)
                    ++timed;
                else
                    ++active;
            }
            (*out)[index->at(t)] = json{{"name", t->name()},
                                        {"id", t->id()},
                                        {"cluster", t->cluster_id()},
                                        {"busy", t->stats().busy_ns},
                                        {"idle", t->stats().idle_ns},
                                        {"messages", t->stats().messages},
                                        {"active_pollers_count", active},
                                        {"timed_pollers_count", timed},
                                        {"paused_pollers_count", paused}};
        },
        [out, reply] {
            reply.result({{"tick_rate", kTickRate}, {"threads", *out}});
        });
}

void get_clusters(const json& params, RpcReply reply) {
    if (!no_params("nocstor_get_clusters", params, reply)) return;
    Runtime* rt = Runtime::instance();
    json clusters = json::array();
    for (const auto& c : rt->clusters()) {
        json cores = json::array();
        for (auto* r : c.reactors) cores.push_back(r->core());
        clusters.push_back({{"id", c.id},
                            {"role", c.role == ClusterSpec::Role::Control ? "control" : "data"},
                            {"cores", cores},
                            {"threads", c.threads.size()}});
    }
    reply.result(clusters);
}

void get_noc_stats(const json& params, RpcReply reply) {
    if (!no_params("nocstor_get_noc_stats", params, reply)) return;
    Runtime* rt = Runtime::instance();
    json out = json::array();
    auto& noc = rt->noc();
    // buffer_pool: the sums over every cluster's partition; each cluster shows its own.
    json buffers = {{"small_free", 0}, {"small_total", 0}, {"large_free", 0}, {"large_total", 0}};
    for (int c = 0; c < noc.clusters(); ++c) {
        NocEndpointStats s = noc.stats(c);
        const BufferPool& pool = noc.buffers(c);
        json part = {{"small_free", pool.free_approx(BufClass::Small)},
                     {"small_total", pool.count(BufClass::Small)},
                     {"large_free", pool.free_approx(BufClass::Large)},
                     {"large_total", pool.count(BufClass::Large)}};
        for (auto& [k, v] : part.items())
            buffers[k] = buffers[k].get<uint64_t>() + v.get<uint64_t>();
        out.push_back({{"cluster", c},
                       {"sent", s.sent},
                       {"received", s.received},
                       {"ring_full", s.ring_full},
                       {"doorbells_rung", s.doorbells_rung},
                       {"sleeps", s.sleeps},
                       {"buffer_pool", std::move(part)}});
    }
    reply.result({{"clusters", out}, {"buffer_pool", buffers}});
}

void wait_init(const json& params, RpcReply reply) {
    if (!no_params("framework_wait_init", params, reply)) return;
    reply.result(true);  // methods are served only after start-up completed
}

}  // namespace

void register_framework_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("spdk_get_version", get_version);
    r.add("framework_get_reactors", get_reactors);
    r.add("thread_get_stats", get_thread_stats);
    r.add("framework_wait_init", wait_init);
    r.add("nocstor_get_clusters", get_clusters);
    r.add("nocstor_get_noc_stats", get_noc_stats);
}

}  // namespace nocstor::control
