// The NoC ("network-on-chip"): the only way clusters talk. One shared memory region holds a
// header, one SPSC ring of 64-byte NVMe-SQE-shaped descriptors per ordered pair of clusters, and
// a buffer arena (with a BufferPool) that descriptors reference by offset, so data crosses
// clusters without a copy. The arena is cut into one buffer pool per cluster (a partition): a
// cluster takes buffers only from its own, so a cluster that stops (or, later, a cluster process
// that dies) can never hold buffers another one is waiting for. Each cluster also has an eventfd
// doorbell that a sender rings only when the receiver has announced it is going to sleep, so a
// loaded system makes no syscalls.
//
// Sleep protocol (no lost wake-up): the receiver stores sleeping=1, issues a seq_cst fence, and
// re-checks its inbound rings; the sender publishes the ring tail, issues a seq_cst fence, and
// reads sleeping. With both fences, either the receiver sees the new descriptor (and does not
// sleep) or the sender sees sleeping=1 (and writes the eventfd, which is level-triggered).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/buffer_pool.h"
#include "runtime/shm_region.h"
#include "runtime/spsc_ring.h"

namespace nocstor {

// Opcodes follow NVMe I/O commands where one exists.
enum NocOpcode : uint8_t {
    kNocOpFlush = 0x00,
    kNocOpWrite = 0x01,
    kNocOpRead = 0x02,
    kNocOpWriteZeroes = 0x08,
    kNocOpDsm = 0x09,
    kNocOpMessage = 0xc0,  // a runtime message (user_ctx carries its meaning)
};

enum NocFlags : uint8_t {
    kNocFlagCompletion = 1 << 0,  // this descriptor completes the command (cid, user_ctx) it echoes
    // iov_cnt > 2: buf_off[0]/buf_len[0] point to an array of iov_cnt NocSge in the arena.
    kNocFlagSglIndirect = 1 << 1,
};

// One segment of an indirect scatter-gather list, stored in the arena.
struct NocSge {
    uint64_t offset;
    uint32_t length;
    uint32_t rsvd;
};

// Exactly one 64-byte ring slot, laid out like an NVMe SQE (CDW0, NSID, ..., SLBA, NLB).
struct alignas(64) NocDescriptor {
    uint8_t opcode;        // NocOpcode
    uint8_t flags;         // NocFlags
    uint16_t cid;          // command id / tag, echoed by the completion
    uint16_t src_cluster;  // stamped by NocEndpoint::send
    uint8_t iov_cnt;       // buffer segments used (0..2 inline, more with kNocFlagSglIndirect)
    uint8_t rsvd0;
    uint32_t target_id;   // nsid-like: bdev / namespace / channel the command is for
    uint32_t nlb;         // number of logical blocks (1-based, unlike NVMe's 0-based field)
    uint64_t user_ctx;    // opaque to the NoC, echoed by the completion
    uint64_t slba;        // starting LBA
    uint64_t buf_off[2];  // arena offsets of the data segments
    uint32_t buf_len[2];
    uint16_t status;  // completion status, 0 = success (NVMe SCT/SC packing is up to callers)
    uint16_t rsvd1;
    uint32_t result;  // completion dword 0
};
static_assert(sizeof(NocDescriptor) == 64);
static_assert(std::is_trivially_copyable_v<NocDescriptor>);

struct NocEndpointStats {
    uint64_t sent = 0;
    uint64_t received = 0;
    uint64_t ring_full = 0;       // send/send_batch calls that could not place everything
    uint64_t doorbells_rung = 0;  // eventfd writes to sleeping peers
    uint64_t sleeps = 0;          // prepare_to_sleep() calls that allowed sleeping
};

struct NocConfig {
    int clusters = 2;
    uint32_t ring_slots = 512;  // per ordered pair; power of two
    BufferPoolConfig buffers;   // each cluster's partition, unless cluster_buffers says otherwise
    std::vector<BufferPoolConfig> cluster_buffers;  // one per cluster when not empty
    size_t extra_arena_bytes = 0;  // arena space after the buffer pool, for other shared data
    bool allow_hugepages = true;
    std::string name = "nocstor-noc";
};

// Shared per-cluster state, in the region.
struct NocClusterShared {
    alignas(kCacheLine) std::atomic<uint32_t> sleeping{0};  // set by the owner, cleared by either
    alignas(kCacheLine) std::atomic<uint64_t> stats[5]{};   // NocEndpointStats, owner writes only
    uint64_t pool_off = 0;  // the cluster's buffer pool partition (arena offset), set at creation
};

class NocFabric;

// One cluster's port on the NoC. Used by one thread at a time (the cluster's NoC poller).
class NocEndpoint {
  public:
    int id() const { return id_; }
    int clusters() const { return n_; }

    // False when the ring to dst is full: the caller queues and retries; this never blocks.
    bool send(int dst, const NocDescriptor& d) { return send_batch(dst, &d, 1) == 1; }
    // Sends the first k of n descriptors (all or a prefix) and returns k.
    size_t send_batch(int dst, const NocDescriptor* d, size_t n);

