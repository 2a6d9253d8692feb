// One open lvstore (control thread): its base, superblock, metadata state and journal, the lvol
// bdevs it registered, and the cluster allocations in progress.
#pragma once

#include "modules/lvol/lvol.h"
#include "modules/lvol/lvol_bdev.h"
#include "modules/lvol/lvs_journal.h"

#include <chrono>
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
    uint64_t cluster_blocks() const { return uint64_t(1) << cluster_shift_; }
    // log2(cluster_blocks()): the data path splits an offset into cluster and block within it.
    uint32_t cluster_shift() const { return cluster_shift_; }
    // Base block where base cluster `pcl` starts.
    uint64_t cluster_start(uint32_t pcl) const {
        return data_start_ + (uint64_t(pcl) << cluster_shift_);
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

    // --- external parents (esnap clones; lvol_esnap.cpp) ---
    // The handle of external parent `id` (as recorded), created on first use; opened at once
    // when a bdev with that UUID or name exists (*err says why not, when it does not open).
    Esnap* esnap(const std::string& id, std::string* err = nullptr);
    // Opens bdev `b` read-only as external parent `e` and claims it (shared with the module's
    // other opens of it). False with a message.
    bool esnap_attach(Esnap* e, Bdev* b, std::string* err);
    // Closes `e`'s open (its clones become degraded): channels drop their channels to it once
    // their reads of it are done, fills reading it finish, then it is closed; then done.
    void esnap_detach(Esnap* e, std::function<void()> done);
    // Closes the external parents no lvol of the store uses any more; then done.
    void esnap_release_unused(std::function<void()> done = [] {});
    // Whether an lvol's chain (itself or a snapshot above it) names external parent `id`.
    bool esnap_in_use(const std::string& id) const;
    // The external parent id at the top of lvol `id`'s chain ("" none) and whether it is missing.
    std::string chain_esnap(uint32_t id) const;
    bool degraded(uint32_t id) const;
    std::map<std::string, std::unique_ptr<Esnap>> esnaps;

    nlohmann::json info_json() const;

  private:
    // Fixed for the store's life (cluster and block sizes are powers of two): the data path's
    // translation is shifts and adds, not three 64-bit divisions per I/O.
    uint32_t cluster_shift_ = 0;
    uint64_t data_start_ = 0;  // sb.data_offset in base blocks

    struct Waiter {
        BdevIo* io;
        Thread* origin;
        std::function<void(int)> done;
    };
    struct Alloc {
        uint32_t pcl;
        std::vector<Waiter> waiters;
        BdevIo* carried = nullptr;  // the write whose data the fill wrote (completed, not rerun)
    };
    // Fills new cluster `pcl` (lvol `lvol_id`'s cluster `idx`) with what the lvol read there
    // before; with `carried`, that write's data goes to its part and the rest is filled.
    void fill_cluster(uint32_t lvol_id, uint64_t idx, uint32_t pcl, BdevIo* carried,
                      std::function<void(bool)> done);
    // Fills bytes [off, off + len) of the new cluster (block multiples).
    void fill_range(uint32_t lvol_id, uint64_t idx, uint32_t pcl, uint64_t off, uint64_t len,
                    std::function<void(bool)> done);
    // Copies `len` bytes (block multiple) at `from` of `src` to byte `to` of the base.
    void copy_range(BdevDesc* src, uint64_t from, uint64_t len, uint64_t to,
                    std::function<void(bool)> done);
    // "No free cluster" warnings: at most one per 5 s, with the refusals since the last one.
    uint64_t nospace_refused_ = 0;
    bool nospace_logged_ = false;
    std::chrono::steady_clock::time_point nospace_last_{};
    // publish false: the lvol got the cluster otherwise meanwhile; the new one goes back unused.
    void finish_alloc(uint32_t id, uint64_t idx, int rc, bool publish = true);
    std::map<std::pair<uint32_t, uint64_t>, Alloc> allocs_;

  public:
    std::set<uint32_t> reserved;  // clusters being filled for an allocation or a thick create
};

// The module's registry of open stores (control thread).
std::vector<Lvstore*>& lvstores();
Lvstore* find_lvstore(const std::string& uuid, const std::string& name);
// The lvol bdev by bdev name, UUID or alias, with its store.
LvolBdev* find_lvol(const std::string& name);
// A bdev by name, alias or UUID string (not one being removed).
Bdev* find_bdev_by_id(const std::string& id);
// What an external parent is recorded as: the bdev's UUID string, or its name without one.
std::string esnap_id_of(const Bdev* b);
// Examine: opens `b` as the missing external parent of any store's lvols; true if it did.
bool esnap_examine(Bdev* b);
// Closes every external parent of `s` (the store is closing; its lvols are gone); then done.
void esnap_close_all(Lvstore* s, std::function<void()> done);

}  // namespace nocstor::lvol
