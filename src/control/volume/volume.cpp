#include "control/volume/volume.h"

#include "bdev/bdev.h"
#include "control/cluster_process/cluster_processes.h"
#include "control/cluster_process/remote_link.h"
#include "control/rpc_registry.h"
#include "modules/lvol/lvol.h"
#include "modules/raid/raid.h"
#include "modules/raid/raid_layout.h"
#include "modules/raid/raid_superblock.h"
#include "modules/remote/remote_bdev.h"
#include "nvmf/target.h"
#include "runtime/runtime.h"
#include "util/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <set>

namespace nocstor::control::volume {

using nlohmann::json;

namespace {

std::map<std::string, Volume>& registry() {
    static auto* m = new std::map<std::string, Volume>();
    return *m;
}

std::vector<int> data_clusters() {
    std::vector<int> ids;
    if (Runtime* rt = Runtime::instance())
        for (const Cluster& c : rt->clusters())
            if (c.role == ClusterSpec::Role::Data) ids.push_back(c.id);
    return ids;
}

uint64_t round_up(uint64_t v, uint64_t a) {
    return a ? (v + a - 1) / a * a : v;
}

// Bytes of data each member holds for `size` bytes of volume (before the array's metadata).
bool member_data_bytes(const VolumeSpec& s, raid::Level level, uint64_t* out, std::string* err) {
    const uint64_t n = s.clusters.size();
    const uint64_t strip = uint64_t(s.stripe_kb) * 1024;
    uint64_t data_members = n;
    if (level == raid::Level::Raid1) data_members = 1;
    if (level == raid::Level::Raid5) data_members = n - 1;
    if (level == raid::Level::Raid6) data_members = n - 2;
    const uint64_t min_members = level == raid::Level::Raid6   ? 4
                                 : level == raid::Level::Raid5 ? 3
                                 : level == raid::Level::Raid1 ? 2
                                                               : 1;
    if (n < min_members) {
        *err =
            fmt::format("layout {} needs at least {} clusters, got {}", s.layout, min_members, n);
        return false;
    }
    const uint64_t per = (s.size_bytes + data_members - 1) / data_members;
    *out = level == raid::Level::Raid1 ? per : round_up(per, std::max<uint64_t>(strip, 1 << 20));
    return true;
}

// What the volume code sees of every process: each bdev (describe_bdev's JSON, by name and by
// alias) and each lvstore. Gathered once per creation or view: with --cluster-processes, the
// members' lvols and lvstores live in the children.
struct View {
    std::map<std::string, json> bdevs;
    json stores = json::array();
    std::set<int> unreachable;  // child processes that did not answer (restarting, stopped)
    const json* bdev(const std::string& name) const {
        auto it = bdevs.find(name);
        return it == bdevs.end() ? nullptr : &it->second;
    }
    void add_bdev(const json& b) {
        for (const auto& a : b.value("aliases", json::array())) bdevs[a.get<std::string>()] = b;
        bdevs[b.value("name", std::string())] = b;
    }
};

bool in_child(int cluster) {
    const std::vector<int> children = cluster_process_clusters();
    return std::find(children.begin(), children.end(), cluster) != children.end();
}

void gather_view(std::function<void(std::shared_ptr<View>)> done) {
    auto v = std::make_shared<View>();
    for (const Bdev* b : bdev_list()) v->add_bdev(describe_bdev(b));
    lvol::lvs_list("", "", &v->stores);
    if (!v->stores.is_array()) v->stores = json::array();
    auto pending = std::make_shared<size_t>(1);
    auto one_done = [v, pending, done] {
        if (--*pending == 0) done(v);
    };
    for (int c : cluster_process_clusters()) {
        *pending += 2;
        cluster_process_call(c, "bdev_get_bdevs", json::object(), [v, c, one_done](RpcResult r) {
            if (r.ok() && r.result.is_array())
                for (const auto& b : r.result) v->add_bdev(b);
            if (r.kind == RpcResult::Kind::kTransport) v->unreachable.insert(c);
            one_done();
        });
        cluster_process_call(c, "bdev_lvol_get_lvstores", json::object(),
                             [v, one_done](RpcResult r) {
                                 if (r.ok() && r.result.is_array())
                                     for (auto& s : r.result) v->stores.push_back(s);
                                 one_done();
                             });
    }
    one_done();
}

// The lvstore of `cluster` (its base owned by that cluster) with the most free bytes.
bool pick_lvstore(const View& view, int cluster, uint64_t need, std::string* name,
                  std::string* err) {
    uint64_t best_free = 0;
    std::string seen;
    for (const auto& s : view.stores) {
        const json* base = view.bdev(s.value("base_bdev", std::string()));
        if (!base || base->value("cluster", -1) != cluster) continue;
        const uint64_t free_bytes =
            s.value("free_clusters", uint64_t(0)) * s.value("cluster_size", uint64_t(0));
        seen += (seen.empty() ? "" : ", ") + s.value("name", std::string()) +
                fmt::format(" ({} MiB free)", free_bytes >> 20);
        if (free_bytes >= need && free_bytes > best_free) {
            best_free = free_bytes;
            *name = s.value("name", std::string());
        }
    }
    if (!name->empty()) return true;
    if (view.unreachable.count(cluster)) {
        *err = fmt::format(
            "cluster {}'s process does not answer (see nocstor_get_cluster_processes)", cluster);
        return false;
    }
    *err = seen.empty() ? fmt::format(
                              "cluster {} has no lvstore: create one on a bdev that cluster owns "
                              "(bdev_lvol_create_lvstore)",
                              cluster)
                        : fmt::format("no lvstore of cluster {} has {} MiB free: {}", cluster,
                                      need >> 20, seen);
    return false;
}

// Deletes a member's lvol, in this process or in its cluster's.
void delete_lvol(int cluster, const std::string& alias, std::function<void()> next) {
    if (!in_child(cluster)) {
        if (!bdev_get_by_name(alias)) return next();
        return lvol::lvol_delete(alias, [alias, next](int rc, std::string e) {
            if (rc) NOC_WARN("volume", "deleting {}: {}", alias, e);
            next();
        });
    }
    cluster_process_call(cluster, "bdev_lvol_delete", {{"name", alias}},
                         [alias, next](RpcResult r) {
                             if (!r.ok()) NOC_WARN("volume", "deleting {}: {}", alias, r.message);
                             next();
                         });
}

// One creation, step by step; every step done is undone if a later one fails.
struct Job : std::enable_shared_from_this<Job> {
    Volume vol;
    raid::Level level = raid::Level::Raid0;
    uint64_t lvol_bytes = 0;
    Done done;
    std::vector<std::function<void(std::function<void()>)>> undo;

