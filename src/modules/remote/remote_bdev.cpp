#include "modules/remote/remote_bdev.h"

#include "modules/module_util.h"
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

RemoteBdev::RemoteBdev(const std::string& n, RemoteExport* exp, RemotePort* port,
                       uint64_t timeout_ms)
    : Bdev(n, &g_module), exp_(exp), port_(port), timeout_ns_(timeout_ms * 1'000'000) {
    product_name = "Remote disk";
}

RemoteBdev::~RemoteBdev() = default;

int RemoteBdev::owner_cluster() const {
    return exp_->cluster;
}

bool RemoteBdev::io_type_supported(IoType t) const {
    return t != IoType::Count && exp_->desc->bdev()->io_type_supported(t);
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
    out["remote"] = {{"base_bdev_name", exp_->desc->bdev()->name},
                     {"owner_cluster", exp_->cluster},
                     {"timeout_ms", timeout_ns_ / 1'000'000},
                     {"zero_copy_ios", get(counters_.zero_copy)},
                     {"bounced_ios", get(counters_.bounced)},
                     {"bounced_bytes", get(counters_.bounced_bytes)},
                     {"indirect_sgl_ios", get(counters_.indirect_sgl)},
                     {"timeouts", get(counters_.timeouts)},
                     {"aborts_sent", get(counters_.aborts_sent)},
                     {"late_completions", get(counters_.late_completions)}};
}

void RemoteBdev::write_config_json(nlohmann::json& out) const {
    out = {{"method", "bdev_remote_create"},
           {"params",
            {{"name", name},
             {"base_bdev_name", exp_->desc->bdev()->name},
             {"timeout_ms", timeout_ns_ / 1'000'000},
             {"uuid", uuid_to_string(uuid)}}}};
}

// The bdev layer calls this once no channel is left, so no new request can start; requests
// that timed out may still hold slots until their late answers come. Then Y closes its channel
// and the control thread releases the base.
void RemoteBdev::destruct(std::function<void()> done) {
    struct Teardown {
        RemoteExport* exp;
        RemotePort* port;
        RemoteBdev* bdev;
        Thread* ctl;
        std::function<void()> done;
        uint64_t deadline;
    };
    auto t = std::make_shared<Teardown>(
        Teardown{exp_, port_, this, Thread::current(), std::move(done), now_ns() + kDrainLimitNs});
    // Last step, on the control thread.
    auto release = [](std::shared_ptr<Teardown> t) {
        export_unpublish(t->exp->id);
        bdev_release_claim(t->exp->desc->bdev());
        bdev_close(t->exp->desc);
        delete t->exp;
        t->done();
    };
    // Then Y puts the channel its NoC thread opened on the base.
    auto close_channel = [release](std::shared_ptr<Teardown> t) {
        RemotePort* owner = port_of(t->exp->cluster);
        if (!owner) return release(t);
        owner->thread()->send([t, release] {
            if (t->exp->ch) bdev_put_io_channel(t->exp->ch);
            t->exp->ch = nullptr;
            t->ctl->send([t, release] { release(t); });
        });
    };
    // First X waits for the slots of requests that timed out (their answers may still come).
    t->port->thread()->send([t, close_channel] {
        poll_until([t] { return !t->port->slots_in_use(t->bdev) || now_ns() >= t->deadline; },
                   [t, close_channel] {
                       if (const uint32_t busy = t->port->slots_in_use(t->bdev)) {
                           // Cluster Y may still be working on them with the export: keep it (and
                           // the base open and claimed) rather than pull it from under Y.
                           NOC_ERROR(
                               "remote",
                               "{}: {} requests never answered by cluster {}; the bdev goes, its "
                               "base {} stays open",
                               t->bdev->name, busy, t->exp->cluster, t->exp->desc->bdev()->name);
                           t->port->forget(t->bdev);
                           t->ctl->send([t] { t->done(); });
                           return;
                       }
                       t->ctl->send([t, close_channel] { close_channel(t); });
                   },
                   "remote_drain", 1000);
    });
}

