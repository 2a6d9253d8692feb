#include "vhost/vhost_target.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <set>

#include "runtime/reactor.h"
#include "util/cpumask.h"
#include "util/log.h"

namespace nocstor::vhost {

namespace {

std::atomic<VhostTarget*> g_instance{nullptr};

bool valid_name(const std::string& s) {
    return !s.empty() && s.size() <= 255 &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x21 && c < 0x7f; });
}

}  // namespace

VhostTarget::VhostTarget(VhostOptions opts) : opts_(std::move(opts)) {
    if (opts_.socket_dir.empty()) opts_.socket_dir = ".";
    g_instance.store(this);
}

VhostTarget::~VhostTarget() {
    g_instance.store(nullptr);
    if (epfd_ >= 0) ::close(epfd_);
}

VhostTarget* VhostTarget::instance() {
    return g_instance.load();
}

void VhostTarget::start() {
    if (opts_.threads.empty()) opts_.threads = Runtime::instance()->data_threads();
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    Thread* t = Thread::current();
    t->reactor()->add_interrupt_fd(epfd_);
    poller_ = t->register_poller("vhost_sockets", [this] { return poll(); });
}

int VhostTarget::poll() {
    epoll_event evs[16];
    const int n = ::epoll_wait(epfd_, evs, 16, 0);
    for (int i = 0; i < n; ++i) {
        const uint64_t id = evs[i].data.u64 >> 1;
        const bool is_conn = evs[i].data.u64 & 1;
        for (auto& e : entries_) {
            if (e->id != id || !e->ctrlr) continue;
            if (is_conn)
                e->ctrlr->on_conn_readable();
            else
                e->ctrlr->on_listen_readable();
            break;
        }
    }
    return n > 0 ? n : 0;
}

