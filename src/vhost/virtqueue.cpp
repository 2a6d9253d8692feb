#include "vhost/virtqueue.h"

#include <algorithm>
#include <atomic>

#include <fmt/format.h>

namespace nocstor::vhost {

namespace {

template <typename T>
T load_acquire(const T* p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <typename T>
void store_release(T* p, T v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

uint16_t* used_event_of(VringAvail* a, uint16_t size) {
    return &a->ring[size];
}
uint16_t* avail_event_of(VringUsed* u, uint16_t size) {
    return reinterpret_cast<uint16_t*>(&u->ring[size]);
}

// virtio's vring_need_event: whether moving the index from old to new crossed event.
bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
    return uint16_t(new_idx - event - 1) < uint16_t(new_idx - old_idx);
}

}  // namespace

bool SplitVirtqueue::attach(const GuestMemory& mem, const VringLayout& l, InflightQueue* inflight,
                            std::string* err) {
    if (l.size == 0 || l.size > kMaxQueueSize || (l.size & (l.size - 1)) != 0) {
        *err = fmt::format("queue size {} is not a power of two up to {}", l.size, kMaxQueueSize);
        return false;
    }
    size_ = l.size;
    desc_ = static_cast<VringDesc*>(mem.uva_to_host(l.desc_uva, sizeof(VringDesc) * size_));
    avail_ = static_cast<VringAvail*>(mem.uva_to_host(l.avail_uva, 4 + 2 * size_ + 2));
    used_ = static_cast<VringUsed*>(mem.uva_to_host(l.used_uva, 4 + 8 * size_ + 2));
    if (!desc_ || !avail_ || !used_) {
        *err = "a ring address is outside the memory table";
        return false;
    }
    if ((reinterpret_cast<uintptr_t>(desc_) & 15) || (reinterpret_cast<uintptr_t>(avail_) & 1) ||
        (reinterpret_cast<uintptr_t>(used_) & 3)) {
        *err = "a ring is misaligned";
        return false;
    }
    event_idx_ = l.event_idx;
    last_avail_ = shadow_avail_ = l.last_avail_idx;
    used_idx_ = load_acquire(&used_->idx);
    signalled_valid_ = false;
    inflight_ = nullptr;
    if (inflight && inflight->desc_num >= size_) inflight_ = inflight;
    return true;
}

std::vector<uint16_t> SplitVirtqueue::recover_inflight() {
    std::vector<uint16_t> heads;
    if (!inflight_) return heads;
    if (inflight_->version == 0) {  // a new region: nothing to recover
        inflight_->version = kInflightVersion;
        inflight_->used_idx = used_idx_;
        inflight_counter_ = 0;
        return heads;
    }
    // The previous server may have died between publishing a used entry and clearing the
    // request's inflight flag: the region's used index then lags behind the ring's.
    if (inflight_->used_idx != used_idx_) {
        if (inflight_->last_batch_head < size_)
            inflight_->desc[inflight_->last_batch_head].inflight = 0;
        std::atomic_thread_fence(std::memory_order_release);
        inflight_->used_idx = used_idx_;
    }
    std::vector<std::pair<uint64_t, uint16_t>> found;
    for (uint16_t i = 0; i < size_; ++i)
        if (inflight_->desc[i].inflight == 1) found.emplace_back(inflight_->desc[i].counter, i);
    std::sort(found.begin(), found.end());
    for (const auto& [counter, head] : found) heads.push_back(head);
    inflight_counter_ = found.empty() ? 0 : found.back().first + 1;
    last_avail_ = shadow_avail_ = uint16_t(used_idx_ + found.size());
    return heads;
}

uint16_t SplitVirtqueue::avail_idx_acquire() const {
    return load_acquire(&avail_->idx);
}

bool SplitVirtqueue::empty() const {
    return shadow_avail_ == last_avail_ && avail_idx_acquire() == last_avail_;
}

int SplitVirtqueue::pop() {
    if (shadow_avail_ == last_avail_) {
        shadow_avail_ = avail_idx_acquire();
        if (shadow_avail_ == last_avail_) return -1;
        // A driver can never have more than size_ entries outstanding.
        if (uint16_t(shadow_avail_ - last_avail_) > size_) return -2;
    }
    const uint16_t head = avail_->ring[last_avail_ & (size_ - 1)];
    if (head >= size_) return -2;
    ++last_avail_;
    if (inflight_) {
        inflight_->desc[head].counter = inflight_counter_++;
        inflight_->desc[head].inflight = 1;
    }
    return head;
}

bool SplitVirtqueue::read_chain(const GuestMemory& mem, uint16_t head, iovec* iov, int max,
                                DescChain* out) const {
    *out = DescChain{};
    const VringDesc* table = desc_;
    uint32_t table_size = size_;
    uint32_t idx = head;
    bool indirect_seen = false;
    int n = 0;
    // Every descriptor of a chain is visited once at most: a longer walk is a loop.
    for (uint32_t steps = 0;; ++steps) {
        if (idx >= table_size || steps >= table_size) return false;
        const VringDesc d = table[idx];  // one copy: the guest may change it under us
        if (d.flags & kDescIndirect) {
            // An indirect table replaces the chain: only as its single descriptor, never nested.
            if (indirect_seen || (d.flags & kDescNext) || table != desc_ || d.len == 0 ||
                d.len % sizeof(VringDesc) != 0 || d.len / sizeof(VringDesc) > kMaxQueueSize)
                return false;
            table = static_cast<const VringDesc*>(mem.gpa_to_host(d.addr, d.len));
            if (!table || (reinterpret_cast<uintptr_t>(table) & 15)) return false;
            table_size = d.len / sizeof(VringDesc);
            indirect_seen = true;
            idx = 0;
            steps = uint32_t(-1);
            continue;
        }
        const bool writable = d.flags & kDescWrite;
        if (!writable && out->n_writable > 0) return false;
        if (d.len > 0) {
            const int before = n;
            if (!mem.gpa_to_iov(d.addr, d.len, iov, &n, max)) return false;
            if (writable) {
                out->n_writable += n - before;
                out->writable_bytes += d.len;
            } else {
                out->n_readable += n - before;
                out->readable_bytes += d.len;
            }
        }
        if (!(d.flags & kDescNext)) return true;
        idx = d.next;
    }
}

void SplitVirtqueue::push_used(uint16_t head, uint32_t len) {
    if (inflight_) inflight_->last_batch_head = head;
    VringUsedElem& e = used_->ring[used_idx_ & (size_ - 1)];
    e.id = head;
    e.len = len;
    ++used_idx_;
    store_release(&used_->idx, used_idx_);
    if (inflight_) {
        std::atomic_thread_fence(std::memory_order_release);
        inflight_->desc[head].inflight = 0;
        std::atomic_thread_fence(std::memory_order_release);
        inflight_->used_idx = used_idx_;
    }
}

bool SplitVirtqueue::should_signal() {
    // The driver's flags/used_event are read after our used->idx store became visible.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool signal;
    if (event_idx_) {
        const uint16_t event = load_acquire(used_event_of(avail_, size_));
        signal = !signalled_valid_ || need_event(event, used_idx_, signalled_used_);
    } else {
        signal = !(load_acquire(&avail_->flags) & kAvailNoInterrupt);
    }
    signalled_used_ = used_idx_;
    signalled_valid_ = true;
    return signal;
}

void SplitVirtqueue::disable_notify() {
    if (!event_idx_) store_release(&used_->flags, uint16_t(kUsedNoNotify));
    // With EVENT_IDX the driver kicks only when it passes avail_event, which stays where the
    // last enable_notify put it while the queue is being polled.
}

void SplitVirtqueue::enable_notify() {
    if (event_idx_)
        store_release(avail_event_of(used_, size_), last_avail_);
    else
        store_release(&used_->flags, uint16_t(0));
    // The caller checks the ring again after this: a request published before the driver saw
    // the new value would otherwise wait for the next kick.
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace nocstor::vhost
