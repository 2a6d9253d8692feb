#include "ublk/ublk_disk.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/log.h"
#include "util/tick.h"

namespace nocstor::ublk {

namespace {

constexpr uint64_t kSector = 512;

std::string errno_text(int rc) {
    return std::strerror(rc < 0 ? -rc : rc);
}

uint8_t log2_of(uint32_t v) {
    uint8_t s = 0;
    while ((1u << s) < v) ++s;
    return s;
}

// Runs fn once on the current thread after `us` microseconds.
void after_us(uint64_t us, std::function<void()> fn) {
    Thread* t = Thread::current();
    auto holder = std::make_shared<Poller*>(nullptr);
    *holder = t->register_poller(
        "ublk_timer",
        [t, holder, fn = std::move(fn)] {
            t->unregister_poller(*holder);
            fn();
            return 1;
        },
        us);
}

}  // namespace

UblkDisk::UblkDisk(DiskParams p, ControlRing* ctl, std::vector<Thread*> threads)
    : p_(std::move(p)), ctl_(ctl), threads_(std::move(threads)) {
    disk_name_ = std::string(kBlockPrefix) + std::to_string(p_.id);
}

std::unique_ptr<UblkDisk> UblkDisk::create(DiskParams p, ControlRing* ctl,
                                           std::vector<Thread*> threads, int* rc,
                                           std::string* err) {
    if (threads.empty()) {
        *rc = -EINVAL;
        *err = "no data thread to run the queues on";
        return nullptr;
    }
    std::unique_ptr<UblkDisk> d(new UblkDisk(std::move(p), ctl, std::move(threads)));
    UblkDisk* self = d.get();
    *rc = bdev_open(
        d->p_.bdev_name, true,
        [self](BdevEvent ev, Bdev*) {
            if (ev != BdevEvent::Remove) return;
            NOC_WARN("ublk", "{}: bdev {} is being removed; the ublk device is stopped",
                     self->disk_name_, self->p_.bdev_name);
            if (self->state_ == State::Live) self->stop([] {});
        },
        &d->desc_);
    if (*rc == -EPERM || *rc == -EBUSY) {
        *err = "bdev " + d->p_.bdev_name + " is claimed by another module";
        return nullptr;
    }
    if (*rc) {
        *err = "bdev " + d->p_.bdev_name + " does not exist";
        *rc = -ENODEV;
        return nullptr;
    }
    d->bdev_ = d->desc_->bdev();
    if (d->bdev_->block_size < kSector || d->bdev_->block_size > 4096 ||
        (d->bdev_->block_size & (d->bdev_->block_size - 1))) {
        *rc = -EINVAL;
        *err = fmt::format("bdev {} has {}-byte blocks; ublk needs 512 to 4096, a power of two",
                           d->p_.bdev_name, d->bdev_->block_size);
        return nullptr;
    }
    *rc = 0;
    return d;
}

UblkDisk::~UblkDisk() {
    if (char_fd_ >= 0) ::close(char_fd_);
    if (desc_) bdev_close(desc_);
}

const char* UblkDisk::state_name() const {
    switch (state_) {
        case State::Idle:
        case State::Starting:
            return "starting";
        case State::Recovering:
            return "recovering";
        case State::Live:
            return "live";
        case State::Stopping:
            return "stopping";
        case State::Stopped:
            return "stopped";
    }
    return "?";
}

void UblkDisk::cmd(uint32_t nr, void* buf, uint32_t len, uint64_t data0,
                   std::function<void(int)> cb) {
    ublksrv_ctrl_cmd c{};
    c.dev_id = p_.id;
    c.queue_id = UINT16_MAX;
    c.addr = reinterpret_cast<uint64_t>(buf);
    c.len = uint16_t(len);
    c.data[0] = data0;
    ctl_->submit(nr, c, std::move(cb));
}

void UblkDisk::fill_params() {
    const uint32_t bs = bdev_->block_size;
    kparams_ = {};
    kparams_.len = sizeof(kparams_);
    kparams_.types = UBLK_PARAM_TYPE_BASIC;
    auto& b = kparams_.basic;
    // A volatile cache so that the kernel passes flushes and FUA down to the bdev.
    b.attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
    b.logical_bs_shift = log2_of(bs);
    b.physical_bs_shift = log2_of(bs);
    b.io_min_shift = log2_of(bs);
    b.io_opt_shift = log2_of(bs);
    b.max_sectors = dev_info_.max_io_buf_bytes / kSector;
    b.dev_sectors = bdev_->num_blocks * bs / kSector;
    const bool unmap = bdev_->io_type_supported(IoType::Unmap);
    const bool zeroes = bdev_->io_type_supported(IoType::WriteZeroes);
    if (unmap || zeroes) {
        kparams_.types |= UBLK_PARAM_TYPE_DISCARD;
        auto& d = kparams_.discard;
        d.discard_granularity = bs;
        d.max_discard_sectors = unmap ? (1u << 22) : 0;  // 2 GiB per request
        d.max_write_zeroes_sectors = zeroes ? (1u << 22) : 0;
        d.max_discard_segments = 1;
    }
}

int UblkDisk::open_char_dev(std::string* err) {
    const std::string path = std::string(kCharPrefix) + std::to_string(p_.id);
    char_fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (char_fd_ >= 0) return 0;
    const int rc = -errno;
    *err = "cannot open " + path + ": " + errno_text(rc) +
           (rc == -ENOENT ? " (no devtmpfs on /dev?)" : "");
    return rc;
}

void UblkDisk::start(Done done) {
    state_ = State::Starting;
    done_ = std::move(done);
    dev_info_ = {};
    dev_info_.nr_hw_queues = uint16_t(p_.num_queues);
    dev_info_.queue_depth = uint16_t(p_.queue_depth);
    dev_info_.max_io_buf_bytes = kMaxIoBytes;
    dev_info_.dev_id = p_.id;
    dev_info_.ublksrv_pid = ::getpid();
    dev_info_.flags = UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE;
    if (ctl_->ioctl_encode()) dev_info_.flags |= kFeatureCmdIoctlEncode;
    cmd(UBLK_CMD_ADD_DEV, &dev_info_, sizeof(dev_info_), 0, [this](int r) {
        if (r == -EEXIST)
            return fail(r,
                        fmt::format("ublk device {} already exists (ublk_recover_disk takes over a "
                                    "device whose server died)",
                                    p_.id),
                        false);
        if (r < 0) return fail(r, "ADD_DEV: " + errno_text(r), false);
        fill_params();
        cmd(UBLK_CMD_SET_PARAMS, &kparams_, sizeof(kparams_), 0, [this](int r) {
            if (r < 0) return fail(r, "SET_PARAMS: " + errno_text(r), true);
            std::string err;
            if (int rc = open_char_dev(&err)) return fail(rc, err, true);
            start_queues([this](int r) {
                if (r < 0) return fail(r, "a queue could not start (see the log)", true);
                cmd(UBLK_CMD_START_DEV, nullptr, 0, uint64_t(::getpid()), [this](int r) {
                    if (r < 0) return fail(r, "START_DEV: " + errno_text(r), true);
                    state_ = State::Live;
                    NOC_INFO("ublk", "{}: bdev {}, {} queue(s) of depth {}, {} blocks of {} bytes",
                             disk_name_, p_.bdev_name, p_.num_queues, p_.queue_depth,
                             bdev_->num_blocks, bdev_->block_size);
                    auto d = std::move(done_);
                    d(0, "");
                });
            });
        });
    });
}

void UblkDisk::recover(uint32_t wait_ms, Done done) {
    state_ = State::Recovering;
    done_ = std::move(done);
    wait_quiesced(now_ns() + uint64_t(wait_ms) * 1'000'000, [this](int r, std::string err) {
        if (r < 0) return fail(r, err, false);
        cmd(UBLK_CMD_START_USER_RECOVERY, nullptr, 0, 0, [this](int r) {
            if (r < 0) return fail(r, "START_USER_RECOVERY: " + errno_text(r), false);
            std::string err;
            if (int rc = open_char_dev(&err)) return fail(rc, err, false);
            start_queues([this](int r) {
                if (r < 0) return fail(r, "a queue could not start (see the log)", false);
                cmd(UBLK_CMD_END_USER_RECOVERY, nullptr, 0, uint64_t(::getpid()), [this](int r) {
                    if (r < 0) return fail(r, "END_USER_RECOVERY: " + errno_text(r), false);
                    state_ = State::Live;
                    NOC_INFO("ublk",
                             "{}: recovered on bdev {} ({} queue(s) of depth {}); held requests "
                             "are issued again",
                             disk_name_, p_.bdev_name, p_.num_queues, p_.queue_depth);
                    auto d = std::move(done_);
                    d(0, "");
                });
            });
        });
    });
}

// GET_DEV_INFO until the kernel has quiesced the device after its server's death; checks that
// the device matches the bdev.
void UblkDisk::wait_quiesced(uint64_t deadline_ns, Done done) {
    dev_info_ = {};
    cmd(UBLK_CMD_GET_DEV_INFO, &dev_info_, sizeof(dev_info_), 0,
        [this, deadline_ns, done = std::move(done)](int r) mutable {
            if (r == -ENODEV || r == -ENOENT)
                return done(-ENODEV, fmt::format("there is no ublk device {}", p_.id));
            if (r < 0) return done(r, "GET_DEV_INFO: " + errno_text(r));
            if (!(dev_info_.flags & UBLK_F_USER_RECOVERY))
                return done(-EINVAL, fmt::format("ublk device {} was created without user "
                                                 "recovery and cannot be taken over",
                                                 p_.id));
            if (dev_info_.state != UBLK_S_DEV_QUIESCED) {
                if (now_ns() < deadline_ns && dev_info_.state == UBLK_S_DEV_LIVE) {
                    // The kernel notices a dead server within a few seconds.
                    return after_us(100'000, [this, deadline_ns, done = std::move(done)]() mutable {
                        wait_quiesced(deadline_ns, std::move(done));
                    });
                }
                return done(-EBUSY,
                            fmt::format("ublk device {} is {}, not quiesced: its server is still "
                                        "running, or the kernel has not noticed that it died",
                                        p_.id, ublk::state_name(dev_info_.state)));
            }
            p_.num_queues = dev_info_.nr_hw_queues;
            p_.queue_depth = dev_info_.queue_depth;
            kparams_ = {};
            kparams_.len = sizeof(kparams_);
            cmd(UBLK_CMD_GET_PARAMS, &kparams_, sizeof(kparams_), 0,
                [this, done = std::move(done)](int r) {
                    if (r < 0) return done(r, "GET_PARAMS: " + errno_text(r));
                    const uint64_t sectors = bdev_->num_blocks * bdev_->block_size / kSector;
                    if (kparams_.basic.dev_sectors != sectors ||
                        (1u << kparams_.basic.logical_bs_shift) != bdev_->block_size)
                        return done(-EINVAL,
                                    fmt::format("ublk device {} has {} sectors of {} bytes but "
                                                "bdev {} has {} blocks of {} bytes",
                                                p_.id, kparams_.basic.dev_sectors,
                                                1u << kparams_.basic.logical_bs_shift, p_.bdev_name,
                                                bdev_->num_blocks, bdev_->block_size));
                    done(0, "");
                });
        });
}

