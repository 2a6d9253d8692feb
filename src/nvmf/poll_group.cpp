#include "nvmf/poll_group.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "nvmf/controller.h"
#include "nvmf/limits.h"
#include "nvmf/target.h"
#include "nvmf/tcp_conn.h"
#include "runtime/reactor.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::nvmf {

namespace {
constexpr uint64_t kTimerPeriodUs = 50'000;
constexpr int kMaxEvents = 64;
constexpr unsigned kUringEntries = 1024;  // SQ size; the CQ is twice that
}  // namespace

PollGroup::PollGroup(NvmfTarget* target, Thread* thread, uint32_t index, uint16_t cntlid_first,
                     uint16_t cntlid_last, BufferPool* pool, SockImpl sock_impl)
    : target_(target),
      thread_(thread),
      index_(index),
      cntlid_first_(cntlid_first),
      cntlid_last_(cntlid_last),
      cntlid_next_(cntlid_first),
      pool_(pool),
      want_sock_impl_(sock_impl),
      snap_(std::make_shared<TargetSnapshot>()),
      small_size_(pool->buffer_size(BufClass::Small)) {}

PollGroup::~PollGroup() {
    if (epfd_ >= 0) ::close(epfd_);
}

void PollGroup::start() {
    cache_ = std::make_unique<BufferCache>(*pool_);
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    // The reactor sleeps on our epoll set: any socket event makes it readable (level), so a
    // sleeping reactor wakes up and the poller below picks the events up.
    thread_->reactor()->add_interrupt_fd(epfd_, EPOLLIN);
    if (want_sock_impl_ == SockImpl::kUring) {
        auto u = std::make_unique<UringSock>();
        std::string err;
        if (u->init(kUringEntries, &err) == 0) {
            uring_ = std::move(u);
        } else {
            u->shutdown();
            NOC_WARN("nvmf", "poll group {}: io_uring sockets unavailable ({}), using epoll",
                     index_, err);
        }
    }
    poller_ = thread_->register_poller("nvmf_poll_group", [this] { return poll(); });
    flusher_ = thread_->register_tail_poller("nvmf_flush", [this] { return flush_dirty(); });
    timer_ = thread_->register_poller(
        "nvmf_timers", [this] { return timer_poll(); }, kTimerPeriodUs);
}

void PollGroup::stop(std::function<void()> done) {
    stopping_ = true;
    stop_done_ = std::move(done);
    for (auto& [id, c] : conns_) c->close("target shutting down");
    // Drop the namespace tables: subsystems vanish from an empty snapshot.
    auto empty = std::make_shared<TargetSnapshot>();
    empty->genctr = snap_->genctr;
    apply(empty);
    reap();
}

// The TLS PSK for a client's identity "NVMe0R0c <hostnqn> <subnqn>": the host must be allowed
// on that subsystem through this listener and have a PSK there (nvmf_subsystem_add_host {psk}).
std::vector<uint8_t> PollGroup::tls_psk_for(uint32_t listener_id, std::string_view identity,
                                            security::TlsCipher cipher) const {
    security::TlsCipher offered;
    std::string host, sub;
    if (!security::parse_psk_identity(identity, &offered, &host, &sub)) return {};
    const SubsystemInfo* s = snap_->find(sub);
    if (!s || !s->listener_allowed(listener_id) || !s->host_allowed(host)) return {};
    const auto keys = s->keys_of(host);
    if (!keys || !keys->psk) return {};
    std::vector<uint8_t> retained = security::retained_psk(*keys->psk, host);
    std::vector<uint8_t> psk = security::derive_tls_psk(retained, cipher, identity);
    security::wipe(retained);
    return psk;
}

