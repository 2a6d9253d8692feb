#include "modules/uring.h"

#include "bdev/bdev.h"
#include "modules/module_util.h"
#include "runtime/polled_ring.h"
#include "runtime/reactor.h"
#include "util/log.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace nocstor {

namespace {

class UringModule : public BdevModule {
  public:
    explicit UringModule(const char* name) : BdevModule(name) {}
};

UringModule g_module("uring");
UringModule g_aio_module("aio");
std::atomic<bool> g_refuse_direct{false};

constexpr unsigned kRingEntries = 256;
constexpr int kCtxIovs = 8;
constexpr uint32_t kMaxRetries = 16;

// Per-I/O state: progress for short transfers, and the rest of the iovecs when resubmitting.
struct UringCtx {
    uint64_t done_bytes;
    uint32_t retries;
    bool zero_by_punch;  // write-zeroes: the file system has no ZERO_RANGE, punch a hole
    iovec iov[kCtxIovs];
};

class UringBdev;

class UringChannel : public IoChannel {
  public:
    UringChannel(UringBdev* bdev) : bdev_(bdev) {}
    ~UringChannel() override;
    int init(int fd, std::string* err);
    void submit(BdevIo* io);

  private:
    io_uring_sqe* get_sqe();
    bool prep_rw(BdevIo* io);
    bool prep_fallocate(BdevIo* io, uint64_t off, uint64_t len);
    void handle(BdevIo* io, int res);
    int poll();

    UringBdev* bdev_;
    PolledRing ring_;
    bool fixed_ = false;
    int fd_ = -1;  // the raw fd, when registering it failed
    Poller* poller_ = nullptr;
    unsigned in_flight_ = 0;
    unsigned cq_entries_ = 0;
};

class UringBdev : public Bdev {
  public:
    UringBdev(const std::string& n, int fd, const UringBdevOptions& o, bool direct,
              uint32_t len_align, bool block_device)
        : Bdev(n, o.aio ? &g_aio_module : &g_module),
          fd(fd),
          filename(o.filename),
          direct(direct),
          len_align(len_align),
          aio(o.aio),
          readonly(o.readonly),
          fallocate(o.fallocate),
          nowait(o.nowait),
          block_device(block_device),
          block_size_override(o.block_size != 0) {
        product_name = aio ? "AIO disk" : "URING bdev";
    }
    ~UringBdev() override {
        if (fd >= 0) close(fd);
    }

    bool io_type_supported(IoType t) const override {
        switch (t) {
            case IoType::Read:
            case IoType::Write:  // also when read-only: writes then fail (as SPDK's aio)
            case IoType::Flush:
            case IoType::Reset:
                return true;
            case IoType::Unmap:
                return !aio || fallocate;
            case IoType::WriteZeroes:
                return fallocate;
            default:
                return false;
        }
    }

    std::unique_ptr<IoChannel> create_channel() override {
        auto ch = std::make_unique<UringChannel>(this);
        std::string err;
        if (ch->init(fd, &err) != 0) {
            NOC_ERROR("bdev", "{}: {}", name, err);
            return nullptr;
        }
        return ch;
    }

    void submit_request(IoChannel* ch, BdevIo* io) override {
        static_cast<UringChannel*>(ch)->submit(io);
    }

    void dump_info_json(nlohmann::json& out) const override {
        if (aio) {
            out["aio"] = {{"filename", filename}, {"block_size_override", block_size_override},
                          {"readonly", readonly}, {"fallocate", fallocate},
                          {"nowait", nowait},     {"direct_io", direct}};
        } else {
            out["uring"] = {{"filename", filename}, {"direct_io", direct}};
        }
    }

    void write_config_json(nlohmann::json& out) const override {
        nlohmann::json params = {
            {"name", name}, {"filename", filename}, {"uuid", uuid_to_string(uuid)}};
        if (aio) {
            params["readonly"] = readonly;
            params["fallocate"] = fallocate;
            params["nowait"] = nowait;
            if (block_size_override) params["block_size"] = block_size;
        } else {
            params["block_size"] = block_size;
        }
        out = {{"method", aio ? "bdev_aio_create" : "bdev_uring_create"}, {"params", params}};
    }

