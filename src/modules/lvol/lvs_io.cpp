#include "modules/lvol/lvs_io.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nocstor::lvol {

AlignedBuffer::AlignedBuffer(size_t n, bool zero) : size_(n) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, n ? n : 4096) != 0) std::abort();
    data_ = static_cast<uint8_t*>(p);
    if (zero) std::memset(data_, 0, n);
}

AlignedBuffer::~AlignedBuffer() {
    free(data_);
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
        free(data_);
        data_ = o.data_;
        size_ = o.size_;
        o.data_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

namespace {

constexpr uint64_t kZeroChunk = 1ull << 20;

const uint8_t* zero_chunk() {
    static AlignedBuffer zeros(kZeroChunk);  // control path, first use
    return zeros.data();
}

// One control-path I/O; retried when the thread's bdev_io pool is empty.
struct Req {
    BdevDesc* desc;
    IoChannel* ch;
    IoType type;
    uint64_t off, len;
    iovec iov;
    bool fua;
    IoDone done;
    BdevIoWaitEntry wait;
    const iovec* iovs = nullptr;  // several segments (md_writev); else iov
    int iovcnt = 1;
};

void req_done(BdevIo* io, bool ok, void* arg) {
    std::unique_ptr<Req> r(static_cast<Req*>(arg));
    bdev_free_io(io);
    bdev_put_io_channel(r->ch);
    auto done = std::move(r->done);
    done(ok);
}

void req_submit(void* arg) {
    auto* r = static_cast<Req*>(arg);
    const uint32_t bs = r->desc->bdev()->block_size;
    const uint64_t ob = r->off / bs, nb = r->len / bs;
    int rc;
    switch (r->type) {
        case IoType::Read:
            rc = bdev_readv(r->desc, r->ch, &r->iov, 1, ob, nb, req_done, r);
            break;
        case IoType::Write:
            rc = r->iovs ? bdev_writev(r->desc, r->ch, const_cast<iovec*>(r->iovs), r->iovcnt, ob,
                                       nb, req_done, r, r->fua)
                         : bdev_writev(r->desc, r->ch, &r->iov, 1, ob, nb, req_done, r, r->fua);
            break;
        case IoType::Flush:
            rc = bdev_flush(r->desc, r->ch, 0, r->desc->bdev()->num_blocks, req_done, r);
            break;
        case IoType::WriteZeroes:
            rc = bdev_write_zeroes(r->desc, r->ch, ob, nb, req_done, r);
            break;
        case IoType::Unmap:
            rc = bdev_unmap(r->desc, r->ch, ob, nb, req_done, r);
            break;
        default:
            rc = -EINVAL;
    }
    if (rc == -ENOMEM) {
        r->wait.cb = req_submit;
        r->wait.arg = r;
        bdev_queue_io_wait(r->ch, &r->wait);
        return;
    }
    if (rc) {
        std::unique_ptr<Req> owned(r);
        bdev_put_io_channel(r->ch);
        auto done = std::move(r->done);
        done(false);
    }
}

void start(BdevDesc* desc, IoType type, uint64_t off, uint8_t* buf, uint64_t len, bool fua,
           IoDone done, const iovec* iovs = nullptr, int iovcnt = 1) {
    const uint32_t bs = desc->bdev()->block_size;
    if (off % bs || len % bs) return done(false);
    IoChannel* ch = bdev_get_io_channel(desc);
    if (!ch) return done(false);
    auto* r = new Req{desc, ch, type, off, len, {buf, len}, fua, std::move(done), {}, iovs, iovcnt};
    req_submit(r);
}

}  // namespace

void md_read(BdevDesc* desc, uint64_t off, uint8_t* buf, uint64_t len, IoDone done) {
    start(desc, IoType::Read, off, buf, len, false, std::move(done));
}

void md_write(BdevDesc* desc, uint64_t off, const uint8_t* buf, uint64_t len, bool fua,
              IoDone done) {
    start(desc, IoType::Write, off, const_cast<uint8_t*>(buf), len, fua, std::move(done));
}

void md_writev(BdevDesc* desc, uint64_t off, const iovec* iov, int iovcnt, uint64_t len,
               IoDone done) {
    start(desc, IoType::Write, off, nullptr, len, false, std::move(done), iov, iovcnt);
}

void md_flush(BdevDesc* desc, IoDone done) {
    start(desc, IoType::Flush, 0, nullptr, 0, false, std::move(done));
}

void md_unmap(BdevDesc* desc, uint64_t off, uint64_t len, IoDone done) {
    if (!desc->bdev()->io_type_supported(IoType::Unmap)) return done(true);
    start(desc, IoType::Unmap, off, nullptr, len, false, std::move(done));
}

void md_zero(BdevDesc* desc, uint64_t off, uint64_t len, IoDone done) {
    if (len == 0) return done(true);
    if (desc->bdev()->io_type_supported(IoType::WriteZeroes))
        return start(desc, IoType::WriteZeroes, off, nullptr, len, false, std::move(done));
    IoJoin join(std::move(done));
    for (uint64_t at = off; at < off + len; at += kZeroChunk) {
        const uint64_t n = std::min(kZeroChunk, off + len - at);
        start(desc, IoType::Write, at, const_cast<uint8_t*>(zero_chunk()), n, false, join.add());
    }
    join.close();
}

}  // namespace nocstor::lvol
