#include "runtime/noc.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace nocstor {
namespace {

constexpr uint64_t kNocMagic = 0x4e4f'4346'4142'5231ull;  // "NOCFABR1"

size_t align_up(size_t v, size_t a) {
    return (v + a - 1) / a * a;
}

// At offset 0 of the region; lets another process that maps the fd find everything.
struct NocHeader {
    uint64_t magic;
    uint32_t clusters;
    uint32_t ring_slots;
    uint64_t cluster_off;
    uint64_t ring_off;
    uint64_t ring_stride;
    uint64_t arena_off;
    uint64_t arena_size;
    uint64_t extra_off;  // in the arena (each cluster's pool: NocClusterShared::pool_off)
};

// Ring i -> j (i != j) is number i * (n - 1) + (j < i ? j : j - 1).
size_t ring_index(int from, int to, int n) {
    return size_t(from) * (n - 1) + (to < from ? to : to - 1);
}

}  // namespace

size_t NocEndpoint::send_batch(int dst, const NocDescriptor* d, size_t n) {
    assert(dst != id_ && dst >= 0 && dst < n_);
    uint16_t src = uint16_t(id_);
    size_t k = out_[dst].produce(n, [&](NocDescriptor& slot, size_t i) {
        slot = d[i];
        slot.src_cluster = src;
    });
    if (k) {
        bump(kSent, k);
        notify(dst);
    }
    if (k < n) bump(kRingFull, 1);
    return k;
}

void NocEndpoint::notify(int dst) {
    // Pairs with the fence in prepare_to_sleep(): see the protocol in noc.h.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    auto& sleeping = peers_[dst]->sleeping;
    if (sleeping.load(std::memory_order_relaxed) &&
        sleeping.exchange(0, std::memory_order_acq_rel)) {  // only one sender rings
        uint64_t one = 1;
        ssize_t r = write(fds_[dst], &one, sizeof(one));
        (void)r;  // a non-blocking eventfd write can only fail on counter overflow (never)
        bump(kDoorbells, 1);
    }
}

bool NocEndpoint::has_pending() const {
    for (int src : sources_) {
        if (!in_[src].empty()) return true;
    }
    return false;
}

bool NocEndpoint::prepare_to_sleep() {
    self_->sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (has_pending()) {
        self_->sleeping.store(0, std::memory_order_relaxed);
        return false;
    }
    bump(kSleeps, 1);
    return true;
}

void NocEndpoint::finish_sleep() {
    self_->sleeping.store(0, std::memory_order_relaxed);
    uint64_t v;
    ssize_t r = read(fds_[id_], &v, sizeof(v));  // non-blocking: EAGAIN when not rung
    (void)r;
}

NocEndpointStats NocEndpoint::stats() const {
    auto get = [&](Stat s) { return self_->stats[s].load(std::memory_order_relaxed); };
    return {get(kSent), get(kReceived), get(kRingFull), get(kDoorbells), get(kSleeps)};
}

std::unique_ptr<NocFabric> NocFabric::create(const NocConfig& cfg, std::string* err) {
    auto fail = [&](std::string msg) -> std::unique_ptr<NocFabric> {
        if (err) *err = std::move(msg);
        return nullptr;
    };
    int n = cfg.clusters;
    if (n < 1 || n > 1024) return fail(fmt::format("bad cluster count {}", n));
    if (!SpscRing<NocDescriptor>::valid_capacity(cfg.ring_slots)) {
        return fail(fmt::format("ring_slots {} is not a power of two >= 2", cfg.ring_slots));
    }
    NocHeader h{};
    h.magic = kNocMagic;
    h.clusters = uint32_t(n);
    h.ring_slots = cfg.ring_slots;
    h.cluster_off = align_up(sizeof(NocHeader), kCacheLine);
    h.ring_off = align_up(h.cluster_off + size_t(n) * sizeof(NocClusterShared), kCacheLine);
    h.ring_stride = align_up(SpscRing<NocDescriptor>::bytes_needed(cfg.ring_slots), kCacheLine);
    h.arena_off = align_up(h.ring_off + size_t(n) * (n - 1) * h.ring_stride, BufferPool::kAlign);
    if (!cfg.cluster_buffers.empty() && int(cfg.cluster_buffers.size()) != n) {
        return fail(fmt::format("{} buffer pool partitions for {} clusters",
                                cfg.cluster_buffers.size(), n));
    }
    auto pool_cfg = [&](int c) -> const BufferPoolConfig& {
        return cfg.cluster_buffers.empty() ? cfg.buffers : cfg.cluster_buffers[size_t(c)];
    };
    std::vector<uint64_t> pool_off(static_cast<size_t>(n));
    uint64_t off = 0;
    for (int c = 0; c < n; ++c) {
        pool_off[size_t(c)] = off;
        off += align_up(BufferPool::bytes_needed(pool_cfg(c)), BufferPool::kAlign);
    }
    h.extra_off = off;
    h.arena_size = h.extra_off + align_up(cfg.extra_arena_bytes, BufferPool::kAlign);

    ShmOptions opts;
    opts.allow_hugepages = cfg.allow_hugepages;
    std::string shm_err;
    auto region = ShmRegion::create(cfg.name, h.arena_off + h.arena_size, &shm_err, opts);
    if (!region) return fail("NoC shared memory: " + shm_err);

    std::unique_ptr<NocFabric> f(new NocFabric());
    f->region_ = std::move(*region);
    std::byte* base = f->region_.base();
    std::memcpy(base, &h, sizeof(h));
    for (int c = 0; c < n; ++c) {
        auto* cs = ::new (base + h.cluster_off + c * sizeof(NocClusterShared)) NocClusterShared();
        cs->pool_off = pool_off[size_t(c)];
    }
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) {
            if (i != j) {
                SpscRing<NocDescriptor>::format(
                    base + h.ring_off + ring_index(i, j, n) * h.ring_stride, cfg.ring_slots);
            }
        }
    }
    for (int c = 0; c < n; ++c) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0)
            return fail(fmt::format("eventfd: {}", std::strerror(errno)));  // ~NocFabric closes
        f->fds_.push_back(fd);
    }
    // Pools are laid out here, once; build_endpoints (also used by attach) only views them.
    for (int c = 0; c < n; ++c)
        BufferPool::create(base + h.arena_off, pool_off[size_t(c)], pool_cfg(c));
    f->build_endpoints();
    NOC_INFO("runtime", "NoC: {} clusters, {} rings of {} slots, arena {} MiB, {} pages", n,
             size_t(n) * (n - 1), cfg.ring_slots, h.arena_size >> 20,
             f->region_.hugepages() ? "huge" : "normal");
    return f;
}

