#include "iscsi/target.h"

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "iscsi/conn.h"
#include "iscsi/poll_group.h"
#include "iscsi/portal_listener.h"
#include "util/log.h"

namespace nocstor::iscsi_tgt {

namespace {

std::atomic<IscsiTarget*> g_instance{nullptr};

Thread* control_thread() {
    Runtime* rt = Runtime::instance();
    return rt ? rt->control_thread() : Thread::current();
}

std::string hex_isid(const uint8_t* p) {
    static const char* kHex = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 6; ++i) {
        s += kHex[p[i] >> 4];
        s += kHex[p[i] & 15];
    }
    return s;
}

}  // namespace

IscsiTarget::IscsiTarget(IscsiTargetOptions opts) : opts_(std::move(opts)) {}

IscsiTarget::~IscsiTarget() {
    IscsiTarget* self = this;
    g_instance.compare_exchange_strong(self, nullptr);
}

IscsiTarget* IscsiTarget::instance() {
    return g_instance.load();
}

void IscsiTarget::start(std::function<void()> done) {
    std::vector<Thread*> threads =
        opts_.threads.empty() ? Runtime::instance()->data_threads() : opts_.threads;
    if (!opts_.pool_of) {
        const size_t bytes = BufferPool::bytes_needed(opts_.buffers);
        pool_mem_ = std::unique_ptr<std::byte[], void (*)(std::byte*)>(
            static_cast<std::byte*>(std::aligned_alloc(BufferPool::kAlign, bytes)),
            [](std::byte* p) { std::free(p); });
        own_pool_ = BufferPool::create(pool_mem_.get(), 0, opts_.buffers);
    }
    for (uint32_t i = 0; i < threads.size(); ++i) {
        BufferPool* pool = opts_.pool_of ? opts_.pool_of(threads[i]->cluster_id()) : &own_pool_;
        pgs_.push_back(std::make_unique<IscsiPollGroup>(this, threads[i], i, pool));
    }
    started_ = true;
    g_instance.store(this);
    run_on_threads(
        threads,
        [this](Thread* t) {
            for (auto& pg : pgs_)
                if (pg->thread() == t) pg->start();
        },
        [done = std::move(done)] { done(); });
}

void IscsiTarget::shutdown(std::function<void()> done) {
    if (!started_ || stopping_) return done();
    stopping_ = true;
    portal_groups_.clear();  // closes the listeners
    auto left = std::make_shared<size_t>(pgs_.size());
    auto fin = std::make_shared<std::function<void()>>([this, done = std::move(done)] {
        cfg_.targets.clear();
        started_ = false;
        done();
    });
    if (pgs_.empty()) return (*fin)();
    Thread* ctl = control_thread();
    for (auto& pg : pgs_) {
        IscsiPollGroup* p = pg.get();
        p->thread()->send([p, ctl, left, fin] {
            p->stop([ctl, left, fin] {
                ctl->send([left, fin] {
                    if (--*left == 0) (*fin)();
                });
            });
        });
    }
}

void IscsiTarget::publish(std::function<void()> done) {
    auto snap = std::make_shared<IscsiSnapshot>(cfg_);
    snap->portal_groups.clear();
    snap->listeners.clear();
    for (const auto& [tag, st] : portal_groups_) {
        snap->portal_groups[tag] = st.pg;
        for (const auto& l : st.listeners) snap->listeners.push_back({l->id(), tag, l->portal()});
    }
    if (!started_) return done();
    std::vector<Thread*> threads;
    for (auto& pg : pgs_) threads.push_back(pg->thread());
    run_on_threads(
        threads,
        [this, snap](Thread* t) {
            for (auto& pg : pgs_)
                if (pg->thread() == t) pg->apply(snap);
        },
        std::move(done));
}

IscsiPollGroup* IscsiTarget::pick_poll_group() {
    IscsiPollGroup* best = nullptr;
    for (auto& pg : pgs_)
        if (!best || pg->load() < best->load()) best = pg.get();
    return best;
}

void IscsiTarget::reinstate(const std::string& initiator, const std::string& isid,
                            const std::string& target, uint64_t keep) {
    struct Req {
        std::string initiator, isid, target;
        uint64_t keep;
    };
    auto r = std::make_shared<Req>(Req{initiator, isid, target, keep});
    for (auto& pg : pgs_) {
        IscsiPollGroup* p = pg.get();
        p->thread()->send([p, r] { p->reinstate(r->initiator, r->isid, r->target, r->keep); });
    }
}

