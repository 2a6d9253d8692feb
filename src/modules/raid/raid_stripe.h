// Operations that run on a lock unit's owner thread (see raid_bdev.h): user writes and degraded
// reads of raid5/6, user writes of raid1, and the background processes (resync, rebuild, scrub)
// of every redundant level. Internal to the raid module.
#pragma once

#include "modules/raid/raid_bdev.h"
#include "modules/raid/raid_stripe_kind.h"
#include "runtime/runtime.h"

namespace nocstor::raid {

// A background operation's outcome, delivered on the thread that submitted it.
using ProcessDone = void (*)(void* arg, IoStatus status, uint64_t mismatches);

// One background operation: rows [row0, row1) of lock unit `unit`. target: the member being
// rebuilt (Rebuild); repair: Scrub rewrites what does not match. Owned by the caller until done
// runs.
struct ProcessRequest {
    OpKind kind = OpKind::Resync;
    uint64_t unit = 0, row0 = 0, row1 = 0;
    uint32_t target = kMaxMembers;
    bool repair = false;
    ProcessDone done = nullptr;
    void* arg = nullptr;
};

// Runs it on the unit's owner thread.
void submit_process(RaidBdev* r, const ProcessRequest* req);

namespace stripe_detail {

constexpr uint64_t kChunkBytes = 128 * 1024;  // fits a large pool buffer
constexpr uint32_t kOpsPerOwner = 128;
constexpr uint32_t kBuckets = 256;

enum class Mode : uint8_t { Rmw, Rcw, Reconstruct };
// Healing: a raid6 write first puts the rows of the member being rebuilt on it (see heal).
enum class Phase : uint8_t { Reading, Healing, Writing };

}  // namespace stripe_detail

struct StripeOp {
    using Mode = stripe_detail::Mode;
    using Phase = stripe_detail::Phase;
    RaidBdev* raid = nullptr;
    StripeOwner* owner = nullptr;
    OpKind kind = OpKind::Write;
    BdevIo* io = nullptr;  // user operations
    Thread* origin = nullptr;
    uint64_t unit = 0;                          // stripe, or raid1 lock unit
    uint64_t w0[kMaxMembers], w1[kMaxMembers];  // user ops: rows of each data strip covered
    uint64_t r0 = 0, r1 = 0;                    // rows the operation covers
    uint64_t c0 = 0, c1 = 0;                    // the chunk in progress
    Mode mode = Mode::Rmw;
    Phase phase = Phase::Reading;
    bool rd[kMaxMembers];        // readable for this unit (snapshot per chunk)
    bool wr[kMaxMembers];        // writable
    Buffer buf[kMaxMembers];     // per member: its rows [c0, c1)
    Buffer newbuf[kMaxMembers];  // per data index: new data gathered from scattered iovecs
    uint8_t* newp[kMaxMembers];  // per data index: new data of its rows written in the chunk
    uint32_t pending = 0;
    IoStatus status = IoStatus::Success;
    bool replan = false;
    uint32_t attempts = 0;
    // raid6, the one member that cannot be read in this unit but is there (being rebuilt):
    // suspect: its rows on disk are read and checked against P and Q (the unit's parity is not
    // trusted after a crash); heal: a user write puts the member's rows on it before it writes
    // the others, so that a crash in the middle never leaves two members of a row wrong.
    uint32_t suspect = kMaxMembers;
    uint32_t heal = kMaxMembers;
    // Background operations.
    uint32_t target = kMaxMembers;
    bool repair = false;
    uint64_t mismatches = 0;
    ProcessDone done = nullptr;
    void* done_arg = nullptr;
    // Metadata: the write-intent region entered (kNoRegion: none), the members a user write
    // left out (their failure must be on disk before it completes), why it is parked.
    static constexpr uint64_t kNoRegion = UINT64_MAX;
    uint64_t region = kNoRegion;
    uint32_t skipped = 0;
    bool parked_for_bitmap = false;
    StripeOp* next_parked = nullptr;
    // Lock table and free list.
    StripeOp* next_in_bucket = nullptr;
    StripeOp* waiters = nullptr;
    StripeOp* next_waiter = nullptr;
    StripeOp* next_free = nullptr;
};

class StripeOwner {
  public:
    explicit StripeOwner(RaidBdev* r)
        : raid(r),
          // The raid's own cluster's partition: a StripeOwner lives on one of its threads.
          buffers(Runtime::instance()->noc().buffers(Thread::current()->cluster_id())),
          small_size(buffers.pool().buffer_size(BufClass::Small)),
          ops_(std::make_unique<StripeOp[]>(stripe_detail::kOpsPerOwner)) {
        mc.open(r);
        for (uint32_t i = 0; i < stripe_detail::kOpsPerOwner; ++i) {
            ops_[i].next_free = free_;
            free_ = &ops_[i];
        }
    }
    ~StripeOwner() { mc.close_all(); }

    StripeOp* get_op() {
        StripeOp* op = free_;
        if (op) free_ = op->next_free;
        return op;
    }
    void put_op(StripeOp* op) {
        op->next_free = free_;
        free_ = op;
    }

    // True if op holds its unit now; false if it waits behind the current holder.
    bool lock(StripeOp* op) {
        StripeOp** bucket = &buckets_[op->unit % stripe_detail::kBuckets];
        for (StripeOp* h = *bucket; h; h = h->next_in_bucket) {
            if (h->unit != op->unit) continue;
            op->next_waiter = nullptr;
            StripeOp** tail = &h->waiters;
            while (*tail) tail = &(*tail)->next_waiter;
            *tail = op;
            return false;
        }
        op->waiters = nullptr;
        op->next_in_bucket = *bucket;
        *bucket = op;
        return true;
    }
    // Releases op's unit; returns the next holder (to start), if any.
    StripeOp* unlock(StripeOp* op) {
        StripeOp** p = &buckets_[op->unit % stripe_detail::kBuckets];
        while (*p != op) p = &(*p)->next_in_bucket;
        *p = op->next_in_bucket;
        StripeOp* next = op->waiters;
        if (!next) return nullptr;
        next->waiters = next->next_waiter;
        next->next_in_bucket = buckets_[next->unit % stripe_detail::kBuckets];
        buckets_[next->unit % stripe_detail::kBuckets] = next;
        return next;
    }

    // Operations waiting for metadata (a bitmap bit, a failure on disk); they keep their lock.
    void park(StripeOp* op) {
        op->next_parked = parked_;
        parked_ = op;
    }
    StripeOp* take_parked() {
        StripeOp* p = parked_;
        parked_ = nullptr;
        return p;
    }

    RaidBdev* raid;
    MemberChannels mc;
    BufferCache buffers;
    uint32_t small_size;
    MemberIoPool mios{512};

  private:
    std::unique_ptr<StripeOp[]> ops_;
    StripeOp* free_ = nullptr;
    StripeOp* parked_ = nullptr;
    StripeOp* buckets_[stripe_detail::kBuckets] = {};
};

}  // namespace nocstor::raid
