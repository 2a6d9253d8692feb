// The cache vbdev (SPDK's bdev_ocf_*): a core bdev (slow) in front of which a cache bdev (fast)
// keeps lines of the core's data, in one of six modes (cache_format.h). Internal to the module.
//
// Threads. Every I/O the bdev layer hands us lies within one cache line (optimal_io_boundary).
// The line's core line number hashes to a set of cache lines (cache_set.h) and each set has an
// owner thread among the data threads of the cache's cluster; the I/O runs there as an Op that
// holds the core line's lock (a table of the owner, never a mutex) from its first step to the
// last write of its entry, so that two operations on one line never interleave. Reads of a hit
// go straight to the cache bdev, misses to the core; lines are filled from the data just read.
// Flush goes to both bdevs from the submitting thread. The cleaner (cache_clean.cpp) writes
// dirty lines back to the core, also on the set owners.
#pragma once

#include "bdev/bdev.h"
#include "modules/cache/cache_format.h"
#include "modules/cache/cache_set.h"
#include "runtime/thread.h"

#include <atomic>
#include <memory>
#include <vector>

namespace nocstor::cache {

class CacheBdev;
class Owner;

enum class OpKind : uint8_t { Read, Write, Clean };

// One base I/O of an operation (the cache's or the core's), resubmitted when the bdev layer
// has no bdev_io free.
struct SubIo {
    Op* op = nullptr;
    bool core = false;
    IoType type = IoType::Read;
    iovec* iov = nullptr;
    int iovcnt = 0;
    uint64_t offset_blocks = 0, num_blocks = 0;
    BdevIoWaitEntry wait;
};

// One user I/O (or one line being cleaned) on its owner thread.
struct Op {
    static constexpr int kMaxIovs = 32;
    CacheBdev* c = nullptr;
    Owner* owner = nullptr;
    CacheSet* set = nullptr;
    BdevIo* io = nullptr;  // the user's; null for cleaning
    Thread* origin = nullptr;
    OpKind kind = OpKind::Read;
    uint8_t step = 0;
    Mode mode = Mode::WriteThrough;  // the cache's, or pt for a sequential stream cut off
    uint64_t core_line = 0;
    uint32_t line = CacheSet::kNone;  // within the set
    uint32_t first = 0, count = 0;    // blocks of the line the user I/O covers
    LineMask mask;                    // the same as a mask
    LineMask todo;                    // blocks still to read / clean, run by run
    uint32_t run_first = 0, run_count = 0;
    uint32_t pending = 0;
    bool cache_failed = false, core_failed = false;
    IoStatus status = IoStatus::Success;
    SubIo sub[2];
    iovec iov[kMaxIovs];
    int iovcnt = 0;
    // Cleaning: a buffer for the line, the cleaner to tell.
    uint8_t* buf = nullptr;
    void (*clean_done)(Op*) = nullptr;
    // Lock table, table-block waiters, free list.
    Op* next_in_bucket = nullptr;
    Op* waiters = nullptr;
    Op* next_waiter = nullptr;
    Op* next_md = nullptr;
    Op* next_free = nullptr;
};

// Per-owner statistics (one writer: the owner thread; read by the control thread).
struct Counters {
    std::atomic<uint64_t> rd_hits{0}, rd_partial_misses{0}, rd_full_misses{0}, rd_pt{0};
    std::atomic<uint64_t> wr_hits{0}, wr_partial_misses{0}, wr_full_misses{0}, wr_pt{0};
    std::atomic<uint64_t> core_rd_blocks{0}, core_wr_blocks{0}, cache_rd_blocks{0},
        cache_wr_blocks{0};
    std::atomic<uint64_t> core_rd_errors{0}, core_wr_errors{0}, cache_rd_errors{0},
        cache_wr_errors{0};
    std::atomic<uint64_t> cleaned_lines{0}, evictions{0}, table_writes{0}, lost_dirty_lines{0};
    static void add(std::atomic<uint64_t>& c, uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void reset();
};

// A table block write in flight (with its buffer).
struct MdWrite {
    Owner* owner = nullptr;
    CacheSet* set = nullptr;
    uint32_t block = 0;
    uint8_t* buf = nullptr;
    iovec iov{};
    BdevIoWaitEntry wait;
    MdWrite* next = nullptr;
};

// What one owner thread keeps for one cache: its channels to both bdevs, operations, the lock
// table of core lines, table block buffers, counters and the cleaner's progress.
class Owner {
  public:
    static constexpr uint32_t kOps = 256;
    static constexpr uint32_t kMdWrites = 32;
    static constexpr uint32_t kBuckets = 512;
    static constexpr uint32_t kCleanersPerOwner = 8;