// --- options ---

void IscsiTarget::set_options(const IscsiOptions& o, DoneFn done) {
    if (o.max_recv_data_segment_length < 512 || o.max_recv_data_segment_length > 16 * 1024 * 1024)
        return done(-EINVAL, "max_recv_data_segment_length must be 512..16777216");
    if (o.first_burst_length < 512 || o.first_burst_length > o.max_burst_length ||
        o.first_burst_length > 1024 * 1024)
        return done(-EINVAL, "first_burst_length must be 512..min(max_burst_length, 1048576)");
    if (o.max_queue_depth == 0 || o.max_queue_depth > 4096)
        return done(-EINVAL, "max_queue_depth must be 1..4096");
    if (o.max_connections_per_session != 1)
        return done(
            -EINVAL,
            "max_connections_per_session: only 1 is supported (one connection per session)");
    if (o.error_recovery_level != 0)
        return done(-EINVAL, "error_recovery_level: only 0 is supported");
    if (o.nop_in_interval > 0 && o.nop_timeout == 0)
        return done(-EINVAL, "nop_timeout must be > 0 when nop_in_interval is set");
    std::string err;
    if (int rc = validate_auth(o.discovery_auth, &err)) return done(rc, err);
    cfg_.options = o;
    publish([done] { done(0, ""); });
}

int IscsiTarget::validate_auth(const AuthSettings& a, std::string* err) const {
    if (a.disable_chap && (a.require_chap || a.mutual_chap)) {
        *err = "disable_chap cannot be combined with require_chap or mutual_chap";
        return -EINVAL;
    }
    if (a.mutual_chap && !a.require_chap) {
        *err = "mutual_chap needs require_chap";
        return -EINVAL;
    }
    if (a.chap_group < 0) {
        *err = "chap_group must be >= 0";
        return -EINVAL;
    }
    if (a.chap_group && !cfg_.auth_groups.count(a.chap_group)) {
        *err = "no auth group " + std::to_string(a.chap_group);
        return -ENOENT;
    }
    return 0;
}

void IscsiTarget::set_discovery_auth(const AuthSettings& a, DoneFn done) {
    std::string err;
    if (int rc = validate_auth(a, &err)) return done(rc, err);
    cfg_.options.discovery_auth = a;
    publish([done] { done(0, ""); });
}

// --- auth groups ---

void IscsiTarget::create_auth_group(int tag, std::vector<ChapSecret> secrets, DoneFn done) {
    if (tag <= 0) return done(-EINVAL, "tag must be > 0");
    if (cfg_.auth_groups.count(tag))
        return done(-EEXIST, "auth group " + std::to_string(tag) + " exists");
    for (size_t i = 0; i < secrets.size(); ++i) {
        const auto& s = secrets[i];
        if (s.user.empty() || s.secret.empty())
            return done(-EINVAL, "each secret needs user and secret");
        if ((s.muser.empty()) != (s.msecret.empty()))
            return done(-EINVAL, "muser and msecret go together");
        for (size_t j = 0; j < i; ++j)
            if (secrets[j].user == s.user) return done(-EEXIST, "user " + s.user + " twice");
    }
    cfg_.auth_groups[tag] = AuthGroup{tag, std::move(secrets)};
    publish([done] { done(0, ""); });
}

void IscsiTarget::delete_auth_group(int tag, DoneFn done) {
    if (!cfg_.auth_groups.count(tag)) return done(-ENOENT, "no auth group " + std::to_string(tag));
    auto uses = [tag](const AuthSettings& a) { return a.chap_group == tag; };
    if (uses(cfg_.options.discovery_auth)) return done(-EBUSY, "auth group used by discovery");
    for (const auto& t : cfg_.targets)
        if (uses(t->auth)) return done(-EBUSY, "auth group used by target " + t->name);
    cfg_.auth_groups.erase(tag);
    publish([done] { done(0, ""); });
}

