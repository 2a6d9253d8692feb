// Bdev registry, descriptors, claims, hot-remove and module registry.
#include "bdev/bdev.h"

#include "bdev/bdev_channel.h"
#include "bdev/bdev_module.h"
#include "runtime/runtime.h"
#include "util/log.h"
#include "util/spdk_histogram.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

namespace nocstor {

std::mutex& bdev_retired_stats_mutex();

namespace {
std::mutex g_mu;  // registry: control path only
std::vector<std::unique_ptr<Bdev>>& bdevs() {
    static auto* v = new std::vector<std::unique_ptr<Bdev>>();
    return *v;
}
std::vector<BdevModule*>& modules() {
    static auto* v = new std::vector<BdevModule*>();
    return *v;
}
Bdev* find_locked(const std::string& name) {
    for (auto& b : bdevs()) {
        if (b->name == name) return b.get();
        for (auto& a : b->aliases)
            if (a == name) return b.get();
    }
    return nullptr;
}

int g_scope_cluster = -1;  // control thread only

int bdev_default_cluster_locked() {
    if (g_scope_cluster >= 0) return g_scope_cluster;
    Runtime* rt = Runtime::instance();
    if (!rt) return 1;
    int best = -1;
    size_t best_count = SIZE_MAX;
    for (const Cluster& c : rt->clusters()) {
        if (c.role != ClusterSpec::Role::Data || !c.local) continue;
        size_t n = size_t(std::count_if(bdevs().begin(), bdevs().end(),
                                        [&](const auto& b) { return b->cluster == c.id; }));
        if (n < best_count) best = c.id, best_count = n;
    }
    return best < 0 ? 1 : best;
}
}  // namespace

BdevClusterScope::BdevClusterScope(int cluster) : prev_(g_scope_cluster) {
    g_scope_cluster = cluster;
}

BdevClusterScope::~BdevClusterScope() {
    g_scope_cluster = prev_;
}

int bdev_scope_cluster() {
    return g_scope_cluster;
}

int bdev_default_cluster() {
    std::lock_guard lock(g_mu);
    return bdev_default_cluster_locked();
}

size_t bdev_data_cluster_count() {
    Runtime* rt = Runtime::instance();
    if (!rt) return 1;
    return size_t(std::count_if(rt->clusters().begin(), rt->clusters().end(), [](const Cluster& c) {
        return c.role == ClusterSpec::Role::Data;
    }));
}

bool bdev_check_cluster(int cluster, std::string* err) {
    Runtime* rt = Runtime::instance();
    if (!rt) {
        if (cluster == 1) return true;
        if (err) *err = "no runtime: only cluster 1 exists";
        return false;
    }
    std::string ids;
    for (const Cluster& c : rt->clusters()) {
        if (c.role != ClusterSpec::Role::Data) continue;
        if (c.id == cluster && !c.local) {
            if (err) *err = "cluster " + std::to_string(cluster) + " runs in another process";
            return false;
        }
        if (c.id == cluster) return true;
        ids += (ids.empty() ? "" : ", ") + std::to_string(c.id);
    }
    if (err)
        *err = "cluster " + std::to_string(cluster) +
               " is not a data cluster (data clusters: " + ids + ")";
    return false;
}

int bdev_check_same_cluster(const Bdev* base, const std::string& what, std::string* err) {
    const int want = g_scope_cluster;
    if (want < 0 || base->cluster < 0 || want == base->cluster) return 0;
    if (err)
        *err = what + ": bdev " + base->name + " is owned by cluster " +
               std::to_string(base->cluster) + ", not " + std::to_string(want) +
               "; create it there, or reach the bdev from cluster " + std::to_string(want) +
               " with bdev_remote_create";
    return -EXDEV;
}

Uuid uuid_generate_random() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    Uuid u;
    for (size_t i = 0; i < u.size(); i += 8) {
        uint64_t r = rng();
        std::memcpy(&u[i], &r, 8);
    }
    u[6] = uint8_t((u[6] & 0x0f) | 0x40);  // version 4
    u[8] = uint8_t((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
    return u;
}

std::string uuid_to_string(const Uuid& u) {
    char buf[37];
    snprintf(buf, sizeof(buf),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    return buf;
}

bool uuid_parse(const std::string& s, Uuid* out) {
    if (s.size() != 36) return false;
    Uuid u;
    size_t j = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
            ++i;
            continue;
        }
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        int hi = hex(s[i]), lo = hex(s[i + 1]);
        if (hi < 0 || lo < 0) return false;
        u[j++] = uint8_t(hi * 16 + lo);
        i += 2;
    }
    *out = u;
    return true;
}

Bdev::Bdev(std::string n, BdevModule* m) : IoDevice(n), name(std::move(n)), module(m) {
    layer_device_ = std::make_unique<BdevLayerDevice>(this);
}

Bdev::~Bdev() = default;

IoDevice* Bdev::layer_device() const {
    return layer_device_.get();
}

size_t Bdev::open_descriptors() const {
    std::lock_guard lock(g_mu);
    return descs_.size();
}

bool Bdev::io_type_supported(IoType t) const {
    return t == IoType::Read || t == IoType::Write || t == IoType::Flush || t == IoType::Reset;
}

void Bdev::dump_info_json(nlohmann::json&) const {}
void Bdev::write_config_json(nlohmann::json& out) const {
    out = nullptr;
}

int bdev_register(std::unique_ptr<Bdev> bdev) {
    if (!bdev || bdev->name.empty() || bdev->num_blocks == 0 ||
        (bdev->block_size != 512 && bdev->block_size != 4096 && bdev->block_size % 512 != 0))
        return -EINVAL;
    Bdev* raw = bdev.get();
    {
        std::lock_guard lock(g_mu);
        if (find_locked(raw->name)) return -EEXIST;
        for (auto& a : raw->aliases)
            if (find_locked(a)) return -EEXIST;
        if (raw->uuid == Uuid{}) raw->uuid = uuid_generate_random();
        if (raw->cluster < 0) raw->cluster = bdev_default_cluster_locked();
        bdevs().push_back(std::move(bdev));
    }
    NOC_INFO("bdev", "registered {} ({}, {} x {} B, cluster {})", raw->name, raw->product_name,
             raw->num_blocks, raw->block_size, raw->cluster);
    for (BdevModule* m : modules()) {
        if (raw->claimed_by()) break;  // someone built a stack on it
        m->examine(raw);
    }
    return 0;
}

namespace {
uint32_t g_examining = 0;
std::vector<std::function<void()>>& examine_waiters() {
    static auto* v = new std::vector<std::function<void()>>();
    return *v;
}
}  // namespace

void bdev_examine_begin() {
    ++g_examining;
}

void bdev_examine_end() {
    if (g_examining > 0 && --g_examining == 0) {
        auto waiters = std::move(examine_waiters());
        examine_waiters().clear();
        for (auto& w : waiters) w();
    }
}

void bdev_wait_for_examine(std::function<void()> done) {
    if (g_examining == 0) return done();
    examine_waiters().push_back(std::move(done));
}

Bdev* bdev_get_by_name(const std::string& name) {
    std::lock_guard lock(g_mu);
    return find_locked(name);
}

std::vector<Bdev*> bdev_list() {
    std::lock_guard lock(g_mu);
    std::vector<Bdev*> out;
    for (auto& b : bdevs()) out.push_back(b.get());
    return out;
}

int bdev_open(const std::string& name, bool writable, BdevEventCb event_cb, BdevDesc** out) {
    std::lock_guard lock(g_mu);
    Bdev* b = find_locked(name);
    if (!b) return -ENODEV;
    if (b->removing_) return -ENODEV;
    if (writable && b->claim_module_) return -EPERM;  // the claiming vbdev opened it first
    auto* d = new BdevDesc();
    d->bdev_ = b;
    d->writable_ = writable;
    d->event_cb_ = std::move(event_cb);
    d->owner_ = Thread::current();
    b->descs_.push_back(d);
    *out = d;
    return 0;
}

// Friend of Bdev and BdevDesc: the parts of hot-remove that touch their private state.
class BdevRegistry {
  public:
    // The bdev's channels are destroyed by deferred messages: wait for the last one.
    static void wait_channels_then_destruct(Bdev* b) {
        if (b->live_channels() > 0 || b->layer_device()->live_channels() > 0) {
            if (Thread* t = Thread::current()) {
                t->send([b] { wait_channels_then_destruct(b); });
                return;
            }
        }
        b->destruct([b] {
            std::unique_ptr<Bdev> owned;
            {
                std::lock_guard lock(g_mu);
                auto& v = bdevs();
                auto it = std::find_if(v.begin(), v.end(), [b](auto& p) { return p.get() == b; });
                if (it != v.end()) {
                    owned = std::move(*it);
                    v.erase(it);
                }
            }
            NOC_INFO("bdev", "unregistered {}", b->name);
            auto done = std::move(b->unregister_done_);
            owned.reset();
            if (done) done(0);
        });
    }

