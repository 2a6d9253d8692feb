// The block device layer. A Bdev is a block device with a module behind it; volumes are stacks of
// bdevs (a vbdev claims the bdev below it). Users open a descriptor by name, get a per-thread I/O
// channel, and submit I/O that completes on the same thread. See docs/architecture.md.
#pragma once

#include "bdev/bdev_io.h"
#include "bdev/bdev_stats.h"
#include "runtime/io_channel.h"

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nocstor {

class BdevModule;
class BdevDesc;

using Uuid = std::array<uint8_t, 16>;
Uuid uuid_generate_random();
std::string uuid_to_string(const Uuid& u);
bool uuid_parse(const std::string& s, Uuid* out);

enum class BdevEvent { Remove, Resize };

class SpdkHistogram;

// The optional latency histogram of a bdev in SPDK's layout (bdev_enable_histogram).
struct BdevHistogramConfig {
    bool enabled = false;
    int io_type = -1;  // an IoType, or -1 for every type
    uint32_t granularity = 7;
    uint64_t min_ns = 1000;
    uint64_t max_ns = 120'000'000'000ull;
};
using BdevEventCb = std::function<void(BdevEvent, Bdev*)>;

// A module's device. Subclass it, fill the geometry, implement submit_request() and
// create_channel() (the per-thread context: a queue, a ring, a socket...).
class Bdev : public IoDevice {
  public:
    Bdev(std::string name, BdevModule* module);
    ~Bdev() override;

    // --- geometry and identity (set before bdev_register) ---
    std::string name;
    std::vector<std::string> aliases;
    std::string product_name = "Unknown";
    Uuid uuid{};
    uint32_t block_size = 512;
    uint64_t num_blocks = 0;
    bool write_cache = false;
    uint32_t optimal_io_boundary = 0;  // blocks; 0 = none. I/O crossing it is split
    uint32_t max_transfer_blocks = 0;  // 0 = no limit. Larger I/O is split
    uint32_t required_alignment = 0;   // bytes (power of two) the buffers must have; 0 = any
    // Most iovecs one read or write may carry (0 = no limit); I/O with more is split into
    // children of at most this many (and at most BdevIo::kInlineIovs) iovecs.
    uint32_t max_num_segments = 0;
    BdevModule* module;
    // The data cluster that owns this bdev: its I/O runs on that cluster's threads, other
    // clusters reach it through a remote bdev (modules/remote). -1 until bdev_register assigns
    // one (bdev_default_cluster); a vbdev takes its base's.
    int cluster = -1;

    // --- module interface ---
    virtual bool io_type_supported(IoType t) const;
    // Called on the submitting thread with that thread's module channel. The module completes
    // the I/O with bdev_io_complete(), on the same thread, now or later.
    virtual void submit_request(IoChannel* ch, BdevIo* io) = 0;
    // Called on the control thread after the last descriptor closed; done() when resources
    // are released (may be asynchronous).
    virtual void destruct(std::function<void()> done) { done(); }
    // Module-specific info for bdev_get_bdevs ("driver_specific").
    virtual void dump_info_json(nlohmann::json& out) const;
    // The RPC that recreates this bdev, for save_config (method + params), or null to skip.
    virtual void write_config_json(nlohmann::json& out) const;

    // --- state (bdev layer) ---
    BdevModule* claimed_by() const { return claim_module_; }
    uint64_t size_bytes() const { return num_blocks * block_size; }
    bool removing() const { return removing_; }
    size_t open_descriptors() const;  // control path
    // The IoDevice whose per-thread channels are the bdev layer's BdevChannels.
    IoDevice* layer_device() const;
    // Statistics accumulated from channels that were destroyed.
    BdevStats& retired_stats() { return retired_stats_; }
    // Any thread (new channels read it).
    BdevHistogramConfig histogram_config() const {
        std::lock_guard lock(histogram_mu_);
        return histogram_config_;
    }

  private:
    friend class BdevRegistry;
    friend class BdevDesc;
    friend int bdev_claim(Bdev*, BdevModule*);
    friend int bdev_open(const std::string&, bool, BdevEventCb, BdevDesc**);
    friend void bdev_release_claim(Bdev*);
    friend void bdev_unregister(Bdev*, std::function<void(int)>);
    friend int bdev_notify_blockcnt_change(Bdev*, uint64_t);
    friend class BdevChannel;
    friend class BdevLayerDevice;
    BdevModule* claim_module_ = nullptr;
    std::vector<BdevDesc*> descs_;
    bool removing_ = false;
    std::function<void(int)> unregister_done_;
    BdevStats retired_stats_;
    mutable std::mutex histogram_mu_;
    BdevHistogramConfig histogram_config_;
    friend void bdev_set_histogram(Bdev*, const BdevHistogramConfig&, std::function<void()>);
    std::unique_ptr<class BdevLayerDevice> layer_device_;  // per-thread BdevChannels
};

// An open handle on a bdev. Opened and closed on the control thread (or any single thread);
// I/O may be submitted from any reactor thread through bdev_get_io_channel().
class BdevDesc {
  public:
    Bdev* bdev() const { return bdev_; }
    bool writable() const { return writable_; }

  private:
    friend int bdev_open(const std::string&, bool, BdevEventCb, BdevDesc**);
    friend void bdev_close(BdevDesc*);
    friend void bdev_unregister(Bdev*, std::function<void(int)>);
    friend class BdevRegistry;
    Bdev* bdev_ = nullptr;
    bool writable_ = false;
    BdevEventCb event_cb_;
    Thread* owner_ = nullptr;
};

// --- registry (control thread) ---
// Registers a bdev (name and aliases must be unique) and runs every module's examine on it.
// Returns 0 or -EEXIST / -EINVAL.
int bdev_register(std::unique_ptr<Bdev> bdev);
// Hot-remove: every open descriptor gets BdevEvent::Remove on its owner thread; once all are
// closed the bdev is destructed and done(0) runs on the calling thread.
void bdev_unregister(Bdev* bdev, std::function<void(int)> done);
// A module's device changed size (a file grew, an image was resized): sets num_blocks and tells
// every descriptor holder with BdevEvent::Resize on its thread (an NVMe-oF namespace then
// announces the change to its hosts). Shrinking while a descriptor is open would pull blocks
// from under its user: -EBUSY, nothing changed. Control thread.
int bdev_notify_blockcnt_change(Bdev* bdev, uint64_t num_blocks);
Bdev* bdev_get_by_name(const std::string& name);  // name or alias
std::vector<Bdev*> bdev_list();

int bdev_open(const std::string& name, bool writable, BdevEventCb event_cb, BdevDesc** out);
void bdev_close(BdevDesc* desc);
// Exclusive claim of a bdev by a vbdev module: -EPERM if already claimed.
int bdev_claim(Bdev* bdev, BdevModule* module);
void bdev_release_claim(Bdev* bdev);

// --- cluster ownership (control thread) ---
// While a scope is alive, bdevs registered without a cluster (and vbdevs checking their base)
// use `cluster`: the RPC layer opens one for a creation method called with {"cluster": N}.
class BdevClusterScope {
  public:
    explicit BdevClusterScope(int cluster);
    ~BdevClusterScope();
    BdevClusterScope(const BdevClusterScope&) = delete;
    BdevClusterScope& operator=(const BdevClusterScope&) = delete;

  private:
    int prev_;
};
// The innermost scope's cluster, or -1.
int bdev_scope_cluster();
// Where a new bdev goes: the scope's cluster, else the data cluster that owns the fewest bdevs
// (1 without a runtime).
int bdev_default_cluster();
// Data clusters of the running runtime (1 without one). save_config names a bdev's cluster only
// when there is a choice, so a single-cluster configuration stays SPDK's.
size_t bdev_data_cluster_count();
// Whether `cluster` is a data cluster of the running runtime; false with *err otherwise.
bool bdev_check_cluster(int cluster, std::string* err);
// A vbdev over `base` (which owns it must match): -EXDEV with *err when a scope asks for
// another cluster than the base's.
int bdev_check_same_cluster(const Bdev* base, const std::string& what, std::string* err);

// --- examine in progress (control thread) ---
// Modules that read metadata of a new bdev asynchronously (RAID superblocks) bracket that work;
// bdev_wait_for_examine runs done once nothing is being examined (config loading waits so that
// the arrays assembled from disks exist before namespaces name them).
void bdev_examine_begin();
void bdev_examine_end();
void bdev_wait_for_examine(std::function<void()> done);

// --- I/O (reactor threads) ---
// The calling thread's channel for this descriptor's bdev. Put it with bdev_put_io_channel.
IoChannel* bdev_get_io_channel(BdevDesc* desc);
void bdev_put_io_channel(IoChannel* ch);

// All return 0 when submitted (the callback will run), or a negative errno with no callback:
// -ENOMEM (no bdev_io free: wait with bdev_queue_io_wait), -EINVAL (bad range/length/iov),
// -EBADF (read-only descriptor), -ENOTSUP (I/O type not supported), -ENODEV (being removed).
int bdev_readv(BdevDesc* desc, IoChannel* ch, iovec* iov, int iovcnt, uint64_t offset_blocks,
               uint64_t num_blocks, BdevIoCompletion cb, void* cb_arg);
int bdev_writev(BdevDesc* desc, IoChannel* ch, iovec* iov, int iovcnt, uint64_t offset_blocks,
                uint64_t num_blocks, BdevIoCompletion cb, void* cb_arg, bool fua = false);
int bdev_flush(BdevDesc* desc, IoChannel* ch, uint64_t offset_blocks, uint64_t num_blocks,
               BdevIoCompletion cb, void* cb_arg);
int bdev_unmap(BdevDesc* desc, IoChannel* ch, uint64_t offset_blocks, uint64_t num_blocks,
               BdevIoCompletion cb, void* cb_arg);
int bdev_write_zeroes(BdevDesc* desc, IoChannel* ch, uint64_t offset_blocks, uint64_t num_blocks,
                      BdevIoCompletion cb, void* cb_arg);
// A vbdev's pure offset translation without a child I/O: io itself (a read or write this vbdev
// is executing) goes to the base bdev at offset_blocks, same data and length. When the base
// completes it, io is this vbdev's again and done(io, ok, arg) runs, with io->status (and the
// NVMe status) as the base set them; the vbdev then completes io as usual. The base uses
// io->driver_ctx meanwhile: keep nothing there across the call. -ENOTSUP: not possible here
// (the base would split it, other block size or alignment, stack too deep, not a read or
// write): submit a child I/O instead. Other errors as bdev_readv/bdev_writev.
int bdev_forward_io(BdevDesc* desc, IoChannel* ch, BdevIo* io, uint64_t offset_blocks,
                    BdevIoCompletion done, void* arg);
// Aborts I/O queued in the bdev layer on every channel, then resets the device.
int bdev_reset(BdevDesc* desc, IoChannel* ch, BdevIoCompletion cb, void* cb_arg);
// Returns the BdevIo to its pool. Call it in (or after) the completion callback.
void bdev_free_io(BdevIo* io);

// Called once when a bdev_io is free again on this channel after -ENOMEM.
struct BdevIoWaitEntry {
    void (*cb)(void* arg) = nullptr;
    void* arg = nullptr;
    BdevIoWaitEntry* next = nullptr;
};
void bdev_queue_io_wait(IoChannel* ch, BdevIoWaitEntry* entry);

// --- for modules ---
// Completes an I/O given to submit_request(). Safe to call from inside submit_request().
void bdev_io_complete(BdevIo* io, IoStatus status);
void bdev_io_complete_nvme(BdevIo* io, uint8_t sct, uint8_t sc);
// Allocates a BdevIo from the calling thread's pool for a vbdev to submit to its base bdev
// (same as the public calls above; vbdevs just use them with their own descriptor).

// Per-thread pool size of BdevIo objects (set before the first channel is created).
void bdev_set_io_pool_size(uint32_t per_thread);
uint32_t bdev_io_pool_size();

// Statistics for bdev_get_iostat: sums every thread's channel plus retired channels; done runs
// on the calling thread.
void bdev_get_stats(Bdev* bdev, std::function<void(const BdevStats&)> done);
// Each channel's statistics with the name of its thread (retired channels under "retired").
void bdev_get_channel_stats(
    Bdev* bdev, std::function<void(std::vector<std::pair<std::string, BdevStats>>)> done);
// Turns the SPDK-layout latency histogram on (with these settings, clearing it) or off on every
// channel; done runs on the calling thread.
void bdev_set_histogram(Bdev* bdev, const BdevHistogramConfig& config, std::function<void()> done);
// The histogram summed over the channels, or null when it is off.
void bdev_get_histogram(Bdev* bdev, std::function<void(std::unique_ptr<SpdkHistogram>)> done);
// Clears statistics on every channel (on its own thread) and the retired ones; done runs on the
// calling thread.
void bdev_reset_stats(Bdev* bdev, StatsReset mode, std::function<void()> done);

}  // namespace nocstor