    int fd;
    std::string filename;
    bool direct;
    uint32_t len_align;  // O_DIRECT: every iovec length must be a multiple of this
    bool aio, readonly, fallocate, nowait, block_device, block_size_override;
};

UringChannel::~UringChannel() {
    if (poller_) Thread::current()->unregister_poller(poller_);
    ring_.close();  // cancels anything still in flight
}

int UringChannel::init(int fd, std::string* err) {
    // Completions run as task work deferred to this ring (see PolledRing for why).
    Thread* t = Thread::current();
    const char* what = nullptr;
    int rc = ring_.init(kRingEntries, 0, t->reactor(), &what);
    if (rc < 0) return fail(err, rc, std::string(what) + ": " + std::strerror(-rc));
    cq_entries_ = ring_.ring()->cq.ring_entries;
    fixed_ = io_uring_register_files(ring_.ring(), &fd, 1) == 0;
    fd_ = fd;
    poller_ = t->register_poller("uring", [this] { return poll(); });
    return 0;
}

io_uring_sqe* UringChannel::get_sqe() {
    if (in_flight_ >= cq_entries_) return nullptr;  // keep the CQ from overflowing
    io_uring_sqe* sqe = ring_.get_sqe();            // SQ full: pushes the batch first
    if (!sqe) return nullptr;
    ++in_flight_;
    return sqe;
}

// Prepares a read/write of the part not done yet. False when no SQE is free.
bool UringChannel::prep_rw(BdevIo* io) {
    auto* c = io->ctx<UringCtx>();
    const iovec* iov = io->iovs;
    int cnt = io->iovcnt;
    if (c->done_bytes) {  // short transfer: the remaining iovecs (up to kCtxIovs of them)
        uint64_t skip = c->done_bytes;
        int i = 0;
        while (i < io->iovcnt && skip >= io->iovs[i].iov_len) skip -= io->iovs[i++].iov_len;
        cnt = 0;
        for (; i < io->iovcnt && cnt < kCtxIovs; ++i, ++cnt) {
            c->iov[cnt].iov_base = static_cast<char*>(io->iovs[i].iov_base) + skip;
            c->iov[cnt].iov_len = io->iovs[i].iov_len - skip;
            skip = 0;
        }
        iov = c->iov;
    }
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) return false;
    uint64_t off = io->offset_blocks * bdev_->block_size + c->done_bytes;
    int fd = fixed_ ? 0 : fd_;
    if (io->type == IoType::Read) {
        io_uring_prep_readv(sqe, fd, iov, unsigned(cnt), off);
    } else {
        io_uring_prep_writev(sqe, fd, iov, unsigned(cnt), off);
        if (io->fua) sqe->rw_flags = RWF_DSYNC;
    }
    // nowait: the first attempt must not block in the kernel; a retry after EAGAIN may.
    if (bdev_->nowait && c->retries == 0) sqe->rw_flags |= RWF_NOWAIT;
    if (fixed_) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, io);
    return true;
}

void UringChannel::submit(BdevIo* io) {
    auto* c = io->ctx<UringCtx>();
    c->done_bytes = 0;
    c->retries = 0;
    c->zero_by_punch = false;
    uint64_t off = io->offset_blocks * bdev_->block_size;
    uint64_t len = io->num_blocks * bdev_->block_size;
    int fd = fixed_ ? 0 : fd_;
    io_uring_sqe* sqe = nullptr;
    switch (io->type) {
        case IoType::Write:
            if (bdev_->readonly) {
                bdev_io_complete(io, IoStatus::Failed);
                return;
            }
            [[fallthrough]];
        case IoType::Read:
            if (bdev_->direct) {
                for (int i = 0; i < io->iovcnt; ++i) {
                    if (io->iovs[i].iov_len % bdev_->len_align) {
                        bdev_io_complete(io, IoStatus::Failed);
                        return;
                    }
                }
            }
            if (!prep_rw(io)) bdev_io_complete(io, IoStatus::NoMemory);
            return;
        case IoType::Flush:
            if (!(sqe = get_sqe())) break;
            io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
            break;
        case IoType::Unmap:
        case IoType::WriteZeroes:
            if (bdev_->readonly) {
                bdev_io_complete(io, IoStatus::Failed);
                return;
            }
            prep_fallocate(io, off, len);  // completes the I/O itself when no SQE is free
            return;
        case IoType::Reset:  // nothing to reset: what is in flight completes on its own
            bdev_io_complete(io, IoStatus::Success);
            return;
        default:
            bdev_io_complete(io, IoStatus::Unsupported);
            return;
    }
    if (!sqe) {
        bdev_io_complete(io, IoStatus::NoMemory);  // the bdev layer retries it
        return;
    }
    if (fixed_) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, io);
}

