#include "iscsi/poll_group.h"

#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "iscsi/conn.h"
#include "iscsi/target.h"
#include "runtime/reactor.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::iscsi_tgt {

namespace {
constexpr uint64_t kTimerPeriodUs = 500'000;
constexpr int kMaxEvents = 64;
}  // namespace

IscsiPollGroup::IscsiPollGroup(IscsiTarget* target, Thread* thread, uint32_t index,
                               BufferPool* pool)
    : target_(target),
      thread_(thread),
      index_(index),
      pool_(pool),
      snap_(std::make_shared<IscsiSnapshot>()),
      next_tsih_(uint16_t((index & 0x3f) << 10 | 1)) {}

IscsiPollGroup::~IscsiPollGroup() {
    if (epfd_ >= 0) ::close(epfd_);
}

void IscsiPollGroup::start() {
    cache_ = std::make_unique<BufferCache>(*pool_);
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    thread_->reactor()->add_interrupt_fd(epfd_, EPOLLIN);
    poller_ = thread_->register_poller("iscsi_poll_group", [this] { return poll(); });
    flusher_ = thread_->register_tail_poller("iscsi_flush", [this] { return flush_dirty(); });
    timer_ = thread_->register_poller(
        "iscsi_timers", [this] { return timer_poll(); }, kTimerPeriodUs);
}

void IscsiPollGroup::stop(std::function<void()> done) {
    stopping_ = true;
    stop_done_ = std::move(done);
    for (auto& [id, c] : conns_) c->close("target shutting down");
    apply(std::make_shared<IscsiSnapshot>());
    reap();
}

void IscsiPollGroup::add_connection(int fd, uint32_t listener_id) {
    if (stopping_) {
        ::close(fd);
        return;
    }
    const uint64_t id = (uint64_t{index_} << 48) | next_conn_id_++;
    auto c = std::make_unique<Conn>(this, fd, id, listener_id);
    Conn* p = c.get();
    conns_.emplace(id, std::move(c));
    ++stats_.accepted;
    load_.fetch_add(1, std::memory_order_relaxed);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = p;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) p->close("epoll_ctl failed");
}

void IscsiPollGroup::watch(Conn* c, bool want_write) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want_write ? uint32_t{EPOLLOUT} : 0u);
    ev.data.ptr = c;
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd(), &ev);
}

void IscsiPollGroup::mark_dirty(Conn* c) {
    if (std::find(dirty_.begin(), dirty_.end(), c) == dirty_.end()) dirty_.push_back(c);
}

int IscsiPollGroup::flush_dirty() {
    int work = 0;
    for (size_t i = 0; i < dirty_.size(); ++i) work += dirty_[i]->flush();
    dirty_.clear();
    return work;
}

int IscsiPollGroup::poll() {
    int work = 0;
    epoll_event evs[kMaxEvents];
    const int n = ::epoll_wait(epfd_, evs, kMaxEvents, 0);
    for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Conn*>(evs[i].data.ptr);
        if (c->closed()) continue;
        if (evs[i].events & EPOLLOUT) c->on_writable();
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
            work += c->on_readable() + 1;
        }
    }
    for (auto& [id, c] : conns_) {
        if (c->blocked() && !c->closed()) {
            const int w = c->retry_blocked();
            // Input that waited in the socket while the connection was blocked.
            if (w && !c->blocked()) c->on_readable();
            work += w;
        }
    }
    work += flush_dirty();
    reap();
    return work;
}

int IscsiPollGroup::timer_poll() {
    const uint64_t now = now_ns();
    for (auto& [id, c] : conns_) c->on_timer(now);
    reap();
    return 0;
}

void IscsiPollGroup::reap() {
    for (auto it = conns_.begin(); it != conns_.end();) {
        Conn* c = it->second.get();
        if (!c->reapable()) {
            ++it;
            continue;
        }
        dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), c), dirty_.end());
        if (c->fd() >= 0) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd(), nullptr);
        it = conns_.erase(it);
        load_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (stopping_ && conns_.empty() && stop_done_) {
        for (auto it = luns_.begin(); it != luns_.end();) {
            if (it->second->inflight == 0) {
                if (it->second->ch) bdev_put_io_channel(it->second->ch);
                it = luns_.erase(it);
            } else {
                ++it;
            }
        }
        if (!luns_.empty()) return;
        if (poller_) thread_->unregister_poller(poller_);
        if (flusher_) thread_->unregister_poller(flusher_);
        if (timer_) thread_->unregister_poller(timer_);
        poller_ = flusher_ = timer_ = nullptr;
        thread_->reactor()->remove_interrupt_fd(epfd_);
        cache_.reset();
        auto done = std::move(stop_done_);
        stop_done_ = nullptr;
        done();
    }
}

void IscsiPollGroup::apply(std::shared_ptr<const IscsiSnapshot> snap) {
    snap_ = std::move(snap);
    // LUNs no longer in any target: released once idle.
    for (auto it = luns_.begin(); it != luns_.end();) {
        bool present = false;
        for (const auto& t : snap_->targets)
            for (const auto& l : t->luns) present |= l.get() == it->first;
        PgLun* pl = it->second.get();
        if (present) {
            ++it;
            continue;
        }
        pl->removed = true;
        if (pl->inflight == 0) {
            if (pl->ch) bdev_put_io_channel(pl->ch);
            it = luns_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& [id, c] : conns_) c->on_snapshot();
}

std::shared_ptr<const TargetNode> IscsiPollGroup::find_target(std::string_view name) const {
    for (const auto& t : snap_->targets)
        if (strcasecmp(t->name.c_str(), std::string(name).c_str()) == 0) return t;
    return nullptr;
}

PgLun* IscsiPollGroup::lun(const std::shared_ptr<const scsi::Lun>& l) {
    auto& slot = luns_[l.get()];
    if (!slot) {
        slot = std::make_unique<PgLun>();
        slot->lun = l;
        slot->ch = bdev_get_io_channel(l->desc);
    }
    return slot->ch ? slot.get() : nullptr;
}

void IscsiPollGroup::lun_io_done(PgLun* l) {
    if (--l->inflight > 0 || !l->removed) return;
    auto it = luns_.find(l->lun.get());
    if (it == luns_.end()) return;
    if (l->ch) bdev_put_io_channel(l->ch);
    luns_.erase(it);
}

uint16_t IscsiPollGroup::alloc_tsih() {
    // 6 bits of poll group, 10 of counter; never 0.
    uint16_t v = next_tsih_;
    uint16_t low = uint16_t((v & 0x3ff) + 1);
    if (low > 0x3ff) low = 1;
    next_tsih_ = uint16_t((v & 0xfc00) | low);
    return v;
}

void IscsiPollGroup::reinstate(const std::string& initiator, const std::string& isid,
                               const std::string& target, uint64_t keep) {
    for (auto& [id, c] : conns_) {
        if (id == keep || c->closed() || c->phase() != ConnPhase::FullFeature) continue;
        if (c->discovery() || c->initiator_name() != initiator || c->target_name() != target)
            continue;
        if (std::memcmp(c->isid(), isid.data(), 6) != 0) continue;
        c->close("session reinstated by a new login");
    }
}

}  // namespace nocstor::iscsi_tgt
