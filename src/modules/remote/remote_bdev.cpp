#include "modules/remote/remote_bdev.h"

#include "modules/module_util.h"
#include "modules/remote/remote_export.h"
#include "modules/remote/remote_port.h"
#include "runtime/poll_until.h"
#include "runtime/runtime.h"
#include "util/log.h"
#include "util/tick.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

namespace nocstor::remote {

namespace {

class RemoteModule : public BdevModule {
  public:
    RemoteModule() : BdevModule("remote") {}
    int init() override {
        install_noc_handlers_once();
        return 0;
    }
    // Bases exported to another process have nothing above them here: let them go first.
    void prepare_fini(std::function<void()> done) override {
        peer_exports_close_all(std::move(done));
    }
    void fini(std::function<void()> done) override { ports_stop(std::move(done)); }

    static void install_noc_handlers_once() {
        static bool installed = false;
        if (!installed) install_noc_handlers();
        installed = true;
    }
};

RemoteModule g_module;

// A remote bdev's own per-thread state: nothing (its requests live in the NoC thread's port).
class RemoteChannel : public IoChannel {};

// How long a deleted remote bdev waits for the answers of requests that timed out.
constexpr uint64_t kDrainLimitNs = 10'000'000'000ull;

}  // namespace

BdevModule* remote_bdev_module() {
    // The handlers must be in place before a runtime is built: the module is registered first.
    RemoteModule::install_noc_handlers_once();
    return &g_module;
}

RemoteBdev::RemoteBdev(const std::string& n, const ExportInfo& target, RemoteExport* local,
                       RemotePort* port, uint64_t timeout_ms)
    : Bdev(n, &g_module),
      export_id_(target.id),
      owner_(target.cluster),
      base_name_(target.base_name),
      io_types_(target.io_types),
      local_(local),
      port_(port),
      timeout_ns_(timeout_ms * 1'000'000) {
    product_name = "Remote disk";
}

RemoteBdev::~RemoteBdev() = default;

bool RemoteBdev::io_type_supported(IoType t) const {
    return t != IoType::Count && (io_types_ >> int(t) & 1);
}

std::unique_ptr<IoChannel> RemoteBdev::create_channel() {
    return std::make_unique<RemoteChannel>();
}

void RemoteBdev::submit_request(IoChannel*, BdevIo* io) {
    // The cluster's NoC thread alone sends on its rings: other threads of X hand it the I/O.
    if (Thread::current() == port_->thread()) return port_->submit(this, io);
    port_->thread()->send([port = port_, b = this, io] { port->submit(b, io); });
}

void RemoteBdev::dump_info_json(nlohmann::json& out) const {
    auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    out["remote"] = {{"base_bdev_name", base_name_},
                     {"owner_cluster", owner_},
                     {"owner_in_this_process", local_ != nullptr},
                     {"link", export_id() ? "up" : "down"},
                     {"timeout_ms", timeout_ns_ / 1'000'000},
                     {"zero_copy_ios", get(counters_.zero_copy)},
                     {"bounced_ios", get(counters_.bounced)},
                     {"bounced_bytes", get(counters_.bounced_bytes)},
                     {"indirect_sgl_ios", get(counters_.indirect_sgl)},
                     {"timeouts", get(counters_.timeouts)},
                     {"aborts_sent", get(counters_.aborts_sent)},
                     {"late_completions", get(counters_.late_completions)},
                     {"peer_down_failures", get(counters_.peer_down_failures)}};
}

void RemoteBdev::write_config_json(nlohmann::json& out) const {
    out = {{"method", "bdev_remote_create"},
           {"params",
            {{"name", name},
             {"base_bdev_name", base_name_},
             {"timeout_ms", timeout_ns_ / 1'000'000},
             {"uuid", uuid_to_string(uuid)}}}};
    if (!local_) out["params"]["base_cluster"] = owner_;
}

// The bdev layer calls this once no channel is left, so no new request can start; requests
// that timed out may still hold slots until their late answers come. Then the export is
// closed: here (Y's NoC thread puts its channel, the base is released), or by Y's process.
void RemoteBdev::destruct(std::function<void()> done) {
    struct Teardown {
        RemoteBdev* bdev;
        Thread* ctl;
        std::function<void()> done;
        uint64_t deadline;
    };
    auto t = std::make_shared<Teardown>(
        Teardown{this, Thread::current(), std::move(done), now_ns() + kDrainLimitNs});
    auto close_export = [](std::shared_ptr<Teardown> t) {
        RemoteBdev* b = t->bdev;
        if (b->local_) return export_close(b->local_, [t] { t->done(); });
        if (const uint32_t id = b->export_id(); id && b->release_peer_export)
            b->release_peer_export(id);
        t->done();
    };
    // First X waits for the slots of requests that timed out (their answers may still come).
    port_->thread()->send([t, close_export] {
        RemotePort* port = t->bdev->port_;
        poll_until([t, port] { return !port->slots_in_use(t->bdev) || now_ns() >= t->deadline; },
                   [t, port, close_export] {
                       if (const uint32_t busy = port->slots_in_use(t->bdev)) {
                           // Cluster Y may still be working on them with the export: keep it (and
                           // the base open and claimed) rather than pull it from under Y.
                           NOC_ERROR("remote",
                                     "{}: {} requests never answered by cluster {}; the bdev goes, "
                                     "its base {} stays open",
                                     t->bdev->name, busy, t->bdev->owner_, t->bdev->base_name_);
                           port->forget(t->bdev);
                           t->ctl->send([t] { t->done(); });
                           return;
                       }
                       t->ctl->send([t, close_export] { close_export(t); });
                   },
                   "remote_drain", 1000);
    });
}

int remote_bdev_check_options(const RemoteCreateOptions& o, std::string* err) {
    if (o.name.empty()) return fail(err, -EINVAL, "remote: name is required");
    if (o.base_bdev_name.empty()) return fail(err, -EINVAL, "remote: base_bdev_name is required");
    if (o.timeout_ms == 0 || o.timeout_ms > 3'600'000)
        return fail(err, -EINVAL, "remote: timeout_ms must be between 1 and 3600000");
    if (bdev_get_by_name(o.name)) return fail(err, -EEXIST, "bdev " + o.name + " already exists");
    return 0;
}

namespace {

// Registers the client side of `target` on cluster o.cluster.
int register_remote(const RemoteCreateOptions& o, const ExportInfo& target, RemoteExport* local,
                    RemoteBdev** out, std::string* err) {
    RemotePort* x = ports_start(o.cluster);
    if (!x) return fail(err, -ENODEV, "remote: no runtime to reach the clusters");
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) uuid = Uuid{};
    auto b = std::make_unique<RemoteBdev>(o.name, target, local, x, o.timeout_ms);
    b->cluster = o.cluster;
    b->block_size = target.block_size;
    b->num_blocks = target.num_blocks;
    b->write_cache = target.write_cache;
    b->required_alignment = target.required_alignment;
    b->optimal_io_boundary = target.optimal_io_boundary;
    // A request that is bounced must fit one large arena buffer.
    const uint32_t max_bytes =
        Runtime::instance()->noc().buffers(o.cluster).buffer_size(BufClass::Large) / 4096 * 4096;
    b->max_transfer_blocks = max_bytes / target.block_size;
    if (target.max_transfer_blocks)
        b->max_transfer_blocks = std::min(b->max_transfer_blocks, target.max_transfer_blocks);
    b->uuid = uuid;
    RemoteBdev* raw = b.get();
    if (int rc = bdev_register(std::move(b)))
        return fail(err, rc, "remote: cannot register " + o.name + ": " + strerror(-rc));
    *out = raw;
    NOC_INFO("remote", "{} on cluster {} -> {} on cluster {}{}", o.name, o.cluster,
             target.base_name, target.cluster, local ? "" : " (another process)");
    return 0;
}

}  // namespace

