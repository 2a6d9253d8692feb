#include "modules/lvol/lvs_state.h"

#include <set>

namespace nocstor::lvol {

namespace {

bool fail(std::string* why, std::string msg) {
    if (why) *why = std::move(msg);
    return false;
}

// The runs are inside the lvol, on unallocated entries, on free clusters of the store and do
// not overlap each other.
bool runs_fit(const LvolMeta& l, const std::vector<Run>& runs, const std::vector<bool>& used,
              uint64_t total, std::string* why) {
    std::set<uint64_t> seen;
    for (const Run& r : runs) {
        if (r.count == 0) return fail(why, "empty run");
        if (r.lidx > l.num_clusters || r.count > l.num_clusters - r.lidx)
            return fail(why, "run past the end of lvol " + l.name);
        if (uint64_t(r.pcl) + r.count > total) return fail(why, "run past the end of the store");
        for (uint32_t i = 0; i < r.count; ++i) {
            if (l.map[r.lidx + i] != kUnallocated)
                return fail(why, "cluster " + std::to_string(r.lidx + i) + " of lvol " + l.name +
                                     " is already allocated");
            if (used[r.pcl + i] || !seen.insert(r.pcl + i).second)
                return fail(why, "base cluster " + std::to_string(r.pcl + i) + " is in use");
        }
    }
    return true;
}

}  // namespace

LvsState::LvsState(uint64_t total_clusters)
    : used_(total_clusters, false), total_(total_clusters) {}

bool LvsState::load(uint64_t total_clusters, uint32_t next_id, std::vector<LvolMeta> lvols,
                    std::string* why) {
    LvsState s(total_clusters);
    s.next_id_ = next_id;
    for (LvolMeta& l : lvols) {
        if (l.map.size() != l.num_clusters) return fail(why, "lvol " + l.name + ": bad map size");
        if (s.lvols_.count(l.id)) return fail(why, "lvol id " + std::to_string(l.id) + " twice");
        if (l.id >= s.next_id_) s.next_id_ = l.id + 1;
        for (uint64_t i = 0; i < l.map.size(); ++i) {
            const uint32_t c = l.map[i];
            if (c == kUnallocated) continue;
            if (c >= total_clusters)
                return fail(why, "lvol " + l.name + ": cluster past the end of the store");
            if (s.used_[c])
                return fail(why, "base cluster " + std::to_string(c) + " is owned twice");
            s.used_[c] = true;
            ++s.used_count_;
        }
        const uint32_t id = l.id;
        s.lvols_.emplace(id, std::move(l));
    }
    for (const auto& [id, l] : s.lvols_) {
        if (l.parent != kNoLvol && !s.lvols_.count(l.parent))
            return fail(why, "lvol " + l.name + ": its parent " + std::to_string(l.parent) +
                                 " does not exist");
    }
    *this = std::move(s);
    return true;
}

const LvolMeta* LvsState::lvol(uint32_t id) const {
    auto it = lvols_.find(id);
    return it == lvols_.end() ? nullptr : &it->second;
}

const LvolMeta* LvsState::find(const std::string& name) const {
    for (const auto& [id, l] : lvols_)
        if (l.name == name) return &l;
    return nullptr;
}

std::vector<uint32_t> LvsState::children(uint32_t id) const {
    std::vector<uint32_t> out;
    for (const auto& [cid, l] : lvols_)
        if (l.parent == id) out.push_back(cid);
    return out;
}

std::vector<const LvolMeta*> LvsState::all() const {
    std::vector<const LvolMeta*> out;
    for (const auto& [id, l] : lvols_) out.push_back(&l);
    return out;
}

void LvsState::grow(uint64_t total_clusters) {
    if (total_clusters <= total_) return;
    used_.resize(total_clusters, false);
    total_ = total_clusters;
}

bool LvsState::find_free(uint64_t count, std::vector<Run>* out,
                         const std::set<uint32_t>* exclude) const {
    out->clear();
    uint64_t excluded_free = 0;  // reserved clusters that are still free in the state
    if (exclude)
        for (uint32_t c : *exclude) excluded_free += c < total_ && !used_[c];
    if (count + excluded_free > free_clusters()) return false;
    uint64_t need = count, c = cursor_ < total_ ? cursor_ : 0;
    for (uint64_t scanned = 0; need && scanned < total_; ++scanned, c = (c + 1) % total_) {
        if (used_[c] || (exclude && exclude->count(uint32_t(c)))) continue;
        if (!out->empty()) {
            Run& last = out->back();
            if (uint64_t(last.pcl) + last.count == c && last.count < UINT32_MAX) {
                ++last.count;
                --need;
                continue;
            }
        }
        out->push_back({0, uint32_t(c), 1});
        --need;
    }
    if (need) return false;
    cursor_ = c;
    return true;
}

bool LvsState::take(const std::vector<Run>& runs, uint32_t owner, std::string* why) {
    LvolMeta& l = lvols_.at(owner);
    if (!runs_fit(l, runs, used_, total_, why)) return false;
    for (const Run& r : runs) {
        for (uint32_t i = 0; i < r.count; ++i) {
            l.map[r.lidx + i] = r.pcl + i;
            used_[r.pcl + i] = true;
        }
        used_count_ += r.count;
    }
    return true;
}

void LvsState::release(uint32_t pcl) {
    if (pcl < used_.size() && used_[pcl]) {
        used_[pcl] = false;
        --used_count_;
    }
}

bool LvsState::apply(const Op& op, std::string* why) {
    auto need = [&](uint32_t id, LvolMeta** out) {
        auto it = lvols_.find(id);
        if (it == lvols_.end()) return fail(why, "no lvol with id " + std::to_string(id));
        *out = &it->second;
        return true;
    };
    auto name_free = [&](const std::string& name) {
        if (name.empty() || name.size() > kMaxNameBytes) return fail(why, "bad lvol name");
        if (find(name)) return fail(why, "lvol " + name + " exists");
        return true;
    };
    LvolMeta* l = nullptr;
    switch (op.type) {
        case OpType::CreateLvol: {
            const LvolMeta& n = op.lvol;
            if (lvols_.count(n.id) || n.id == kNoLvol)
                return fail(why, "lvol id " + std::to_string(n.id) + " in use");
            if (!name_free(n.name)) return false;
            if (n.parent != kNoLvol && !lvols_.count(n.parent))
                return fail(why, "parent " + std::to_string(n.parent) + " does not exist");
            if (n.parent != kNoLvol && !n.esnap.empty())
                return fail(why, "lvol " + n.name + " cannot have a parent and an external one");
            LvolMeta fresh = n;
            fresh.map.assign(n.num_clusters, kUnallocated);
            if (!runs_fit(fresh, n.runs(), used_, total_, why)) return false;
            const std::vector<Run> runs = n.runs();
            lvols_.emplace(n.id, std::move(fresh));
            take(runs, n.id, why);
            if (n.id >= next_id_) next_id_ = n.id + 1;
            return true;
        }
        case OpType::DeleteLvol:
            if (!need(op.id, &l)) return false;
            if (!children(op.id).empty()) return fail(why, "lvol " + l->name + " has clones");
            for (uint32_t c : l->map)
                if (c != kUnallocated) release(c);
            lvols_.erase(op.id);
            return true;
        case OpType::AllocRuns:
            if (!need(op.id, &l)) return false;
            return take(op.runs, op.id, why);
        case OpType::Resize: {
            if (!need(op.id, &l)) return false;
            LvolMeta sized = *l;
            sized.map.resize(op.num, kUnallocated);
            sized.num_clusters = op.num;
            // Clusters past the new end are freed (checked against the shrunk map first).
            std::vector<bool> used = used_;
            for (uint64_t i = op.num; i < l->map.size(); ++i)
                if (l->map[i] != kUnallocated) used[l->map[i]] = false;
            if (!runs_fit(sized, op.runs, used, total_, why)) return false;
            for (uint64_t i = op.num; i < l->map.size(); ++i)
                if (l->map[i] != kUnallocated) release(l->map[i]);
            l->map.resize(op.num, kUnallocated);
            l->num_clusters = op.num;
            return take(op.runs, op.id, why);
        }
        case OpType::Snapshot: {
            if (!need(op.id, &l)) return false;
            if (lvols_.count(op.lvol.id) || op.lvol.id == kNoLvol)
                return fail(why, "lvol id " + std::to_string(op.lvol.id) + " in use");
            if (!name_free(op.lvol.name)) return false;
            LvolMeta snap = op.lvol;
            snap.num_clusters = l->num_clusters;
            snap.map = l->map;
            snap.parent = l->parent;
            snap.esnap = l->esnap;
            snap.thin = true;
            snap.read_only = true;
            snap.snapshot = true;
            snap.clear_method = l->clear_method;
            l->map.assign(l->num_clusters, kUnallocated);
            l->parent = snap.id;
            l->esnap.clear();
            l->thin = true;
            if (snap.id >= next_id_) next_id_ = snap.id + 1;
            lvols_.emplace(snap.id, std::move(snap));
            return true;
        }
        case OpType::Rename:
            if (!need(op.id, &l)) return false;
            if (l->name == op.name) return true;
            if (!name_free(op.name)) return false;
            l->name = op.name;
            return true;
        case OpType::SetReadOnly:
            if (!need(op.id, &l)) return false;
            l->read_only = true;
            return true;
        case OpType::SetParent:
            if (!need(op.id, &l)) return false;
            if (op.other != kNoLvol && !op.name.empty())
                return fail(why, "lvol " + l->name + " cannot have a parent and an external one");
            if (op.other != kNoLvol) {
                if (op.other == op.id || !lvols_.count(op.other))
                    return fail(why, "parent " + std::to_string(op.other) + " does not exist");
                if (!lvols_.at(op.other).read_only)
                    return fail(why, "parent " + lvols_.at(op.other).name + " is writable");
                // The new parent's chain must not lead back to this lvol.
                for (uint32_t p = op.other; p != kNoLvol;) {
                    if (p == op.id) return fail(why, "the parent chain would loop");
                    const LvolMeta* pl = lvol(p);
                    p = pl ? pl->parent : kNoLvol;
                }
            }
            l->parent = op.other;
            l->esnap = op.name;
            return true;
        case OpType::MergeSnapshot: {
            LvolMeta* child = nullptr;
            if (!need(op.id, &l) || !need(op.other, &child)) return false;
            if (child->parent != op.id)
                return fail(why, child->name + " is not a clone of " + l->name);
            if (children(op.id).size() != 1) return fail(why, l->name + " has more than one clone");
            for (uint64_t i = 0; i < l->map.size(); ++i) {
                const uint32_t c = l->map[i];
                if (c == kUnallocated) continue;
                if (i < child->map.size() && child->map[i] == kUnallocated)
                    child->map[i] = c;  // ownership moves: no copy
                else
                    release(c);
            }
            child->parent = l->parent;
            child->esnap = l->esnap;
            lvols_.erase(op.id);
            return true;
        }
    }
    return fail(why, "unknown operation " + std::to_string(int(op.type)));
}

std::vector<std::string> LvsState::check() const {
    std::vector<std::string> out;
    std::vector<uint32_t> owner(total_, kNoLvol);
    std::set<std::string> names;
    for (const auto& [id, l] : lvols_) {
        if (!names.insert(l.name).second) out.push_back("lvol name " + l.name + " is used twice");
        if (l.map.size() != l.num_clusters) out.push_back("lvol " + l.name + ": map size mismatch");
        for (uint64_t i = 0; i < l.map.size(); ++i) {
            const uint32_t c = l.map[i];
            if (c == kUnallocated) continue;
            if (c >= total_) {
                out.push_back("lvol " + l.name + ": cluster " + std::to_string(i) +
                              " points past the end of the store (" + std::to_string(c) + ")");
                continue;
            }
            if (owner[c] != kNoLvol) {
                const LvolMeta* o = lvol(owner[c]);
                out.push_back("base cluster " + std::to_string(c) + " is owned by " +
                              (o ? o->name : "?") + " and " + l.name);
            }
            owner[c] = id;
        }
        // Only a chain's top may have an external parent: a clone of a snapshot reads its
        // unallocated clusters from the snapshot, so a second, external source is a contradiction.
        if (l.parent != kNoLvol && !l.esnap.empty()) {
            const LvolMeta* pl = lvol(l.parent);
            out.push_back("lvol " + l.name + ": has a parent (" +
                          (pl ? pl->name : std::to_string(l.parent)) +
                          ") and an external parent (" + l.esnap + ")");
        }
        // The parent chain ends, without a cycle, at a snapshot that exists.
        std::set<uint32_t> chain{id};
        for (uint32_t p = l.parent; p != kNoLvol;) {
            const LvolMeta* pl = lvol(p);
            if (!pl) {
                out.push_back("lvol " + l.name + ": parent " + std::to_string(p) + " is missing");
                break;
            }
            if (!chain.insert(p).second) {
                out.push_back("lvol " + l.name + ": its parent chain loops");
                break;
            }
            if (!pl->read_only)
                out.push_back("lvol " + l.name + ": parent " + pl->name + " is writable");
            p = pl->parent;
        }
    }
    uint64_t owned = 0;
    for (uint64_t c = 0; c < total_; ++c) {
        const bool has_owner = owner[c] != kNoLvol;
        owned += has_owner;
        if (has_owner != bool(used_[c]))
            out.push_back("base cluster " + std::to_string(c) +
                          (has_owner ? " is owned but marked free"
                                     : " is marked used but owned by no lvol (leaked)"));
    }
    if (owned != used_count_) out.push_back("used cluster count is off");
    return out;
}

}  // namespace nocstor::lvol