    static void close(BdevDesc* d) {
        Bdev* b = d->bdev_;
        bool last = false;
        {
            std::lock_guard lock(g_mu);
            auto& v = b->descs_;
            v.erase(std::remove(v.begin(), v.end(), d), v.end());
            last = v.empty() && b->removing_;
        }
        delete d;
        if (last) wait_channels_then_destruct(b);
    }

    // Runs event_cb(ev) of each descriptor still open, on the descriptor's owner thread.
    static void notify_descriptors(Bdev* b, const std::vector<BdevDesc*>& descs, BdevEvent ev) {
        for (BdevDesc* d : descs) {
            // The holder may close this descriptor before the message runs: only notify a
            // descriptor that is still open.
            auto notify = [d, b, ev] {
                {
                    std::lock_guard lock(g_mu);
                    auto& v = b->descs_;
                    if (std::find(v.begin(), v.end(), d) == v.end()) return;
                }
                // A copy: the holder may close the descriptor from inside the callback, which
                // destroys the stored one while it runs.
                BdevEventCb cb = d->event_cb_;
                if (cb) cb(ev, b);
            };
            if (d->owner_ && d->owner_ != Thread::current())
                d->owner_->send([notify] { notify(); });
            else
                notify();
        }
    }

    static int resize(Bdev* b, uint64_t num_blocks) {
        std::vector<BdevDesc*> descs;
        {
            std::lock_guard lock(g_mu);
            if (b->removing_) return -ENODEV;
            if (num_blocks < b->num_blocks && !b->descs_.empty()) return -EBUSY;
            if (num_blocks == b->num_blocks) return 0;
            b->num_blocks = num_blocks;
            descs = b->descs_;
        }
        NOC_INFO("bdev", "{} resized to {} blocks ({} bytes)", b->name, num_blocks,
                 num_blocks * b->block_size);
        notify_descriptors(b, descs, BdevEvent::Resize);
        return 0;
    }