void IscsiTarget::auth_group_add_secret(int tag, ChapSecret s, DoneFn done) {
    auto it = cfg_.auth_groups.find(tag);
    if (it == cfg_.auth_groups.end()) return done(-ENOENT, "no auth group " + std::to_string(tag));
    if (s.user.empty() || s.secret.empty()) return done(-EINVAL, "user and secret are required");
    if (s.muser.empty() != s.msecret.empty()) return done(-EINVAL, "muser and msecret go together");
    for (const auto& e : it->second.secrets)
        if (e.user == s.user) return done(-EEXIST, "user " + s.user + " exists");
    it->second.secrets.push_back(std::move(s));
    publish([done] { done(0, ""); });
}

void IscsiTarget::auth_group_remove_secret(int tag, const std::string& user, DoneFn done) {
    auto it = cfg_.auth_groups.find(tag);
    if (it == cfg_.auth_groups.end()) return done(-ENOENT, "no auth group " + std::to_string(tag));
    auto& v = it->second.secrets;
    auto s = std::find_if(v.begin(), v.end(), [&](const ChapSecret& c) { return c.user == user; });
    if (s == v.end()) return done(-ENOENT, "no user " + user);
    v.erase(s);
    publish([done] { done(0, ""); });
}

std::vector<AuthGroup> IscsiTarget::auth_groups() const {
    std::vector<AuthGroup> v;
    for (const auto& [tag, g] : cfg_.auth_groups) v.push_back(g);
    return v;
}

// --- portal groups ---

int IscsiTarget::open_listeners(PgState& st, std::string* err) {
    for (const Portal& p : st.pg.portals) {
        auto l = std::make_unique<PortalListener>(this, p, next_listener_id_++);
        const int rc = l->open(err);
        if (rc) {
            st.listeners.clear();
            return rc;
        }
        st.listeners.push_back(std::move(l));
    }
    st.started = true;
    return 0;
}

void IscsiTarget::create_portal_group(PortalGroup pg, bool wait, DoneFn done) {
    if (pg.tag <= 0) return done(-EINVAL, "tag must be > 0");
    if (portal_groups_.count(pg.tag))
        return done(-EEXIST, "portal group " + std::to_string(pg.tag) + " exists");
    if (pg.portals.empty()) return done(-EINVAL, "portals must not be empty");
    for (const Portal& p : pg.portals) {
        for (const auto& [tag, st] : portal_groups_)
            for (const Portal& q : st.pg.portals)
                if (q.host == p.host && q.port == p.port && p.port != 0)
                    return done(-EEXIST, "portal " + p.to_string() + " is in portal group " +
                                             std::to_string(tag));
    }
    PgState st;
    st.pg = std::move(pg);
    const int tag = st.pg.tag;
    if (!wait) {
        std::string err;
        if (int rc = open_listeners(st, &err)) return done(rc, err);
    }
    portal_groups_[tag] = std::move(st);
    publish([done] { done(0, ""); });
}

void IscsiTarget::start_portal_group(int tag, DoneFn done) {
    auto it = portal_groups_.find(tag);
    if (it == portal_groups_.end()) return done(-ENOENT, "no portal group " + std::to_string(tag));
    if (it->second.started) return done(-EALREADY, "portal group already started");
    std::string err;
    if (int rc = open_listeners(it->second, &err)) return done(rc, err);
    publish([done] { done(0, ""); });
}

void IscsiTarget::delete_portal_group(int tag, DoneFn done) {
    auto it = portal_groups_.find(tag);
    if (it == portal_groups_.end()) return done(-ENOENT, "no portal group " + std::to_string(tag));
    for (const auto& t : cfg_.targets)
        for (const auto& [pg, ig] : t->pg_ig_maps)
            if (pg == tag) return done(-EBUSY, "portal group used by target " + t->name);
    portal_groups_.erase(it);
    publish([done] { done(0, ""); });
}

void IscsiTarget::portal_group_set_auth(int tag, const AuthSettings& a, DoneFn done) {
    auto it = portal_groups_.find(tag);
    if (it == portal_groups_.end()) return done(-ENOENT, "no portal group " + std::to_string(tag));
    std::string err;
    if (int rc = validate_auth(a, &err)) return done(rc, err);
    it->second.pg.discovery_auth = a;
    publish([done] { done(0, ""); });
}