// Unmap punches a hole; write-zeroes asks for a zeroed range (a hole on file systems without
// ZERO_RANGE, e.g. tmpfs: it reads back as zeros too). False when no SQE is free.
bool UringChannel::prep_fallocate(BdevIo* io, uint64_t off, uint64_t len) {
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) {
        bdev_io_complete(io, IoStatus::NoMemory);
        return false;
    }
    const bool punch = io->type == IoType::Unmap || io->ctx<UringCtx>()->zero_by_punch;
    const int mode = (punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
    io_uring_prep_fallocate(sqe, fixed_ ? 0 : fd_, mode, off, len);
    if (fixed_) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, io);
    return true;
}

void UringChannel::handle(BdevIo* io, int res) {
    if (io->type == IoType::Read || io->type == IoType::Write) {
        auto* c = io->ctx<UringCtx>();
        uint64_t total = io->num_blocks * bdev_->block_size;
        if ((res == -EAGAIN || res == -EINTR) && c->retries < kMaxRetries) {
            ++c->retries;
            if (!prep_rw(io)) bdev_io_complete(io, IoStatus::NoMemory);
            return;
        }
        if (res < 0) {
            bdev_io_complete(io, res == -EIO ? IoStatus::MediaError : IoStatus::Failed);
            return;
        }
        if (res == 0) {  // end of file inside the bdev: the file shrank under us
            bdev_io_complete(io, IoStatus::Failed);
            return;
        }
        c->done_bytes += uint64_t(res);
        if (c->done_bytes < total) {  // short transfer: continue where it stopped
            if (!prep_rw(io)) bdev_io_complete(io, IoStatus::NoMemory);
            return;
        }
        bdev_io_complete(io, IoStatus::Success);
        return;
    }
    auto* c = io->ctx<UringCtx>();
    if (res == -EOPNOTSUPP && io->type == IoType::WriteZeroes && !c->zero_by_punch &&
        !bdev_->block_device) {
        c->zero_by_punch = true;
        prep_fallocate(io, io->offset_blocks * bdev_->block_size,
                       io->num_blocks * bdev_->block_size);
        return;
    }
    if (res == -EOPNOTSUPP)
        bdev_io_complete(io, IoStatus::Unsupported);
    else
        bdev_io_complete(io, res < 0 ? IoStatus::Failed : IoStatus::Success);
}

int UringChannel::poll() {
    int work = 0;
    const int r = ring_.submit();
    if (r > 0) work += r;
    if (in_flight_) {
        const unsigned n = ring_.reap([this](uint64_t data, int res) {
            --in_flight_;
            handle(reinterpret_cast<BdevIo*>(data), res);
        });
        work += int(n);
    }
    return ring_.end_pass(work);
}

// Direct-I/O granules from statx (kernel 6.1+); 0 when unknown.
void dio_alignment(int fd, uint32_t* mem, uint32_t* off) {
    struct statx stx {};
    *mem = *off = 0;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
        (stx.stx_mask & STATX_DIOALIGN)) {
        *mem = stx.stx_dio_mem_align;
        *off = stx.stx_dio_offset_align;
    }
}

}  // namespace

BdevModule* uring_bdev_module() {
    return &g_module;
}

BdevModule* aio_bdev_module() {
    return &g_aio_module;
}

void uring_set_refuse_direct_for_test(bool refuse) {
    g_refuse_direct = refuse;
}

bool uring_bdev_is_direct(const std::string& name) {
    Bdev* b = bdev_get_by_name(name);
    return b && b->module == &g_module && static_cast<UringBdev*>(b)->direct;
}

