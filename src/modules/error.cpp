#include "modules/error.h"

#include "modules/module_util.h"
#include "modules/vbdev.h"
#include "util/tick.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace nocstor {

namespace {

class ErrorModule : public BdevModule {
  public:
    ErrorModule() : BdevModule("error") {}
};

ErrorModule g_module;

enum class ErrKind : uint8_t { None, Failure, Pending, CorruptData, NoMem };

struct Injection {
    std::atomic<ErrKind> kind{ErrKind::None};
    std::atomic<int64_t> remaining{0};
    std::atomic<uint32_t> percent{100};
    std::atomic<uint32_t> queue_depth{0};
    std::atomic<uint8_t> sct{0}, sc{0};
    std::atomic<uint64_t> corrupt_offset{0};
    std::atomic<uint8_t> corrupt_value{0xff};
};

class ErrorChannel : public VbdevChannel {
  public:
    ErrorChannel(BdevDesc* base, uint64_t seed) : VbdevChannel(base), rng_(seed | 1) {}
    BdevIoQueue pending;  // "pending" errors: held until a reset aborts them
    uint64_t in_flight = 0;
    uint32_t rand100() {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return uint32_t(rng_ % 100);
    }

  private:
    uint64_t rng_;
};

class ErrorBdev : public Vbdev {
  public:
    explicit ErrorBdev(const std::string& n) : Vbdev(n, &g_module) { product_name = "error"; }

    std::atomic<bool> active{false};
    Injection inj[size_t(IoType::Count)];

    std::unique_ptr<IoChannel> create_channel() override {
        auto ch = std::make_unique<ErrorChannel>(base_desc(), uint64_t(uintptr_t(this)) ^ now_ns());
        if (!ch->base_ch) return nullptr;
        return ch;
    }

    void submit_request(IoChannel* c, BdevIo* io) override {
        auto* ch = static_cast<ErrorChannel*>(c);
        ++ch->in_flight;
        *io->ctx<bool>() = false;  // corrupt the data once the read completes
        if (io->type == IoType::Reset) {
            reset(io);
            return;
        }
        ErrKind kind = active.load(std::memory_order_relaxed) ? take(ch, io) : ErrKind::None;
        switch (kind) {
            case ErrKind::None:
                forward(io, &ErrorBdev::done);
                return;
            case ErrKind::Failure: {
                const Injection& in = inj[size_t(io->type)];
                uint8_t sct = in.sct.load(), sc = in.sc.load();
                --ch->in_flight;
                if (sct || sc)
                    bdev_io_complete_nvme(io, sct, sc);
                else
                    bdev_io_complete(io, IoStatus::Failed);
                return;
            }
            case ErrKind::NoMem:
                --ch->in_flight;
                bdev_io_complete(io, IoStatus::NoMemory);  // the layer queues and retries it
                return;
            case ErrKind::Pending:
                ch->pending.push(io);
                return;
            case ErrKind::CorruptData:
                if (io->type == IoType::Write) corrupt(io);  // reads: after they complete
                *io->ctx<bool>() = true;
                forward(io, &ErrorBdev::done);
                return;
        }
    }

    void dump_info_json(nlohmann::json& out) const override {
        out["error"] = {{"name", name}, {"base_bdev_name", base()->name}};
    }

    void write_config_json(nlohmann::json& out) const override {
        out = {{"method", "bdev_error_create"},
               {"params", {{"base_name", base()->name}, {"uuid", uuid_to_string(uuid)}}}};
    }

  private:
    // Decides whether this I/O gets the injected error, consuming one unit of the count.
    ErrKind take(ErrorChannel* ch, BdevIo* io) {
        Injection& in = inj[size_t(io->type)];
        ErrKind kind = in.kind.load(std::memory_order_acquire);
        if (kind == ErrKind::None) return kind;
        uint32_t qd = in.queue_depth.load(std::memory_order_relaxed);
        if (qd && ch->in_flight < qd) return ErrKind::None;
        uint32_t pct = in.percent.load(std::memory_order_relaxed);
        if (pct < 100 && ch->rand100() >= pct) return ErrKind::None;
        int64_t left = in.remaining.load(std::memory_order_relaxed);
        while (left > 0 &&
               !in.remaining.compare_exchange_weak(left, left - 1, std::memory_order_acq_rel)) {
        }
        return left > 0 ? kind : ErrKind::None;
    }

    // XORs the byte at the injection's offset into the I/O's data with its value (SPDK's
    // corrupt_data); an offset past the data changes nothing.
    void corrupt(BdevIo* io) const {
        const Injection& in = inj[size_t(io->type)];
        uint64_t off = in.corrupt_offset.load(std::memory_order_relaxed);
        const uint8_t value = in.corrupt_value.load(std::memory_order_relaxed);
        for (int i = 0; i < io->iovcnt; ++i) {
            if (off < io->iovs[i].iov_len) {
                static_cast<unsigned char*>(io->iovs[i].iov_base)[off] ^= value;
                return;
            }
            off -= io->iovs[i].iov_len;
        }
    }

    static void done(BdevIo* base_io, bool ok, void* arg) {
        auto* io = static_cast<BdevIo*>(arg);
        --static_cast<ErrorChannel*>(io->module_channel)->in_flight;
        if (ok && io->type == IoType::Read && *io->ctx<bool>())
            static_cast<ErrorBdev*>(io->bdev)->corrupt(io);
        complete_from_base(io, base_io);
    }

