#include "modules/delay.h"

#include "modules/module_util.h"
#include "modules/vbdev.h"
#include "util/tick.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace nocstor {

namespace {

class DelayModule : public BdevModule {
  public:
    DelayModule() : BdevModule("delay") {}
};

DelayModule g_module;

enum Lat { kAvgRead, kP99Read, kAvgWrite, kP99Write, kLatCount };
const char* const kLatNames[kLatCount] = {"avg_read", "p99_read", "avg_write", "p99_write"};

// Per upper-I/O state while it waits.
struct DelayCtx {
    uint64_t due_ns;
    IoStatus status;
    uint8_t sct, sc;
};

class DelayChannel : public VbdevChannel {
  public:
    DelayChannel(BdevDesc* base, uint64_t seed) : VbdevChannel(base), rng_(seed | 1) {
        poller_ = Thread::current()->register_poller("delay", [this] { return complete_due(); });
    }
    ~DelayChannel() override { Thread::current()->unregister_poller(poller_); }

    // One FIFO per latency value, so that each queue's due times are (nearly) in order.
    BdevIoQueue queues[kLatCount];

    bool one_percent() {  // xorshift64: ~1% of calls
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return rng_ % 100 == 0;
    }

    int complete_due() {
        bool any = false;
        for (auto& q : queues) any |= !q.empty();
        if (!any) return 0;
        uint64_t now = now_ns();
        int n = 0;
        for (auto& q : queues) {
            while (q.head && q.head->ctx<DelayCtx>()->due_ns <= now) {
                BdevIo* io = q.pop();
                finish(io, io->ctx<DelayCtx>()->status);
                ++n;
            }
        }
        // Report work while I/O is held: the reactor keeps spinning (as SPDK's always does)
        // instead of going to sleep with nothing to wake it when the I/O falls due.
        return n > 0 ? n : 1;
    }

    // Completes every held I/O with `status` (reset / abort).
    void flush_all(IoStatus status) {
        for (auto& q : queues)
            while (BdevIo* io = q.pop()) finish(io, status);
    }

    static void finish(BdevIo* io, IoStatus st) {
        auto* c = io->ctx<DelayCtx>();
        if (st == IoStatus::NvmeError)
            bdev_io_complete_nvme(io, c->sct, c->sc);
        else
            bdev_io_complete(io, st);
    }

  private:
    uint64_t rng_;
    Poller* poller_ = nullptr;
};

class DelayBdev : public Vbdev {
  public:
    explicit DelayBdev(const std::string& n) : Vbdev(n, &g_module) { product_name = "delay"; }

    std::atomic<uint64_t> latency_ns[kLatCount]{};

    std::unique_ptr<IoChannel> create_channel() override {
        auto ch = std::make_unique<DelayChannel>(base_desc(), uint64_t(uintptr_t(this)) ^ now_ns());
        if (!ch->base_ch) return nullptr;
        return ch;
    }

    void submit_request(IoChannel*, BdevIo* io) override {
        if (io->type == IoType::Read || io->type == IoType::Write)
            forward(io, &DelayBdev::delayed_done);
        else if (io->type == IoType::Reset)
            reset(io);
        else
            forward(io, &Vbdev::forward_done);
    }

    void dump_info_json(nlohmann::json& out) const override {
        nlohmann::json j = {{"name", name}, {"base_bdev_name", base()->name}};
        for (int i = 0; i < kLatCount; ++i)
            j[std::string(kLatNames[i]) + "_latency"] = latency_ns[i].load() / 1000;
        out["delay"] = j;
    }

    void write_config_json(nlohmann::json& out) const override {
        nlohmann::json p = {
            {"base_bdev_name", base()->name}, {"name", name}, {"uuid", uuid_to_string(uuid)}};
        for (int i = 0; i < kLatCount; ++i)
            p[std::string(kLatNames[i]) + "_latency"] = latency_ns[i].load() / 1000;
        out = {{"method", "bdev_delay_create"}, {"params", p}};
    }

  private:
    static void delayed_done(BdevIo* base_io, bool, void* arg) {
        auto* io = static_cast<BdevIo*>(arg);
        auto* self = static_cast<DelayBdev*>(io->bdev);
        auto* ch = static_cast<DelayChannel*>(io->module_channel);
        auto* c = io->ctx<DelayCtx>();
        c->status = base_io->status;
        c->sct = base_io->nvme_sct;
        c->sc = base_io->nvme_sc;
        bdev_free_io(base_io);
        int which = (io->type == IoType::Read ? kAvgRead : kAvgWrite) + (ch->one_percent() ? 1 : 0);
        uint64_t lat = self->latency_ns[which].load(std::memory_order_relaxed);
        if (lat == 0) {
            DelayChannel::finish(io, c->status);
            return;
        }
        c->due_ns = now_ns() + lat;
        ch->queues[which].push(io);
    }

    // SPDK semantics: held I/O on every channel is aborted, then the base is reset.
    void reset(BdevIo* io) {
        for_each_channel(
            [](IoChannel& c, std::function<void(int)> next) {
                static_cast<DelayChannel&>(c).flush_all(IoStatus::Aborted);
                next(0);
            },
            [this, io](int) { forward(io, &Vbdev::forward_done); });
    }
};

DelayBdev* find_delay(const std::string& name) {
    Bdev* b = bdev_get_by_name(name);
    return b && b->module == &g_module ? static_cast<DelayBdev*>(b) : nullptr;
}

}  // namespace

BdevModule* delay_bdev_module() {
    return &g_module;
}

int delay_bdev_create(const DelayBdevOptions& o, std::string* err) {
    if (o.name.empty()) return fail(err, -EINVAL, "delay: name is required");
    if (o.base_bdev_name.empty()) return fail(err, -EINVAL, "delay: base_bdev_name is required");
    if (o.p99_read_latency < o.avg_read_latency || o.p99_write_latency < o.avg_write_latency)
        return fail(err, -EINVAL, "delay: p99 latency must be >= average latency");
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) return -EINVAL;
    if (bdev_get_by_name(o.name)) return fail(err, -EEXIST, "bdev " + o.name + " already exists");
    auto b = std::make_unique<DelayBdev>(o.name);
    int rc = b->attach_base(o.base_bdev_name, err);
    if (rc) return rc;
    b->uuid = uuid;
    b->latency_ns[kAvgRead] = o.avg_read_latency * 1000;
    b->latency_ns[kP99Read] = o.p99_read_latency * 1000;
    b->latency_ns[kAvgWrite] = o.avg_write_latency * 1000;
    b->latency_ns[kP99Write] = o.p99_write_latency * 1000;
    rc = bdev_register(std::move(b));
    if (rc) return fail(err, rc, "delay: cannot register " + o.name + ": " + std::strerror(-rc));
    return 0;
}

void delay_bdev_delete(const std::string& name, std::function<void(int)> done) {
    delete_module_bdev(name, &g_module, std::move(done));
}

int delay_bdev_update_latency(const std::string& name, const std::string& type, uint64_t us,
                              std::string* err) {
    DelayBdev* b = find_delay(name);
    if (!b) return fail(err, -ENODEV, "no delay bdev named " + name);
    for (int i = 0; i < kLatCount; ++i) {
        if (type == kLatNames[i]) {
            b->latency_ns[i].store(us * 1000, std::memory_order_relaxed);
            return 0;
        }
    }
    return fail(err, -EINVAL,
                "delay: latency_type must be avg_read, p99_read, avg_write or p99_write");
}

}  // namespace nocstor
