#include "modules/raid/raid_sb_io.h"

#include "util/log.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace nocstor::raid {

namespace {

struct AlignedMem {
    explicit AlignedMem(size_t n) : size(n) {
        void* p = nullptr;
        if (posix_memalign(&p, 4096, n) != 0) std::abort();
        data = static_cast<uint8_t*>(p);
        std::memset(data, 0, n);
    }
    ~AlignedMem() { free(data); }
    AlignedMem(const AlignedMem&) = delete;
    AlignedMem& operator=(const AlignedMem&) = delete;
    uint8_t* data;
    size_t size;
};

uint64_t blocks_for(uint64_t bytes, uint32_t bs) {
    return (bytes + bs - 1) / bs;
}

// Several writes of the control path; done(mask of failed slots) after the last one.
struct WriteBatch {
    std::vector<std::unique_ptr<AlignedMem>> bufs;
    std::vector<IoChannel*> channels;
    std::vector<iovec> iovs;
    uint32_t pending = 0;
    uint32_t failed = 0;
    std::function<void(uint32_t)> done;
};

struct WriteArg {
    std::shared_ptr<WriteBatch> batch;
    uint32_t slot;
    IoChannel* ch;
};

void write_done(BdevIo* io, bool ok, void* arg) {
    std::unique_ptr<WriteArg> a(static_cast<WriteArg*>(arg));
    bdev_free_io(io);
    bdev_put_io_channel(a->ch);
    if (!ok) a->batch->failed |= 1u << a->slot;
    if (--a->batch->pending == 0) {
        auto done = std::move(a->batch->done);
        done(a->batch->failed);
    }
}

// Writes bufs[i] at byte offset `off` of each target; fua: durable when done runs.
void write_all(const std::vector<SbTarget>& targets, std::shared_ptr<WriteBatch> batch,
               uint64_t off, bool fua = true) {
    batch->pending = 1;
    batch->iovs.resize(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) {
        const SbTarget& t = targets[i];
        const uint32_t bs = t.desc->bdev()->block_size;
        batch->iovs[i] = {batch->bufs[i]->data, batch->bufs[i]->size};
        IoChannel* ch = bdev_get_io_channel(t.desc);
        ++batch->pending;
        auto* arg = new WriteArg{batch, t.slot, ch};
        int rc = ch ? bdev_writev(t.desc, ch, &batch->iovs[i], 1, off / bs,
                                  blocks_for(batch->bufs[i]->size, bs), write_done, arg, fua)
                    : -ENODEV;
        if (rc) {
            delete arg;
            if (ch) bdev_put_io_channel(ch);
            batch->failed |= 1u << t.slot;
            --batch->pending;
        }
    }
    if (--batch->pending == 0) {
        auto done = std::move(batch->done);
        done(batch->failed);
    }
}

}  // namespace

void sb_read(const std::string& name, std::function<void(SbReadResult)> done) {
    struct Read {
        BdevDesc* desc = nullptr;
        IoChannel* ch = nullptr;
        std::unique_ptr<AlignedMem> buf;
        iovec iov{};
        std::function<void(SbReadResult)> done;
    };
    auto* r = new Read();
    r->done = std::move(done);
    if (bdev_open(name, false, nullptr, &r->desc) != 0) {
        auto d = std::move(r->done);
        delete r;
        return d(SbReadResult{-ENODEV, false, false, {}});
    }
    const uint32_t bs = r->desc->bdev()->block_size;
    const uint64_t bytes = std::max<uint64_t>(2 * kSbBytes, bs);
    const uint64_t blocks = blocks_for(bytes, bs);
    if (r->desc->bdev()->num_blocks < blocks) {
        bdev_close(r->desc);
        auto d = std::move(r->done);
        delete r;
        return d(SbReadResult{});
    }
    r->buf = std::make_unique<AlignedMem>(blocks * bs);
    r->iov = {r->buf->data, blocks * bs};
    r->ch = bdev_get_io_channel(r->desc);
    auto cb = [](BdevIo* io, bool ok, void* arg) {
        std::unique_ptr<Read> r(static_cast<Read*>(arg));
        bdev_free_io(io);
        SbReadResult res;
        if (!ok) {
            res.rc = -EIO;
        } else {
            for (uint64_t off : kSbCopyOffset) {
                Superblock sb;
                std::string why;
                if (sb_decode(r->buf->data + off, &sb, &why)) {
                    if (!res.found || sb.seq > res.sb.seq) res.sb = std::move(sb);
                    res.found = true;
                } else if (sb_has_magic(r->buf->data + off)) {
                    res.damaged = true;
                }
            }
            if (res.found) res.damaged = false;
        }
        bdev_put_io_channel(r->ch);
        bdev_close(r->desc);
        auto d = std::move(r->done);
        d(std::move(res));
    };
    if (!r->ch || bdev_readv(r->desc, r->ch, &r->iov, 1, 0, blocks, cb, r) != 0) {
        if (r->ch) bdev_put_io_channel(r->ch);
        bdev_close(r->desc);
        auto d = std::move(r->done);
        delete r;
        d(SbReadResult{-EIO, false, false, {}});
    }
}