void NocFabric::build_endpoints() {
    std::byte* base = region_.base();
    NocHeader h;
    std::memcpy(&h, base, sizeof(h));
    const int n = int(h.clusters);
    arena_ = base + h.arena_off;
    arena_size_ = h.arena_size;
    extra_off_ = h.extra_off;
    auto shared = [&](int c) {
        return reinterpret_cast<NocClusterShared*>(base + h.cluster_off +
                                                   c * sizeof(NocClusterShared));
    };
    pools_.clear();
    pools_.reserve(size_t(n));  // endpoints keep pointers into it
    for (int c = 0; c < n; ++c) pools_.push_back(BufferPool::attach(arena_, shared(c)->pool_off));
    auto ring = [&](int from, int to) {
        if (from == to) return SpscRing<NocDescriptor>();
        return SpscRing<NocDescriptor>::attach(base + h.ring_off +
                                               ring_index(from, to, n) * h.ring_stride);
    };
    endpoints_.clear();
    for (int c = 0; c < n; ++c) {
        auto ep = std::make_unique<NocEndpoint>();
        ep->id_ = c;
        ep->n_ = n;
        for (int p = 0; p < n; ++p) {
            ep->out_.push_back(ring(c, p));
            ep->in_.push_back(ring(p, c));
            ep->peers_.push_back(shared(p));
            if (p != c) ep->sources_.push_back(p);
        }
        ep->fds_ = fds_;
        ep->self_ = shared(c);
        ep->arena_ = arena_;
        ep->arena_size_ = arena_size_;
        ep->pool_ = &pools_[size_t(c)];
        endpoints_.push_back(std::move(ep));
    }
}

std::unique_ptr<NocFabric> NocFabric::attach(NocFabricFds fds, std::string* err) {
    auto fail = [&](std::string msg) -> std::unique_ptr<NocFabric> {
        for (int fd : fds.doorbells)
            if (fd >= 0) close(fd);
        if (err) *err = std::move(msg);
        return nullptr;
    };
    std::string shm_err;
    auto region = ShmRegion::attach(fds.region, &shm_err);  // closes the fd on failure
    if (!region) return fail("NoC shared memory: " + shm_err);
    NocHeader h;
    if (region->size() < sizeof(h)) return fail("NoC region too small");
    std::memcpy(&h, region->base(), sizeof(h));
    if (h.magic != kNocMagic) return fail("not a NoC region (bad magic)");
    if (h.clusters < 1 || h.clusters > 1024 || h.clusters != fds.doorbells.size()) {
        return fail(fmt::format("NoC region has {} clusters, {} doorbells were given", h.clusters,
                                fds.doorbells.size()));
    }
    if (!region->contains(h.arena_off, h.arena_size)) return fail("NoC region truncated");
    std::unique_ptr<NocFabric> f(new NocFabric());
    f->region_ = std::move(*region);
    f->fds_ = std::move(fds.doorbells);
    f->build_endpoints();
    return f;
}

size_t NocEndpoint::discard_inbound() {
    size_t n = 0;
    for (int src : sources_) n += in_[src].discard();
    return n;
}

NocFabric::~NocFabric() {
    for (int fd : fds_) close(fd);
}

}  // namespace nocstor