void VhostTarget::watch(uint64_t id, int fd, bool is_conn, bool add) {
    if (!add) {
        ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = (id << 1) | (is_conn ? 1 : 0);
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
        ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
}

VhostTarget::Entry* VhostTarget::find(const std::string& name) {
    for (auto& e : entries_)
        if (e->params.ctrlr == name) return e.get();
    return nullptr;
}

int VhostTarget::create_blk_controller(const CreateBlkParams& p, std::string* err) {
    if (!valid_name(p.ctrlr)) {
        *err = "ctrlr must be 1-255 printable characters without spaces";
        return -EINVAL;
    }
    if (find(p.ctrlr)) {
        *err = "controller " + p.ctrlr + " already exists";
        return -EEXIST;
    }
    Bdev* bdev = bdev_get_by_name(p.dev_name);
    if (!bdev) {
        *err = "bdev " + p.dev_name + " does not exist";
        return -ENODEV;
    }
    // The queues run on the threads of the cluster that owns the bdev (share nothing).
    std::vector<Thread*> own;
    for (Thread* t : opts_.threads)
        if (bdev->cluster < 0 || t->cluster_id() == bdev->cluster) own.push_back(t);
    if (own.empty()) own = opts_.threads;
    BlkControllerParams bp;
    bp.name = p.ctrlr;
    bp.socket_path =
        p.ctrlr.find('/') != std::string::npos ? p.ctrlr : opts_.socket_dir + "/" + p.ctrlr;
    bp.bdev_name = p.dev_name;
    bp.readonly = p.readonly;
    bp.cpumask = p.cpumask;
    bp.num_queues = p.num_queues;
    if (!p.cpumask.empty()) {
        std::set<int> cores;
        if (!parse_cpumask(p.cpumask, &cores, err)) return -EINVAL;
        for (Thread* t : own)
            if (cores.count(t->reactor()->core())) bp.threads.push_back(t);
        if (bp.threads.empty()) {
            *err = "cpumask " + p.cpumask +
                   " contains no data-plane core of the cluster that "
                   "owns bdev " +
                   p.dev_name;
            return -EINVAL;
        }
    } else {
        bp.threads = own;
    }
    bp.thread_offset = next_offset_++;
    for (const auto& e : entries_) {
        if (e->ctrlr && e->ctrlr->params().socket_path == bp.socket_path) {
            *err = "controller " + e->params.ctrlr + " already uses " + bp.socket_path;
            return -EEXIST;
        }
    }
    int rc = 0;
    auto c = BlkController::create(std::move(bp), &rc, err);
    if (!c) return rc;
    auto e = std::make_unique<Entry>();
    e->id = next_id_++;
    e->params = p;
    e->ctrlr = std::move(c);
    const uint64_t id = e->id;
    e->ctrlr->set_watch([this, id, ctrlr = e->ctrlr.get()](int fd, bool add) {
        watch(id, fd, fd == ctrlr->conn_fd(), add);
    });
    watch(id, e->ctrlr->listen_fd(), false, true);
    NOC_INFO("vhost", "vhost-user-blk controller {} serves bdev {}{} on {} ({} queues)", p.ctrlr,
             p.dev_name, p.readonly ? " read-only" : "", e->ctrlr->params().socket_path,
             e->ctrlr->params().num_queues);
    entries_.push_back(std::move(e));
    return 0;
}

void VhostTarget::delete_controller(const std::string& name,
                                    std::function<void(int, std::string)> done) {
    Entry* e = find(name);
    if (!e) return done(-ENOENT, "controller " + name + " does not exist");
    if (!e->ctrlr) return done(-EBUSY, "controller " + name + " is being deleted");
    BlkController* c = e->ctrlr.get();
    c->shutdown([this, c, done = std::move(done)] {
        auto it = std::find_if(entries_.begin(), entries_.end(),
                               [c](const auto& x) { return x->ctrlr.get() == c; });
        if (it != entries_.end()) {
            NOC_INFO("vhost", "vhost controller {} deleted", (*it)->params.ctrlr);
            entries_.erase(it);
        }
        done(0, "");
    });
}

int VhostTarget::set_coalescing(const std::string& name, Coalescing c, std::string* err) {
    Entry* e = find(name);
    if (!e) {
        *err = "controller " + name + " does not exist";
        return -ENOENT;
    }
    if (c.iops_threshold == 0) {
        *err = "iops_threshold must be greater than 0";
        return -EINVAL;
    }
    e->coalescing = c;
    e->ctrlr->set_coalescing(c.delay_base_us, c.iops_threshold);
    return 0;
}

void VhostTarget::get_controllers(const std::optional<std::string>& name,
                                  std::function<void(int, std::vector<ControllerInfo>)> done) {
    std::vector<BlkController*> which;
    for (auto& e : entries_)
        if (e->ctrlr && (!name || e->params.ctrlr == *name)) which.push_back(e->ctrlr.get());
    if (name && which.empty()) return done(-ENOENT, {});
    struct Gather {
        std::vector<ControllerInfo> out;
        size_t left;
        std::function<void(int, std::vector<ControllerInfo>)> done;
    };
    auto g = std::make_shared<Gather>(
        Gather{std::vector<ControllerInfo>(which.size()), which.size() + 1, std::move(done)});
    auto one = [g] {
        if (--g->left == 0) g->done(0, std::move(g->out));
    };
    for (size_t i = 0; i < which.size(); ++i)
        which[i]->info([g, i, one](ControllerInfo info) {
            g->out[i] = std::move(info);
            one();
        });
    one();
}

std::vector<std::pair<CreateBlkParams, Coalescing>> VhostTarget::saved() const {
    std::vector<std::pair<CreateBlkParams, Coalescing>> out;
    for (const auto& e : entries_)
        if (e->ctrlr) out.emplace_back(e->params, e->coalescing);
    return out;
}

void VhostTarget::shutdown(std::function<void()> done) {
    auto left = std::make_shared<size_t>(entries_.size() + 1);
    auto one = [this, left, done = std::move(done)] {
        if (--*left) return;
        entries_.clear();
        if (poller_) {
            Thread::current()->unregister_poller(poller_);
            Thread::current()->reactor()->remove_interrupt_fd(epfd_);
            poller_ = nullptr;
        }
        done();
    };
    for (auto& e : entries_)
        if (e->ctrlr)
            e->ctrlr->shutdown(one);
        else
            one();
    one();
}

void vhost_target_init(Runtime& rt, VhostOptions opts) {
    static std::unique_ptr<VhostTarget> target;
    target = std::make_unique<VhostTarget>(std::move(opts));
    target->start();
    rt.add_shutdown_step("vhost", [](std::function<void()> step_done) {
        if (!target) return step_done();
        target->shutdown(std::move(step_done));
    });
}

}  // namespace nocstor::vhost