void PollGroup::add_connection(int fd, uint32_t listener_id, bool secure) {
    if (stopping_) {
        ::close(fd);
        return;
    }
    make_room_for_unconnected();
    const uint64_t id = (uint64_t{index_} << 48) | next_conn_id_++;
    auto c = std::make_unique<TcpConn>(this, fd, id, listener_id);
    TcpConn* p = c.get();
    conns_.emplace(id, std::move(c));
    ++stats_.accepted;
    ++stats_.connections;
    load_.fetch_add(1, std::memory_order_relaxed);
    if (secure) {
        std::string err;
        auto tls = security::TlsSession::server(
            [this, listener_id](std::string_view identity, security::TlsCipher cipher) {
                return tls_psk_for(listener_id, identity, cipher);
            },
            &err);
        if (!tls) {
            NOC_ERROR("nvmf", "conn {}: {}", id, err);
            p->close("no TLS session");
            return;
        }
        p->use_tls(std::move(tls));
        ++tls_conns_;
    }
    if (uring_ && !secure) {
        uring_->add(p);
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = p;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        p->close("epoll_ctl failed");
    }
}

void PollGroup::watch(TcpConn* c, bool want_write) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want_write ? uint32_t{EPOLLOUT} : 0u);
    ev.data.ptr = c;
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd(), &ev);
}

void PollGroup::unwatch(TcpConn* c) {
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd(), nullptr);
}

void PollGroup::mark_dirty(TcpConn* c) {
    if (std::find(dirty_.begin(), dirty_.end(), c) == dirty_.end()) dirty_.push_back(c);
}

TcpConn* PollGroup::find_conn(uint64_t id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : it->second.get();
}

int PollGroup::poll() {
    int work = 0;
    epoll_event evs[kMaxEvents];
    // With io_uring only TLS connections are on epoll.
    const int n = uring_ && tls_conns_ == 0 ? 0 : ::epoll_wait(epfd_, evs, kMaxEvents, 0);
    if (uring_) work += uring_->poll();
    for (int i = 0; i < n; ++i) {
        auto* c = static_cast<TcpConn*>(evs[i].data.ptr);
        if (c->closed()) continue;
        if (evs[i].events & EPOLLOUT) c->on_writable();
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
            work += c->on_readable() + 1;
        }
    }
    for (auto& [id, c] : conns_) {
        if (c->has_waiting() && !c->closed()) c->retry_waiting();
    }
    work += flush_dirty();
    reap();
    return work;
}

// Gather sends: everything queued since the last flush goes out in one sendmsg (or one
// io_uring SENDMSG) per connection. Runs at the end of the socket poller and again as the
// thread's tail poller, so that responses of bdev completions delivered later in the same pass
// (malloc, null, messages) leave in this pass rather than the next.
int PollGroup::flush_dirty() {
    int work = 0;
    for (size_t i = 0; i < dirty_.size(); ++i) {
        TcpConn* c = dirty_[i];
        if (!c->closed()) work += c->flush();
    }
    dirty_.clear();
    if (uring_) uring_->submit();  // this pass's sends and receives in one io_uring_enter
    return work;
}

int PollGroup::timer_poll() {
    const uint64_t now = now_ns();
    std::vector<Controller*> expired;
    for (auto& [cntlid, ctrl] : ctrlrs_) {
        if (ctrl->kato_expired(now)) expired.push_back(ctrl);
    }
    for (Controller* ctrl : expired) {
        NOC_WARN("nvmf", "controller {} ({}): keep-alive timeout ({} ms), tearing it down",
                 ctrl->cntlid(), ctrl->subnqn(), ctrl->kato_ms());
        ++stats_.kato_expired;
        ctrl->admin()->close("keep-alive timeout");
    }
    const NvmfTargetOptions& o = target_->options();
    const uint64_t icreq_ns = uint64_t{o.icreq_timeout_ms} * 1'000'000;
    const uint64_t connect_ns = uint64_t{o.connect_timeout_ms} * 1'000'000;
    for (auto& [id, c] : conns_) {
        if (c->closed()) continue;
        if (c->draining() && now > c->drain_deadline_ns()) {
            c->close("terminated");
        } else if (!c->icreq_received() && icreq_ns != 0 && now - c->created_ns() > icreq_ns) {
            ++stats_.icreq_timeouts;
            c->close("no ICReq in time");
        } else if (!c->connected() && connect_ns != 0 && now - c->created_ns() > connect_ns) {
            ++stats_.connect_timeouts;
            c->close("no Connect in time");
        } else if (c->auth_pending() && connect_ns != 0 &&
                   now - c->auth_started_ns() > connect_ns) {
            // A host that stops half-way through (or keeps a failed queue open) holds a
            // queue that can do nothing: the same deadline as for Connect.
            ++stats_.auth_timeouts;
            c->close("DH-HMAC-CHAP not completed in time");
        }
    }
    reap();
    return static_cast<int>(expired.size());
}