void UblkDisk::start_queues(std::function<void(int)> done) {
    struct Gather {
        uint32_t left;
        int rc = 0;
        std::function<void(int)> done;
    };
    auto g = std::make_shared<Gather>(Gather{p_.num_queues, 0, std::move(done)});
    Thread* home = Thread::current();
    for (uint32_t q = 0; q < p_.num_queues; ++q) {
        QueueConfig c;
        c.disk = disk_name_;
        c.dev_id = p_.id;
        c.q_id = uint16_t(q);
        c.depth = uint16_t(p_.queue_depth);
        c.max_io_bytes = dev_info_.max_io_buf_bytes ? dev_info_.max_io_buf_bytes : kMaxIoBytes;
        c.char_fd = char_fd_;
        c.ioctl_encode = ctl_->ioctl_encode();
        c.desc = desc_;
        c.block_size = bdev_->block_size;
        c.num_blocks = bdev_->num_blocks;
        Thread* t = threads_[q % threads_.size()];
        queues_.push_back(std::make_unique<UblkQueue>(std::move(c), t));
        UblkQueue* uq = queues_.back().get();
        t->send([uq, g, home] {
            const int rc = uq->start();
            home->send([g, rc] {
                if (rc && !g->rc) g->rc = rc;
                if (--g->left == 0) g->done(g->rc);
            });
        });
    }
}

