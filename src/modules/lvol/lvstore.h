// One open lvstore (control thread): its base, superblock, metadata state and journal, the lvol
// bdevs it registered, and the cluster allocations in progress.
#pragma once

#include "modules/lvol/lvol.h"
#include "modules/lvol/lvol_bdev.h"
#include "modules/lvol/lvs_journal.h"

#include <map>
#include <memory>
#include <set>
#include <vector>

namespace nocstor::lvol {

class Lvstore {
  public:
    Lvstore(BdevDesc* base, Recovered r);
    ~Lvstore();

    BdevDesc* const base_desc;
    Superblock sb;
    LvsState state;
    std::unique_ptr<LvsJournal> journal;
    std::map<uint32_t, LvolBdev*> bdevs;  // registered lvol bdevs by lvol id
    bool unloading = false;

    Bdev* base() const { return base_desc->bdev(); }
    uint64_t cluster_blocks() const { return sb.cluster_bytes / base()->block_size; }
    // Base block where base cluster `pcl` starts.
    uint64_t cluster_start(uint32_t pcl) const {
        return (sb.data_offset + uint64_t(pcl) * sb.cluster_bytes) / base()->block_size;
    }
    std::string alias(const LvolMeta& l) const { return sb.name + "/" + l.name; }

    // Registers a bdev for lvol `id` (its map from the state, its parent's bdev).
    int register_lvol(uint32_t id, std::string* err);
    // Applies `op` to the state and commits it; done(0) once durable (-EIO: the store failed).
    bool apply_and_commit(const Op& op, std::function<void(int)> done, std::string* err);
    // Writes the superblock (the next copy, seq + 1); done(ok).
    void write_superblock(std::function<void(bool)> done);

    // Data path (control thread side): makes cluster `idx` of `lvol` exist, then resubmits io
    // on `origin` (io null: done(rc) on the control thread instead, for inflate).
    void allocate(LvolBdev* lvol, uint64_t idx, BdevIo* io, Thread* origin,
                  std::function<void(int)> done = nullptr);
    size_t allocations_in_progress() const { return allocs_.size(); }

    nlohmann::json info_json() const;

  private:
    struct Waiter {
        BdevIo* io;
        Thread* origin;
        std::function<void(int)> done;
    };
    struct Alloc {
        uint32_t pcl;
        std::vector<Waiter> waiters;
    };
    void fill_cluster(uint32_t lvol_id, uint64_t idx, uint32_t pcl, std::function<void(bool)> done);
    void finish_alloc(uint32_t id, uint64_t idx, int rc);
    std::map<std::pair<uint32_t, uint64_t>, Alloc> allocs_;

  public:
    std::set<uint32_t> reserved;  // clusters being filled for an allocation or a thick create
};

// The module's registry of open stores (control thread).
std::vector<Lvstore*>& lvstores();
Lvstore* find_lvstore(const std::string& uuid, const std::string& name);
// The lvol bdev by bdev name, UUID or alias, with its store.
LvolBdev* find_lvol(const std::string& name);

}  // namespace nocstor::lvol
