#include "bdev/bdev_channel.h"

#include "util/lat_clock.h"
#include "util/log.h"

#include <mutex>

namespace nocstor {

namespace {
uint32_t g_pool_size = 4096;
std::mutex g_retired_mu;  // channel teardown only, never the I/O path
}  // namespace

void bdev_set_io_pool_size(uint32_t per_thread) {
    g_pool_size = per_thread ? per_thread : 1;
}
uint32_t bdev_io_pool_size() {
    return g_pool_size;
}

BdevMgmtChannel::BdevMgmtChannel(uint32_t pool_size)
    : storage_(pool_size), reserve_(pool_size / 16) {
    for (auto& io : storage_) put_io(&io);
    (void)LatClock::params();  // calibrated here (once per process), not by the first I/O
}

BdevIo* BdevMgmtChannel::get_io(bool nested) {
    BdevIo* io = free_;
    if (!io || (!nested && free_count_ <= reserve_)) return nullptr;
    free_ = io->next;
    io->next = nullptr;
    --free_count_;
    return io;
}

void BdevMgmtChannel::put_io(BdevIo* io) {
    io->next = free_;
    free_ = io;
    ++free_count_;
    // Someone waits for a bdev_io: hand the wake-up to exactly one waiter.
    if (wait_head_) {
        BdevIoWaitEntry* e = wait_head_;
        wait_head_ = e->next;
        if (!wait_head_) wait_tail_ = nullptr;
        e->next = nullptr;
        e->cb(e->arg);
    }
}

void BdevMgmtChannel::add_waiter(BdevIoWaitEntry* e) {
    e->next = nullptr;
    if (wait_tail_)
        wait_tail_->next = e;
    else
        wait_head_ = e;
    wait_tail_ = e;
}

BdevMgmtDevice& BdevMgmtDevice::instance() {
    static BdevMgmtDevice* dev = new BdevMgmtDevice();  // lives as long as any thread
    return *dev;
}

std::unique_ptr<IoChannel> BdevMgmtDevice::create_channel() {
    return std::make_unique<BdevMgmtChannel>(g_pool_size);
}

BdevChannel::BdevChannel(Bdev* b, IoChannel* m, BdevMgmtChannel* g)
    : bdev(b), module_ch(m), mgmt(g) {
    stats.latency.make_dense();  // record() on the data path never allocates
    const BdevHistogramConfig config = b->histogram_config();
    if (config.enabled) set_histogram(config);
}

void BdevChannel::set_histogram(const BdevHistogramConfig& config) {
    histogram = config.enabled ? std::make_unique<SpdkHistogram>(config.granularity, config.min_ns,
                                                                 config.max_ns)
                               : nullptr;
    histogram_type = config.io_type;
}

BdevChannel::~BdevChannel() {
    if (retry_poller) Thread::current()->unregister_poller(retry_poller);
    {
        std::lock_guard lock(g_retired_mu);
        bdev->retired_stats().merge(stats);
    }
    IoDevice::put_channel(module_ch);
    IoDevice::put_channel(mgmt);
}

std::unique_ptr<IoChannel> BdevLayerDevice::create_channel() {
    IoChannel* module_ch = bdev_->get_channel();
    if (!module_ch) {
        NOC_ERROR("bdev", "{}: module {} could not create an I/O channel", bdev_->name,
                  bdev_->product_name);
        return nullptr;
    }
    auto* mgmt = BdevMgmtDevice::instance().get_channel_as<BdevMgmtChannel>();
    return std::make_unique<BdevChannel>(bdev_, module_ch, mgmt);
}

void BdevStats::merge(const BdevStats& o) {
    for (size_t i = 0; i < by_type.size(); ++i) {
        auto& a = by_type[i];
        const auto& b = o.by_type[i];
        a.ops += b.ops;
        a.bytes += b.bytes;
        a.errors += b.errors;
        a.latency_sum_ns += b.latency_sum_ns;
        if (b.latency_min_ns < a.latency_min_ns) a.latency_min_ns = b.latency_min_ns;
        if (b.latency_max_ns > a.latency_max_ns) a.latency_max_ns = b.latency_max_ns;
    }
    latency.merge(o.latency);
    nomem_retries += o.nomem_retries;
}

void BdevStats::reset(StatsReset mode) {
    switch (mode) {
        case StatsReset::None:
            return;
        case StatsReset::All:
            by_type = {};
            latency.reset();  // keeps a channel's storage
            nomem_retries = 0;
            return;
        case StatsReset::MaxMin:
            for (auto& t : by_type) {
                t.latency_min_ns = UINT64_MAX;
                t.latency_max_ns = 0;
            }
            return;
        case StatsReset::Errors:
            for (auto& t : by_type) t.errors = 0;
            return;
    }
}

std::mutex& bdev_retired_stats_mutex() {
    return g_retired_mu;
}

}  // namespace nocstor
