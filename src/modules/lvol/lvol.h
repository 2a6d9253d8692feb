// Logical volumes: lvstores on bdevs, thick and thin lvols, snapshots and clones, with SPDK's
// method names (docs/lvol.md). Everything here runs on the control thread; completions too.
#pragma once

#include "bdev/bdev_module.h"
#include "modules/lvol/lvs_format.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace nocstor::lvol {

// rc 0 and the result (a UUID, ...), or a negative errno and a message.
using Result = std::function<void(int rc, std::string msg)>;

struct LvsCreateOptions {
    std::string bdev_name;
    std::string lvs_name;
    uint64_t cluster_bytes = kDefaultClusterBytes;
    ClearMethod clear_method = ClearMethod::Unmap;  // of the data region, at creation
};
void lvs_create(const LvsCreateOptions& o, Result done);
// By UUID or name (exactly one of them non-empty).
void lvs_delete(const std::string& uuid, const std::string& name, Result done);
void lvs_rename(const std::string& old_name, const std::string& new_name, Result done);
void lvs_grow(const std::string& uuid, const std::string& name, Result done);
// bdev_lvol_get_lvstores: every store, or the one named (-ENODEV when none matches).
int lvs_list(const std::string& uuid, const std::string& name, nlohmann::json* out);

struct LvolCreateOptions {
    std::string lvs_uuid, lvs_name;  // one of them
    std::string name;
    uint64_t size_bytes = 0;
    bool thin = false;
    ClearMethod clear_method = ClearMethod::Unmap;  // of its clusters, when deleted
};
void lvol_create(const LvolCreateOptions& o, Result done);  // result: the lvol's UUID
// `lvol` is the bdev's name (the UUID) or its alias "lvs_name/lvol_name".
void lvol_snapshot(const std::string& lvol, const std::string& snapshot_name, Result done);
void lvol_clone(const std::string& snapshot, const std::string& clone_name, Result done);
void lvol_rename(const std::string& lvol, const std::string& new_name, Result done);
void lvol_resize(const std::string& lvol, uint64_t size_bytes, Result done);
void lvol_set_read_only(const std::string& lvol, Result done);
void lvol_delete(const std::string& lvol, Result done);
void lvol_inflate(const std::string& lvol, Result done);
// An esnap clone: decouple copies what the external parent holds, like inflate (SPDK).
void lvol_decouple_parent(const std::string& lvol, Result done);
// bdev_lvol_clone_bdev: a thin lvol of store `lvs_name` whose parent is bdev `bdev` (name or
// UUID), outside the store; result: its UUID.
void lvol_clone_bdev(const std::string& bdev, const std::string& lvs_name,
                     const std::string& clone_name, Result done);
// bdev_lvol_set_parent: snapshot `parent` of the same store becomes the parent of thin `lvol`.
void lvol_set_parent(const std::string& lvol, const std::string& parent, Result done);
// bdev_lvol_set_parent_bdev: bdev `esnap` (name or UUID) becomes the parent of thin `lvol`.
void lvol_set_parent_bdev(const std::string& lvol, const std::string& esnap, Result done);
// bdev_lvol_get_lvols
int lvol_list(const std::string& lvs_uuid, const std::string& lvs_name, nlohmann::json* out);

BdevModule* lvol_bdev_module();
void lvol_metrics(std::string& out);  // Prometheus text: per lvstore and per lvol (/metrics)

}  // namespace nocstor::lvol