int remote_bdev_create(const RemoteCreateOptions& o, std::string* err) {
    if (o.name.empty()) return fail(err, -EINVAL, "remote: name is required");
    if (o.base_bdev_name.empty()) return fail(err, -EINVAL, "remote: base_bdev_name is required");
    if (o.timeout_ms == 0 || o.timeout_ms > 3'600'000)
        return fail(err, -EINVAL, "remote: timeout_ms must be between 1 and 3600000");
    if (bdev_get_by_name(o.name)) return fail(err, -EEXIST, "bdev " + o.name + " already exists");
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
    RemotePort* x = ports_start(o.cluster);
    RemotePort* y = ports_start(base->cluster);
    if (!x || !y) return fail(err, -ENODEV, "remote: no runtime to reach the clusters");
    auto exp = std::make_unique<RemoteExport>();
    exp->cluster = base->cluster;
    BdevDesc* desc = nullptr;
    std::string name = o.name;
    int rc = bdev_open(
        o.base_bdev_name, true,
        [name](BdevEvent ev, Bdev*) {
            Bdev* self = bdev_get_by_name(name);
            if (!self) return;
            if (ev == BdevEvent::Remove) {
                NOC_WARN("remote", "{}: its base bdev is being removed; removing it", name);
                bdev_unregister(self, [](int) {});
            } else if (ev == BdevEvent::Resize) {
                auto* r = static_cast<RemoteBdev*>(self);
                bdev_notify_blockcnt_change(self, r->exp()->desc->bdev()->num_blocks);
            }
        },
        &desc);
    if (rc == -EPERM) return fail(err, -EPERM, "remote: bdev " + o.base_bdev_name + " is claimed");
    if (rc) return fail(err, rc, "remote: cannot open " + o.base_bdev_name + ": " + strerror(-rc));
    if (bdev_claim(base, &g_module)) {
        bdev_close(desc);
        return fail(err, -EPERM, "remote: bdev " + o.base_bdev_name + " is already claimed");
    }
    exp->desc = desc;
    if (!export_publish(exp.get())) {
        bdev_release_claim(base);
        bdev_close(desc);
        return fail(err, -ENOSPC, "remote: too many remote bdevs");
    }
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) uuid = Uuid{};
    auto b = std::make_unique<RemoteBdev>(o.name, exp.get(), x, o.timeout_ms);
    b->cluster = o.cluster;
    b->block_size = base->block_size;
    b->num_blocks = base->num_blocks;
    b->write_cache = base->write_cache;
    b->required_alignment = base->required_alignment;
    b->optimal_io_boundary = base->optimal_io_boundary;
    // A request that is bounced must fit one large arena buffer.
    const uint32_t max_bytes =
        Runtime::instance()->noc().buffers(o.cluster).buffer_size(BufClass::Large) / 4096 * 4096;
    b->max_transfer_blocks = max_bytes / base->block_size;
    if (base->max_transfer_blocks)
        b->max_transfer_blocks = std::min(b->max_transfer_blocks, base->max_transfer_blocks);
    b->uuid = uuid;
    const uint32_t id = exp->id;
    RemoteExport* raw = exp.release();
    rc = bdev_register(std::move(b));
    if (rc) {
        export_unpublish(id);
        bdev_release_claim(base);
        bdev_close(desc);
        delete raw;
        return fail(err, rc, "remote: cannot register " + o.name + ": " + strerror(-rc));
    }
    NOC_INFO("remote", "{} on cluster {} -> {} on cluster {}", o.name, o.cluster, base->name,
             base->cluster);
    return 0;
}

void remote_bdev_delete(const std::string& name, std::function<void(int, std::string)> done) {
    Bdev* b = bdev_get_by_name(name);
    if (!b || b->module != &g_module) return done(-ENODEV, "no remote bdev named " + name);
    bdev_unregister(b, [done](int rc) { done(rc, rc ? strerror(-rc) : ""); });
}

}  // namespace nocstor::remote