void UblkDisk::stop_queues(std::function<void()> done) {
    if (queues_.empty()) return done();
    struct Gather {
        size_t left;
        std::function<void()> done;
    };
    auto g = std::make_shared<Gather>(Gather{queues_.size(), std::move(done)});
    Thread* home = Thread::current();
    for (auto& q : queues_) {
        UblkQueue* uq = q.get();
        uq->thread()->send([uq, g, home] {
            uq->stop([g, home] {
                home->send([g] {
                    if (--g->left == 0) g->done();
                });
            });
        });
    }
}

void UblkDisk::fail(int rc, std::string why, bool added) {
    if (rc == -EEXIST)  // the caller may take the device over (a restart after a crash)
        NOC_INFO("ublk", "{}: {}", disk_name_, why);
    else
        NOC_ERROR("ublk", "{}: {}", disk_name_, why);
    stop_queues([this, rc, why = std::move(why), added] {
        queues_.clear();
        if (char_fd_ >= 0) {
            ::close(char_fd_);
            char_fd_ = -1;
        }
        auto finish = [this, rc, why] {
            state_ = State::Stopped;
            auto d = std::move(done_);
            d(rc, why);
        };
        if (!added) return finish();
        cmd(UBLK_CMD_DEL_DEV, nullptr, 0, 0, [finish](int) { finish(); });
    });
}

