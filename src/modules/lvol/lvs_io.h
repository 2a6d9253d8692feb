// Control-path I/O of the lvstore on its base bdev (metadata reads and writes, cluster fills):
// asynchronous, on the calling reactor thread, with page-aligned buffers.
#pragma once

#include "bdev/bdev.h"

#include <cstdint>
#include <functional>
#include <memory>

namespace nocstor::lvol {

// A zeroed, 4 KiB-aligned buffer (O_DIRECT bases need aligned memory).
class AlignedBuffer {
  public:
    AlignedBuffer() = default;
    // Zeroed, unless `zero` is false (a buffer a read fills: large ones are not worth clearing).
    explicit AlignedBuffer(size_t n, bool zero = true);
    ~AlignedBuffer();
    AlignedBuffer(AlignedBuffer&& o) noexcept;
    AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

  private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

using IoDone = std::function<void(bool ok)>;

// Joins asynchronous steps started one after another: each takes a callback from add(); done
// runs once, with whether all succeeded, after close() and the last step's callback.
class IoJoin {
  public:
    explicit IoJoin(IoDone done) : s_(std::make_shared<State>()) { s_->done = std::move(done); }
    IoDone add() {
        ++s_->pending;
        return [s = s_](bool ok) { finish(*s, ok); };
    }
    void close() { finish(*s_, true); }

  private:
    struct State {
        uint32_t pending = 1;  // close() holds one
        bool ok = true;
        IoDone done;
    };
    static void finish(State& s, bool ok) {
        s.ok = s.ok && ok;
        if (--s.pending == 0) s.done(s.ok);
    }
    std::shared_ptr<State> s_;
};

// Byte offsets and lengths are multiples of the base's block size. The buffer must live until
// done runs. fua: durable when done runs.
void md_read(BdevDesc* desc, uint64_t off, uint8_t* buf, uint64_t len, IoDone done);
void md_write(BdevDesc* desc, uint64_t off, const uint8_t* buf, uint64_t len, bool fua,
              IoDone done);
// The same with the data in `iovcnt` segments (`len` bytes in all); they must live until done.
void md_writev(BdevDesc* desc, uint64_t off, const iovec* iov, int iovcnt, uint64_t len,
               IoDone done);
void md_flush(BdevDesc* desc, IoDone done);
// Zeroes a byte range: write-zeroes where the base supports it, else writes of a zero buffer.
void md_zero(BdevDesc* desc, uint64_t off, uint64_t len, IoDone done);
void md_unmap(BdevDesc* desc, uint64_t off, uint64_t len, IoDone done);

}  // namespace nocstor::lvol
