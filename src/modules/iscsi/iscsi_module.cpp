// The iSCSI bdev: a LUN reached over one or more sessions, create / delete, module options.
#include "modules/iscsi/iscsi_bdev.h"

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "modules/iscsi/iscsi_probe.h"
#include "modules/iscsi/iscsi_session.h"
#include "modules/module_util.h"
#include "runtime/runtime.h"
#include "runtime/thread.h"
#include "util/log.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <memory>

namespace nocstor::iscsi {

namespace {

constexpr uint32_t kMaxSessions = 64;
std::atomic<uint64_t> g_timeout_sec{IscsiGlobalOptions{}.timeout_sec};

class IscsiModule : public BdevModule {
  public:
    IscsiModule() : BdevModule("iscsi") {}
    void write_config_json(nlohmann::json& configs) const override {
        configs.push_back({{"method", "bdev_iscsi_set_options"},
                           {"params", {{"timeout_sec", g_timeout_sec.load()}}}});
    }
};
IscsiModule g_module;

// A stable identity for the LUN (so that an NVMe-oF namespace keeps its NGUID across
// restarts): FNV-1a over the target name and LUN, twice with different seeds.
Uuid lun_uuid(const IscsiTargetSpec& s) {
    const std::string key = s.target_iqn + "/" + std::to_string(s.lun);
    Uuid u{};
    for (int half = 0; half < 2; ++half) {
        uint64_t h = half ? 0x84222325cbf29ce4ull : 0xcbf29ce484222325ull;
        for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ull;
        for (int i = 0; i < 8; ++i) u[size_t(half * 8 + i)] = uint8_t(h >> (8 * i));
    }
    u[6] = uint8_t((u[6] & 0x0f) | 0x80);  // version 8 (vendor-specific)
    u[8] = uint8_t((u[8] & 0x3f) | 0x80);
    return u;
}

class IscsiChannel : public IoChannel {
  public:
    explicit IscsiChannel(IscsiSession* s) : session(s) {}
    IscsiSession* session;
};

class IscsiBdev : public Bdev {
  public:
    IscsiBdev(std::string n, const IscsiCreateOptions& o, IscsiTargetSpec s)
        : Bdev(std::move(n), &g_module), opts(o), spec(std::move(s)) {
        product_name = "iSCSI LUN";
    }

    bool io_type_supported(IoType t) const override {
        switch (t) {
            case IoType::Read:
            case IoType::Write:
            case IoType::Flush:
                return true;
            case IoType::Unmap:
                return geometry.unmap;
            case IoType::WriteZeroes:
                return geometry.write_same;
            default:
                return false;
        }
    }

    std::unique_ptr<IoChannel> create_channel() override {
        Thread* t = Thread::current();
        size_t pick = t ? t->id() : 0;
        for (size_t i = 0; i < threads.size(); ++i)
            if (threads[i] == t) pick = i;
        return std::make_unique<IscsiChannel>(sessions[pick % sessions.size()].get());
    }

    void submit_request(IoChannel* ch, BdevIo* io) override {
        IscsiSession* s = static_cast<IscsiChannel*>(ch)->session;
        Thread* me = Thread::current();
        if (s->owner() == me) return s->submit(io, me);
        s->owner()->send([s, io, me] { s->submit(io, me); });
    }

    void destruct(std::function<void()> done) override {
        struct Countdown {
            size_t left;
            Thread* ctl;
            std::function<void()> done;
        };
        auto cd = std::make_shared<Countdown>(
            Countdown{sessions.size(), Thread::current(), std::move(done)});
        for (auto& sp : sessions) {
            IscsiSession* s = sp.get();
            s->owner()->send([s, cd] {
                s->shutdown([cd] {
                    cd->ctl->send([cd] {
                        if (--cd->left == 0) cd->done();
                    });
                });
            });
        }
    }