std::vector<IscsiTarget::PortalGroupView> IscsiTarget::portal_groups() const {
    std::vector<PortalGroupView> v;
    for (const auto& [tag, st] : portal_groups_) {
        PortalGroupView pv{st.pg, st.started, {}};
        for (const auto& l : st.listeners) pv.bound_ports.push_back(l->bound_port());
        v.push_back(std::move(pv));
    }
    return v;
}

// --- initiator groups ---

void IscsiTarget::create_initiator_group(InitiatorGroup ig, DoneFn done) {
    if (ig.tag <= 0) return done(-EINVAL, "tag must be > 0");
    if (cfg_.initiator_groups.count(ig.tag))
        return done(-EEXIST, "initiator group " + std::to_string(ig.tag) + " exists");
    if (ig.initiators.empty() || ig.netmasks.empty())
        return done(-EINVAL, "initiators and netmasks must not be empty");
    for (const auto& m : ig.netmasks)
        if (!valid_netmask(m)) return done(-EINVAL, "bad netmask " + m);
    cfg_.initiator_groups[ig.tag] = std::move(ig);
    publish([done] { done(0, ""); });
}

void IscsiTarget::initiator_group_add(int tag, const std::vector<std::string>& initiators,
                                      const std::vector<std::string>& netmasks, DoneFn done) {
    auto it = cfg_.initiator_groups.find(tag);
    if (it == cfg_.initiator_groups.end())
        return done(-ENOENT, "no initiator group " + std::to_string(tag));
    for (const auto& m : netmasks)
        if (!valid_netmask(m)) return done(-EINVAL, "bad netmask " + m);
    for (const auto& i : initiators) it->second.initiators.push_back(i);
    for (const auto& m : netmasks) it->second.netmasks.push_back(m);
    publish([done] { done(0, ""); });
}

void IscsiTarget::initiator_group_remove(int tag, const std::vector<std::string>& initiators,
                                         const std::vector<std::string>& netmasks, DoneFn done) {
    auto it = cfg_.initiator_groups.find(tag);
    if (it == cfg_.initiator_groups.end())
        return done(-ENOENT, "no initiator group " + std::to_string(tag));
    auto drop = [](std::vector<std::string>& v, const std::string& x) {
        auto f = std::find(v.begin(), v.end(), x);
        if (f == v.end()) return false;
        v.erase(f);
        return true;
    };
    for (const auto& i : initiators)
        if (!drop(it->second.initiators, i)) return done(-ENOENT, "no initiator " + i);
    for (const auto& m : netmasks)
        if (!drop(it->second.netmasks, m)) return done(-ENOENT, "no netmask " + m);
    publish([done] { done(0, ""); });
}

void IscsiTarget::delete_initiator_group(int tag, DoneFn done) {
    if (!cfg_.initiator_groups.count(tag))
        return done(-ENOENT, "no initiator group " + std::to_string(tag));
    for (const auto& t : cfg_.targets)
        for (const auto& [pg, ig] : t->pg_ig_maps)
            if (ig == tag) return done(-EBUSY, "initiator group used by target " + t->name);
    cfg_.initiator_groups.erase(tag);
    publish([done] { done(0, ""); });
}

std::vector<InitiatorGroup> IscsiTarget::initiator_groups() const {
    std::vector<InitiatorGroup> v;
    for (const auto& [tag, g] : cfg_.initiator_groups) v.push_back(g);
    return v;
}

// --- target nodes ---

