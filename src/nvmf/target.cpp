#include "nvmf/target.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "nvmf/controller.h"
#include "nvmf/nqn.h"
#include "nvmf/poll_group.h"
#include "nvmf/tcp_conn.h"
#include "nvmf/tcp_listener.h"
#include "util/log.h"

namespace nocstor::nvmf {

namespace {
std::atomic<NvmfTarget*> g_instance{nullptr};
constexpr uint16_t kCntlidMax = 0xFFEF;

Thread* control_thread() {
    Runtime* rt = Runtime::instance();
    return rt ? rt->control_thread() : Thread::current();
}

// Stable per-namespace identity when the bdev has no UUID: FNV-1a of subsystem and bdev name.
Uuid derive_uuid(const std::string& nqn, const std::string& bdev) {
    Uuid u{};
    uint64_t h1 = 1469598103934665603ull, h2 = 1099511628211ull;
    for (char c : nqn + "/" + bdev) {
        h1 = (h1 ^ static_cast<uint8_t>(c)) * 1099511628211ull;
        h2 = (h2 ^ static_cast<uint8_t>(c)) * 1469598103934665603ull;
    }
    std::memcpy(u.data(), &h1, 8);
    std::memcpy(u.data() + 8, &h2, 8);
    u[6] = static_cast<uint8_t>((u[6] & 0x0F) | 0x50);
    u[8] = static_cast<uint8_t>((u[8] & 0x3F) | 0x80);
    return u;
}
}  // namespace

NvmfTarget::NvmfTarget(NvmfTargetOptions opts) : opts_(std::move(opts)) {}

NvmfTarget::~NvmfTarget() {
    NvmfTarget* self = this;
    g_instance.compare_exchange_strong(self, nullptr);
    listeners_.clear();
    pgs_.clear();  // their buffer caches flush into the pool, which must still exist
}

NvmfTarget* NvmfTarget::instance() {
    return g_instance.load();
}

void NvmfTarget::start(std::function<void()> done) {
    threads_ = opts_.threads.empty() ? Runtime::instance()->data_threads() : opts_.threads;
    if (!opts_.pool_of) {
        const size_t bytes = BufferPool::bytes_needed(opts_.buffers);
        pool_mem_ = std::unique_ptr<std::byte[], void (*)(std::byte*)>(
            static_cast<std::byte*>(std::aligned_alloc(BufferPool::kAlign, bytes)),
            [](std::byte* p) { std::free(p); });
        own_pool_ = BufferPool::create(pool_mem_.get(), 0, opts_.buffers);
    }
    // Disjoint CNTLID ranges per poll group: unique without coordination, and the owner of a
    // CNTLID (for I/O queue Connects) follows from the number alone.
    const uint32_t n = static_cast<uint32_t>(threads_.size());
    const uint32_t span = kCntlidMax / std::max<uint32_t>(n, 1);
    for (uint32_t i = 0; i < n; ++i) {
        const auto first = static_cast<uint16_t>(1 + i * span);
        const auto last = static_cast<uint16_t>(first + span - 1);
        BufferPool* pool = opts_.pool_of ? opts_.pool_of(threads_[i]->cluster_id()) : &own_pool_;
        pgs_.push_back(
            std::make_unique<PollGroup>(this, threads_[i], i, first, last, pool, opts_.sock_impl));
    }
    started_ = true;
    g_instance.store(this);
    NOC_INFO("nvmf", "{} poll group(s), sockets driven by {}", n, sock_impl_name(opts_.sock_impl));
    run_on_threads(
        threads_, [this](Thread* t) { poll_group_of(t)->start(); },
        [done = std::move(done)] { done(); });
}

PollGroup* NvmfTarget::poll_group_of(Thread* t) const {
    for (const auto& pg : pgs_) {
        if (pg->thread() == t) return pg.get();
    }
    return nullptr;
}

PollGroup* NvmfTarget::owner_of_cntlid(uint16_t cntlid) const {
    for (const auto& pg : pgs_) {
        if (pg->owns_cntlid(cntlid)) return pg.get();
    }
    return nullptr;
}

PollGroup* NvmfTarget::pick_poll_group(int cluster) {
    PollGroup* best = nullptr;
    const size_t n = pgs_.size();
    for (size_t k = 0; k < n; ++k) {  // least loaded; ties go round-robin
        const size_t i = (rr_ + k) % n;
        if (cluster >= 0 && threads_[i]->cluster_id() != cluster) continue;
        PollGroup* pg = pgs_[i].get();
        if (!best || pg->load() < best->load()) best = pg;
    }
    if (!best && cluster >= 0) return pick_poll_group(-1);  // checked when bound: not reached
    rr_ = (rr_ + 1) % std::max<size_t>(n, 1);
    return best;
}

int NvmfTarget::namespace_owner_cluster(uint32_t listener_id) const {
    int owner = -1;
    for (const auto& [key, l] : listeners_) {
        if (l.id != listener_id) continue;
        for (const std::string& nqn : l.users) {
            auto s = subsystems_.find(nqn);
            if (s == subsystems_.end()) continue;  // the discovery subsystem: no namespaces
            for (const auto& [nsid, ns] : s->second.namespaces) {
                const Bdev* b = bdev_get_by_name(ns->bdev_name);
                if (!b || b->cluster < 0) return -1;
                if (owner >= 0 && b->cluster != owner) return -1;  // spread over clusters
                owner = b->cluster;
            }
        }
    }
    if (owner >= 0 && std::none_of(threads_.begin(), threads_.end(),
                                   [&](Thread* t) { return t->cluster_id() == owner; }))
        return -1;
    return owner;
}

NvmfTarget::Subsys* NvmfTarget::find(const std::string& nqn) {
    auto it = subsystems_.find(nqn);
    return it == subsystems_.end() ? nullptr : &it->second;
}

std::shared_ptr<const TargetSnapshot> NvmfTarget::build_snapshot() {
    auto snap = std::make_shared<TargetSnapshot>();
    snap->genctr = ++genctr_;
    for (const auto& [key, l] : listeners_)
        snap->listeners.push_back({l.id, l.sock->addr(), l.sock->secure()});
    for (const auto& [nqn, s] : subsystems_) {
        auto info = std::make_shared<SubsystemInfo>();
        info->nqn = nqn;
        info->serial = s.params.serial;
        info->model = s.params.model;
        info->max_namespaces = s.params.max_namespaces;
        info->allow_any_host = s.params.allow_any_host;
        info->hosts = s.params.hosts;
        for (const auto& [h, k] : s.params.host_keys) info->host_keys.emplace_back(h, k);
        for (const auto& key : s.listeners) {
            auto it = listeners_.find(key);
            if (it != listeners_.end()) info->listener_ids.push_back(it->second.id);
        }
        for (const auto& [nsid, ns] : s.namespaces) info->namespaces.push_back(ns);
        snap->subsystems.push_back(std::move(info));
    }
    auto disc = std::make_shared<SubsystemInfo>();
    disc->nqn = nvme::kDiscoveryNqn;
    disc->allow_any_host = true;
    for (const auto& [h, k] : discovery_keys_) disc->host_keys.emplace_back(h, k);
    snap->discovery = std::move(disc);
    return snap;
}

void NvmfTarget::publish(std::function<void()> done) {
    auto snap = build_snapshot();
    if (!started_) {
        done();
        return;
    }
    run_on_threads(
        threads_, [this, snap](Thread* t) { poll_group_of(t)->apply(snap); }, std::move(done));
}

// ---------------------------------------------------------------------------------------------
// Subsystems
// ---------------------------------------------------------------------------------------------

void NvmfTarget::create_subsystem(const SubsystemParams& p, DoneFn done) {
    std::string err;
    if (p.nqn == nvme::kDiscoveryNqn) return done(-EINVAL, "the discovery subsystem is built in");
    if (!nqn_valid(p.nqn, &err)) return done(-EINVAL, err);
    if (find(p.nqn)) return done(-EEXIST, "subsystem " + p.nqn + " exists");
    if (p.serial.empty() || p.serial.size() > 20) return done(-EINVAL, "serial must be 1-20 chars");
    if (p.model.empty() || p.model.size() > 40) return done(-EINVAL, "model must be 1-40 chars");
    if (p.max_namespaces == 0 || p.max_namespaces > 1024) {
        return done(-EINVAL, "max_namespaces must be 1-1024");
    }
    for (const auto& h : p.hosts) {
        if (!nqn_valid(h, &err)) return done(-EINVAL, "host " + h + ": " + err);
    }
    subsystems_[p.nqn].params = p;
    NOC_INFO("nvmf", "subsystem {} created", p.nqn);
    publish([done = std::move(done)] { done(0, ""); });
}

void NvmfTarget::delete_subsystem(const std::string& nqn, DoneFn done) {
    Subsys* s = find(nqn);
    if (!s) return done(-ENOENT, "no subsystem " + nqn);
    for (const auto& key : s->listeners) {
        auto it = listeners_.find(key);
        if (it == listeners_.end()) continue;
        auto& users = it->second.users;
        users.erase(std::remove(users.begin(), users.end(), nqn), users.end());
        if (users.empty()) listeners_.erase(it);
    }
    subsystems_.erase(nqn);
    NOC_INFO("nvmf", "subsystem {} deleted", nqn);
    publish([done = std::move(done)] { done(0, ""); });
}

void NvmfTarget::add_namespace(const std::string& nqn, const NamespaceParams& p,
                               std::function<void(int, std::string, uint32_t)> done) {
    Subsys* s = find(nqn);
    if (!s) return done(-ENOENT, "no subsystem " + nqn, 0);
    uint32_t nsid = p.nsid;
    if (nsid == 0) {
        for (uint32_t i = 1; i <= s->params.max_namespaces; ++i) {
            if (!s->namespaces.count(i)) {
                nsid = i;
                break;
            }
        }
        if (nsid == 0) return done(-ENOSPC, "no free namespace ID", 0);
    } else if (nsid > s->params.max_namespaces || nsid == 0xFFFFFFFF) {
        return done(-EINVAL, "NSID out of range", 0);
    } else if (s->namespaces.count(nsid)) {
        return done(-EEXIST, "NSID " + std::to_string(nsid) + " in use", 0);
    }
    for (const auto& [id, ns] : s->namespaces) {
        if (ns->bdev_name == p.bdev_name) return done(-EEXIST, "bdev already in " + nqn, 0);
    }
    BdevDesc* desc = nullptr;
    const int rc = bdev_open(
        p.bdev_name, true,
        [this, nqn, nsid](BdevEvent ev, Bdev*) {
            if (ev == BdevEvent::Remove) {
                NOC_INFO("nvmf", "bdev of {} NSID {} is going away", nqn, nsid);
                remove_namespace(nqn, nsid, [](int, std::string) {});
            } else if (ev == BdevEvent::Resize) {
                namespace_resized(nqn, nsid);
            }
        },
        &desc);
    if (rc != 0) return done(rc, "cannot open bdev " + p.bdev_name, 0);
    Bdev* b = desc->bdev();
    auto info = std::make_shared<NamespaceInfo>();
    info->nsid = nsid;
    info->bdev_name = p.bdev_name;
    info->desc = desc;
    // The last holder (a poll group or the master copy) closes the descriptor on the control
    // thread, after every poll group has put its channel.
    info->desc_guard = std::shared_ptr<const void>(
        static_cast<const void*>(desc), [ctl = control_thread()](const void* d) {
            ctl->send([d] { bdev_close(static_cast<BdevDesc*>(const_cast<void*>(d))); });
        });
    info->uuid = p.uuid ? *p.uuid : b->uuid;
    if (info->uuid == Uuid{}) info->uuid = derive_uuid(nqn, p.bdev_name);
    info->block_size = b->block_size;
    info->num_blocks = b->num_blocks;
    info->write_cache = b->write_cache;
    s->namespaces[nsid] = std::move(info);
    NOC_INFO("nvmf", "{}: namespace {} = bdev {}", nqn, nsid, p.bdev_name);
    publish([done = std::move(done), nsid] { done(0, "", nsid); });
}

// The namespace's bdev changed size: a new NamespaceInfo with the new size (same descriptor)
// replaces the old one; poll groups pick it up and raise Namespace Attribute Changed AENs.
void NvmfTarget::namespace_resized(const std::string& nqn, uint32_t nsid) {
    Subsys* s = find(nqn);
    if (!s) return;
    auto it = s->namespaces.find(nsid);
    if (it == s->namespaces.end()) return;
    const uint64_t blocks = it->second->desc->bdev()->num_blocks;
    if (blocks == it->second->num_blocks) return;
    auto resized = std::make_shared<NamespaceInfo>(*it->second);
    resized->num_blocks = blocks;
    NOC_INFO("nvmf", "{}: namespace {} now has {} blocks", nqn, nsid, blocks);
    it->second = std::move(resized);
    publish([] {});
}

void NvmfTarget::remove_namespace(const std::string& nqn, uint32_t nsid, DoneFn done) {
    Subsys* s = find(nqn);
    if (!s) return done(-ENOENT, "no subsystem " + nqn);
    if (!s->namespaces.erase(nsid)) return done(-ENOENT, "no namespace " + std::to_string(nsid));
    publish([done = std::move(done)] { done(0, ""); });
}

// ---------------------------------------------------------------------------------------------
// Listeners and hosts
// ---------------------------------------------------------------------------------------------

void NvmfTarget::add_listener(const std::string& nqn, const ListenAddress& addr, DoneFn done,
                              int cluster, bool secure) {
    const bool disc = nqn == nvme::kDiscoveryNqn;
    Subsys* s = disc ? nullptr : find(nqn);
    if (!disc && !s) return done(-ENOENT, "no subsystem " + nqn);
    if (cluster >= 0 && std::none_of(threads_.begin(), threads_.end(),
                                     [&](Thread* t) { return t->cluster_id() == cluster; }))
        return done(-EINVAL, "cluster " + std::to_string(cluster) + " runs no NVMe/TCP poll group");
    const std::string key = addr.to_string();
    auto it = listeners_.find(key);
    if (it != listeners_.end() && cluster >= 0 && it->second.cluster != cluster)
        return done(-EINVAL, key + " is already open" +
                                 (it->second.cluster >= 0
                                      ? " bound to cluster " + std::to_string(it->second.cluster)
                                      : " for every cluster"));
    if (it != listeners_.end() && it->second.sock->secure() != secure)
        return done(-EINVAL, key + " is already open " + (secure ? "without" : "with") +
                                 " a secure channel (secure_channel must be the same for every "
                                 "subsystem on one address)");
    if (secure && disc)
        return done(-EINVAL, "the discovery subsystem cannot use a secure channel listener");
    if (it == listeners_.end()) {
        Listener l;
        l.id = next_listener_id_++;
        l.cluster = cluster;
        l.sock = std::make_unique<TcpListener>(this, addr, l.id, cluster, secure);
        std::string err;
        const int rc = l.sock->open(&err);
        if (rc != 0) return done(rc, err);
        it = listeners_.emplace(key, std::move(l)).first;
    }
    auto& users = it->second.users;
    if (std::find(users.begin(), users.end(), nqn) != users.end()) {
        return done(-EEXIST, nqn + " already listens on " + key);
    }
    users.push_back(nqn);
    if (s) s->listeners.push_back(key);
    publish([done = std::move(done)] { done(0, ""); });
}

bool NvmfTarget::listener_secure(const ListenAddress& addr) const {
    auto it = listeners_.find(addr.to_string());
    return it != listeners_.end() && it->second.sock->secure();
}

int NvmfTarget::listener_cluster(const ListenAddress& addr) const {
    auto it = listeners_.find(addr.to_string());
    return it == listeners_.end() ? -1 : it->second.cluster;
}

void NvmfTarget::remove_listener(const std::string& nqn, const ListenAddress& addr, DoneFn done) {
    const std::string key = addr.to_string();
    auto it = listeners_.find(key);
    if (it == listeners_.end()) return done(-ENOENT, "no listener " + key);
    auto& users = it->second.users;
    auto u = std::find(users.begin(), users.end(), nqn);
    if (u == users.end()) return done(-ENOENT, nqn + " does not listen on " + key);
    users.erase(u);
    if (Subsys* s = find(nqn)) {
        s->listeners.erase(std::remove(s->listeners.begin(), s->listeners.end(), key),
                           s->listeners.end());
    }
    // Established connections stay; new ones are refused once no one uses the address.
    if (users.empty()) listeners_.erase(it);
    publish([done = std::move(done)] { done(0, ""); });
}

void NvmfTarget::add_host(const std::string& nqn, const std::string& hostnqn,
                          std::shared_ptr<const HostKeys> keys, DoneFn done) {
    if (nqn == nvme::kDiscoveryNqn) {  // only hosts that must authenticate to discover
        std::string err;
        if (!nqn_valid(hostnqn, &err)) return done(-EINVAL, err);
        if (!keys || !keys->dhchap())
            return done(-EINVAL,
                        "every host may use the discovery controller: a host added to it needs "
                        "a dhchap_key, which it must then authenticate with");
        if (keys->psk)
            return done(-EINVAL, "the discovery controller is not served over TLS: no psk here");
        if (discovery_keys_.count(hostnqn)) return done(-EEXIST, "host exists");
        discovery_keys_[hostnqn] = std::move(keys);
        return publish([done = std::move(done)] { done(0, ""); });
    }
    Subsys* s = find(nqn);
    if (!s) return done(-ENOENT, "no subsystem " + nqn);
    std::string err;
    if (!nqn_valid(hostnqn, &err)) return done(-EINVAL, err);
    auto& h = s->params.hosts;
    if (std::find(h.begin(), h.end(), hostnqn) != h.end()) return done(-EEXIST, "host exists");
    h.push_back(hostnqn);
    if (keys) s->params.host_keys[hostnqn] = std::move(keys);
    publish([done = std::move(done)] { done(0, ""); });
}

void NvmfTarget::remove_host(const std::string& nqn, const std::string& hostnqn, DoneFn done) {
    if (nqn == nvme::kDiscoveryNqn) {
        if (!discovery_keys_.erase(hostnqn)) return done(-ENOENT, "no host " + hostnqn);
        return publish([done = std::move(done)] { done(0, ""); });
    }
    Subsys* s = find(nqn);
    if (!s) return done(-ENOENT, "no subsystem " + nqn);
    auto& h = s->params.hosts;
    auto it = std::find(h.begin(), h.end(), hostnqn);
    if (it == h.end()) return done(-ENOENT, "no host " + hostnqn);
    h.erase(it);
    s->params.host_keys.erase(hostnqn);
    publish([done = std::move(done)] { done(0, ""); });
}

void NvmfTarget::set_allow_any_host(const std::string& nqn, bool allow, DoneFn done) {
    Subsys* s = find(nqn);
    if (!s) return done(-ENOENT, "no subsystem " + nqn);
    s->params.allow_any_host = allow;
    publish([done = std::move(done)] { done(0, ""); });
}

std::vector<SubsystemConfig> NvmfTarget::list_subsystems() const {
    std::vector<SubsystemConfig> out;
    for (const auto& [nqn, s] : subsystems_) {
        SubsystemConfig c;
        c.params = s.params;
        for (const auto& key : s.listeners) {
            auto it = listeners_.find(key);
            if (it != listeners_.end()) c.listeners.push_back(it->second.sock->addr());
        }
        for (const auto& [nsid, ns] : s.namespaces) c.namespaces.push_back(ns);
        out.push_back(std::move(c));
    }
    return out;
}

uint16_t NvmfTarget::bound_port(const ListenAddress& addr) const {
    auto it = listeners_.find(addr.to_string());
    return it == listeners_.end() ? 0 : it->second.sock->bound_port();
}

// ---------------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------------

void NvmfTarget::list_controllers(const std::string& nqn,
                                  std::function<void(std::vector<ControllerInfo>)> done) {
    auto slots = std::make_shared<std::vector<std::vector<ControllerInfo>>>(pgs_.size());
    run_on_threads(
        threads_,
        [this, slots, nqn](Thread* t) {
            PollGroup* pg = poll_group_of(t);
            for (const auto& [cntlid, c] : pg->controllers()) {
                if (!nqn.empty() && c->subnqn() != nqn) continue;
                (*slots)[pg->index()].push_back(
                    ControllerInfo{c->subnqn(), cntlid, c->hostnqn(), c->kato_ms(), pg->index(),
                                   static_cast<uint32_t>(c->io_queue_count())});
            }
        },
        [slots, done = std::move(done)] {
            std::vector<ControllerInfo> all;
            for (auto& v : *slots) all.insert(all.end(), v.begin(), v.end());
            done(std::move(all));
        });
}

void NvmfTarget::list_qpairs(const std::string& nqn,
                             std::function<void(std::vector<QpairInfo>)> done) {
    auto slots = std::make_shared<std::vector<std::vector<QpairInfo>>>(pgs_.size());
    run_on_threads(
        threads_,
        [this, slots, nqn](Thread* t) {
            PollGroup* pg = poll_group_of(t);
            for (const auto& [id, c] : pg->conns()) {
                if (c->closed()) continue;
                std::string sub;
                if (c->ctrl()) {
                    sub = c->ctrl()->subnqn();
                } else if (c->subsys()) {
                    sub = c->subsys()->info->nqn;
                }
                if (!nqn.empty() && sub != nqn) continue;
                const ListenerInfo* l = pg->snapshot().listener(c->listener_id());
                (*slots)[pg->index()].push_back(QpairInfo{sub, c->cntlid(), c->qid(), pg->index(),
                                                          l ? l->addr.to_string() : "",
                                                          c->commands()});
            }
        },
        [slots, done = std::move(done)] {
            std::vector<QpairInfo> all;
            for (auto& v : *slots) all.insert(all.end(), v.begin(), v.end());
            done(std::move(all));
        });
}

void NvmfTarget::get_stats(std::function<void(TargetStats)> done) {
    auto stats = std::make_shared<TargetStats>();
    stats->poll_groups.resize(pgs_.size());
    run_on_threads(
        threads_,
        [this, stats](Thread* t) {
            PollGroup* pg = poll_group_of(t);
            const PollGroupStats& s = pg->stats();
            TargetStats::Group& g = stats->poll_groups[pg->index()];
            g.index = pg->index();
            g.connections = s.connections;
            g.accepted = s.accepted;
            g.commands = s.commands;
            g.term_reqs_sent = s.term_reqs_sent;
            g.kato_expired = s.kato_expired;
            g.icreq_timeouts = s.icreq_timeouts;
            g.connect_timeouts = s.connect_timeouts;
            g.auth_timeouts = s.auth_timeouts;
            g.tls_established = s.tls_established;
            g.tls_failures = s.tls_failures;
            g.unconnected_evicted = s.unconnected_evicted;
            g.unconnected = pg->unconnected_count();
        },
        [stats, done = std::move(done)] { done(*stats); });
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

void NvmfTarget::shutdown(std::function<void()> done) {
    listeners_.clear();  // stop accepting
    Thread* ctl = Thread::current();
    if (!started_ || pgs_.empty()) {
        subsystems_.clear();
        ctl->send([done = std::move(done)] { done(); });
        return;
    }
    struct Pending {
        std::atomic<size_t> n;
        std::function<void()> all_stopped;
    };
    auto p = std::make_shared<Pending>();
    p->n = pgs_.size();
    p->all_stopped = [this, ctl, done = std::move(done)]() mutable {
        // Every poll group dropped its channels; dropping the master copy closes the
        // descriptors (queued on this thread, so before done runs).
        subsystems_.clear();
        started_ = false;
        ctl->send([done = std::move(done)] { done(); });
    };
    for (auto& pg : pgs_) {
        PollGroup* g = pg.get();
        g->thread()->send([g, p, ctl] {
            g->stop([p, ctl] {
                if (p->n.fetch_sub(1) == 1) ctl->send([p] { p->all_stopped(); });
            });
        });
    }
}

void nvmf_target_init(Runtime& rt, NvmfTargetOptions opts, std::function<void()> done) {
    static std::unique_ptr<NvmfTarget> target;
    target = std::make_unique<NvmfTarget>(std::move(opts));
    rt.add_shutdown_step("nvmf", [](std::function<void()> step_done) {
        if (!target) return step_done();
        target->shutdown(std::move(step_done));
    });
    target->start(std::move(done));
}

}  // namespace nocstor::nvmf