    static void reset_done(BdevIo* base_io, bool, void* arg) {
        auto* io = static_cast<BdevIo*>(arg);
        --static_cast<ErrorChannel*>(io->module_channel)->in_flight;
        complete_from_base(io, base_io);
    }

    // Aborts the I/O held by "pending" injections on every channel, then resets the base.
    void reset(BdevIo* io) {
        abort_pending([this, io] { forward(io, &ErrorBdev::reset_done); });
    }

  public:
    void abort_pending(std::function<void()> then) {
        for_each_channel(
            [](IoChannel& c, std::function<void(int)> next) {
                auto& ch = static_cast<ErrorChannel&>(c);
                while (BdevIo* q = ch.pending.pop()) {
                    --ch.in_flight;
                    bdev_io_complete(q, IoStatus::Aborted);
                }
                next(0);
            },
            [then = std::move(then)](int) { then(); });
    }

    void on_base_removed() override {
        // Held I/O would keep the upper descriptor holders from ever closing: abort it first.
        abort_pending([this] {
            if (!removing()) bdev_unregister(this, nullptr);
        });
    }
};

bool parse_io_type(const std::string& s, IoType* t, bool* all, bool* clear) {
    *all = s == "all";
    *clear = s == "clear";
    if (*all || *clear) return true;
    for (int i = 0; i < int(IoType::Count); ++i) {
        if (s == io_type_name(IoType(i)) && IoType(i) != IoType::Reset) {
            *t = IoType(i);
            return true;
        }
    }
    return false;
}

bool parse_kind(const std::string& s, ErrKind* k) {
    if (s == "failure")
        *k = ErrKind::Failure;
    else if (s == "pending")
        *k = ErrKind::Pending;
    else if (s == "corrupt_data")
        *k = ErrKind::CorruptData;
    else if (s == "nomem")
        *k = ErrKind::NoMem;
    else if (s == "nvme_failure")  // a failure carrying the given NVMe status
        *k = ErrKind::Failure;
    else
        return false;
    return true;
}

}  // namespace

BdevModule* error_bdev_module() {
    return &g_module;
}

int error_bdev_create(const ErrorBdevOptions& o, std::string* err) {
    if (o.base_name.empty()) return fail(err, -EINVAL, "error: base_name is required");
    std::string name = "EE_" + o.base_name;
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) return -EINVAL;
    if (bdev_get_by_name(name)) return fail(err, -EEXIST, "bdev " + name + " already exists");
    auto b = std::make_unique<ErrorBdev>(name);
    int rc = b->attach_base(o.base_name, err);
    if (rc) return rc;
    b->uuid = uuid;
    rc = bdev_register(std::move(b));
    if (rc) return fail(err, rc, "error: cannot register " + name + ": " + std::strerror(-rc));
    return 0;
}

void error_bdev_delete(const std::string& name, std::function<void(int)> done) {
    Bdev* b = bdev_get_by_name(name);
    if (!b || b->module != &g_module) {
        if (done) done(-ENODEV);
        return;
    }
    auto* eb = static_cast<ErrorBdev*>(b);
    eb->abort_pending(
        [eb, done = std::move(done)]() mutable { bdev_unregister(eb, std::move(done)); });
}

int error_bdev_inject(const ErrorInjectOptions& o, std::string* err) {
    Bdev* b = bdev_get_by_name(o.name);
    if (!b || b->module != &g_module) return fail(err, -ENODEV, "no error bdev named " + o.name);
    auto* eb = static_cast<ErrorBdev*>(b);
    IoType type = IoType::Read;
    bool all = false, clear = false;
    if (!parse_io_type(o.io_type, &type, &all, &clear))
        return fail(err, -EINVAL, "error: unknown io_type '" + o.io_type + "'");
    if (clear) {
        eb->active.store(false);
        for (auto& in : eb->inj) in.kind.store(ErrKind::None);
        return 0;
    }
    ErrKind kind;
    if (!parse_kind(o.error_type, &kind))
        return fail(err, -EINVAL, "error: unknown error_type '" + o.error_type + "'");
    if (o.percent == 0 || o.percent > 100)
        return fail(err, -EINVAL, "error: percent must be between 1 and 100");
    if (o.error_type == "nvme_failure" && o.sct == 0 && o.sc == 0)
        return fail(err, -EINVAL, "error: nvme_failure needs nvme_sct or nvme_sc");
    if (kind != ErrKind::Failure && (o.sct || o.sc))
        return fail(err, -EINVAL, "error: nvme_sct/nvme_sc only go with failure or nvme_failure");
    if (kind == ErrKind::CorruptData && o.corrupt_value && *o.corrupt_value == 0)
        return fail(err, -EINVAL, "error: corrupt_value 0 would not change the data");
    auto set = [&](Injection& in) {
        in.kind.store(ErrKind::None, std::memory_order_release);  // no one takes while we write
        in.remaining.store(o.num);
        in.percent.store(o.percent);
        in.queue_depth.store(o.queue_depth);
        in.sct.store(o.sct);
        in.sc.store(o.sc);
        in.corrupt_offset.store(o.corrupt_offset);
        in.corrupt_value.store(o.corrupt_value.value_or(0xff));
        in.kind.store(kind, std::memory_order_release);
    };
    for (int i = 0; i < int(IoType::Count); ++i)
        if (IoType(i) != IoType::Reset && (all || IoType(i) == type)) set(eb->inj[i]);
    eb->active.store(true, std::memory_order_release);
    return 0;
}

}  // namespace nocstor
