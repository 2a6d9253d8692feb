#include "control/volume/volume.h"

#include "bdev/bdev.h"
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

// The lvstore of `cluster` (its base owned by that cluster) with the most free bytes.
bool pick_lvstore(int cluster, uint64_t need, std::string* name, std::string* err) {
    json stores;
    lvol::lvs_list("", "", &stores);
    uint64_t best_free = 0;
    std::string seen;
    for (const auto& s : stores) {
        const Bdev* base = bdev_get_by_name(s.value("base_bdev", std::string()));
        if (!base || base->cluster != cluster) continue;
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
    *err = seen.empty() ? fmt::format(
                              "cluster {} has no lvstore: create one on a bdev that cluster owns "
                              "(bdev_lvol_create_lvstore)",
                              cluster)
                        : fmt::format("no lvstore of cluster {} has {} MiB free: {}", cluster,
                                      need >> 20, seen);
    return false;
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
        lvol::LvolCreateOptions o;
        o.lvs_name = m.lvstore;
        o.name = fmt::format("{}_m{}", vol.spec.name, i);
        o.size_bytes = lvol_bytes;
        o.thin = vol.spec.thin;
        auto self = shared_from_this();
        lvol::lvol_create(o, [self, i, alias = m.lvstore + "/" + o.name](int rc, std::string msg) {
            if (rc)
                return self->fail(
                    rc,
                    "lvol on cluster " + std::to_string(self->vol.members[i].cluster) + ": " + msg);
            self->vol.members[i].lvol = alias;
            self->undo.push_back([alias](std::function<void()> next) {
                lvol::lvol_delete(alias, [next](int, std::string) { next(); });
            });
            self->make_lvol(i + 1);
        });
    }

    void make_remote(size_t i) {
        if (i == vol.members.size()) return make_raid();
        Member& m = vol.members[i];
        if (m.cluster == vol.spec.front_cluster) return make_remote(i + 1);  // used directly
        remote::RemoteCreateOptions o;
        o.name = fmt::format("{}_m{}_remote", vol.spec.name, i);
        o.base_bdev_name = m.lvol;
        o.cluster = vol.spec.front_cluster;
        std::string err;
        if (int rc = remote::remote_bdev_create(o, &err)) return fail(rc, err);
        m.remote = o.name;
        undo.push_back([name = o.name](std::function<void()> next) {
            remote::remote_bdev_delete(name, [next](int, std::string) { next(); });
        });
        make_remote(i + 1);
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
        if (!m.lvol.empty() && bdev_get_by_name(m.lvol))
            steps.push_back([name = m.lvol](auto next) {
                lvol::lvol_delete(name, [name, next](int rc, std::string e) {
                    if (rc) NOC_WARN("volume", "deleting {}: {}", name, e);
                    next();
                });
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

json node(const std::string& name) {
    const Bdev* b = bdev_get_by_name(name);
    if (!b) return {{"bdev", name}, {"state", "missing"}};
    json n = {{"bdev", b->name},
              {"module", b->module ? b->module->name() : ""},
              {"cluster", b->cluster},
              {"size_bytes", b->size_bytes()}};
    if (!b->aliases.empty()) n["alias"] = b->aliases.front();
    json info = json::object();
    b->dump_info_json(info);
    if (info.contains("raid")) n["state"] = info["raid"]["state"];
    return n;
}

json tree(const Volume& v) {
    json root = node(v.spec.name);
    root["children"] = json::array();
    json stores;
    lvol::lvs_list("", "", &stores);
    for (const Member& m : v.members) {
        json lv = node(m.lvol);
        lv["lvstore"] = m.lvstore;
        for (const auto& s : stores)
            if (s.value("name", std::string()) == m.lvstore)
                lv["children"] = json::array({node(s.value("base_bdev", std::string()))});
        if (m.remote.empty()) {
            root["children"].push_back(lv);
        } else {
            json r = node(m.remote);
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
    for (int c : s.clusters) {
        Member m;
        m.cluster = c;
        if (!pick_lvstore(c, s.thin ? 0 : job->lvol_bytes, &m.lvstore, &err))
            return done(-ENOSPC, err);
        job->vol.members.push_back(m);
    }
    job->vol.spec = s;
    job->done = std::move(done);
    job->make_lvol(0);
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

int describe(const std::string& name, json* out) {
    *out = json::array();
    for (const auto& [n, v] : registry()) {
        if (!name.empty() && n != name) continue;
        json j = to_json(v);
        j["tree"] = tree(v);
        if (const Bdev* b = bdev_get_by_name(n)) j["size_bytes"] = b->size_bytes();
        json namespaces = json::array();
        if (auto* t = nvmf::NvmfTarget::instance())
            for (const auto& s : t->list_subsystems())
                for (const auto& ns : s.namespaces)
                    if (ns->bdev_name == n)
                        namespaces.push_back({{"nqn", s.params.nqn}, {"nsid", ns->nsid}});
        j["namespaces"] = namespaces;
        out->push_back(j);
    }
    if (!name.empty() && out->empty()) return -ENODEV;
    return 0;
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