std::shared_ptr<const scsi::Lun> IscsiTarget::open_lun(const std::string& bdev, uint32_t id,
                                                       const std::string& target, std::string* err,
                                                       int* rc) {
    BdevDesc* desc = nullptr;
    *rc = bdev_open(
        bdev, true,
        [this, target, id](BdevEvent ev, Bdev* b) {
            if (ev == BdevEvent::Remove) on_bdev_event(target, id);
            if (ev == BdevEvent::Resize) on_bdev_resize(target, id, b->num_blocks);
        },
        &desc);
    if (*rc == -EPERM || *rc == -EBUSY) {
        *err = "bdev " + bdev + " is claimed by another module";
        return nullptr;
    }
    if (*rc) {
        *err = "cannot open bdev " + bdev;
        return nullptr;
    }
    Bdev* b = desc->bdev();
    auto lun = std::make_shared<scsi::Lun>();
    lun->id = id;
    lun->bdev_name = bdev;
    lun->desc = desc;
    lun->desc_guard = std::shared_ptr<const void>(
        static_cast<const void*>(desc), [ctl = control_thread()](const void* d) {
            ctl->send([d] { bdev_close(static_cast<BdevDesc*>(const_cast<void*>(d))); });
        });
    lun->uuid = b->uuid;
    lun->block_size = b->block_size;
    lun->num_blocks = b->num_blocks;
    lun->unmap = b->io_type_supported(IoType::Unmap);
    lun->write_zeroes = b->io_type_supported(IoType::WriteZeroes);
    lun->flush = b->io_type_supported(IoType::Flush);
    lun->write_cache = b->write_cache;
    const uint32_t max_bytes = 64 * 1024 * 1024;
    lun->max_transfer_bytes = max_bytes - max_bytes % b->block_size;
    return lun;
}

void IscsiTarget::on_bdev_event(const std::string& target, uint32_t lun_id) {
    NOC_INFO("iscsi", "bdev of {} LUN {} is going away", target, lun_id);
    for (auto& t : cfg_.targets) {
        if (t->name != target) continue;
        auto copy = std::make_shared<TargetNode>(*t);
        copy->luns.erase(std::remove_if(copy->luns.begin(), copy->luns.end(),
                                        [&](const auto& l) { return l->id == lun_id; }),
                         copy->luns.end());
        t = copy;
    }
    publish([] {});
}

void IscsiTarget::on_bdev_resize(const std::string& target, uint32_t lun_id, uint64_t blocks) {
    NOC_INFO("iscsi", "bdev of {} LUN {} now has {} blocks", target, lun_id, blocks);
    for (auto& t : cfg_.targets) {
        if (t->name != target) continue;
        auto copy = std::make_shared<TargetNode>(*t);
        for (auto& l : copy->luns) {
            if (l->id != lun_id) continue;
            auto resized = std::make_shared<scsi::Lun>(*l);  // same descriptor and shared state
            resized->num_blocks = blocks;
            l = resized;
        }
        t = copy;
    }
    publish([] {});
}

void IscsiTarget::create_target_node(TargetNodeParams p, DoneFn done) {
    const std::string name = full_target_name(cfg_.options.node_base, p.name);
    if (!valid_iscsi_name(name))
        return done(-EINVAL, "'" + name + "' is not a valid iSCSI name (iqn./eui./naa.)");
    for (const auto& t : cfg_.targets)
        if (strcasecmp(t->name.c_str(), name.c_str()) == 0)
            return done(-EEXIST, "target node " + name + " exists");
    if (p.queue_depth == 0 || p.queue_depth > cfg_.options.max_queue_depth)
        return done(-EINVAL,
                    "queue_depth must be 1.." + std::to_string(cfg_.options.max_queue_depth));
    if (p.luns.empty()) return done(-EINVAL, "luns must not be empty");
    if (p.luns.size() > 64) return done(-EINVAL, "at most 64 LUNs");
    for (const auto& [pg, ig] : p.pg_ig_maps) {
        if (!portal_groups_.count(pg))
            return done(-ENOENT, "no portal group " + std::to_string(pg));
        if (!cfg_.initiator_groups.count(ig))
            return done(-ENOENT, "no initiator group " + std::to_string(ig));
    }
    std::string err;
    if (int rc = validate_auth(p.auth, &err)) return done(rc, err);
    auto node = std::make_shared<TargetNode>();
    node->name = name;
    node->alias = p.alias;
    node->pg_ig_maps = p.pg_ig_maps;
    node->queue_depth = p.queue_depth;
    node->auth = p.auth;
    node->header_digest = p.header_digest;
    node->data_digest = p.data_digest;
    for (const auto& [bdev, id] : p.luns) {
        uint32_t lid = 0;
        if (id < 0) {
            while (node->find_lun(lid)) ++lid;
        } else {
            lid = uint32_t(id);
        }
        if (lid > 16383) return done(-EINVAL, "LUN ids are 0..16383");
        if (node->find_lun(lid)) return done(-EEXIST, "LUN " + std::to_string(lid) + " twice");
        int rc = 0;
        auto lun = open_lun(bdev, lid, name, &err, &rc);
        if (!lun) return done(rc, err);
        node->luns.push_back(std::move(lun));
    }
    std::sort(node->luns.begin(), node->luns.end(),
              [](const auto& a, const auto& b) { return a->id < b->id; });
    cfg_.targets.push_back(std::move(node));
    publish([done] { done(0, ""); });
}

