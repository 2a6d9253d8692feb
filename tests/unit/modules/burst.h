// Several I/Os in flight at once from the data thread, with -ENOMEM handled by waiting for a
// bdev_io (bdev_queue_io_wait), as a real user of the bdev layer does.
#pragma once

#include "mod_test_env.h"

#include <atomic>
#include <vector>

namespace nocstor::test {

class Burst {
  public:
    // `count` I/Os of `blocks` blocks each, I/O i at offset_blocks + i * blocks.
    Burst(BdevDesc* desc, IoChannel* ch, IoType type, int count, uint64_t blocks,
          uint64_t offset_blocks = 0)
        : desc_(desc),
          ch_(ch),
          type_(type),
          blocks_(blocks),
          offset_(offset_blocks),
          buf_(size_t(count) * blocks * desc->bdev()->block_size),
          slots_(size_t(count)) {
        for (int i = 0; i < count; ++i) {
            slots_[size_t(i)].b = this;
            slots_[size_t(i)].idx = i;
        }
        fill_pattern(buf_.p, buf_.size, 42);
    }
    // Data thread.
    void start() {
        for (auto& s : slots_) submit(s);
    }
    int done() const { return done_.load(); }
    int ok() const { return ok_.load(); }
    int enomem() const { return enomem_.load(); }
    int count() const { return int(slots_.size()); }
    bool all_done() const { return done() == count(); }
    std::vector<IoStatus> statuses() const {
        std::vector<IoStatus> v;
        for (auto& s : slots_) v.push_back(s.status);
        return v;
    }
    unsigned char* data() { return buf_.p; }

  private:
    struct Slot {
        Burst* b;
        int idx;
        BdevIoWaitEntry wait;
        iovec iov;
        IoStatus status = IoStatus::Pending;
    };
    void submit(Slot& s) {
        uint32_t bs = desc_->bdev()->block_size;
        s.iov = {buf_.p + size_t(s.idx) * blocks_ * bs, blocks_ * bs};
        uint64_t off = offset_ + uint64_t(s.idx) * blocks_;
        int rc = type_ == IoType::Read
                     ? bdev_readv(desc_, ch_, &s.iov, 1, off, blocks_, &Burst::cb, &s)
                     : bdev_writev(desc_, ch_, &s.iov, 1, off, blocks_, &Burst::cb, &s);
        if (rc == -ENOMEM) {
            ++enomem_;
            s.wait.cb = [](void* a) {
                auto* sl = static_cast<Slot*>(a);
                sl->b->submit(*sl);
            };
            s.wait.arg = &s;
            bdev_queue_io_wait(ch_, &s.wait);
        } else if (rc != 0) {
            s.status = IoStatus::Failed;
            ++done_;
        }
    }
    static void cb(BdevIo* io, bool ok, void* arg) {
        auto* s = static_cast<Slot*>(arg);
        s->status = io->status;
        bdev_free_io(io);
        if (ok) ++s->b->ok_;
        ++s->b->done_;
    }

    BdevDesc* desc_;
    IoChannel* ch_;
    IoType type_;
    uint64_t blocks_, offset_;
    AlignedBuf buf_;
    std::vector<Slot> slots_;
    std::atomic<int> done_{0}, ok_{0}, enomem_{0};
};

// Polls cond every millisecond up to timeout_ms.
template <typename F>
bool wait_until(F cond, int timeout_ms = 5000) {
    for (int i = 0; i < timeout_ms; ++i) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return cond();
}

}  // namespace nocstor::test
