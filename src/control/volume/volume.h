// Distributed volumes (use case 1 as one command): on each chosen data cluster an lvol from that
// cluster's lvstore, a remote bdev towards it from the front-end cluster (none when the lvol is
// already there), a RAID across them on the front-end cluster, and optionally an NVMe-oF
// namespace. The volume is one object to create, show (a tree across clusters) and delete; its
// parts persist as they always do (lvols in their stores, remote bdevs in save_config, the array
// in its superblocks) and the volume record in the "volume" config section. Control thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace nocstor::control::volume {

struct VolumeSpec {
    std::string name;
    uint64_t size_bytes = 0;
    std::vector<int> clusters;  // data clusters holding the data; empty: every data cluster
    int front_cluster = -1;     // where the array and the namespace run; -1: the first data one
    uint32_t stripe_kb = 64;
    std::string layout = "raid0";  // raid0, raid1, raid5, raid6 or concat
    bool thin = false;
    std::string nqn;  // when set, the volume becomes a namespace of this subsystem
};

struct Member {
    int cluster = 0;
    std::string lvstore;  // its name
    std::string lvol;     // "lvstore/lvol"
    std::string remote;   // the remote bdev on the front cluster, "" when the lvol is there
};

struct Volume {
    VolumeSpec spec;
    std::vector<Member> members;
};

using Done = std::function<void(int rc, std::string err)>;

void create(const VolumeSpec& spec, Done done);
void remove(const std::string& name, Done done);
// The volume as a tree across clusters (namespace -> array -> remote -> lvol -> base), or every
// volume when name is empty; asks the cluster processes for their parts. -ENODEV when the
// named one does not exist.
void describe(const std::string& name, std::function<void(int rc, nlohmann::json out)> done);
// Records an existing volume (from the saved configuration): its parts must exist.
int register_existing(const nlohmann::json& params, std::string* err);
// The "volume" config section: one nocstor_volume_register call per volume.
nlohmann::json config_section();

}  // namespace nocstor::control::volume