    void fail(int rc, std::string err) {
        NOC_WARN("volume", "{}: {}; undoing what was built", vol.spec.name, err);
        auto self = shared_from_this();
        auto step = std::make_shared<std::function<void()>>();
        *step = [self, step, rc, err] {
            if (self->undo.empty()) {
                auto keep = self;
                const int code = rc;
                const std::string msg = err;
                *step = nullptr;  // destroys this closure: only locals from here on
                return keep->done(code, msg);
            }
            auto u = std::move(self->undo.back());
            self->undo.pop_back();
            u([step] { (*step)(); });
        };
        (*step)();
    }

    void make_lvol(size_t i) {
        if (i == vol.members.size()) return make_remote(0);
        Member& m = vol.members[i];
        const std::string name = fmt::format("{}_m{}", vol.spec.name, i);
        auto self = shared_from_this();
        auto made = [self, i, alias = m.lvstore + "/" + name](int rc, std::string msg) {
            const int cluster = self->vol.members[i].cluster;
            if (rc)
                return self->fail(rc, "lvol on cluster " + std::to_string(cluster) + ": " + msg);
            self->vol.members[i].lvol = alias;
            self->undo.push_back([cluster, alias](std::function<void()> next) {
                delete_lvol(cluster, alias, next);
            });
            self->make_lvol(i + 1);
        };
        if (in_child(m.cluster)) {
            return cluster_process_call(
                m.cluster, "bdev_lvol_create",
                {{"lvs_name", m.lvstore},
                 {"lvol_name", name},
                 {"size_in_mib", lvol_bytes >> 20},
                 {"thin_provision", vol.spec.thin}},
                [made](RpcResult r) { made(r.ok() ? 0 : (r.code ? r.code : -EIO), r.message); });
        }
        lvol::LvolCreateOptions o;
        o.lvs_name = m.lvstore;
        o.name = name;
        o.size_bytes = lvol_bytes;
        o.thin = vol.spec.thin;
        lvol::lvol_create(o, made);
    }

