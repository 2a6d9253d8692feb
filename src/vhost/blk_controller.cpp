// The controller's life: its socket, the session's queues on the data threads, and the steps
// that stop and restart them. The vhost-user messages themselves are in blk_session.cpp.
#include "vhost/blk_controller.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "runtime/runtime.h"
#include "util/log.h"

namespace nocstor::vhost {

namespace {

Thread* control_thread() {
    Runtime* rt = Runtime::instance();
    return rt ? rt->control_thread() : Thread::current();
}

// A listening Unix socket at `path`; a leftover socket file nobody listens on is replaced.
int listen_unix(const std::string& path, int* rc, std::string* err) {
    sockaddr_un sa{};
    if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
        *rc = -EINVAL;
        *err = fmt::format("socket path '{}' is empty or longer than {} bytes", path,
                           sizeof(sa.sun_path) - 1);
        return -1;
    }
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path.c_str(), path.size());
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *rc = -EEXIST;
            *err = fmt::format("{} exists and is not a socket", path);
            return -1;
        }
        const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool in_use =
            probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
        if (probe >= 0) ::close(probe);
        if (in_use) {
            *rc = -EADDRINUSE;
            *err = fmt::format("another process listens on {}", path);
            return -1;
        }
        ::unlink(path.c_str());
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *rc = -errno;
        *err = fmt::format("socket: {}", strerror(errno));
        return -1;
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd, 4) != 0) {
        *rc = -errno;
        *err = fmt::format("cannot listen on {}: {}", path, strerror(errno));
        ::close(fd);
        return -1;
    }
    return fd;
}

void close_fd(int* fd) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
}

}  // namespace

BlkController::BlkController(BlkControllerParams p) : p_(std::move(p)) {
    if (p_.num_queues == 0) p_.num_queues = kDefaultQueues;
    vqs_.resize(p_.num_queues);
}

std::unique_ptr<BlkController> BlkController::create(BlkControllerParams p, int* rc,
                                                     std::string* err) {
    if (p.threads.empty()) {
        *rc = -EINVAL;
        *err = "no data thread to run the queues on";
        return nullptr;
    }
    if (p.num_queues > kMaxQueues) {
        *rc = -EINVAL;
        *err = fmt::format("num_queues {} is more than {}", p.num_queues, kMaxQueues);
        return nullptr;
    }
    std::unique_ptr<BlkController> c(new BlkController(std::move(p)));
    BlkController* self = c.get();
    *rc = bdev_open(
        c->p_.bdev_name, !c->p_.readonly, [self](BdevEvent ev, Bdev*) { self->on_bdev_event(ev); },
        &c->desc_);
    if (*rc == -EPERM || *rc == -EBUSY) {
        *err = "bdev " + c->p_.bdev_name + " is claimed by another module";
        return nullptr;
    }
    if (*rc) {
        *err = "cannot open bdev " + c->p_.bdev_name;
        return nullptr;
    }
    c->bdev_ = c->desc_->bdev();
    c->listen_fd_ = listen_unix(c->p_.socket_path, rc, err);
    if (c->listen_fd_ < 0) return nullptr;
    *rc = 0;
    return c;
}

BlkController::~BlkController() {
    close_fd(&listen_fd_);
    if (desc_) bdev_close(desc_);
}

void BlkController::on_bdev_event(BdevEvent ev) {
    if (ev == BdevEvent::Resize) {
        NOC_INFO("vhost", "{}: bdev {} now has {} blocks", p_.name, p_.bdev_name,
                 bdev_->num_blocks);
        // Running queues pick up the new size; the front-end is told to re-read the config
        // space (and interrupts the guest) when it gave us a back-end channel, else the guest
        // sees the new size after its next reset.
        if (conn_fd_ >= 0 && !closing_ && !reading_paused_) quiesce([] {});
        notify_config_change();
        return;
    }
    NOC_WARN("vhost",
             "{}: bdev {} is being removed; the controller drops its front-end and "
             "accepts no more until it is deleted",
             p_.name, p_.bdev_name);
    bdev_removed_ = true;
    if (conn_fd_ >= 0)
        disconnect("its bdev was removed");
    else if (desc_) {
        bdev_close(desc_);
        desc_ = nullptr;
    }
}

void BlkController::notify_config_change() {
    if (backend_fd_ < 0 || !(protocol_features_ & bit(kPfBackendReq))) return;
    const MsgHeader h{kBackendConfigChangeMsg, kVersion, 0};
    // No reply asked for: the control thread never waits on the front-end.
    if (::send(backend_fd_, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) != ssize_t(sizeof(h)))
        NOC_WARN("vhost", "{}: cannot send the config-change notice: {}", p_.name,
                 std::strerror(errno));
    else
        NOC_INFO("vhost", "{}: told the front-end that the disk now has {} blocks", p_.name,
                 bdev_->num_blocks);
}

