// A split virtqueue as the device side sees it (virtio 1.1, 2.6): the descriptor table, the
// available and used rings in guest memory, the device's own indices, notification suppression
// (used->flags or EVENT_IDX's avail_event) and, when the front-end gave one, the inflight region
// that lets a restarted server find the requests it had popped but not completed.
//
// Touched only by the data thread that serves the queue. Everything read from guest memory is
// untrusted: indices are checked against the queue size, chains are bounded, and addresses go
// through GuestMemory, so a buggy or malicious guest gets a broken queue, not a broken daemon.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vhost/guest_memory.h"

namespace nocstor::vhost {

struct VringLayout {
    uint16_t size = 0;  // power of two, <= kMaxQueueSize
    uint64_t desc_uva = 0, avail_uva = 0, used_uva = 0;
    uint16_t last_avail_idx = 0;
    bool event_idx = false;
};

// A request's descriptor chain as iovecs over guest memory: the device-readable ones first,
// then the device-writable ones.
struct DescChain {
    int n_readable = 0;
    int n_writable = 0;
    uint64_t readable_bytes = 0;
    uint64_t writable_bytes = 0;
};

class SplitVirtqueue {
  public:
    // Translates the rings through `mem` and reads the used index. With an inflight region the
    // queue takes over its record (see recover_inflight). false and *err when a ring lies outside
    // the memory table.
    bool attach(const GuestMemory& mem, const VringLayout& layout, InflightQueue* inflight,
                std::string* err);

    uint16_t size() const { return size_; }
    uint16_t last_avail_idx() const { return last_avail_; }
    uint16_t used_idx() const { return used_idx_; }
    bool has_inflight_region() const { return inflight_ != nullptr; }

    // Heads the previous server process had popped but not completed, oldest first; sets the
    // available index after them (libvhost-user's rule: last_avail = used + in use).
    std::vector<uint16_t> recover_inflight();

    // The next available head, or -1 when the ring is empty. -2: the driver published a head
    // outside the table (the queue is broken).
    int pop();
    bool empty() const;
    // The chain starting at `head` as at most `max` iovecs. false on a malformed chain (loop,
    // index out of range, address outside the table, readable after writable, bad indirect).
    bool read_chain(const GuestMemory& mem, uint16_t head, iovec* iov, int max,
                    DescChain* out) const;
    // Returns `head` to the driver with `len` bytes written.
    void push_used(uint16_t head, uint32_t len);
    // After push_used: whether the driver wants an interrupt for what was pushed since the last
    // interrupt (EVENT_IDX's used_event, else avail->flags). Resets the "since" mark.
    bool should_signal();

    // Kick suppression: disabled while the data thread polls, enabled before it sleeps.
    void disable_notify();
    void enable_notify();

  private:
    uint16_t avail_idx_acquire() const;

    uint16_t size_ = 0;
    VringDesc* desc_ = nullptr;
    VringAvail* avail_ = nullptr;
    VringUsed* used_ = nullptr;
    uint16_t last_avail_ = 0;
    uint16_t shadow_avail_ = 0;
    uint16_t used_idx_ = 0;
    uint16_t signalled_used_ = 0;
    bool signalled_valid_ = false;
    bool event_idx_ = false;
    InflightQueue* inflight_ = nullptr;
    uint64_t inflight_counter_ = 0;
};

}  // namespace nocstor::vhost
