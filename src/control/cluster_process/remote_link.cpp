#include "control/cluster_process/remote_link.h"

#include "bdev/bdev.h"
#include "control/cluster_process/cluster_processes.h"
#include "modules/remote/remote_export.h"
#include "runtime/poll_until.h"
#include "util/log.h"
#include "util/tick.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <map>
#include <memory>

namespace nocstor::control {

using nlohmann::json;

namespace {

constexpr uint64_t kCreateWaitNs = 60'000'000'000;  // a child (re)starting and loading its config
constexpr uint64_t kRetryUs = 200'000;

// Bumped on every start and death of a child: a relink loop of an older life stops.
std::map<int, uint64_t> g_life;

void after(uint64_t us, std::function<void()> fn) {
    const uint64_t at = now_ns() + us * 1000;
    poll_until([at] { return now_ns() >= at; }, std::move(fn), "remote_link_retry", us / 4);
}

bool parse_export(const json& j, remote::ExportInfo* out) {
    try {
        out->id = j.at("export_id").get<uint32_t>();
        out->cluster = j.at("cluster").get<int>();
        out->base_name = j.at("base_bdev_name").get<std::string>();
        out->block_size = j.at("block_size").get<uint32_t>();
        out->num_blocks = j.at("num_blocks").get<uint64_t>();
        out->write_cache = j.at("write_cache").get<bool>();
        out->required_alignment = j.at("required_alignment").get<uint32_t>();
        out->optimal_io_boundary = j.at("optimal_io_boundary").get<uint32_t>();
        out->max_transfer_blocks = j.at("max_transfer_blocks").get<uint32_t>();
        out->io_types = j.at("io_types").get<uint32_t>();
        return out->id != 0 && out->block_size != 0;
    } catch (const json::exception&) {
        return false;
    }
}

void unexport(int cluster, uint32_t id) {
    cluster_process_call(cluster, "nocstor_remote_unexport", {{"export_id", id}},
                         [cluster, id](RpcResult r) {
                             if (!r.ok())
                                 NOC_WARN("remote", "cluster {}: export {:#x} not released: {}",
                                          cluster, id, r.message);
                         });
}

// The remote bdev named `name`, or null (gone, or the name now belongs to another kind of bdev).
remote::RemoteBdev* remote_named(const std::string& name) {
    Bdev* b = bdev_get_by_name(name);
    return b && b->module == remote::remote_bdev_module() ? static_cast<remote::RemoteBdev*>(b)
                                                          : nullptr;
}

void attach_release(remote::RemoteBdev* b, int cluster) {
    b->release_peer_export = [cluster](uint32_t id) { unexport(cluster, id); };
}

struct CreateAttempt {
    remote::RemoteCreateOptions o;
    std::function<void(int, std::string)> done;
    uint64_t deadline = 0;
    std::vector<int> candidates;
    size_t next = 0;
    bool someone_not_ready = false;
    std::string last_not_ready;
};

void try_next(std::shared_ptr<CreateAttempt> a);

void try_round(std::shared_ptr<CreateAttempt> a) {
    a->next = 0;
    a->someone_not_ready = false;
    try_next(std::move(a));
}

void try_next(std::shared_ptr<CreateAttempt> a) {
    if (a->next == a->candidates.size()) {
        if (a->someone_not_ready && now_ns() < a->deadline)
            return after(kRetryUs, [a] { try_round(a); });
        if (a->someone_not_ready) return a->done(-ETIMEDOUT, "remote: " + a->last_not_ready);
        return a->done(-ENODEV, "remote: no bdev named " + a->o.base_bdev_name +
                                    " in this process or in any cluster process");
    }
    const int cluster = a->candidates[a->next++];
    cluster_process_call(
        cluster, "nocstor_remote_export",
        {{"base_bdev_name", a->o.base_bdev_name}, {"client_cluster", a->o.cluster}},
        [a, cluster](RpcResult r) {
            if (r.kind == RpcResult::Kind::kTransport ||
                (r.kind == RpcResult::Kind::kRpcError && r.code == -ENODEV &&
                 a->o.base_cluster == cluster)) {
                // Starting, loading its configuration, or its examine has not opened the base
                // yet (an lvol): ask again.
                a->someone_not_ready = true;
                a->last_not_ready = "cluster " + std::to_string(cluster) + ": " + r.message;
                return try_next(a);
            }
            if (r.kind == RpcResult::Kind::kRpcError && r.code == -ENODEV) return try_next(a);
            if (!r.ok()) return a->done(r.code ? r.code : -EIO, r.message);
            remote::ExportInfo info;
            if (!parse_export(r.result, &info)) {
                return a->done(-EPROTO, "remote: cluster " + std::to_string(cluster) +
                                            " answered nocstor_remote_export with " +
                                            r.result.dump());
            }
            std::string err;
            if (int rc = remote::remote_bdev_create_linked(a->o, info, &err)) {
                unexport(cluster, info.id);
                return a->done(rc, err);
            }
            if (auto* b = remote_named(a->o.name)) attach_release(b, cluster);
            a->done(0, "");
        });
}

// One remote bdev towards a restarted child: ask for a new export until the child has the base
// again (it may still be loading its configuration), for as long as this life of the child
// lasts and the bdev exists.
void relink(const std::string& name, int cluster, uint64_t life, uint32_t tries) {
    auto* b = remote_named(name);
    if (!b || g_life[cluster] != life) return;
    cluster_process_call(
        cluster, "nocstor_remote_export",
        {{"base_bdev_name", b->base_name()}, {"client_cluster", b->cluster}},
        [name, cluster, life, tries](RpcResult r) {
            auto* b = remote_named(name);
            remote::ExportInfo info;
            const bool ok = r.ok() && parse_export(r.result, &info);
            if (ok && (!b || g_life[cluster] != life)) return unexport(cluster, info.id);
            if (!b || g_life[cluster] != life) return;
            if (!ok) {
                if (tries == 5)
                    NOC_WARN("remote", "{}: cluster {} does not export {} yet: {}", name, cluster,
                             b->base_name(), r.message);
                return after(kRetryUs, [name, cluster, life, tries] {
                    relink(name, cluster, life, tries + 1);
                });
            }
            if (info.block_size != b->block_size) {
                NOC_ERROR("remote",
                          "{}: {} on cluster {} came back with {}-byte blocks instead of {}; its "
                          "I/O keeps failing",
                          name, b->base_name(), cluster, info.block_size, b->block_size);
                return unexport(cluster, info.id);
            }
            if (info.num_blocks != b->num_blocks) {  // resized while its process was down
                NOC_INFO("remote", "{}: {} on cluster {} came back with {} blocks", name,
                         b->base_name(), cluster, info.num_blocks);
                bdev_notify_blockcnt_change(b, info.num_blocks);
            }
            b->relink(info.id);
            NOC_INFO("remote", "{}: cluster {} is back; its I/O resumes (export {:#x})", name,
                     cluster, info.id);
        });
}

}  // namespace

bool remote_link_possible(const remote::RemoteCreateOptions& o) {
    if (bdev_get_by_name(o.base_bdev_name)) return false;
    for (int c : cluster_process_clusters())
        if (o.base_cluster < 0 || o.base_cluster == c) return true;
    return false;
}

void remote_link_create(remote::RemoteCreateOptions o, std::function<void(int, std::string)> done) {
    std::string err;
    if (int rc = remote::remote_bdev_check_options(o, &err)) return done(rc, err);
    if (o.cluster < 0)
        return done(-EINVAL, "remote: cluster (where the new bdev lives) is required");
    auto a = std::make_shared<CreateAttempt>();
    a->o = std::move(o);
    a->done = std::move(done);
    a->deadline = now_ns() + kCreateWaitNs;
    for (int c : cluster_process_clusters())
        if (a->o.base_cluster < 0 || a->o.base_cluster == c) a->candidates.push_back(c);
    try_round(std::move(a));
}

void remote_link_peer_down(int cluster) {
    ++g_life[cluster];
    remote::remote_peer_down(cluster);
}

void remote_link_peer_started(int cluster) {
    const uint64_t life = ++g_life[cluster];
    for (remote::RemoteBdev* b : remote::remote_bdevs_towards(cluster))
        relink(b->name, cluster, life, 0);
}

}  // namespace nocstor::control