int remote_bdev_create(const RemoteCreateOptions& o, std::string* err) {
    if (int rc = remote_bdev_check_options(o, err)) return rc;
    Bdev* base = bdev_get_by_name(o.base_bdev_name);
    if (!base) return fail(err, -ENODEV, "remote: no bdev named " + o.base_bdev_name);
    if (o.cluster < 0)
        return fail(err, -EINVAL,
                    "remote: cluster (where the new bdev lives) is required; " + base->name +
                        " is owned by cluster " + std::to_string(base->cluster));
    if (!bdev_check_cluster(o.cluster, err)) return -EINVAL;
    if (o.cluster == base->cluster)
        return fail(err, -EINVAL,
                    "remote: " + base->name + " is already owned by cluster " +
                        std::to_string(o.cluster) + "; use it directly");
    if (!ports_start(o.cluster))
        return fail(err, -ENODEV, "remote: no runtime to reach the clusters");
    std::string name = o.name;
    RemoteExport* exp = nullptr;
    int rc = export_open(
        o.base_bdev_name,
        [name](BdevEvent ev, Bdev* base) {
            Bdev* self = bdev_get_by_name(name);
            if (!self) return;
            if (ev == BdevEvent::Remove) {
                NOC_WARN("remote", "{}: its base bdev is being removed; removing it", name);
                bdev_unregister(self, [](int) {});
            } else if (ev == BdevEvent::Resize) {
                bdev_notify_blockcnt_change(self, base->num_blocks);
            }
        },
        &exp, err);
    if (rc) return rc;
    RemoteBdev* b = nullptr;
    rc = register_remote(o, export_info(*exp), exp, &b, err);
    if (rc) export_close(exp, [] {});
    return rc;
}