    Owner(CacheBdev* c, uint32_t index);
    ~Owner();

    CacheBdev* c;
    uint32_t index;
    IoChannel* cache_ch = nullptr;
    IoChannel* core_ch = nullptr;
    Counters counters;

    Op* get_op();
    void put_op(Op* op);
    bool lock(Op* op);   // false: op waits behind the holder and starts when it unlocks
    Op* unlock(Op* op);  // the next holder, if any
    bool locked(uint64_t core_line) const;
    // Promotion policy nhit: whether this miss of core_line is its promotion_hits-th (recent
    // misses are counted in a small table; a line pushed out of it starts again).
    bool promote(uint64_t core_line);

    MdWrite* get_md();
    void put_md(MdWrite* m);
    // Table blocks waiting for a buffer.
    MdWrite* md_wait_head = nullptr;
    struct BlockRef {
        CacheSet* set;
        uint32_t block;
    };
    std::vector<BlockRef> md_backlog;  // reserved at creation: never grows on the data path

    // Cleaner (cache_clean.cpp): the sets of this owner, a cursor, the lines in flight.
    std::vector<CacheSet*> sets;
    size_t clean_set = 0;
    uint32_t clean_line = 0;
    bool cleaning = false;
    uint32_t cleaners_inflight = 0;
    uint64_t clean_errors = 0;
    Poller* clean_poller = nullptr;
    std::shared_ptr<struct FlushRun> flush_run;  // the flush this owner's pass belongs to
    // Background cleaning (cache_clean.cpp): a periodic poller, the owner's coarse clock, a
    // token bucket for the rate cap, and per set a scan cursor and whether it is being drained
    // below the low watermark.
    Poller* bg_poller = nullptr;
    uint32_t now_ms = 0;
    uint64_t bg_last_ns = 0;
    double bg_tokens = 0;
    std::vector<uint32_t> bg_cursor;
    std::vector<uint8_t> bg_draining;
    uint8_t* clean_bufs[kCleanersPerOwner] = {};
    uint32_t clean_bufs_free = 0;

  private:
    static constexpr uint32_t kCandidates = 4096;
    struct Candidate {
        uint64_t core_line = kNoCoreLine;
        uint32_t misses = 0;
    };
    std::unique_ptr<Candidate[]> candidates_;
    std::unique_ptr<Op[]> ops_;
    Op* free_ops_ = nullptr;
    Op* buckets_[kBuckets] = {};
    std::unique_ptr<MdWrite[]> mds_;
    MdWrite* free_md_ = nullptr;
    uint8_t* md_mem_ = nullptr;
    uint8_t* clean_mem_ = nullptr;
};

class CacheBdev : public Bdev {
  public:
    CacheBdev(const Superblock& sb, BdevModule* module);
    ~CacheBdev() override;

    Superblock sb;  // control thread's copy (mode and cut-off are kept in the atomics below)
    std::atomic<Mode> mode;
    BdevDesc* cache_desc = nullptr;
    BdevDesc* core_desc = nullptr;
    uint32_t bs = 512;
    uint32_t blocks_per_line = 8;
    uint64_t data_offset_blocks = 0;  // on the cache bdev
    uint64_t table_offset_blocks = 0;
    std::vector<std::unique_ptr<CacheSet>> sets;
    std::vector<Thread*> owner_threads;
    std::vector<std::unique_ptr<Owner>> owners;  // created on their thread at first use
    uint64_t damaged_entries = 0;                // found at load
    // Flush (cleaning) of every dirty line: in progress, and its last result.
    std::atomic<uint32_t> flush_owners_running{0};
    std::atomic<int> flush_status{0};
    std::atomic<bool> detaching{false};
    // Settings that change while I/O runs (bdev_ocf_set_seqcutoff, bdev_ocf_set_cleaning).
    std::atomic<SeqCutoff> seqcutoff{SeqCutoff::Never};
    std::atomic<uint32_t> seqcutoff_bytes{1024 * 1024};
    std::atomic<uint32_t> seqcutoff_promotion{1};
    std::atomic<CleaningPolicy> cleaning{CleaningPolicy::Alru};
    std::atomic<uint8_t> dirty_high_pct{kDefaultDirtyHighPct}, dirty_low_pct{kDefaultDirtyLowPct};
    std::atomic<uint32_t> stale_ms{kDefaultStaleMs};
    std::atomic<uint32_t> max_lines_per_sec{0};
    std::atomic<uint32_t> promotion_hits{1};
    void load_settings(const Superblock& s);  // from a superblock (0: defaults)
    void store_settings(Superblock* s) const;
    // Whether most lines hold data (the "full" sequential cut-off policy).
    bool nearly_full() const;
    // The cache device failed an I/O: from then on every I/O runs as in pt mode, clean copies
    // are never read from the cache again, and the dirty lines are written back as far as the
    // device still reads (cache_device_failed). Kept in the superblock (best effort).
    std::atomic<bool> failed{false};
    bool erase_on_destruct = false;  // bdev_ocf_delete: the superblock goes too
    // What the descriptors' event callbacks look at (cache_module.cpp).
    struct SlotDeleter {
        void operator()(CacheBdev** p) const { delete p; }
    };
    std::unique_ptr<CacheBdev*, SlotDeleter> event_slot;