uint64_t PollGroup::unconnected_count() const {
    uint64_t n = 0;
    for (const auto& [id, c] : conns_) n += !c->closed() && !c->connected();
    return n;
}

void PollGroup::make_room_for_unconnected() {
    const uint32_t total = target_->options().max_unconnected;
    if (total == 0) return;
    const size_t groups = std::max<size_t>(1, target_->poll_groups().size());
    const uint64_t cap = std::max<uint64_t>(1, (total + groups - 1) / groups);
    if (unconnected_count() < cap) return;
    TcpConn* victim = nullptr;
    for (const auto& [id, c] : conns_) {
        if (c->closed() || c->connected()) continue;
        // Prefer a socket that never spoke (no ICReq) over one in the middle of its handshake.
        const bool better = !victim || (!c->icreq_received() && victim->icreq_received()) ||
                            (c->icreq_received() == victim->icreq_received() &&
                             c->created_ns() < victim->created_ns());
        if (better) victim = c.get();
    }
    if (!victim) return;
    ++stats_.unconnected_evicted;
    NOC_DEBUG("nvmf", "poll group {}: {} connections without Connect (cap {}), closing conn {}",
              index_, cap, cap, victim->id());
    victim->close("too many connections without Connect");
}

void PollGroup::reap() {
    for (auto it = conns_.begin(); it != conns_.end();) {
        if (it->second->reapable()) {
            TcpConn* c = it->second.get();
            if (c->tls()) --tls_conns_;
            dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), c), dirty_.end());
            it = conns_.erase(it);
            --stats_.connections;
            load_.fetch_sub(1, std::memory_order_relaxed);
        } else {
            ++it;
        }
    }
    if (stopping_ && conns_.empty() && stop_done_) {
        auto done = std::move(stop_done_);
        stop_done_ = nullptr;
        if (poller_) thread_->unregister_poller(poller_);
        if (timer_) thread_->unregister_poller(timer_);
        if (flusher_) thread_->unregister_poller(flusher_);
        poller_ = timer_ = flusher_ = nullptr;
        thread_->reactor()->remove_interrupt_fd(epfd_);
        if (uring_) uring_->shutdown();
        cache_->flush();
        done();
    }
}

void PollGroup::conn_closed(TcpConn* c) {
    if (Controller* ctrl = c->ctrl()) {
        c->detach_ctrl();
        remove_controller(ctrl);
        NOC_INFO("nvmf", "controller {} ({}) destroyed", ctrl->cntlid(), ctrl->subnqn());
        delete ctrl;
    } else if (c->connected() && c->qid() != 0) {
        PollGroup* owner = target_->owner_of_cntlid(c->cntlid());
        if (owner) {
            const uint16_t cntlid = c->cntlid(), qid = c->qid();
            const uint64_t id = c->id();
            owner->thread()->send([owner, cntlid, qid, id] {
                if (Controller* ctrl = owner->find_controller(cntlid))
                    ctrl->remove_io_queue(qid, id);
            });
        }
    }
    c->detach_subsys();
}

// ---------------------------------------------------------------------------------------------
// Controllers
// ---------------------------------------------------------------------------------------------