int remote_bdev_create_linked(const RemoteCreateOptions& o, const ExportInfo& target,
                              std::string* err) {
    if (int rc = remote_bdev_check_options(o, err)) return rc;
    if (!bdev_check_cluster(o.cluster, err)) return -EINVAL;
    if (target.id == 0 || target.block_size == 0)
        return fail(err, -EINVAL, "remote: the owner's export is not usable");
    RemoteBdev* b = nullptr;
    return register_remote(o, target, nullptr, &b, err);
}

std::vector<RemoteBdev*> remote_bdevs_towards(int cluster) {
    std::vector<RemoteBdev*> out;
    for (Bdev* b : bdev_list()) {
        if (b->module != &g_module) continue;
        auto* r = static_cast<RemoteBdev*>(b);
        if (!r->local_export() && r->owner_cluster() == cluster) out.push_back(r);
    }
    return out;
}

void remote_export_resized(uint32_t id, uint64_t blocks) {
    for (Bdev* b : bdev_list()) {
        if (b->module != &g_module) continue;
        auto* r = static_cast<RemoteBdev*>(b);
        if (r->local_export() || r->export_id() != id || r->num_blocks == blocks) continue;
        NOC_INFO("remote", "{}: {} on cluster {} now has {} blocks", r->name, r->base_name(),
                 r->owner_cluster(), blocks);
        bdev_notify_blockcnt_change(r, blocks);
    }
}

void remote_peer_down(int cluster) {
    for (RemoteBdev* r : remote_bdevs_towards(cluster)) {
        if (r->export_id())
            NOC_WARN("remote",
                     "{}: the process of cluster {} is gone; its I/O fails until the "
                     "process is back",
                     r->name, cluster);
        r->unlink();
    }
    for (int c = 0; c < Runtime::instance()->noc().clusters(); ++c) {
        RemotePort* p = port_of(c);
        if (p) p->thread()->send([p, cluster] { p->fail_peer(cluster); });
    }
}

void remote_bdev_delete(const std::string& name, std::function<void(int, std::string)> done) {
    Bdev* b = bdev_get_by_name(name);
    if (!b || b->module != &g_module) return done(-ENODEV, "no remote bdev named " + name);
    bdev_unregister(b, [done](int rc) { done(rc, rc ? strerror(-rc) : ""); });
}

}  // namespace nocstor::remote