void IscsiTarget::delete_target_node(const std::string& name, DoneFn done) {
    const std::string full = full_target_name(cfg_.options.node_base, name);
    auto it = std::find_if(cfg_.targets.begin(), cfg_.targets.end(), [&](const auto& t) {
        return strcasecmp(t->name.c_str(), full.c_str()) == 0;
    });
    if (it == cfg_.targets.end()) return done(-ENOENT, "no target node " + full);
    cfg_.targets.erase(it);
    publish([done] { done(0, ""); });
}

void IscsiTarget::target_node_add_lun(const std::string& name, const std::string& bdev, int lun_id,
                                      std::function<void(int, std::string, int)> done) {
    const std::string full = full_target_name(cfg_.options.node_base, name);
    for (auto& t : cfg_.targets) {
        if (strcasecmp(t->name.c_str(), full.c_str()) != 0) continue;
        auto copy = std::make_shared<TargetNode>(*t);
        uint32_t lid = 0;
        if (lun_id < 0) {
            while (copy->find_lun(lid)) ++lid;
        } else {
            lid = uint32_t(lun_id);
        }
        if (lid > 16383) return done(-EINVAL, "LUN ids are 0..16383", -1);
        if (copy->find_lun(lid)) return done(-EEXIST, "LUN " + std::to_string(lid) + " exists", -1);
        if (copy->luns.size() >= 64) return done(-ENOSPC, "at most 64 LUNs", -1);
        std::string err;
        int rc = 0;
        auto lun = open_lun(bdev, lid, copy->name, &err, &rc);
        if (!lun) return done(rc, err, -1);
        copy->luns.push_back(std::move(lun));
        std::sort(copy->luns.begin(), copy->luns.end(),
                  [](const auto& a, const auto& b) { return a->id < b->id; });
        t = copy;
        return publish([done, lid] { done(0, "", int(lid)); });
    }
    done(-ENOENT, "no target node " + full, -1);
}

void IscsiTarget::target_node_add_pg_ig_maps(const std::string& name,
                                             const std::vector<std::pair<int, int>>& maps,
                                             DoneFn done) {
    const std::string full = full_target_name(cfg_.options.node_base, name);
    for (auto& t : cfg_.targets) {
        if (strcasecmp(t->name.c_str(), full.c_str()) != 0) continue;
        auto copy = std::make_shared<TargetNode>(*t);
        for (const auto& m : maps) {
            if (!portal_groups_.count(m.first))
                return done(-ENOENT, "no portal group " + std::to_string(m.first));
            if (!cfg_.initiator_groups.count(m.second))
                return done(-ENOENT, "no initiator group " + std::to_string(m.second));
            if (std::find(copy->pg_ig_maps.begin(), copy->pg_ig_maps.end(), m) !=
                copy->pg_ig_maps.end())
                return done(-EEXIST, "mapping exists");
            copy->pg_ig_maps.push_back(m);
        }
        t = copy;
        return publish([done] { done(0, ""); });
    }
    done(-ENOENT, "no target node " + full);
}

void IscsiTarget::target_node_remove_pg_ig_maps(const std::string& name,
                                                const std::vector<std::pair<int, int>>& maps,
                                                DoneFn done) {
    const std::string full = full_target_name(cfg_.options.node_base, name);
    for (auto& t : cfg_.targets) {
        if (strcasecmp(t->name.c_str(), full.c_str()) != 0) continue;
        auto copy = std::make_shared<TargetNode>(*t);
        for (const auto& m : maps) {
            auto f = std::find(copy->pg_ig_maps.begin(), copy->pg_ig_maps.end(), m);
            if (f == copy->pg_ig_maps.end()) return done(-ENOENT, "no such mapping");
            copy->pg_ig_maps.erase(f);
        }
        t = copy;
        return publish([done] { done(0, ""); });
    }
    done(-ENOENT, "no target node " + full);
}