    // Drains up to max descriptors from all inbound rings, round-robin over the sources, calling
    // h(int src_cluster, const NocDescriptor&) in place. h may send (also back to src) but must not
    // poll this endpoint again. Returns the number handled.
    template <class Handler>
    size_t poll(Handler&& h, size_t max = 64);
    // Whether any inbound ring is non-empty (reads the senders' indices).
    bool has_pending() const;
    // Drops what waits in every inbound ring (a restarted cluster process must not serve its
    // dead predecessor's requests: their senders have failed them). Returns how many.
    size_t discard_inbound();

    // For the reactor's epoll: readable when a sender rang this cluster's doorbell.
    int doorbell_fd() const { return fds_[id_]; }
    // Call before blocking on doorbell_fd(). False: descriptors arrived, poll instead of sleeping.
    // True: sleep; a sender that enqueues from now on rings the doorbell. Either way, call
    // finish_sleep() after waking (it clears the flag and drains the eventfd).
    bool prepare_to_sleep();
    void finish_sleep();

    NocEndpointStats stats() const;

    // The shared arena as this process maps it; descriptors carry offsets into it.
    // buffers(): this cluster's partition, the only pool it takes buffers from.
    std::byte* arena() const { return arena_; }
    size_t arena_size() const { return arena_size_; }
    std::byte* arena_ptr(uint64_t off) const { return arena_ + off; }
    uint64_t arena_offset(const void* p) const {
        return uint64_t(static_cast<const std::byte*>(p) - arena_);
    }
    BufferPool& buffers() const { return *pool_; }

  private:
    friend class NocFabric;
    enum Stat { kSent, kReceived, kRingFull, kDoorbells, kSleeps };
    void bump(Stat s, uint64_t n) {
        auto& a = self_->stats[s];
        a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void notify(int dst);

    int id_ = 0;
    int n_ = 0;
    std::vector<SpscRing<NocDescriptor>> out_;  // indexed by peer; [id_] unused
    std::vector<SpscRing<NocDescriptor>> in_;
    std::vector<int> sources_;              // every cluster but id_
    std::vector<NocClusterShared*> peers_;  // indexed by cluster
    std::vector<int> fds_;                  // doorbells, indexed by cluster
    NocClusterShared* self_ = nullptr;
    size_t rr_ = 0;
    std::byte* arena_ = nullptr;
    size_t arena_size_ = 0;
    BufferPool* pool_ = nullptr;
};

// What another process needs to attach to a fabric: the region's memfd and every cluster's
// doorbell eventfd (passed by SCM_RIGHTS, or inherited across exec).
struct NocFabricFds {
    int region = -1;
    std::vector<int> doorbells;  // by cluster
};

class NocFabric {
  public:
    static std::unique_ptr<NocFabric> create(const NocConfig& cfg, std::string* err);
    // Maps a fabric that another process created, from its fds (taken over: closed with the
    // fabric, or on failure). Nothing in the region is reformatted: rings, pools and statistics
    // go on where the other processes see them. Each process uses only its own clusters'
    // endpoints.
    static std::unique_ptr<NocFabric> attach(NocFabricFds fds, std::string* err);
    // This fabric's fds, to hand to another process (still owned by the fabric).
    NocFabricFds fds() const { return {region_.fd(), fds_}; }
    ~NocFabric();
    NocFabric(const NocFabric&) = delete;
    NocFabric& operator=(const NocFabric&) = delete;

    int clusters() const { return int(endpoints_.size()); }
    NocEndpoint& endpoint(int cluster) { return *endpoints_[cluster]; }
    // Any thread may read any cluster's statistics.
    NocEndpointStats stats(int cluster) const { return endpoints_[cluster]->stats(); }
    // A cluster's buffer pool partition. Any thread may return a buffer to any partition.
    BufferPool& buffers(int cluster) { return pools_[size_t(cluster)]; }
    std::byte* arena() const { return arena_; }
    size_t arena_size() const { return arena_size_; }
    // Start of the extra_arena_bytes (arena offset), free for the caller's shared structures.
    uint64_t extra_arena_offset() const { return extra_off_; }
    const ShmRegion& region() const { return region_; }

  private:
    NocFabric() = default;
    // Endpoints and pool views over a laid-out region (create and attach).
    void build_endpoints();

    ShmRegion region_;
    std::vector<int> fds_;
    std::vector<std::unique_ptr<NocEndpoint>> endpoints_;
    std::byte* arena_ = nullptr;
    size_t arena_size_ = 0;
    uint64_t extra_off_ = 0;
    std::vector<BufferPool> pools_;  // by cluster
};

template <class Handler>
size_t NocEndpoint::poll(Handler&& h, size_t max) {
    size_t nsrc = sources_.size();
    if (nsrc == 0 || max == 0) return 0;
    size_t done = 0;
    // First pass: a fair share per source. Second pass only if some source filled its share.
    size_t quota = std::max<size_t>(1, max / nsrc);
    bool more = false;
    for (int pass = 0; pass < 2 && done < max; ++pass) {
        for (size_t k = 0; k < nsrc && done < max; ++k) {
            int src = sources_[(rr_ + k) % nsrc];
            size_t want = std::min(quota, max - done);
            size_t got = in_[src].consume(want, [&](const NocDescriptor& d) { h(src, d); });
            done += got;
            more |= got == want;
        }
        if (!more) break;
        quota = max;
    }
    rr_ = (rr_ + 1) % nsrc;
    if (done) bump(kReceived, done);
    return done;
}

}  // namespace nocstor