void UblkDisk::stop(std::function<void()> done) {
    if (state_ == State::Stopped || state_ == State::Stopping) return done();
    state_ = State::Stopping;
    // STOP_DEV removes the block device once its I/O drained (our queues still serve it).
    cmd(UBLK_CMD_STOP_DEV, nullptr, 0, 0, [this, done = std::move(done)](int r) mutable {
        if (r < 0) NOC_WARN("ublk", "{}: STOP_DEV: {}", disk_name_, errno_text(r));
        stop_queues([this, done = std::move(done)]() mutable {
            queues_.clear();
            if (char_fd_ >= 0) {
                ::close(char_fd_);
                char_fd_ = -1;
            }
            cmd(UBLK_CMD_DEL_DEV, nullptr, 0, 0, [this, done = std::move(done)](int r) {
                if (r < 0) NOC_WARN("ublk", "{}: DEL_DEV: {}", disk_name_, errno_text(r));
                state_ = State::Stopped;
                if (desc_) {
                    bdev_close(desc_);
                    desc_ = nullptr;
                }
                NOC_INFO("ublk", "{}: stopped and deleted", disk_name_);
                done();
            });
        });
    });
}

void UblkDisk::info(std::function<void(DiskInfo)> done) const {
    DiskInfo base;
    base.params = p_;
    base.state = state_name();
    base.num_blocks = bdev_ ? bdev_->num_blocks : 0;
    base.block_size = bdev_ ? bdev_->block_size : 0;
    for (const auto& q : queues_) base.queue_threads.emplace_back(q->id(), q->thread()->name());
    if (queues_.empty() || state_ != State::Live) return done(std::move(base));
    struct Gather {
        size_t left;
        DiskInfo info;
        std::vector<QueueStats> per_queue;  // slot i written by queue i's thread only
        std::function<void(DiskInfo)> done;
    };
    auto g = std::make_shared<Gather>(Gather{
        queues_.size(), std::move(base), std::vector<QueueStats>(queues_.size()), std::move(done)});
    Thread* home = Thread::current();
    for (size_t i = 0; i < queues_.size(); ++i) {
        const UblkQueue* uq = queues_[i].get();
        uq->thread()->send([uq, g, home, i] {
            g->per_queue[i] = uq->stats();
            home->send([g] {
                if (--g->left) return;
                for (const auto& s : g->per_queue) g->info.stats += s;
                g->done(std::move(g->info));
            });
        });
    }
}

}  // namespace nocstor::ublk