    Thread* owner_thread_of(uint32_t set) const {
        return owner_threads[set % owner_threads.size()];
    }
    Owner* owner_here(uint32_t owner_index);
    uint64_t cache_block_of(const CacheSet& s, uint32_t line, uint32_t block) const {
        return data_offset_blocks + (s.first_line() + line) * blocks_per_line + block;
    }

    bool io_type_supported(IoType t) const override;
    std::unique_ptr<IoChannel> create_channel() override;
    void submit_request(IoChannel* ch, BdevIo* io) override;
    void destruct(std::function<void()> done) override;
    void dump_info_json(nlohmann::json& out) const override;
    void write_config_json(nlohmann::json& out) const override;
};

// Per submitting thread: channels for Flush and Reset, which do not go through the owners, and
// the sequential streams seen from this thread (the cut-off decides here, before the I/O is
// handed to the owner of its line: a stream's lines belong to many owners).
class CacheChannel : public IoChannel {
  public:
    explicit CacheChannel(CacheBdev* c);
    ~CacheChannel() override;
    IoChannel* cache_ch;
    IoChannel* core_ch;
    struct Stream {
        uint64_t next = UINT64_MAX;  // the block a continuation starts at
        uint64_t bytes = 0;
        uint32_t requests = 0;
    };
    static constexpr int kStreams = 8;
    Stream streams[kStreams];
    uint32_t next_victim = 0;
    // Records io in its stream; true when it must bypass the cache.
    bool cut_off(const CacheBdev* c, const BdevIo* io);
};

// cache_io.cpp
void start_op(Op* op);  // on the owner: lock, then run
// Any thread: hands the I/O to its owner; bypass: as in pt mode (sequential cut-off).
void run_user_io(CacheBdev* c, BdevIo* io, bool bypass);
// Persists op's line entry (its current state); continue_op(op) runs when it is on disk.
void persist(Op* op);
void continue_op(Op* op);
void submit_sub(SubIo* s);
void finish_op(Op* op);  // unlocks, completes the user I/O on its thread, frees the op

// Control thread (cache_module.cpp): the cache vbdev named `name`, or null; the superblock
// written durably to the copy its seq selects, done(0 or -EIO).
CacheBdev* find_cache(const std::string& name);
void write_superblock(BdevDesc* cache_desc, const Superblock& sb, std::function<void(int)> done);

// Any owner thread, on a cache-device I/O error: the first call switches the cache to failed
// (loudly) and starts writing the dirty lines back.
void cache_device_failed(CacheBdev* c);
// Control thread: writes the superblock with the cache's current settings (cache_manage.cpp).
void cache_save_settings(CacheBdev* c, std::function<void(int, std::string)> done);
// The step a cleaning operation fails at when the cache device does not read (cache_io.cpp).
inline constexpr uint8_t kCleanStepRead = 100;

// cache_clean.cpp
// On every owner: writes every dirty line back to the core; done(0 or -EIO) on the control
// thread.
void flush_all_lines(CacheBdev* c, std::function<void(int)> done);
void clean_line_done(Op* op);  // from cache_io.cpp's state machine
// On the owner thread: the background cleaner's periodic poller.
void start_background_cleaner(Owner* o);

}  // namespace nocstor::cache