    void dump_info_json(nlohmann::json& out) const override {
        nlohmann::json ss = nlohmann::json::array();
        for (const auto& s : sessions) {
            const auto c = s->counters();
            nlohmann::json j = {{"index", s->index()},
                                {"thread", s->owner()->name()},
                                {"state", IscsiSession::state_name(s->state())},
                                {"logins", c.logins},
                                {"connection_losses", c.connection_losses},
                                {"retried_ios", c.retried_ios},
                                {"timed_out_ios", c.timed_out_ios}};
            ss.push_back(j);
        }
        out["iscsi"] = {{"initiator_name", spec.initiator_iqn},
                        {"url", redact_url(spec.url)},
                        {"target", spec.target_iqn},
                        {"lun", spec.lun},
                        {"portal", spec.portal},
                        {"header_digest", spec.header_digest},
                        {"vendor", vendor},
                        {"product", product},
                        {"unmap", geometry.unmap},
                        {"write_zeroes", geometry.write_same},
                        {"sessions", ss}};
    }

    void write_config_json(nlohmann::json& out) const override {
        nlohmann::json p = {
            {"name", name}, {"initiator_iqn", spec.initiator_iqn}, {"url", spec.url}};
        if (opts.sessions != 1) p["sessions"] = opts.sessions;
        if (opts.header_digest) p["header_digest"] = true;
        out = {{"method", "bdev_iscsi_create"}, {"params", p}};
    }

