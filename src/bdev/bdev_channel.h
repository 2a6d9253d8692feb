// Bdev-layer internals: the per-thread pool of BdevIo objects (BdevMgmtChannel) and the per
// (bdev, thread) channel that wraps the module's channel (BdevChannel).
#pragma once

#include "bdev/bdev.h"
#include "util/spdk_histogram.h"

#include <memory>
#include <vector>

namespace nocstor {

// One per thread, shared by every bdev used on that thread.
class BdevMgmtChannel : public IoChannel {
  public:
    explicit BdevMgmtChannel(uint32_t pool_size);
    // New I/O from outside the bdev stack may not take the last `reserve` objects: those are
    // kept for split children and for the base I/O of vbdevs, so that a full pool of parents
    // waiting for a child can never deadlock.
    BdevIo* get_io(bool nested);
    void put_io(BdevIo* io);
    uint32_t free_count() const { return free_count_; }
    uint32_t pool_size() const { return uint32_t(storage_.size()); }
    void add_waiter(BdevIoWaitEntry* e);

  private:
    std::vector<BdevIo> storage_;
    BdevIo* free_ = nullptr;
    uint32_t free_count_ = 0;
    uint32_t reserve_ = 0;
    BdevIoWaitEntry* wait_head_ = nullptr;
    BdevIoWaitEntry* wait_tail_ = nullptr;
};

class BdevMgmtDevice : public IoDevice {
  public:
    BdevMgmtDevice() : IoDevice("bdev_mgmt") {}
    std::unique_ptr<IoChannel> create_channel() override;
    static BdevMgmtDevice& instance();
};

class BdevChannel : public IoChannel {
  public:
    BdevChannel(Bdev* bdev, IoChannel* module_ch, BdevMgmtChannel* mgmt);
    ~BdevChannel() override;

    Bdev* bdev;
    IoChannel* module_ch;
    BdevMgmtChannel* mgmt;
    BdevStats stats;
    // bdev_enable_histogram: latencies of io_type (-1: all) in SPDK's layout; null when off.
    std::unique_ptr<SpdkHistogram> histogram;
    int histogram_type = -1;
    void set_histogram(const BdevHistogramConfig& config);
    BdevIoQueue nomem_queue;  // I/O the module returned NoMemory for, retried on completions
    uint64_t outstanding = 0;
    Poller* retry_poller = nullptr;
};

// The IoDevice whose channels are BdevChannels (one per bdev).
class BdevLayerDevice : public IoDevice {
  public:
    explicit BdevLayerDevice(Bdev* bdev) : IoDevice(bdev->name + "_layer"), bdev_(bdev) {}
    std::unique_ptr<IoChannel> create_channel() override;

  private:
    Bdev* bdev_;
};

}  // namespace nocstor