void IscsiTarget::target_node_set_auth(const std::string& name, const AuthSettings& a,
                                       DoneFn done) {
    std::string err;
    if (int rc = validate_auth(a, &err)) return done(rc, err);
    const std::string full = full_target_name(cfg_.options.node_base, name);
    for (auto& t : cfg_.targets) {
        if (strcasecmp(t->name.c_str(), full.c_str()) != 0) continue;
        auto copy = std::make_shared<TargetNode>(*t);
        copy->auth = a;
        t = copy;
        return publish([done] { done(0, ""); });
    }
    done(-ENOENT, "no target node " + full);
}

std::vector<std::shared_ptr<const TargetNode>> IscsiTarget::target_nodes() const {
    return cfg_.targets;
}

// --- views gathered from the poll groups ---

void IscsiTarget::get_connections(std::function<void(std::vector<ConnectionInfo>)> done) {
    struct Acc {
        std::vector<ConnectionInfo> v;
        size_t left;
        std::function<void(std::vector<ConnectionInfo>)> done;
    };
    auto acc = std::make_shared<Acc>(Acc{{}, pgs_.size(), std::move(done)});
    if (pgs_.empty()) return acc->done({});
    Thread* ctl = control_thread();
    for (auto& pg : pgs_) {
        IscsiPollGroup* p = pg.get();
        p->thread()->send([p, ctl, acc] {
            auto part = std::make_shared<std::vector<ConnectionInfo>>();
            for (const auto& [id, c] : p->conns()) {
                if (c->closed()) continue;
                ConnectionInfo i;
                i.id = id;
                i.poll_group = p->index();
                i.initiator = c->initiator_name();
                i.target = c->target_name();
                i.peer = c->peer_addr();
                i.local = c->local_addr();
                i.discovery = c->discovery();
                i.full_feature = c->phase() == ConnPhase::FullFeature;
                i.tsih = c->tsih();
                i.cid = c->cid();
                i.isid = hex_isid(c->isid());
                i.header_digest = c->params().header_digest;
                i.data_digest = c->params().data_digest;
                i.commands = c->stats().commands;
                i.pdus_in = c->stats().pdus_in;
                i.pdus_out = c->stats().pdus_out;
                i.bytes_read = c->stats().bytes_read;
                i.bytes_written = c->stats().bytes_written;
                part->push_back(std::move(i));
            }
            ctl->send([acc, part] {
                for (auto& i : *part) acc->v.push_back(std::move(i));
                if (--acc->left == 0) acc->done(std::move(acc->v));
            });
        });
    }
}

void IscsiTarget::get_stats(std::function<void(IscsiStats)> done) {
    struct Acc {
        IscsiStats s;
        size_t left;
        std::function<void(IscsiStats)> done;
    };
    auto acc = std::make_shared<Acc>(Acc{{}, pgs_.size(), std::move(done)});
    if (pgs_.empty()) return acc->done({});
    acc->s.poll_groups.resize(pgs_.size());
    Thread* ctl = control_thread();
    for (auto& pg : pgs_) {
        IscsiPollGroup* p = pg.get();
        p->thread()->send([p, ctl, acc] {
            IscsiStats::Group g;
            g.index = p->index();
            g.connections = p->conns().size();
            const PollGroupStats& s = p->stats();
            g.accepted = s.accepted;
            g.logins = s.logins;
            g.login_failures = s.login_failures;
            g.commands = s.commands;
            g.rejects = s.rejects;
            g.nop_timeouts = s.nop_timeouts;
            g.login_timeouts = s.login_timeouts;
            auto gp = std::make_shared<IscsiStats::Group>(g);
            ctl->send([acc, gp] {
                acc->s.poll_groups[gp->index] = *gp;
                if (--acc->left == 0) acc->done(std::move(acc->s));
            });
        });
    }
}

void iscsi_target_init(Runtime& rt, IscsiTargetOptions opts, std::function<void()> done) {
    static std::unique_ptr<IscsiTarget> target;
    target = std::make_unique<IscsiTarget>(std::move(opts));
    rt.add_shutdown_step("iscsi", [](std::function<void()> step_done) {
        if (!target) return step_done();
        target->shutdown(std::move(step_done));
    });
    target->start(std::move(done));
}

}  // namespace nocstor::iscsi_tgt
