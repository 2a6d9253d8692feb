// The lvstore's metadata as a state machine: lvols, their cluster maps and which base clusters
// are in use. Every change is an Op (lvs_format.h) applied here — by the daemon when it makes the
// change, by recovery when it replays the journal, by the checker — so all three agree. Pure: no
// I/O, no threads.
#pragma once

#include "modules/lvol/lvs_format.h"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace nocstor::lvol {

class LvsState {
  public:
    // An empty store of `total_clusters`.
    explicit LvsState(uint64_t total_clusters = 0);
    // From a checkpoint. False (and *why) when the lvols contradict each other (a cluster owned
    // twice, a cluster past the end, a parent that does not exist).
    bool load(uint64_t total_clusters, uint32_t next_id, std::vector<LvolMeta> lvols,
              std::string* why);

    // Applies one change. False with a reason, state unchanged, when it does not apply.
    bool apply(const Op& op, std::string* why);

    // Finds `count` free clusters (first fit from a rotating cursor), as runs. False when the
    // store does not have them. Does not mark them: apply the AllocRuns/CreateLvol/Resize op.
    // Clusters in `exclude` (reserved by allocations in progress) count as used.
    bool find_free(uint64_t count, std::vector<Run>* out,
                   const std::set<uint32_t>* exclude = nullptr) const;

    // The store grew (its base did): more free clusters.
    void grow(uint64_t total_clusters);

    const std::map<uint32_t, LvolMeta>& lvols() const { return lvols_; }
    const LvolMeta* lvol(uint32_t id) const;
    const LvolMeta* find(const std::string& name) const;
    std::vector<uint32_t> children(uint32_t id) const;
    uint32_t next_id() const { return next_id_; }
    uint32_t take_id() { return next_id_++; }
    uint64_t total_clusters() const { return total_; }
    uint64_t used_clusters() const { return used_count_; }
    uint64_t free_clusters() const { return total_ - used_count_; }
    bool cluster_used(uint64_t c) const { return c < used_.size() && used_[c]; }
    const std::vector<bool>& used_bits() const { return used_; }
    std::vector<const LvolMeta*> all() const;

    // Full consistency check for the offline checker: every message found (double-owned
    // clusters, clusters past the end, broken parent chains, parent cycles). Empty when clean.
    std::vector<std::string> check() const;

  private:
    bool take(const std::vector<Run>& runs, uint32_t owner, std::string* why);
    void release(uint32_t pcl);
    std::map<uint32_t, LvolMeta> lvols_;
    std::vector<bool> used_;
    uint64_t used_count_ = 0;
    uint64_t total_ = 0;
    uint32_t next_id_ = 1;
    mutable uint64_t cursor_ = 0;
};

}  // namespace nocstor::lvol