void sb_write(const std::vector<SbTarget>& targets, const Superblock& sb,
              std::function<void(uint32_t)> done) {
    auto batch = std::make_shared<WriteBatch>();
    batch->done = std::move(done);
    // Members have blocks of at most 4 KiB (raid_create refuses larger ones with a superblock):
    // each copy is whole blocks of its own.
    for (const SbTarget& t : targets) {
        auto mem = std::make_unique<AlignedMem>(kSbBytes);
        Superblock mine = sb;
        mine.slot = t.slot;
        sb_encode(mine, mem->data);
        batch->bufs.push_back(std::move(mem));
    }
    write_all(targets, batch, kSbCopyOffset[sb.seq % 2]);
}

void sb_clear(const std::vector<SbTarget>& targets, std::function<void(uint32_t)> done) {
    auto batch = std::make_shared<WriteBatch>();
    batch->done = std::move(done);
    for (size_t i = 0; i < targets.size(); ++i)
        batch->bufs.push_back(std::make_unique<AlignedMem>(kMetadataBytes));
    write_all(targets, batch, 0);
}

void meta_flush(const std::vector<SbTarget>& targets, std::function<void(uint32_t)> done) {
    auto batch = std::make_shared<WriteBatch>();
    batch->done = std::move(done);
    batch->pending = 1;
    for (const SbTarget& t : targets) {
        IoChannel* ch = bdev_get_io_channel(t.desc);
        ++batch->pending;
        auto* arg = new WriteArg{batch, t.slot, ch};
        int rc =
            ch ? bdev_flush(t.desc, ch, 0, t.desc->bdev()->num_blocks, write_done, arg) : -ENODEV;
        if (rc) {
            delete arg;
            if (ch) bdev_put_io_channel(ch);
            if (rc != -ENOTSUP) batch->failed |= 1u << t.slot;  // nothing to flush
            --batch->pending;
        }
    }
    if (--batch->pending == 0) {
        auto d = std::move(batch->done);
        d(batch->failed);
    }
}

void meta_write(const std::vector<SbTarget>& targets, uint64_t off, const uint8_t* data,
                size_t bytes, bool flush, std::function<void(uint32_t)> done) {
    auto batch = std::make_shared<WriteBatch>();
    batch->done = std::move(done);
    for (size_t i = 0; i < targets.size(); ++i) {
        batch->bufs.push_back(std::make_unique<AlignedMem>(bytes));
        std::memcpy(batch->bufs.back()->data, data, bytes);
    }
    write_all(targets, batch, off, flush);
}

void meta_read(BdevDesc* desc, uint64_t off, size_t bytes,
               std::function<void(int, const uint8_t*)> done) {
    struct Read {
        IoChannel* ch = nullptr;
        std::unique_ptr<AlignedMem> buf;
        iovec iov{};
        std::function<void(int, const uint8_t*)> done;
    };
    auto* r = new Read();
    r->done = std::move(done);
    const uint32_t bs = desc->bdev()->block_size;
    r->buf = std::make_unique<AlignedMem>(blocks_for(bytes, bs) * bs);
    r->iov = {r->buf->data, r->buf->size};
    r->ch = bdev_get_io_channel(desc);
    auto cb = [](BdevIo* io, bool ok, void* arg) {
        std::unique_ptr<Read> r(static_cast<Read*>(arg));
        bdev_free_io(io);
        bdev_put_io_channel(r->ch);
        auto d = std::move(r->done);
        d(ok ? 0 : -EIO, r->buf->data);
    };
    if (!r->ch || bdev_readv(desc, r->ch, &r->iov, 1, off / bs, r->buf->size / bs, cb, r) != 0) {
        if (r->ch) bdev_put_io_channel(r->ch);
        auto d = std::move(r->done);
        delete r;
        d(-EIO, nullptr);
    }
}

}  // namespace nocstor::raid