Thread* BlkController::thread_of(uint32_t q) const {
    return p_.threads[(p_.thread_offset + q) % p_.threads.size()];
}

BlkDisk BlkController::disk() const {
    BlkDisk d;
    d.desc = desc_;
    d.block_size = bdev_->block_size;
    d.num_blocks = bdev_->num_blocks;
    d.readonly = p_.readonly;
    d.writeback = writeback_;
    d.discard = !p_.readonly && bdev_->io_type_supported(IoType::Unmap);
    d.write_zeroes = !p_.readonly && bdev_->io_type_supported(IoType::WriteZeroes);
    d.serial = p_.bdev_name.substr(0, kBlkIdBytes);
    return d;
}

void BlkController::maybe_start(uint32_t i) {
    Vq& v = vqs_[i];
    if (v.running || !v.kicked || !v.enabled || !v.addr_set || !mem_ || v.num == 0 ||
        bdev_removed_ || closing_ || !desc_)
        return;
    if (!v.q || v.q->size() != v.num) {
        // A replaced queue object stays until the controller goes: a statistics message may
        // still be on its way to it.
        if (v.q) retired_.push_back(std::move(v.q));
        v.q = std::make_unique<BlkQueue>(i, p_.name, thread_of(i), v.num);
    }
    auto* s = new QueueSetup;
    s->mem = mem_;
    s->layout = VringLayout{.size = v.num,
                            .desc_uva = v.addr.desc_user_addr,
                            .avail_uva = v.addr.avail_user_addr,
                            .used_uva = v.addr.used_user_addr,
                            .last_avail_idx = v.base,
                            .event_idx = (features_ & bit(kRingEventIdx)) != 0};
    if (inflight_map_ && i < inflight_queues_ && v.num <= inflight_queue_size_)
        s->inflight = reinterpret_cast<InflightQueue*>(
            static_cast<uint8_t*>(inflight_map_) + i * inflight_queue_bytes(inflight_queue_size_));
    s->kick_fd = v.kick;
    s->call_fd = v.call;
    s->disk = disk();
    s->coalescing = coalescing_;
    v.running = true;
    BlkQueue* q = v.q.get();
    send_message(q->thread(), [q, s] {
        std::unique_ptr<QueueSetup> owned(s);
        q->start(std::move(*owned));
    });
}

void BlkController::stop_queue(uint32_t i, std::function<void()> done) {
    Vq& v = vqs_[i];
    if (!v.running) return done();
    if (v.stop_done) {  // already stopping (a disconnect during another step): wait for it too
        v.stop_done = [prev = std::move(v.stop_done), done = std::move(done)] {
            prev();
            done();
        };
        return;
    }
    v.stop_done = std::move(done);
    BlkQueue* q = v.q.get();
    Thread* ctl = control_thread();
    send_message(q->thread(), [this, q, i, ctl] {
        q->stop([this, i, ctl](uint16_t last_avail) {
            send_message(ctl, [this, i, last_avail] {
                Vq& v = vqs_[i];
                v.running = false;
                v.base = last_avail;
                auto d = std::move(v.stop_done);
                v.stop_done = nullptr;
                d();
            });
        });
    });
}

void BlkController::quiesce(std::function<void()> change, int only) {
    std::vector<uint32_t> running;
    for (uint32_t i = 0; i < vqs_.size(); ++i)
        if (vqs_[i].running && (only < 0 || uint32_t(only) == i)) running.push_back(i);
    if (running.empty()) {
        change();
        for (uint32_t i = 0; i < vqs_.size(); ++i) maybe_start(i);
        return;
    }
    pause_reading();
    auto left = std::make_shared<size_t>(running.size());
    auto after = [this, left, change = std::move(change)] {
        if (--*left) return;
        change();
        for (uint32_t i = 0; i < vqs_.size(); ++i) maybe_start(i);
        resume_reading();
    };
    for (uint32_t i : running) stop_queue(i, after);
}

void BlkController::pause_reading() {
    if (reading_paused_ || conn_fd_ < 0) return;
    reading_paused_ = true;
    if (watch_) watch_(conn_fd_, false);
}

void BlkController::resume_reading() {
    if (!reading_paused_) return;
    reading_paused_ = false;
    if (conn_fd_ >= 0 && !closing_ && watch_) watch_(conn_fd_, true);
}

