#include "runtime/runtime.h"

#include "runtime/io_channel.h"
#include "util/log.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <stdexcept>

namespace nocstor {

namespace {
std::atomic<Runtime*> g_runtime{nullptr};

// Buffers the control cluster keeps for itself (at most): it does no data-path I/O.
constexpr uint32_t kControlSmallBuffers = 64;
constexpr uint32_t kControlLargeBuffers = 4;

std::vector<BufferPoolConfig> partition_buffers(const BufferPoolConfig& total,
                                                const std::vector<Cluster>& clusters) {
    uint32_t data = 0;
    for (const auto& c : clusters) data += c.role == ClusterSpec::Role::Data;
    std::vector<BufferPoolConfig> out;
    for (const auto& c : clusters) {
        BufferPoolConfig p = total;
        if (c.role == ClusterSpec::Role::Data) {
            p.small_count = std::max(1u, total.small_count / data);
            p.large_count = std::max(1u, total.large_count / data);
        } else {
            p.small_count = std::min(total.small_count, kControlSmallBuffers);
            p.large_count = std::min(total.large_count, kControlLargeBuffers);
        }
        out.push_back(p);
    }
    return out;
}

std::vector<NocHandler>& default_noc_handlers() {
    static auto* v = new std::vector<NocHandler>(256);
    return *v;
}
}  // namespace

void noc_register_default_handler(uint8_t opcode, NocHandler handler) {
    default_noc_handlers()[opcode] = std::move(handler);
}

Thread* Runtime::offload_thread() {
    Runtime* rt = instance();
    Thread* t = rt ? rt->control_thread() : nullptr;
    return t && t != Thread::current() ? t : nullptr;
}

Runtime* Runtime::instance() {
    return g_runtime.load(std::memory_order_acquire);
}

Runtime::Runtime(RuntimeOptions opts)
    : opts_(std::move(opts)), noc_handlers_(default_noc_handlers()) {
    if (opts_.clusters.empty()) opts_.clusters = default_cluster_plan(Topology::detect());
    // Data reactors per core: where several share one, they yield it when idle (ReactorOptions).
    std::map<int, int> per_core;
    for (const auto& spec : opts_.clusters) {
        if (spec.role == ClusterSpec::Role::Data)
            for (int core : spec.cores) ++per_core[core];
    }
    auto is_local = [&](int id) {
        return opts_.local_clusters.empty() ||
               std::find(opts_.local_clusters.begin(), opts_.local_clusters.end(), id) !=
                   opts_.local_clusters.end();
    };
    uint32_t index = 0;
    for (const auto& spec : opts_.clusters) {
        Cluster c;
        c.id = spec.id;
        c.role = spec.role;
        c.local = is_local(spec.id);
        if (!c.local) {  // another process runs it; only its NoC rings are shared with us
            clusters_.push_back(std::move(c));
            continue;
        }
        for (int core : spec.cores) {
            ReactorOptions ro = opts_.reactor;
            ro.yield_when_idle = ro.yield_when_idle || per_core[core] > 1;
            auto r = std::make_unique<Reactor>(index, core, spec.id, ro);
            std::string tname =
                spec.role == ClusterSpec::Role::Control
                    ? "control"
                    : "c" + std::to_string(spec.id) + "_core" + std::to_string(core);
            r->add_thread(std::make_unique<Thread>(tname, spec.id, index));
            c.reactors.push_back(r.get());
            c.threads.push_back(r->main_thread());
            if (spec.role == ClusterSpec::Role::Data) data_threads_.push_back(r->main_thread());
            reactors_.push_back(std::move(r));
            ++index;
            // The control plane needs one reactor only.
            if (spec.role == ClusterSpec::Role::Control) break;
        }
        if (spec.role == ClusterSpec::Role::Control && !control_thread_)
            control_thread_ = c.threads.front();
        clusters_.push_back(std::move(c));
    }
    if (data_threads_.empty())
        throw std::invalid_argument("cluster plan has no local data cluster");
    if (!control_thread_) {
        bool planned = std::any_of(opts_.clusters.begin(), opts_.clusters.end(), [](const auto& s) {
            return s.role == ClusterSpec::Role::Control;
        });
        if (!planned || opts_.local_clusters.empty())
            throw std::invalid_argument("cluster plan has no control cluster");
        // A data-cluster process: the control cluster is the parent's, but this process still
        // runs its own management work (bdev registration, examine, its RPC server) on a thread
        // of its own, on its first data core; it has no NoC endpoint.
        Reactor* first = data_threads_.front()->reactor();
        ReactorOptions ro = opts_.reactor;
        auto r = std::make_unique<Reactor>(index, first->core(), 0, ro);
        r->add_thread(std::make_unique<Thread>("control", 0, index));
        control_thread_ = r->main_thread();
        reactors_.push_back(std::move(r));
        ++index;
    }
    opts_.noc.clusters = int(clusters_.size());
    std::string err;
    if (opts_.attach) {
        noc_ = NocFabric::attach(std::move(*opts_.attach), &err);
        opts_.attach.reset();
        if (noc_ && noc_->clusters() != int(clusters_.size())) {
            throw std::runtime_error("the NoC to attach has " + std::to_string(noc_->clusters()) +
                                     " clusters, the plan " + std::to_string(clusters_.size()));
        }
    } else {
        if (opts_.noc.cluster_buffers.empty())
            opts_.noc.cluster_buffers = partition_buffers(opts_.noc.buffers, clusters_);
        noc_ = NocFabric::create(opts_.noc, &err);
    }
    if (!noc_) throw std::runtime_error("cannot create the NoC: " + err);
    for (auto& c : clusters_)
        if (c.local) attach_noc(c);
}

void Runtime::attach_noc(Cluster& c) {
    Reactor* r = c.reactors.front();
    Thread* t = c.threads.front();
    NocEndpoint* ep = &noc_->endpoint(c.id);
    r->add_interrupt_fd(ep->doorbell_fd());
    r->add_sleep_hook([ep] { return ep->prepare_to_sleep(); }, [ep] { ep->finish_sleep(); });
    int cluster = c.id;
    t->register_poller("noc", [this, ep, cluster] {
        return int(ep->poll([this, cluster](int src, const NocDescriptor& d) {
            auto& h = noc_handlers_[d.opcode];
            if (h) {
                h(cluster, src, d);
            } else {
                NOC_WARN("runtime",
                         "cluster {}: NoC descriptor with opcode {:#x} from cluster {} "
                         "has no handler; dropped",
                         cluster, d.opcode, src);
            }
        }));
    });
}

void Runtime::set_noc_handler(uint8_t opcode, NocHandler handler) {
    noc_handlers_[opcode] = std::move(handler);
}

Runtime::~Runtime() {
    stop_reactors();
    for (auto& r : reactors_) r->join();
    reactors_.clear();
    Runtime* self = this;
    g_runtime.compare_exchange_strong(self, nullptr);
}

void Runtime::start(std::function<void()> on_start) {
    Runtime* expected = nullptr;
    if (!g_runtime.compare_exchange_strong(expected, this))
        throw std::logic_error("a Runtime is already running in this process");
    started_ = true;
    for (auto& r : reactors_) r->start();
    for (const auto& c : clusters_) {
        const char* role = c.role == ClusterSpec::Role::Control ? "control" : "data";
        if (!c.local) {
            NOC_INFO("runtime", "cluster {} ({}) runs in another process", c.id, role);
            continue;
        }
        std::string cores;
        for (auto* r : c.reactors) cores += (cores.empty() ? "" : ",") + std::to_string(r->core());
        NOC_INFO("runtime", "cluster {} ({}) on cores {}", c.id, role, cores);
    }
    if (on_start)
        control_thread_->send(
            [fn = std::make_shared<std::function<void()>>(std::move(on_start))] { (*fn)(); });
}

void Runtime::add_shutdown_step(std::string name,
                                std::function<void(std::function<void()> done)> step) {
    std::lock_guard lock(mu_);
    shutdown_steps_.push_back({std::move(name), std::move(step)});
}

void Runtime::request_shutdown() {
    if (shutdown_requested_.exchange(true)) return;
    if (!started_) {
        stop_reactors();
        return;
    }
    control_thread_->send([this] { run_shutdown_steps(); });
}

void Runtime::run_shutdown_steps() {
    std::vector<Step> steps;
    {
        std::lock_guard lock(mu_);
        steps.swap(shutdown_steps_);
    }
    // Runs the steps from the last registered to the first, each after the previous is done.
    auto remaining = std::make_shared<std::vector<Step>>(std::move(steps));
    auto next = std::make_shared<std::function<void()>>();
    *next = [this, remaining, next] {
        if (remaining->empty()) {
            NOC_INFO("runtime", "shutdown complete");
            Runtime* self = this;
            // Break the self-reference; this closure is destroyed here, so touch no capture.
            auto keep = std::move(*next);
            *next = nullptr;
            self->stop_reactors();
            return;
        }
        Step step = std::move(remaining->back());
        remaining->pop_back();
        NOC_INFO("runtime", "shutdown: {}", step.name);
        Thread* ctl = control_thread_;
        step.fn([ctl, next] { ctl->send([next] { (*next)(); }); });
    };
    (*next)();
}

void Runtime::stop_reactors() {
    for (auto& r : reactors_) r->stop();
    std::lock_guard lock(mu_);
    stopped_ = true;
    cv_.notify_all();
}

void Runtime::wait() {
    {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopped_; });
    }
    for (auto& r : reactors_) r->join();
}

bool Runtime::stopped() const {
    std::lock_guard lock(mu_);
    return stopped_;
}

void run_on_threads(const std::vector<Thread*>& threads, std::function<void(Thread*)> fn,
                    std::function<void()> done) {
    struct Fanout {
        std::function<void(Thread*)> fn;
        std::function<void()> done;
        std::atomic<size_t> pending;
        Thread* origin;
    };
    auto f = std::make_shared<Fanout>();
    f->fn = std::move(fn);
    f->done = std::move(done);
    f->pending.store(threads.size());
    f->origin = Thread::current();
    auto finish = [](std::shared_ptr<Fanout> f) {
        if (f->origin)
            f->origin->send([f] { f->done(); });
        else
            f->done();
    };
    if (threads.empty()) {
        finish(f);
        return;
    }
    for (Thread* t : threads) {
        t->send([f, t, finish] {
            f->fn(t);
            if (f->pending.fetch_sub(1) == 1) finish(f);
        });
    }
}

}  // namespace nocstor
