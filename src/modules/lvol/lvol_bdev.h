// An lvol as a bdev. Its data path: an allocated cluster is a pure offset translation onto the
// base (an atomic load of the cluster map, no lock, no metadata I/O); a read of an unallocated
// cluster goes to the parent snapshot chain or returns zeros; a write to one asks the store's
// control thread to allocate it (once, however many writers) and runs again when it is there.
// Operations that change the map wholesale (snapshot, resize, merge) freeze the lvol: new I/O
// is held per channel, the in-flight I/O drains, the change is made, the held I/O runs.
// The lvol at the top of a chain may have an external parent (an "esnap": a bdev outside the
// store): unallocated clusters read it at the same offset, through a per-channel channel to it
// taken on first use and keyed by the open's generation.
#pragma once

#include "bdev/bdev.h"
#include "modules/lvol/lvs_format.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nocstor::lvol {

class Lvstore;

// One open of an external parent bdev. Immutable once published; freed by the store only after
// every channel dropped its channel to it and no cluster fill reads it any more.
struct EsnapOpen {
    BdevDesc* desc;
    uint64_t gen;  // unique per open: channels cache their channel to it by this
    // The bdev's size: taken when opened, followed when it grows (its resize event; the bdev
    // layer refuses to shrink an open bdev). Reads past it are zeros.
    std::atomic<uint64_t> num_blocks;
    uint64_t blocks() const { return num_blocks.load(std::memory_order_acquire); }
};

// An external parent of lvols of a store, as recorded (LvolMeta::esnap: the bdev's UUID string,
// or its name when it has no UUID). Lives as long as its store.
struct Esnap {
    explicit Esnap(std::string i) : id(std::move(i)) {}
    const std::string id;
    // Null while the bdev is missing: the lvols reading it are degraded (those reads fail).
    std::atomic<EsnapOpen*> open{nullptr};
    // Control thread: cluster fills reading the open in progress, and what waits for none.
    uint32_t users = 0;
    std::vector<std::function<void()>> on_idle;
    // Control thread: closes under way, and what waits for them to be done.
    uint32_t closing = 0;
    std::vector<std::function<void()>> on_closed;
};

// The lvol's cluster map as the data path sees it.
struct ClusterMap {
    explicit ClusterMap(uint64_t n) : size(n), entries(new std::atomic<uint32_t>[n ? n : 1]) {
        for (uint64_t i = 0; i < n; ++i) entries[i].store(kUnallocated, std::memory_order_relaxed);
    }
    uint32_t get(uint64_t i) const {
        return i < size ? entries[i].load(std::memory_order_acquire) : kUnallocated;
    }
    uint64_t size;
    std::unique_ptr<std::atomic<uint32_t>[]> entries;
};

class LvolBdev : public Bdev {
  public:
    LvolBdev(Lvstore* lvs, uint32_t id, const std::string& bdev_name);
    ~LvolBdev() override;

    Lvstore* const lvs;
    const uint32_t id;

    // Control thread, while frozen (or before registration).
    void set_map(std::unique_ptr<ClusterMap> m);
    void set_parent(LvolBdev* p) { parent_.store(p, std::memory_order_release); }
    void set_read_only(bool ro) { read_only_.store(ro, std::memory_order_release); }
    // The external parent (top of a chain only; null: none). Control thread, while frozen or
    // before registration.
    void set_esnap(Esnap* e) { esnap_.store(e, std::memory_order_release); }
    Esnap* esnap() const { return esnap_.load(std::memory_order_acquire); }
    // Control thread: an allocation is durable; the data path may use it.
    void publish(uint64_t idx, uint32_t pcl) {
        map_->entries[idx].store(pcl, std::memory_order_release);
    }
    const ClusterMap& map() const { return *map_; }
    LvolBdev* parent() const { return parent_.load(std::memory_order_acquire); }
    bool read_only() const { return read_only_.load(std::memory_order_acquire); }

    // Control thread: holds new I/O and calls done once nothing is in flight on any channel.
    // Freezes nest (a snapshot while a re-parent waits for its freeze): I/O resumes at the last
    // unfreeze.
    void freeze(std::function<void()> done);
    void unfreeze();
    // Control thread: inflates/decouples running on this lvol (its delete waits for none).
    uint32_t long_ops = 0;
    // Control thread: every channel that caches a channel to the external parent open `gen`
    // waits until its reads of it are done and puts it; then done.
    void drop_esnap_channel(uint64_t gen, std::function<void()> done);

    // Runs a write that waited for its cluster again (on the I/O's own thread).
    void resubmit(BdevIo* io);
    // Fails a write whose cluster could not be allocated (on the I/O's own thread): -ENOSPC is
    // NVMe's Capacity Exceeded, anything else a failed I/O.
    static void fail_waiting(BdevIo* io, int rc);
    // Completes a write whose data the store wrote into its new cluster with the fill (on the
    // I/O's own thread).
    static void finish_written(BdevIo* io);

    bool io_type_supported(IoType t) const override;
    void submit_request(IoChannel* ch, BdevIo* io) override;
    std::unique_ptr<IoChannel> create_channel() override;
    void destruct(std::function<void()> done) override;
    void dump_info_json(nlohmann::json& out) const override;
    void write_config_json(nlohmann::json&) const override {}  // null: the store reopens it

  private:
    void submit_rw(IoChannel* ch, BdevIo* io);
    void submit_ranges(IoChannel* ch, BdevIo* io);
    void read_esnap(IoChannel* ch, BdevIo* io, Esnap* e, uint64_t idx, uint64_t within);

    std::unique_ptr<ClusterMap> map_;
    std::atomic<LvolBdev*> parent_{nullptr};
    std::atomic<Esnap*> esnap_{nullptr};
    std::atomic<bool> read_only_{false};
    std::atomic<uint32_t> frozen_{0};  // freeze depth
};

}  // namespace nocstor::lvol