int uring_bdev_create(const UringBdevOptions& o, std::string* err) {
    const std::string mod = o.aio ? "aio" : "uring";
    if (o.name.empty()) return fail(err, -EINVAL, mod + ": name is required");
    if (o.filename.empty()) return fail(err, -EINVAL, mod + ": filename is required");
    if (o.block_size && !valid_block_size(o.block_size))
        return fail(err, -EINVAL,
                    mod + ": block_size " + std::to_string(o.block_size) +
                        " is not a power of two between 512 and 65536");
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) return -EINVAL;
    if (bdev_get_by_name(o.name)) return fail(err, -EEXIST, "bdev " + o.name + " already exists");

    const int access = o.readonly ? O_RDONLY : O_RDWR;
    bool direct = !g_refuse_direct;
    int fd = direct ? open(o.filename.c_str(), access | O_DIRECT | O_CLOEXEC) : -1;
    if (fd < 0 && (!direct || errno == EINVAL)) {
        if (direct)
            NOC_WARN("bdev", "{} {}: {} does not support O_DIRECT, using buffered I/O", mod, o.name,
                     o.filename);
        direct = false;
        fd = open(o.filename.c_str(), access | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        return fail(err, -e, mod + ": cannot open " + o.filename + ": " + std::strerror(e));
    }
    auto close_fail = [&](int rc, std::string msg) {
        close(fd);
        return fail(err, rc, mod + ": " + o.filename + ": " + msg);
    };
    struct stat st {};
    if (fstat(fd, &st) != 0) return close_fail(-errno, std::strerror(errno));
    uint64_t size = 0;
    uint32_t lbs = 512;  // the device's own granule
    if (S_ISBLK(st.st_mode)) {
        int ssz = 0;
        if (ioctl(fd, BLKGETSIZE64, &size) != 0 || ioctl(fd, BLKSSZGET, &ssz) != 0)
            return close_fail(-errno, std::string("ioctl: ") + std::strerror(errno));
        lbs = uint32_t(ssz);
    } else if (S_ISREG(st.st_mode)) {
        size = uint64_t(st.st_size);
    } else {
        return close_fail(-EINVAL, "not a regular file or block device");
    }
    if (o.nowait && !S_ISBLK(st.st_mode))
        return close_fail(-ENOTSUP, "nowait (RWF_NOWAIT) needs a block device");
    uint32_t mem_align = 0, len_align = 0;
    if (direct) {
        dio_alignment(fd, &mem_align, &len_align);
        if (len_align == 0) len_align = lbs;
        if (len_align > lbs) lbs = len_align;
    }
    uint32_t bs = o.block_size ? o.block_size : lbs;
    if (bs < lbs || bs % lbs)
        return close_fail(-EINVAL, "block_size " + std::to_string(bs) +
                                       " is smaller than or not a multiple of the device's " +
                                       std::to_string(lbs));
    if (size / bs == 0) return close_fail(-EINVAL, "smaller than one block");
    if (size % bs)
        NOC_WARN("bdev", "uring {}: {} bytes at the end of {} are not used", o.name, size % bs,
                 o.filename);

    auto b = std::make_unique<UringBdev>(o.name, fd, o, direct, direct ? len_align : 1,
                                         S_ISBLK(st.st_mode));
    b->block_size = bs;
    b->num_blocks = size / bs;
    b->uuid = uuid;
    b->write_cache = true;
    if (direct) b->required_alignment = std::max(bs, mem_align);
    int rc = bdev_register(std::move(b));  // closes the fd on failure
    if (rc) return fail(err, rc, mod + ": cannot register " + o.name + ": " + std::strerror(-rc));
    NOC_INFO("bdev", "{} {}: {} ({} I/O, block size {}{})", mod, o.name, o.filename,
             direct ? "direct" : "buffered", bs, o.readonly ? ", read-only" : "");
    return 0;
}

void uring_bdev_delete(const std::string& name, std::function<void(int)> done) {
    delete_module_bdev(name, &g_module, std::move(done));
}

void aio_bdev_delete(const std::string& name, std::function<void(int)> done) {
    delete_module_bdev(name, &g_aio_module, std::move(done));
}

int uring_bdev_rescan(const std::string& name, bool aio, std::string* err) {
    const std::string mod = aio ? "aio" : "uring";
    Bdev* found = bdev_get_by_name(name);
    if (!found || found->module != (aio ? &g_aio_module : &g_module))
        return fail(err, -ENODEV, "no " + mod + " bdev named '" + name + "'");
    auto* b = static_cast<UringBdev*>(found);
    uint64_t size = 0;
    struct stat st {};
    if (fstat(b->fd, &st) != 0) return fail(err, -errno, std::strerror(errno));
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(b->fd, BLKGETSIZE64, &size) != 0)
            return fail(err, -errno, std::string("ioctl: ") + std::strerror(errno));
    } else {
        size = uint64_t(st.st_size);
    }
    const uint64_t blocks = size / b->block_size;
    if (blocks == 0) {
        NOC_WARN("bdev", "{} {}: {} is now empty, removing the bdev", mod, name, b->filename);
        bdev_unregister(b, nullptr);
        return 0;
    }
    const int rc = bdev_notify_blockcnt_change(b, blocks);
    if (rc == -EBUSY)
        return fail(err, rc,
                    mod + " " + name + ": " + b->filename + " shrank to " + std::to_string(size) +
                        " bytes while the bdev is in use");
    if (rc) return fail(err, rc, mod + " " + name + ": cannot resize: " + std::strerror(-rc));
    return 0;
}

}  // namespace nocstor