uint16_t PollGroup::alloc_cntlid() {
    const uint32_t span = uint32_t{cntlid_last_} - cntlid_first_ + 1;
    for (uint32_t i = 0; i < span; ++i) {
        const uint16_t id = cntlid_next_;
        cntlid_next_ = cntlid_next_ == cntlid_last_ ? cntlid_first_ : cntlid_next_ + 1;
        if (!ctrlrs_.count(id)) return id;
    }
    return 0;
}

void PollGroup::add_controller(Controller* c) {
    ctrlrs_[c->cntlid()] = c;
}

void PollGroup::remove_controller(Controller* c) {
    auto it = ctrlrs_.find(c->cntlid());
    if (it != ctrlrs_.end() && it->second == c) ctrlrs_.erase(it);
}

Controller* PollGroup::find_controller(uint16_t cntlid) {
    auto it = ctrlrs_.find(cntlid);
    return it == ctrlrs_.end() ? nullptr : it->second;
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

PgSubsystem* PollGroup::find_subsystem(std::string_view nqn) {
    auto it = subsystems_.find(nqn);
    return it == subsystems_.end() ? nullptr : it->second.get();
}

void PollGroup::apply(std::shared_ptr<const TargetSnapshot> snap) {
    const bool genctr_changed = snap->genctr != snap_->genctr;
    // Subsystems that disappeared: their connections go first, then their tables.
    for (auto it = subsystems_.begin(); it != subsystems_.end();) {
        if (snap->find(it->first)) {
            ++it;
            continue;
        }
        PgSubsystem* s = it->second.get();
        for (auto& [id, c] : conns_) {
            if (c->subsys() == s) c->close("subsystem deleted");
        }
        for (PgNamespace* ns : s->ns) {
            if (ns) retire_ns(ns);
        }
        it = subsystems_.erase(it);
    }
    for (const auto& info : snap->subsystems) {
        auto& slot = subsystems_[info->nqn];
        if (!slot) slot = std::make_unique<PgSubsystem>();
        PgSubsystem* s = slot.get();
        s->info = info;
        std::vector<PgNamespace*> table(info->max_namespaces, nullptr);
        std::vector<uint32_t> changed;
        for (const auto& nsi : info->namespaces) {
            if (nsi->nsid == 0 || nsi->nsid > table.size()) continue;
            PgNamespace* old = s->find_ns(nsi->nsid);
            if (old && old->info == nsi) {
                table[nsi->nsid - 1] = old;
                continue;
            }
            auto* ns = new PgNamespace{nsi, bdev_get_io_channel(nsi->desc), 0, false};
            table[nsi->nsid - 1] = ns;
            changed.push_back(nsi->nsid);
        }
        for (size_t i = 0; i < s->ns.size(); ++i) {
            PgNamespace* old = s->ns[i];
            if (!old) continue;
            if (i < table.size() && table[i] == old) continue;
            if (std::find(changed.begin(), changed.end(), i + 1) == changed.end()) {
                changed.push_back(static_cast<uint32_t>(i + 1));
            }
            retire_ns(old);
        }
        s->ns = std::move(table);
        for (uint32_t nsid : changed) {
            for (Controller* c : s->ctrlrs) c->ns_changed(nsid);
        }
    }
    snap_ = std::move(snap);
    if (genctr_changed) {
        for (auto& [cntlid, c] : ctrlrs_) {
            if (c->discovery()) c->discovery_changed();
        }
    }
}

void PollGroup::retire_ns(PgNamespace* ns) {
    ns->removed = true;
    if (ns->inflight == 0) destroy_ns(ns);
}

void PollGroup::ns_idle(PgNamespace* ns) {
    destroy_ns(ns);
}

void PollGroup::destroy_ns(PgNamespace* ns) {
    if (ns->ch) bdev_put_io_channel(ns->ch);
    delete ns;  // drops this thread's reference to the NamespaceInfo (and maybe the bdev)
}

}  // namespace nocstor::nvmf
