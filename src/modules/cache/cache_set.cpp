#include "modules/cache/cache_set.h"

#include <bit>

namespace nocstor::cache {

CacheSet::CacheSet(uint32_t index, uint64_t first_line, uint32_t lines, uint32_t per_block)
    : index_(index),
      first_(first_line),
      n_(lines),
      per_block_(per_block),
      entries_(std::make_unique<Entry[]>(lines)),
      md_((lines + per_block - 1) / per_block) {
    const size_t cap = std::bit_ceil(size_t(lines) * 2);
    table_ = std::make_unique<Slot[]>(cap);
    mask_ = cap - 1;
}

uint32_t CacheSet::lookup(uint64_t core_line) const {
    for (size_t s = slot_of(core_line);; s = (s + 1) & mask_) {
        const Slot& v = table_[s];
        if (v.line_plus1 == 0) return kNone;
        if (v.core_line == core_line) return v.line_plus1 - 1;
    }
}

void CacheSet::hash_insert(uint64_t core_line, uint32_t line) {
    size_t s = slot_of(core_line);
    while (table_[s].line_plus1 != 0) s = (s + 1) & mask_;
    table_[s] = {core_line, line + 1};
}

// Backward-shift deletion keeps every probe chain unbroken without tombstones.
void CacheSet::hash_erase(uint64_t core_line) {
    size_t s = slot_of(core_line);
    while (table_[s].line_plus1 == 0 || table_[s].core_line != core_line) {
        if (table_[s].line_plus1 == 0) return;
        s = (s + 1) & mask_;
    }
    table_[s] = Slot{};
    for (size_t j = (s + 1) & mask_; table_[j].line_plus1 != 0; j = (j + 1) & mask_) {
        const size_t home = slot_of(table_[j].core_line);
        // Move j's entry into the hole unless its home lies cyclically in (s, j].
        const bool stays = s <= j ? (s < home && home <= j) : (s < home || home <= j);
        if (stays) continue;
        table_[s] = table_[j];
        table_[j] = Slot{};
        s = j;
    }
}

void CacheSet::load(uint32_t l, const Entry& e) {
    if (e.core_line == kNoCoreLine) return;  // stays free
    entries_[l] = e;
    if (e.gen >= next_gen_) next_gen_ = e.gen + 1;
    hash_insert(e.core_line, l);
    add(mapped_, 1);
    dirty_changed(LineMask{}, e.dirty);
}

void CacheSet::finish_load() {
    free_.clear();
    free_.reserve(n_);
    for (uint32_t l = n_; l-- > 0;)
        if (entries_[l].core_line == kNoCoreLine) free_.push_back(l);
}

void CacheSet::map(uint32_t l, uint64_t core_line) {
    entries_[l] = Entry{core_line, {}, {}, next_gen_++, now_ms_, true};
    hash_insert(core_line, l);
    add(mapped_, 1);
}

uint32_t CacheSet::take_free() {
    if (free_.empty()) return kNone;
    const uint32_t l = free_.back();
    free_.pop_back();
    return l;
}

void CacheSet::dirty_changed(const LineMask& before, const LineMask& after) {
    add(dirty_blocks_, int64_t(after.count()) - int64_t(before.count()));
    if (before.any() != after.any()) add(dirty_lines_, after.any() ? 1 : -1);
}

}  // namespace nocstor::cache