    IscsiCreateOptions opts;
    IscsiTargetSpec spec;
    LunGeometry geometry;
    std::string vendor, product;
    std::vector<Thread*> threads;  // the cluster's data threads, in order
    std::vector<std::unique_ptr<IscsiSession>> sessions;
};

std::vector<Thread*> cluster_threads(int cluster) {
    Runtime* rt = Runtime::instance();
    if (!rt || cluster < 0 || size_t(cluster) >= rt->clusters().size()) return {};
    return rt->clusters()[size_t(cluster)].threads;
}

}  // namespace

IscsiGlobalOptions iscsi_get_options() {
    IscsiGlobalOptions o;
    o.timeout_sec = g_timeout_sec.load(std::memory_order_relaxed);
    return o;
}

int iscsi_set_options(const IscsiGlobalOptions& o, std::string* err) {
    if (o.timeout_sec > 24 * 3600)
        return fail(err, -EINVAL, "timeout_sec must be at most 86400 (0 = no timeout)");
    g_timeout_sec.store(o.timeout_sec, std::memory_order_relaxed);
    return 0;
}

void iscsi_bdev_create(const IscsiCreateOptions& o, IscsiCreateDone done) {
    if (o.name.empty()) return done(-EINVAL, "name is empty");
    if (bdev_get_by_name(o.name)) return done(-EEXIST, "a bdev named " + o.name + " exists");
    if (o.sessions == 0 || o.sessions > kMaxSessions)
        return done(-EINVAL, fmt::format("sessions must be 1-{}", kMaxSessions));
    if (o.data_digest)
        return done(-EINVAL,
                    "data_digest: libiscsi, which the iSCSI bdev uses, has no data digest "
                    "(header_digest is available)");
    IscsiTargetSpec spec;
    std::string err;
    if (!parse_target_spec(o.url, o.initiator_iqn, &spec, &err)) return done(-EINVAL, err);
    if (o.header_digest) spec.header_digest = true;

    const int cluster = bdev_default_cluster();
    auto bdev = std::make_unique<IscsiBdev>(o.name, o, spec);
    bdev->cluster = cluster;
    bdev->threads = cluster_threads(cluster);
    if (bdev->threads.empty()) return done(-ENODEV, "no data threads to run the sessions on");
    // A LUN resized on the target (CAPACITY DATA HAS CHANGED): the bdev follows, on the control
    // thread, if it is still this iSCSI bdev.
    Thread* control = Thread::current();
    auto on_resize = [control, name = o.name](uint64_t blocks) {
        control->send([name, blocks] {
            auto* b = dynamic_cast<IscsiBdev*>(bdev_get_by_name(name));
            if (!b || b->num_blocks == blocks) return;
            NOC_INFO("bdev", "iscsi bdev {}: the LUN now has {} blocks (was {})", name, blocks,
                     b->num_blocks);
            b->geometry.num_blocks = blocks;
            if (int rc = bdev_notify_blockcnt_change(b, blocks))
                NOC_WARN("bdev", "iscsi bdev {}: resize to {} blocks refused ({})", name, blocks,
                         rc);
        });
    };
    for (uint32_t i = 0; i < o.sessions; ++i) {
        bdev->sessions.push_back(std::make_unique<IscsiSession>(
            spec, &bdev->geometry, i, bdev->threads[i % bdev->threads.size()]));
        bdev->sessions.back()->set_resize_callback(on_resize);
    }

    // The first session logs in and probes the LUN on its thread; the rest happens here.
    struct Pending {
        std::unique_ptr<IscsiBdev> bdev;
        IscsiCreateDone done;
        bool ok = false;
        LunInfo info;
        std::string err;
    };
    auto* pend = new Pending{std::move(bdev), std::move(done), false, {}, {}};
    Thread* ctl = Thread::current();
    IscsiSession* first = pend->bdev->sessions[0].get();
    auto finish_on_control = [pend, ctl]() {
        ctl->send([pend] {
            std::unique_ptr<Pending> p(pend);
            IscsiBdev* b = p->bdev.get();
            if (!p->ok) {
                // Stop the first session on its thread, then drop everything here.
                IscsiSession* s = b->sessions[0].get();
                Thread* back = Thread::current();
                auto keep = std::make_shared<std::unique_ptr<IscsiBdev>>(std::move(p->bdev));
                s->owner()->send([s, back, keep] {
                    s->shutdown([back, keep] { back->send([keep] { keep->reset(); }); });
                });
                NOC_WARN("bdev", "bdev_iscsi_create {}: {}", b->name, p->err);
                return p->done(-EIO, p->err);
            }
            b->geometry = p->info.geometry;
            b->block_size = p->info.geometry.block_size;
            b->num_blocks = p->info.geometry.num_blocks;
            b->max_transfer_blocks = p->info.max_transfer_blocks;
            b->write_cache = true;  // SYNCHRONIZE CACHE is passed on; harmless when it has none
            b->vendor = p->info.vendor;
            b->product = p->info.product;
            b->uuid = lun_uuid(b->spec);
            std::vector<IscsiSession*> others;
            for (size_t i = 1; i < b->sessions.size(); ++i) others.push_back(b->sessions[i].get());
            const std::string name = b->name;
            const std::string where = b->spec.target_iqn + " LUN " + std::to_string(b->spec.lun);
            const uint64_t blocks = b->num_blocks;
            const uint32_t bs = b->block_size;
            int rc = bdev_register(std::move(p->bdev));
            if (rc) return p->done(rc, "could not register bdev " + name);
            for (IscsiSession* s : others) s->owner()->send([s] { s->start(nullptr); });
            NOC_INFO("bdev", "iscsi bdev {}: {} ({} blocks of {} bytes, {} session(s))", name,
                     where, blocks, bs, others.size() + 1);
            p->done(0, {});
        });
    };
    first->owner()->send([pend, first, finish_on_control] {
        first->start([pend, finish_on_control](iscsi_context* ctx, std::string err) {
            if (!ctx) {
                pend->err = std::move(err);
                return finish_on_control();
            }
            probe_lun(ctx, pend->bdev->spec.lun,
                      [pend, finish_on_control](bool ok, LunInfo info, std::string err) {
                          pend->ok = ok;
                          pend->info = std::move(info);
                          pend->err = std::move(err);
                          finish_on_control();
                      });
        });
    });
}

void iscsi_bdev_delete(const std::string& name, std::function<void(int)> done) {
    delete_module_bdev(name, &g_module, std::move(done));
}

BdevModule* iscsi_bdev_module() {
    return &g_module;
}

}  // namespace nocstor::iscsi