    static void unregister(Bdev* b, std::function<void(int)> done) {
        std::vector<BdevDesc*> descs;
        {
            std::lock_guard lock(g_mu);
            if (b->removing_) {
                if (done) done(-EBUSY);
                return;
            }
            b->removing_ = true;
            b->unregister_done_ = std::move(done);
            descs = b->descs_;
        }
        NOC_INFO("bdev", "unregistering {} ({} open descriptor(s))", b->name, descs.size());
        if (descs.empty()) {
            wait_channels_then_destruct(b);
            return;
        }
        // Each holder closes its descriptor (after draining its I/O) when told of the removal.
        notify_descriptors(b, descs, BdevEvent::Remove);
    }
};

void bdev_close(BdevDesc* desc) {
    if (desc) BdevRegistry::close(desc);
}

int bdev_notify_blockcnt_change(Bdev* bdev, uint64_t num_blocks) {
    return BdevRegistry::resize(bdev, num_blocks);
}

void bdev_unregister(Bdev* bdev, std::function<void(int)> done) {
    BdevRegistry::unregister(bdev, std::move(done));
}

int bdev_claim(Bdev* bdev, BdevModule* module) {
    std::lock_guard lock(g_mu);
    if (bdev->claim_module_) return -EPERM;
    bdev->claim_module_ = module;
    return 0;
}

void bdev_release_claim(Bdev* bdev) {
    std::lock_guard lock(g_mu);
    bdev->claim_module_ = nullptr;
}

IoChannel* bdev_get_io_channel(BdevDesc* desc) {
    return desc ? desc->bdev()->layer_device()->get_channel() : nullptr;
}

void bdev_put_io_channel(IoChannel* ch) {
    if (ch) IoDevice::put_channel(ch);
}

void bdev_get_stats(Bdev* bdev, std::function<void(const BdevStats&)> done) {
    auto acc = std::make_shared<BdevStats>();
    bdev->layer_device()->for_each_channel(
        [acc](IoChannel& c, std::function<void(int)> next) {
            acc->merge(static_cast<BdevChannel&>(c).stats);
            next(0);
        },
        [acc, bdev, done = std::move(done)](int) {
            {
                std::lock_guard lock(bdev_retired_stats_mutex());
                acc->merge(bdev->retired_stats());
            }
            done(*acc);
        });
}

void bdev_get_channel_stats(
    Bdev* bdev, std::function<void(std::vector<std::pair<std::string, BdevStats>>)> done) {
    auto acc = std::make_shared<std::vector<std::pair<std::string, BdevStats>>>();
    bdev->layer_device()->for_each_channel(
        [acc](IoChannel& c, std::function<void(int)> next) {
            acc->emplace_back(Thread::current()->name(), static_cast<BdevChannel&>(c).stats);
            next(0);
        },
        [acc, bdev, done = std::move(done)](int) {
            {
                std::lock_guard lock(bdev_retired_stats_mutex());
                if (bdev->retired_stats().latency.count() != 0)
                    acc->emplace_back("retired", bdev->retired_stats());
            }
            done(std::move(*acc));
        });
}

void bdev_set_histogram(Bdev* bdev, const BdevHistogramConfig& config, std::function<void()> done) {
    {
        std::lock_guard lock(bdev->histogram_mu_);
        bdev->histogram_config_ = config;
    }
    bdev->layer_device()->for_each_channel(
        [config](IoChannel& c, std::function<void(int)> next) {
            static_cast<BdevChannel&>(c).set_histogram(config);
            next(0);
        },
        [done = std::move(done)](int) { done(); });
}

void bdev_get_histogram(Bdev* bdev, std::function<void(std::unique_ptr<SpdkHistogram>)> done) {
    const BdevHistogramConfig config = bdev->histogram_config();
    if (!config.enabled) return done(nullptr);
    auto acc = std::make_shared<std::unique_ptr<SpdkHistogram>>(
        std::make_unique<SpdkHistogram>(config.granularity, config.min_ns, config.max_ns));
    bdev->layer_device()->for_each_channel(
        [acc](IoChannel& c, std::function<void(int)> next) {
            auto& ch = static_cast<BdevChannel&>(c);
            if (ch.histogram) (*acc)->merge(*ch.histogram);
            next(0);
        },
        [acc, done = std::move(done)](int) { done(std::move(*acc)); });
}

void bdev_reset_stats(Bdev* bdev, StatsReset mode, std::function<void()> done) {
    bdev->layer_device()->for_each_channel(
        [mode](IoChannel& c, std::function<void(int)> next) {
            static_cast<BdevChannel&>(c).stats.reset(mode);
            next(0);
        },
        [bdev, mode, done = std::move(done)](int) {
            {
                std::lock_guard lock(bdev_retired_stats_mutex());
                bdev->retired_stats().reset(mode);
            }
            done();
        });
}

// --- modules ---

void bdev_module_register(BdevModule* module) {
    for (auto* m : modules())
        if (m == module || m->name() == module->name()) return;
    modules().push_back(module);
}

const std::vector<BdevModule*>& bdev_modules() {
    return modules();
}

BdevModule* bdev_module_find(const std::string& name) {
    for (auto* m : modules())
        if (m->name() == name) return m;
    return nullptr;
}

bool bdev_modules_init(std::string* err) {
    for (auto* m : modules()) {
        int rc = m->init();
        if (rc != 0) {
            if (err)
                *err = "bdev module " + m->name() + " failed to initialize (" + std::to_string(rc) +
                       ")";
            return false;
        }
    }
    return true;
}

namespace {
void unregister_all_bdevs(std::function<void()> done);
}  // namespace

void bdev_layer_fini(std::function<void()> done) {
    // First the modules that hold bases with nothing of their own above them let go of them.
    auto mods = std::make_shared<std::vector<BdevModule*>>(modules());
    auto prep = std::make_shared<std::function<void(size_t)>>();
    *prep = [mods, prep, done = std::move(done)](size_t i) mutable {
        if (i < mods->size()) return (*mods)[i]->prepare_fini([prep, i] { (*prep)(i + 1); });
        auto d = std::move(done);
        *prep = nullptr;
        unregister_all_bdevs(std::move(d));
    };
    (*prep)(0);
}

namespace {

void unregister_all_bdevs(std::function<void()> done) {
    // Unregister the top of every stack first: a bdev nobody claims. Repeat until none is left.
    auto step = std::make_shared<std::function<void()>>();
    *step = [step, done = std::move(done)]() mutable {
        std::vector<Bdev*> all = bdev_list();
        Bdev* top = nullptr;
        for (auto it = all.rbegin(); it != all.rend(); ++it)
            if (!(*it)->claimed_by() && !(*it)->removing()) {
                top = *it;
                break;
            }
        if (!top) {
            if (!all.empty()) {
                // Something is still being removed or is claimed by a stack being torn down.
                const bool removing =
                    std::any_of(all.begin(), all.end(), [](Bdev* b) { return b->removing(); });
                if (removing) {
                    Thread::current()->send([step] { (*step)(); });
                    return;
                }
                // Only bases claimed by modules are left (an lvstore whose lvols were removed
                // from the top of their stacks): the modules release them now.
                auto mods = std::make_shared<std::vector<BdevModule*>>(modules());
                auto prep = std::make_shared<std::function<void(size_t)>>();
                *prep = [mods, prep, step](size_t i) {
                    if (i < mods->size())
                        return (*mods)[i]->prepare_fini([prep, i] { (*prep)(i + 1); });
                    auto next = step;
                    *prep = nullptr;  // destroys this closure: only locals from here on
                    Thread::current()->send([next] { (*next)(); });
                };
                (*prep)(0);
                return;
            }
            // Then every module's fini, one after another, each when the previous is done.
            auto mods = std::make_shared<std::vector<BdevModule*>>(modules());
            auto fini = std::make_shared<std::function<void(size_t)>>();
            *fini = [mods, fini, done = std::move(done)](size_t i) mutable {
                if (i < mods->size()) return (*mods)[i]->fini([fini, i] { (*fini)(i + 1); });
                auto d = std::move(done);
                *fini = nullptr;
                d();
            };
            *step = nullptr;
            (*fini)(0);
            return;
        }
        bdev_unregister(top, [step](int) { (*step)(); });
    };
    (*step)();
}

}  // namespace

}  // namespace nocstor