    void make_remote(size_t i) {
        if (i == vol.members.size()) return make_raid();
        Member& m = vol.members[i];
        if (m.cluster == vol.spec.front_cluster) return make_remote(i + 1);  // used directly
        remote::RemoteCreateOptions o;
        o.name = fmt::format("{}_m{}_remote", vol.spec.name, i);
        o.base_bdev_name = m.lvol;
        o.cluster = vol.spec.front_cluster;
        auto self = shared_from_this();
        auto made = [self, i, name = o.name](int rc, std::string err) {
            if (rc) return self->fail(rc, err);
            self->vol.members[i].remote = name;
            self->undo.push_back([name](std::function<void()> next) {
                remote::remote_bdev_delete(name, [next](int, std::string) { next(); });
            });
            self->make_remote(i + 1);
        };
        if (in_child(m.cluster)) {
            o.base_cluster = m.cluster;
            return remote_link_create(o, made);
        }
        std::string err;
        const int rc = remote::remote_bdev_create(o, &err);
        made(rc, err);
    }

    void make_raid() {
        raid::RaidCreateOptions o;
        o.name = vol.spec.name;
        o.level = level;
        o.strip_size_kb = level == raid::Level::Raid1 ? 0 : vol.spec.stripe_kb;
        o.superblock = true;  // the array assembles by itself after a restart
        for (const Member& m : vol.members)
            o.base_bdevs.push_back(m.remote.empty() ? m.lvol : m.remote);
        auto self = shared_from_this();
        raid::raid_create_async(o, [self](int rc, std::string err) {
            if (rc) return self->fail(rc, "array: " + err);
            self->undo.push_back([name = self->vol.spec.name](std::function<void()> next) {
                raid::raid_delete(name, true, [next](int) { next(); });
            });
            self->add_namespace();
        });
    }

    void add_namespace() {
        if (vol.spec.nqn.empty()) return finish();
        auto* t = nvmf::NvmfTarget::instance();
        if (!t) return fail(-ENODEV, "no NVMe-oF target");
        nvmf::NamespaceParams p;
        p.bdev_name = vol.spec.name;
        auto self = shared_from_this();
        t->add_namespace(vol.spec.nqn, p, [self](int rc, std::string err, uint32_t) {
            if (rc) return self->fail(rc, "namespace: " + err);
            self->finish();
        });
    }

