#include "lvol_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

namespace nocstor::lvol::test {

Uuid test_uuid(uint8_t seed) {
    Uuid u{};
    for (size_t i = 0; i < u.size(); ++i) u[i] = uint8_t(seed * 31 + i * 7 + 1);
    return u;
}

LvolMeta make_lvol(uint32_t id, const std::string& name, uint64_t num_clusters, bool thin,
                   const std::vector<uint32_t>& pcls, uint32_t parent) {
    LvolMeta l;
    l.id = id;
    l.uuid = test_uuid(uint8_t(id + 100));
    l.name = name;
    l.num_clusters = num_clusters;
    l.thin = thin;
    l.parent = parent;
    l.map.assign(num_clusters, kUnallocated);
    for (size_t i = 0; i < pcls.size() && i < num_clusters; ++i) l.map[i] = pcls[i];
    return l;
}

Op op_create(const LvolMeta& l) {
    Op op;
    op.type = OpType::CreateLvol;
    op.lvol = l;
    return op;
}

Op op_delete(uint32_t id) {
    Op op;
    op.type = OpType::DeleteLvol;
    op.id = id;
    return op;
}

Op op_alloc(uint32_t id, std::vector<Run> runs) {
    Op op;
    op.type = OpType::AllocRuns;
    op.id = id;
    op.runs = std::move(runs);
    return op;
}

Op op_resize(uint32_t id, uint64_t num, std::vector<Run> runs) {
    Op op;
    op.type = OpType::Resize;
    op.id = id;
    op.num = num;
    op.runs = std::move(runs);
    return op;
}

Op op_snapshot(uint32_t origin, uint32_t snap_id, const std::string& name) {
    Op op;
    op.type = OpType::Snapshot;
    op.id = origin;
    op.lvol.id = snap_id;
    op.lvol.uuid = test_uuid(uint8_t(snap_id + 100));
    op.lvol.name = name;
    return op;
}

Op op_rename(uint32_t id, const std::string& name) {
    Op op;
    op.type = OpType::Rename;
    op.id = id;
    op.name = name;
    return op;
}

Op op_read_only(uint32_t id) {
    Op op;
    op.type = OpType::SetReadOnly;
    op.id = id;
    return op;
}

Op op_set_parent(uint32_t id, uint32_t parent, const std::string& esnap) {
    Op op;
    op.type = OpType::SetParent;
    op.id = id;
    op.other = parent;
    op.name = esnap;
    return op;
}

Op op_merge(uint32_t snap, uint32_t child) {
    Op op;
    op.type = OpType::MergeSnapshot;
    op.id = snap;
    op.other = child;
    return op;
}

std::string lvol_diff(const LvolMeta& a, const LvolMeta& b) {
    const std::string who = "lvol " + std::to_string(a.id) + " (" + a.name + "): ";
    if (a.id != b.id) return who + "id differs";
    if (a.uuid != b.uuid) return who + "uuid differs";
    if (a.name != b.name) return who + "name differs (" + b.name + ")";
    if (a.num_clusters != b.num_clusters) return who + "num_clusters differs";
    if (a.thin != b.thin) return who + "thin differs";
    if (a.read_only != b.read_only) return who + "read_only differs";
    if (a.snapshot != b.snapshot) return who + "snapshot differs";
    if (a.parent != b.parent) return who + "parent differs";
    if (a.esnap != b.esnap) return who + "esnap differs";
    if (a.clear_method != b.clear_method) return who + "clear_method differs";
    if (a.map != b.map) return who + "cluster map differs";
    return "";
}

std::string state_diff(const LvsState& a, const LvsState& b) {
    if (a.total_clusters() != b.total_clusters()) return "total clusters differ";
    if (a.used_clusters() != b.used_clusters())
        return "used clusters differ: " + std::to_string(a.used_clusters()) + " vs " +
               std::to_string(b.used_clusters());
    if (a.used_bits() != b.used_bits()) return "allocation bits differ";
    if (a.next_id() != b.next_id()) return "next_id differs";
    if (a.lvols().size() != b.lvols().size())
        return "lvol count differs: " + std::to_string(a.lvols().size()) + " vs " +
               std::to_string(b.lvols().size());
    for (const auto& [id, l] : a.lvols()) {
        const LvolMeta* o = b.lvol(id);
        if (!o) return "lvol " + std::to_string(id) + " missing";
        if (std::string d = lvol_diff(l, *o); !d.empty()) return d;
    }
    return "";
}

Superblock small_sb(uint64_t total_clusters, uint64_t journal_pages, uint64_t ckpt_pages) {
    Superblock sb;
    sb.seq = 1;
    sb.uuid = test_uuid(7);
    sb.name = "lvs0";
    sb.block_size = 4096;
    sb.page_bytes = 4096;
    sb.cluster_bytes = 1 << 20;
    sb.total_clusters = total_clusters;
    sb.max_clusters = total_clusters;
    sb.ckpt_offset = 2 * sb.page_bytes;
    sb.ckpt_bytes = ckpt_pages * sb.page_bytes;
    sb.journal_offset = sb.ckpt_offset + 2 * sb.ckpt_bytes;
    sb.journal_bytes = journal_pages * sb.page_bytes;
    sb.data_offset = sb.journal_offset + sb.journal_bytes;
    sb.base_bytes = sb.data_offset + total_clusters * sb.cluster_bytes;
    return sb;
}

MetaWriter::MetaWriter(const Superblock& sb, const LvsState& initial)
    : sb_(sb), state_(initial), base_(sb.data_offset, 0) {
    sb_.seq = sb_seq_;
    sb_encode(sb_, base_.data());
    CheckpointHeader h;
    h.seq = ckpt_seq_;
    h.uuid = sb_.uuid;
    h.journal_seq = 1;
    h.journal_pos = 0;
    h.next_id = state_.next_id();
    std::vector<uint8_t> enc;
    ckpt_encode(h, state_.all(), state_.used_bits(), sb_.page_bytes, &enc);
    EXPECT_LE(enc.size(), sb_.ckpt_bytes);
    std::memcpy(base_.data() + sb_.ckpt_offset, enc.data(), std::min(enc.size(), sb_.ckpt_bytes));
    states.push_back(state_);
    pos_after.push_back(0);
    done_at.push_back(0);
    batch_pages.push_back(0);
}

void MetaWriter::write_pages(uint64_t off, const std::vector<uint8_t>& bytes) {
    for (uint64_t i = 0; i < bytes.size(); i += sb_.page_bytes) {
        PageWrite w;
        w.off = off + i;
        const uint64_t len = std::min<uint64_t>(sb_.page_bytes, bytes.size() - i);
        w.bytes.assign(bytes.begin() + i, bytes.begin() + i + len);
        writes_.push_back(std::move(w));
    }
}

uint64_t MetaWriter::batch(const std::vector<Op>& ops) {
    std::vector<const Op*> ptrs;
    for (const Op& op : ops) ptrs.push_back(&op);
    std::vector<uint8_t> enc;
    batch_encode(sb_.uuid, seq_, ptrs, sb_.page_bytes, &enc);
    const uint64_t j = sb_.journal_bytes;
    EXPECT_LE(enc.size(), j);
    auto place = [&](uint64_t* at, uint64_t* need) {
        *at = pos_ + enc.size() <= j ? pos_ : 0;
        *need = (*at == pos_ ? 0 : j - pos_) + enc.size();
    };
    uint64_t at, need;
    place(&at, &need);
    if (used_ + need > j) {  // would overwrite batches the newest checkpoint needs
        checkpoint();        // of the state before this batch
        place(&at, &need);
    }
    for (const Op& op : ops) {
        std::string why;
        EXPECT_TRUE(state_.apply(op, &why)) << op_type_name(op.type) << ": " << why;
    }
    if (at != pos_) ++wraps_;
    write_pages(sb_.journal_offset + at, enc);
    pos_ = at + enc.size();
    if (pos_ == j) {
        pos_ = 0;
        ++wraps_;
    }
    used_ += need;
    states.push_back(state_);
    pos_after.push_back(pos_);
    done_at.push_back(writes_.size());
    batch_pages.push_back(enc.size() / sb_.page_bytes);
    return seq_++;
}

void MetaWriter::checkpoint() {
    CheckpointHeader h;
    h.seq = ++ckpt_seq_;
    h.uuid = sb_.uuid;
    h.journal_seq = seq_;
    h.journal_pos = pos_;
    h.next_id = state_.next_id();
    std::vector<uint8_t> enc;
    ckpt_encode(h, state_.all(), state_.used_bits(), sb_.page_bytes, &enc);
    EXPECT_LE(enc.size(), sb_.ckpt_bytes);
    write_pages(sb_.ckpt_offset + next_slot_ * sb_.ckpt_bytes, enc);
    next_slot_ ^= 1;
    used_ = 0;
}

void MetaWriter::superblock(bool clean) {
    sb_.seq = ++sb_seq_;
    sb_.clean = clean;
    std::vector<uint8_t> page(sb_.page_bytes, 0);
    sb_encode(sb_, page.data());
    write_pages(sb_.seq % 2 == 0 ? 0 : sb_.page_bytes, page);
}

std::vector<uint8_t> MetaWriter::image_at(size_t k, size_t torn_bytes) const {
    std::vector<uint8_t> img = base_;
    for (size_t i = 0; i < k && i < writes_.size(); ++i)
        std::memcpy(img.data() + writes_[i].off, writes_[i].bytes.data(), writes_[i].bytes.size());
    if (torn_bytes && k < writes_.size()) {
        const PageWrite& w = writes_[k];
        std::memcpy(img.data() + w.off, w.bytes.data(), std::min(torn_bytes, w.bytes.size()));
    }
    return img;
}

std::vector<uint8_t> MetaWriter::image() const {
    return image_at(writes_.size());
}

std::vector<uint8_t> make_image(const Superblock& sb, const std::vector<LvolMeta>& lvols,
                                std::vector<bool> used, const std::vector<std::vector<Op>>& batches,
                                uint32_t next_id) {
    std::vector<uint8_t> img(sb.data_offset, 0);
    sb_encode(sb, img.data());
    if (used.empty()) {
        used.assign(sb.total_clusters, false);
        for (const LvolMeta& l : lvols)
            for (uint32_t c : l.map)
                if (c != kUnallocated && c < used.size()) used[c] = true;
    }
    CheckpointHeader h;
    h.seq = 1;
    h.uuid = sb.uuid;
    h.journal_seq = 1;
    h.journal_pos = 0;
    h.next_id = next_id;
    if (!next_id) {
        h.next_id = 1;
        for (const LvolMeta& l : lvols) h.next_id = std::max(h.next_id, l.id + 1);
    }
    std::vector<const LvolMeta*> ptrs;
    for (const LvolMeta& l : lvols) ptrs.push_back(&l);
    std::vector<uint8_t> enc;
    ckpt_encode(h, ptrs, used, sb.page_bytes, &enc);
    EXPECT_LE(enc.size(), sb.ckpt_bytes);
    std::memcpy(img.data() + sb.ckpt_offset, enc.data(), std::min(enc.size(), sb.ckpt_bytes));
    uint64_t pos = 0, seq = 1;
    for (const std::vector<Op>& ops : batches) {
        std::vector<const Op*> op_ptrs;
        for (const Op& op : ops) op_ptrs.push_back(&op);
        batch_encode(sb.uuid, seq++, op_ptrs, sb.page_bytes, &enc);
        if (pos + enc.size() > sb.journal_bytes) pos = 0;
        std::memcpy(img.data() + sb.journal_offset + pos, enc.data(), enc.size());
        pos += enc.size();
    }
    return img;
}

}  // namespace nocstor::lvol::test
