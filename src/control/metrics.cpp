// GET /metrics: Prometheus text exposition (format 0.0.4) of bdev I/O, reactors, NoC and the
// target's connections. Each family has HELP and TYPE lines; label values are escaped.
#include "bdev/bdev.h"
#include "control/rest_api.h"
#include "runtime/runtime.h"

#include <fmt/format.h>

#include <memory>
#include <vector>

namespace nocstor::control {

namespace {

using AsyncSource = std::function<void(std::function<void(std::string)>)>;

std::vector<std::function<void(std::string&)>>& sources() {
    static auto* v = new std::vector<std::function<void(std::string&)>>();
    return *v;
}

std::vector<AsyncSource>& async_sources() {
    static auto* v = new std::vector<AsyncSource>();
    return *v;
}

// Appends the async sources' text to *out one after the other, then calls done.
void render_async(size_t i, std::shared_ptr<std::string> out,
                  std::function<void(std::string)> done) {
    if (i == async_sources().size()) return done(std::move(*out));
    async_sources()[i]([i, out, done = std::move(done)](std::string text) mutable {
        *out += text;
        render_async(i + 1, out, std::move(done));
    });
}

const auto& family = prometheus_family;
const auto& escape_label = escape_prometheus_label;

void render_runtime(std::string& out) {
    Runtime* rt = Runtime::instance();
    family(out, "nocstor_reactor_busy_seconds_total", "counter",
           "Time a reactor spent in loops that did work.");
    for (const auto& r : rt->reactors())
        out += fmt::format(
            "nocstor_reactor_busy_seconds_total{{reactor=\"{}\",cluster=\"{}\",core=\"{}\"}} "
            "{:.9f}\n",
            r->index(), r->cluster_id(), r->core(), r->stats().busy_ns / 1e9);
    family(out, "nocstor_reactor_idle_seconds_total", "counter",
           "Time a reactor spent polling without work or sleeping.");
    for (const auto& r : rt->reactors())
        out += fmt::format(
            "nocstor_reactor_idle_seconds_total{{reactor=\"{}\",cluster=\"{}\",core=\"{}\"}} "
            "{:.9f}\n",
            r->index(), r->cluster_id(), r->core(), r->stats().idle_ns / 1e9);
    family(out, "nocstor_reactor_sleeps_total", "counter",
           "Times a reactor went to sleep in epoll.");
    for (const auto& r : rt->reactors())
        out += fmt::format(
            "nocstor_reactor_sleeps_total{{reactor=\"{}\",cluster=\"{}\",core=\"{}\"}} {}\n",
            r->index(), r->cluster_id(), r->core(), r->stats().sleeps);
    family(out, "nocstor_noc_descriptors_sent_total", "counter",
           "NoC descriptors sent by a cluster to its peers.");
    for (int c = 0; c < rt->noc().clusters(); ++c)
        out += fmt::format("nocstor_noc_descriptors_sent_total{{cluster=\"{}\"}} {}\n", c,
                           rt->noc().stats(c).sent);
    family(out, "nocstor_noc_descriptors_received_total", "counter",
           "NoC descriptors received by a cluster.");
    for (int c = 0; c < rt->noc().clusters(); ++c)
        out += fmt::format("nocstor_noc_descriptors_received_total{{cluster=\"{}\"}} {}\n", c,
                           rt->noc().stats(c).received);
}

struct BdevSample {
    std::string name;
    BdevStats stats;
};

void render_bdevs(std::string& out, const std::vector<BdevSample>& samples) {
    static const IoType kTypes[] = {IoType::Read,  IoType::Write,       IoType::Flush,
                                    IoType::Unmap, IoType::WriteZeroes, IoType::Reset};
    family(out, "nocstor_bdev_ops_total", "counter", "Completed block I/O operations.");
    for (const auto& s : samples)
        for (IoType t : kTypes)
            out +=
                fmt::format("nocstor_bdev_ops_total{{bdev=\"{}\",type=\"{}\"}} {}\n",
                            escape_label(s.name), io_type_name(t), s.stats.by_type[size_t(t)].ops);
    family(out, "nocstor_bdev_bytes_total", "counter", "Bytes read or written.");
    for (const auto& s : samples)
        for (IoType t : kTypes)
            out += fmt::format("nocstor_bdev_bytes_total{{bdev=\"{}\",type=\"{}\"}} {}\n",
                               escape_label(s.name), io_type_name(t),
                               s.stats.by_type[size_t(t)].bytes);
    family(out, "nocstor_bdev_errors_total", "counter", "Block I/O operations that failed.");
    for (const auto& s : samples)
        for (IoType t : kTypes)
            out += fmt::format("nocstor_bdev_errors_total{{bdev=\"{}\",type=\"{}\"}} {}\n",
                               escape_label(s.name), io_type_name(t),
                               s.stats.by_type[size_t(t)].errors);
    family(out, "nocstor_bdev_latency_seconds", "summary",
           "Block I/O latency from submission to completion, all types.");
    for (const auto& s : samples) {
        std::string b = escape_label(s.name);
        for (double q : {0.5, 0.99, 0.999})
            out +=
                fmt::format("nocstor_bdev_latency_seconds{{bdev=\"{}\",quantile=\"{}\"}} {:.9f}\n",
                            b, q, s.stats.latency.percentile(q * 100) / 1e9);
        out += fmt::format("nocstor_bdev_latency_seconds_sum{{bdev=\"{}\"}} {:.9f}\n", b,
                           s.stats.latency.sum() / 1e9);
        out += fmt::format("nocstor_bdev_latency_seconds_count{{bdev=\"{}\"}} {}\n", b,
                           s.stats.latency.count());
    }
}

}  // namespace

void add_metrics_source(std::function<void(std::string&)> source) {
    sources().push_back(std::move(source));
}

void add_async_metrics_source(AsyncSource source) {
    async_sources().push_back(std::move(source));
}

void render_metrics(std::function<void(std::string)> done) {
    auto bdevs = std::make_shared<std::vector<Bdev*>>(bdev_list());
    auto samples = std::make_shared<std::vector<BdevSample>>();
    // Statistics are gathered bdev by bdev (each a walk over its channels).
    auto next = std::make_shared<std::function<void(size_t)>>();
    *next = [bdevs, samples, next, done = std::move(done)](size_t i) mutable {
        if (i == bdevs->size()) {
            std::string out;
            render_runtime(out);
            render_bdevs(out, *samples);
            for (auto& src : sources()) src(out);
            auto d = std::move(done);
            *next = nullptr;
            render_async(0, std::make_shared<std::string>(std::move(out)), std::move(d));
            return;
        }
        Bdev* b = (*bdevs)[i];
        std::string name = b->name;
        bdev_get_stats(b, [samples, next, i, name](const BdevStats& s) {
            samples->push_back({name, s});
            (*next)(i + 1);
        });
    };
    (*next)(0);
}

}  // namespace nocstor::control
