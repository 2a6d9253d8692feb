#include "ublk/ublk_target.h"

#include <algorithm>
#include <cerrno>
#include <set>

#include <fmt/format.h>

#include "runtime/reactor.h"
#include "util/cpumask.h"
#include "util/log.h"

namespace nocstor::ublk {

namespace {

std::unique_ptr<UblkTarget> g_target;

}  // namespace

UblkTarget* UblkTarget::instance() {
    return g_target.get();
}

UblkTarget::UblkTarget(TargetOptions o, std::unique_ptr<ControlRing> ctl,
                       std::vector<Thread*> threads)
    : opts_(std::move(o)), ctl_(std::move(ctl)), threads_(std::move(threads)) {}

int UblkTarget::create(TargetOptions o, std::string* err) {
    if (g_target) {
        *err = "the ublk target already exists";
        return -EEXIST;
    }
    std::vector<Thread*> threads = Runtime::instance()->data_threads();
    if (!o.cpumask.empty()) {
        std::set<int> cores;
        if (!parse_cpumask(o.cpumask, &cores, err)) return -EINVAL;
        std::vector<Thread*> picked;
        for (Thread* t : threads)
            if (cores.count(t->reactor()->core())) picked.push_back(t);
        if (picked.empty()) {
            *err = "cpumask " + o.cpumask + " contains no data-plane core";
            return -EINVAL;
        }
        threads = std::move(picked);
    }
    int rc = 0;
    auto ctl = ControlRing::open(&rc, err);
    if (!ctl) return rc;
    NOC_INFO("ublk", "target created: driver features {:#x}{}, {} data thread(s)", ctl->features(),
             ctl->ioctl_encode() ? " (ioctl-encoded commands)" : "", threads.size());
    g_target.reset(new UblkTarget(std::move(o), std::move(ctl), std::move(threads)));
    return 0;
}

void UblkTarget::destroy(std::function<void()> done) {
    if (!g_target) return done();
    g_target->shutdown([done = std::move(done)] {
        g_target.reset();
        NOC_INFO("ublk", "target destroyed");
        done();
    });
}

void UblkTarget::shutdown(std::function<void()> done) {
    if (disks_.empty()) return done();
    auto left = std::make_shared<size_t>(disks_.size());
    auto d = std::make_shared<std::function<void()>>(std::move(done));
    for (auto& disk : disks_) {
        disk->stop([this, left, d] {
            if (--*left) return;
            disks_.clear();
            (*d)();
        });
    }
}

UblkDisk* UblkTarget::find(uint32_t id) {
    for (auto& d : disks_)
        if (d->params().id == id) return d.get();
    return nullptr;
}

void UblkTarget::remove(UblkDisk* d) {
    disks_.erase(std::remove_if(disks_.begin(), disks_.end(),
                                [d](const std::unique_ptr<UblkDisk>& x) { return x.get() == d; }),
                 disks_.end());
}

std::unique_ptr<UblkDisk> UblkTarget::make_disk(DiskParams p, int* rc, std::string* err) {
    Bdev* bdev = bdev_get_by_name(p.bdev_name);
    if (!bdev) {
        *rc = -ENODEV;
        *err = "bdev " + p.bdev_name + " does not exist";
        return nullptr;
    }
    // The queues run on the threads of the cluster that owns the bdev (share nothing).
    std::vector<Thread*> own;
    for (Thread* t : threads_)
        if (bdev->cluster < 0 || t->cluster_id() == bdev->cluster) own.push_back(t);
    if (own.empty()) own = threads_;
    std::rotate(own.begin(), own.begin() + (next_offset_++ % own.size()), own.end());
    return UblkDisk::create(std::move(p), ctl_.get(), std::move(own), rc, err);
}

void UblkTarget::begin(uint32_t id, DiskParams p, bool recover, Done done) {
    if (id > kMaxId) return done(-EINVAL, fmt::format("ublk_id must be at most {}", kMaxId));
    if (find(id)) return done(-EEXIST, fmt::format("ublk device {} is already served", id));
    int rc = 0;
    std::string err;
    auto disk = make_disk(std::move(p), &rc, &err);
    if (!disk) return done(rc, err);
    UblkDisk* d = disk.get();
    disks_.push_back(std::move(disk));
    auto finish = [this, d, done = std::move(done)](int rc, std::string err) {
        if (rc) remove(d);
        done(rc, std::move(err));
    };
    if (recover) return d->recover(kRecoverWaitMs, std::move(finish));
    d->start([d, finish = std::move(finish)](int rc, std::string err) mutable {
        // A device left by a server of ours that died (a restart from a saved configuration):
        // take it over instead of failing, so that its users see no error.
        if (rc != -EEXIST) return finish(rc, std::move(err));
        NOC_INFO("ublk", "ublk device {} exists; trying to recover it", d->params().id);
        d->recover(kRecoverWaitMs, [finish = std::move(finish), err](int rc2, std::string err2) {
            if (rc2 == 0) return finish(0, "");
            finish(-EEXIST, err + "; recovering it failed too: " + err2);
        });
    });
}

void UblkTarget::start_disk(DiskParams p, Done done) {
    if (p.queue_depth == 0 || p.queue_depth > UBLK_MAX_QUEUE_DEPTH)
        return done(-EINVAL, fmt::format("queue_depth must be 1 to {}", UBLK_MAX_QUEUE_DEPTH));
    if (p.num_queues == 0 || p.num_queues > kMaxQueues)
        return done(-EINVAL, fmt::format("num_queues must be 1 to {}", kMaxQueues));
    const uint32_t id = p.id;
    begin(id, std::move(p), false, std::move(done));
}

void UblkTarget::recover_disk(const std::string& bdev_name, uint32_t id, Done done) {
    DiskParams p;
    p.bdev_name = bdev_name;
    p.id = id;
    begin(id, std::move(p), true, std::move(done));
}

void UblkTarget::stop_disk(uint32_t id, Done done) {
    UblkDisk* d = find(id);
    if (!d) return done(-ENODEV, fmt::format("no ublk device {} is served", id));
    if (d->stopped()) {  // stopped already because its bdev went away
        remove(d);
        return done(0, "");
    }
    if (!d->live()) return done(-EBUSY, fmt::format("ublk device {} is starting or stopping", id));
    d->stop([this, d, done = std::move(done)] {
        remove(d);
        done(0, "");
    });
}

void UblkTarget::get_disks(std::optional<uint32_t> id,
                           std::function<void(int, std::vector<DiskInfo>)> done) {
    std::vector<const UblkDisk*> picked;
    for (const auto& d : disks_)
        if (!id || d->params().id == *id) picked.push_back(d.get());
    if (id && picked.empty()) return done(-ENODEV, {});
    if (picked.empty()) return done(0, {});
    struct Gather {
        size_t left;
        std::vector<DiskInfo> out;
        std::function<void(int, std::vector<DiskInfo>)> done;
    };
    auto g = std::make_shared<Gather>(
        Gather{picked.size(), std::vector<DiskInfo>(picked.size()), std::move(done)});
    for (size_t i = 0; i < picked.size(); ++i) {
        picked[i]->info([g, i](DiskInfo info) {
            g->out[i] = std::move(info);
            if (--g->left == 0) g->done(0, std::move(g->out));
        });
    }
}

std::vector<DiskParams> UblkTarget::saved() const {
    std::vector<DiskParams> out;
    for (const auto& d : disks_)
        if (d->live()) out.push_back(d->params());
    return out;
}

void ublk_init(Runtime& rt) {
    rt.add_shutdown_step(
        "ublk", [](std::function<void()> step_done) { UblkTarget::destroy(std::move(step_done)); });
}

}  // namespace nocstor::ublk