    void finish() {
        registry()[vol.spec.name] = vol;
        NOC_INFO("volume", "{}: {} over {} clusters, front end on cluster {}", vol.spec.name,
                 vol.spec.layout, vol.members.size(), vol.spec.front_cluster);
        done(0, "");
    }
};

// Runs the teardown steps of `v` one after another; failures are logged, not fatal.
void teardown(const Volume& v, Done done) {
    std::vector<std::function<void(std::function<void()>)>> steps;
    if (auto* t = nvmf::NvmfTarget::instance()) {
        for (const auto& s : t->list_subsystems())
            for (const auto& ns : s.namespaces)
                if (ns->bdev_name == v.spec.name)
                    steps.push_back([nqn = s.params.nqn, nsid = ns->nsid](auto next) {
                        nvmf::NvmfTarget::instance()->remove_namespace(
                            nqn, nsid, [next](int, std::string) { next(); });
                    });
    }
    if (bdev_get_by_name(v.spec.name))
        steps.push_back([name = v.spec.name](auto next) {
            raid::raid_delete(name, true, [name, next](int rc) {
                if (rc) NOC_WARN("volume", "{}: deleting the array: {}", name, strerror(-rc));
                next();
            });
        });
    for (const Member& m : v.members) {
        if (!m.remote.empty() && bdev_get_by_name(m.remote))
            steps.push_back([name = m.remote](auto next) {
                remote::remote_bdev_delete(name, [next](int, std::string) { next(); });
            });
    }
    for (const Member& m : v.members) {
        if (!m.lvol.empty())
            steps.push_back([cluster = m.cluster, name = m.lvol](auto next) {
                delete_lvol(cluster, name, next);
            });
    }
    auto all = std::make_shared<decltype(steps)>(std::move(steps));
    auto step = std::make_shared<std::function<void(size_t)>>();
    *step = [all, step, done](size_t i) {
        if (i == all->size()) {
            auto finished = done;
            *step = nullptr;  // destroys this closure: only locals from here on
            return finished(0, "");
        }
        (*all)[i]([step, i] { (*step)(i + 1); });
    };
    (*step)(0);
}

json node(const View& view, const std::string& name) {
    const json* b = view.bdev(name);
    if (!b) return {{"bdev", name}, {"state", "missing"}};
    json n = {
        {"bdev", b->value("name", name)},
        {"module", b->value("module", std::string())},
        {"cluster", b->value("cluster", -1)},
        {"size_bytes", b->value("block_size", uint64_t(0)) * b->value("num_blocks", uint64_t(0))}};
    const json aliases = b->value("aliases", json::array());
    if (!aliases.empty()) n["alias"] = aliases.front();
    const json info = b->value("driver_specific", json::object());
    if (info.contains("raid")) n["state"] = info["raid"]["state"];
    if (info.contains("remote")) n["link"] = info["remote"].value("link", std::string("up"));
    return n;
}

json tree(const View& view, const Volume& v) {
    json root = node(view, v.spec.name);
    root["children"] = json::array();
    for (const Member& m : v.members) {
        json lv = node(view, m.lvol);
        lv["lvstore"] = m.lvstore;
        if (view.unreachable.count(m.cluster)) {
            lv["cluster"] = m.cluster;
            lv["state"] = "unreachable";  // its process is down: not known to be missing
        }
        for (const auto& s : view.stores)
            if (s.value("name", std::string()) == m.lvstore)
                lv["children"] = json::array({node(view, s.value("base_bdev", std::string()))});
        if (m.remote.empty()) {
            root["children"].push_back(lv);
        } else {
            json r = node(view, m.remote);
            r["children"] = json::array({lv});
            root["children"].push_back(r);
        }
    }
    return root;
}

json to_json(const Volume& v) {
    json members = json::array();
    for (const Member& m : v.members)
        members.push_back({{"cluster", m.cluster},
                           {"lvstore", m.lvstore},
                           {"lvol", m.lvol},
                           {"remote", m.remote}});
    return {{"name", v.spec.name},
            {"size_bytes", v.spec.size_bytes},
            {"layout", v.spec.layout},
            {"stripe_kb", v.spec.stripe_kb},
            {"clusters", v.spec.clusters},
            {"front_cluster", v.spec.front_cluster},
            {"thin_provision", v.spec.thin},
            {"nqn", v.spec.nqn},
            {"members", members}};
}

}  // namespace

void create(const VolumeSpec& in, Done done) {
    VolumeSpec s = in;
    std::string err;
    if (s.name.empty() || s.name.size() > 48 || s.name.find('/') != std::string::npos)
        return done(-EINVAL, "name must be 1-48 characters without '/'");
    if (registry().count(s.name) || bdev_get_by_name(s.name))
        return done(-EEXIST, "a volume or bdev named " + s.name + " exists");
    if (s.size_bytes == 0 || s.size_bytes % (1 << 20))
        return done(-EINVAL, "size must be a positive multiple of 1 MiB");
    auto job = std::make_shared<Job>();
    if (!raid::parse_level(s.layout, &job->level))
        return done(-EINVAL,
                    "layout '" + s.layout + "' is not raid0, raid1, raid5, raid6 or concat");
    if (job->level != raid::Level::Raid1 &&
        (s.stripe_kb < 4 || (s.stripe_kb & (s.stripe_kb - 1)) || s.stripe_kb > 1024))
        return done(-EINVAL, "stripe_kb must be a power of two from 4 to 1024");
    const std::vector<int> data = data_clusters();
    if (s.clusters.empty()) s.clusters = data;
    for (int c : s.clusters)
        if (std::find(data.begin(), data.end(), c) == data.end())
            return done(-EINVAL, fmt::format("cluster {} is not a data cluster", c));
    if (s.front_cluster < 0) s.front_cluster = data.empty() ? 1 : data.front();
    if (std::find(data.begin(), data.end(), s.front_cluster) == data.end())
        return done(-EINVAL,
                    fmt::format("front_cluster {} is not a data cluster", s.front_cluster));
    uint64_t per = 0;
    if (!member_data_bytes(s, job->level, &per, &err)) return done(-EINVAL, err);
    job->lvol_bytes = per + raid::kMetadataBytes;
    job->vol.spec = s;
    job->done = std::move(done);
    gather_view([job](std::shared_ptr<View> view) {
        std::string err;
        for (int c : job->vol.spec.clusters) {
            Member m;
            m.cluster = c;
            if (!pick_lvstore(*view, c, job->vol.spec.thin ? 0 : job->lvol_bytes, &m.lvstore, &err))
                return job->done(-ENOSPC, err);
            job->vol.members.push_back(m);
        }
        if (registry().count(job->vol.spec.name) || bdev_get_by_name(job->vol.spec.name))
            return job->done(-EEXIST, "a volume or bdev named " + job->vol.spec.name + " exists");
        job->make_lvol(0);
    });
}

void remove(const std::string& name, Done done) {
    auto it = registry().find(name);
    if (it == registry().end()) return done(-ENODEV, "no volume named " + name);
    const Volume v = it->second;
    registry().erase(it);
    teardown(v, [name, done](int rc, std::string err) {
        NOC_INFO("volume", "{}: deleted", name);
        done(rc, err);
    });
}

void describe(const std::string& name, std::function<void(int rc, json out)> done) {
    if (!name.empty() && !registry().count(name)) return done(-ENODEV, json::array());
    gather_view([name, done](std::shared_ptr<View> view) {
        json out = json::array();
        for (const auto& [n, v] : registry()) {
            if (!name.empty() && n != name) continue;
            json j = to_json(v);
            j["tree"] = tree(*view, v);
            if (const Bdev* b = bdev_get_by_name(n)) j["size_bytes"] = b->size_bytes();
            json namespaces = json::array();
            if (auto* t = nvmf::NvmfTarget::instance())
                for (const auto& s : t->list_subsystems())
                    for (const auto& ns : s.namespaces)
                        if (ns->bdev_name == n)
                            namespaces.push_back({{"nqn", s.params.nqn}, {"nsid", ns->nsid}});
            j["namespaces"] = namespaces;
            out.push_back(j);
        }
        if (!name.empty() && out.empty()) return done(-ENODEV, out);
        done(0, out);
    });
}

int register_existing(const json& p, std::string* err) {
    try {
        Volume v;
        v.spec.name = p.at("name").get<std::string>();
        v.spec.size_bytes = p.value("size_bytes", uint64_t(0));
        v.spec.layout = p.value("layout", std::string("raid0"));
        v.spec.stripe_kb = p.value("stripe_kb", 64u);
        v.spec.clusters = p.value("clusters", std::vector<int>());
        v.spec.front_cluster = p.value("front_cluster", 1);
        v.spec.thin = p.value("thin_provision", false);
        v.spec.nqn = p.value("nqn", std::string());
        for (const auto& m : p.at("members")) {
            Member x;
            x.cluster = m.at("cluster").get<int>();
            x.lvstore = m.value("lvstore", std::string());
            x.lvol = m.value("lvol", std::string());
            x.remote = m.value("remote", std::string());
            v.members.push_back(x);
        }
        if (registry().count(v.spec.name))
            return *err = "volume " + v.spec.name + " exists", -EEXIST;
        if (!bdev_get_by_name(v.spec.name))
            NOC_WARN("volume",
                     "{}: its array is missing (a member cluster's lvstore or remote bdev "
                     "is not there); listed as missing",
                     v.spec.name);
        registry()[v.spec.name] = std::move(v);
        return 0;
    } catch (const json::exception& e) {
        *err = std::string("bad volume record: ") + e.what();
        return -EINVAL;
    }
}

json config_section() {
    json calls = json::array();
    for (const auto& [n, v] : registry())
        calls.push_back({{"method", "nocstor_volume_register"}, {"params", to_json(v)}});
    return calls;
}

}  // namespace nocstor::control::volume