void BlkController::on_listen_readable() {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (conn_fd_ >= 0 || closing_ || bdev_removed_ || shutting_down_) {
        NOC_WARN("vhost", "{}: refusing a front-end connection ({})", p_.name,
                 bdev_removed_ ? "the bdev was removed" : "one is already connected");
        ::close(fd);
        return;
    }
    conn_fd_ = fd;
    reader_.reset();
    reset_session_state();
    NOC_INFO("vhost", "{}: front-end connected on {}", p_.name, p_.socket_path);
    if (watch_) {
        watch_(listen_fd_, false);  // one front-end at a time; others wait in the backlog
        watch_(conn_fd_, true);
    }
}

void BlkController::reset_session_state() {
    features_ = protocol_features_ = 0;
    features_set_ = false;
    status_ = 0;
    writeback_ = true;
    mem_.reset();
    for (Vq& v : vqs_) {
        close_fd(&v.kick);
        close_fd(&v.call);
        v.num = 0;
        v.addr = {};
        v.addr_set = false;
        v.base = 0;
        v.kicked = v.enabled = false;
    }
    unmap_inflight();
    close_fd(&backend_fd_);
}

void BlkController::unmap_inflight() {
    if (inflight_map_) ::munmap(inflight_map_, inflight_size_);
    inflight_map_ = nullptr;
    inflight_size_ = 0;
    inflight_queue_size_ = inflight_queues_ = 0;
    close_fd(&inflight_fd_);
}

void BlkController::disconnect(const char* why) {
    if (closing_ || conn_fd_ < 0) return;
    NOC_INFO("vhost", "{}: front-end disconnected: {}", p_.name, why);
    if (!reading_paused_ && watch_) watch_(conn_fd_, false);
    reading_paused_ = false;
    closing_ = true;
    auto left = std::make_shared<size_t>(1);
    auto after = [this, left] {
        if (--*left) return;
        close_fd(&conn_fd_);
        reset_session_state();
        closing_ = false;
        if (bdev_removed_ && desc_) {
            bdev_close(desc_);
            desc_ = nullptr;
        }
        if (shutting_down_) {
            auto d = std::move(shutdown_done_);
            shutdown_done_ = nullptr;
            if (d) d();
        } else if (watch_ && listen_fd_ >= 0) {
            watch_(listen_fd_, true);
        }
    };
    for (uint32_t i = 0; i < vqs_.size(); ++i) {
        if (!vqs_[i].running) continue;
        ++*left;
        stop_queue(i, after);
    }
    after();
}

void BlkController::shutdown(std::function<void()> done) {
    shutting_down_ = true;
    if (listen_fd_ >= 0) {
        if (watch_) watch_(listen_fd_, false);
        close_fd(&listen_fd_);
        ::unlink(p_.socket_path.c_str());
    }
    if (conn_fd_ < 0) return done();
    shutdown_done_ = std::move(done);
    if (closing_) return;  // the disconnect in progress finishes the shutdown
    disconnect("the controller is being deleted");
}

void BlkController::set_coalescing(uint32_t delay_base_us, uint32_t iops_threshold) {
    coalescing_ = CoalescingConfig{delay_base_us, iops_threshold};
    // A step in progress restarts the queues with the new values anyway.
    if (conn_fd_ >= 0 && !closing_ && !reading_paused_) quiesce([] {});
}

void BlkController::info(std::function<void(ControllerInfo)> done) const {
    auto out = std::make_shared<ControllerInfo>();
    out->name = p_.name;
    out->socket_path = p_.socket_path;
    out->bdev_name = p_.bdev_name;
    out->cpumask = p_.cpumask;
    out->readonly = p_.readonly;
    out->num_queues = p_.num_queues;
    out->connected = conn_fd_ >= 0;
    out->bdev_removed = bdev_removed_;
    out->features = features_;
    out->protocol_features = protocol_features_;
    // Counters of every queue object the controller ever had (cumulative across sessions).
    std::vector<BlkQueue*> qs;
    for (const Vq& v : vqs_) {
        if (!v.q) continue;
        qs.push_back(v.q.get());
        if (v.running) out->queue_threads.emplace_back(v.q->index(), v.q->thread()->name());
    }
    for (const auto& q : retired_) qs.push_back(q.get());
    out->active_queues = uint32_t(out->queue_threads.size());
    // Each queue's counters are read on its own thread; the answers come back here.
    struct Gather {
        std::shared_ptr<ControllerInfo> info;
        size_t left;
        std::function<void(ControllerInfo)> done;
        void one_more() {
            if (--left == 0) done(std::move(*info));
        }
    };
    auto g = std::make_shared<Gather>(Gather{out, qs.size() + 1, std::move(done)});
    Thread* ctl = control_thread();
    for (BlkQueue* q : qs) {
        send_message(q->thread(), [q, g, ctl] {
            auto* copy = new QueueStats(q->stats());
            send_message(ctl, [g, copy] {
                g->info->stats += *copy;
                delete copy;
                g->one_more();
            });
        });
    }
    g->one_more();
}

}  // namespace nocstor::vhost
