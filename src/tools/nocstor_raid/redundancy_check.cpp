#include "tools/nocstor_raid/redundancy_check.h"

#include "modules/raid/raid_layout.h"
#include "modules/raid/raid_parity.h"
#include "tools/nocstor_raid/member_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace nocstor::raid_tool {

using namespace nocstor::raid;

const char* mismatch_kind_name(MismatchKind k) {
    switch (k) {
        case MismatchKind::P:
            return "P";
        case MismatchKind::Q:
            return "Q";
        case MismatchKind::PQ:
            return "P+Q";
        case MismatchKind::Mirror:
            return "mirror";
    }
    return "?";
}

namespace {

constexpr uint64_t kStepBytes = 1 << 20;  // read from each member per step
constexpr uint32_t kNoSlot = UINT32_MAX;

struct FreeDeleter {
    void operator()(uint8_t* p) const { free(p); }
};
using AlignedBuf = std::unique_ptr<uint8_t[], FreeDeleter>;

// ISA-L wants 32-byte aligned buffers; 4 KiB keeps the preads page-aligned too.
AlignedBuf aligned_buf(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, n) != 0) std::abort();
    return AlignedBuf(static_cast<uint8_t*>(p));
}

class Checker {
  public:
    Checker(const Superblock& sb, const std::vector<DataSource>& sources, const IntentBitmap& dirty,
            const CheckOptions& opts, CheckResult* out)
        : dirty_(dirty), opts_(opts), out_(out) {
        clean_ = sb.clean;
        resync_from_ = sb.resync_pending ? sb.resync_offset : UINT64_MAX;
        g_.level = sb.level;
        g_.members = uint32_t(sb.members.size());
        g_.block_size = sb.block_size;
        g_.strip_blocks =
            sb.level == Level::Raid1 ? 0 : uint64_t(sb.strip_size_kb) * 1024 / sb.block_size;
        g_.data_offset = sb.data_offset;
        g_.member_blocks = sb.member_blocks;
        bs_ = sb.block_size;
        strip_kb_ = sb.strip_size_kb;
        for (const DataSource& s : sources) {
            if (s.slot >= g_.members) continue;
            files_[s.slot] = s.file;
            limit_[s.slot] = std::min(s.readable_rows, g_.member_blocks);
            outside_dirty_[s.slot] = s.outside_dirty && dirty.present();
        }
    }

    bool run() {
        out_->rows = g_.member_blocks;
        if (!valid_geometry()) return false;
        step_rows_ = std::max<uint64_t>(1, kStepBytes / bs_);
        const size_t step_bytes = step_rows_ * bs_;
        for (uint32_t m = 0; m < g_.members; ++m)
            if (read_limit(m)) bufs_[m] = aligned_buf(step_bytes);
        if (g_.parity()) {
            parity_ = std::make_unique<Parity>(g_.data_members(), g_.parity_members());
            p_ = aligned_buf(step_bytes);
            q_ = aligned_buf(step_bytes);
            d_ = aligned_buf(step_bytes);
            row_d_ = aligned_buf(bs_);
            row_q_ = aligned_buf(bs_);
        }
        for (uint64_t r0 = 0; r0 < g_.member_blocks; r0 += step_rows_) {
            const uint64_t r1 = std::min(g_.member_blocks, r0 + step_rows_);
            if (!wanted_any(r0, r1)) {
                out_->rows_filtered += r1 - r0;
                continue;
            }
            if (!read_step(r0, r1)) return false;
            check_step(r0, r1);
        }
        return true;
    }

  private:
    bool valid_geometry() {
        // The superblock passed its CRC, but its numbers still decide buffer sizes and divisions.
        if (bs_ < 512 || bs_ % 512 || bs_ > kStepBytes)
            return fail(fmt::format("block size {} is not a multiple of 512 up to 1 MiB", bs_));
        if (g_.parity() && g_.strip_blocks == 0)
            return fail(fmt::format("strip size {} KiB is smaller than a block", strip_kb_));
        if (g_.members <= g_.parity_members())
            return fail(fmt::format("{} with {} members has no data members", level_name(g_.level),
                                    g_.members));
        return true;
    }
    bool fail(std::string why) {
        out_->error = "cannot check: " + std::move(why);
        return false;
    }

    // The daemon resyncs this row at its next start.
    bool pending(uint64_t row) const {
        if (row >= resync_from_) return true;
        return !clean_ && (!dirty_.present() || dirty_.row_dirty(row));
    }
    bool wanted(uint64_t row) const {
        if (opts_.filter == RowFilter::All) return true;
        return pending(row) == (opts_.filter == RowFilter::DirtyOnly);
    }
    // The next row after `row` where pending() or a member's readability may change.
    uint64_t next_boundary(uint64_t row) const {
        uint64_t b = UINT64_MAX;
        if (dirty_.present()) b = (row / dirty_.region_blocks() + 1) * dirty_.region_blocks();
        if (row < resync_from_) b = std::min(b, resync_from_);
        return b;
    }
    bool wanted_any(uint64_t r0, uint64_t r1) const {
        for (uint64_t row = r0; row < r1; row = next_boundary(row))
            if (wanted(row)) return true;
        return false;
    }
    bool readable(uint32_t m, uint64_t row) const {
        return row < limit_[m] || (outside_dirty_[m] && !dirty_.row_dirty(row));
    }
    // Rows of slot m read from its file (from 0).
    uint64_t read_limit(uint32_t m) const {
        return outside_dirty_[m] ? g_.member_blocks : limit_[m];
    }
    uint8_t* block(uint32_t m, uint64_t row) const { return bufs_[m].get() + (row - step0_) * bs_; }

    bool read_step(uint64_t r0, uint64_t r1) {
        step0_ = r0;
        for (uint32_t m = 0; m < g_.members; ++m) {
            if (read_limit(m) <= r0) continue;
            const uint64_t rows = std::min(r1, read_limit(m)) - r0;
            if (!files_[m]->read((g_.data_offset + r0) * bs_, bufs_[m].get(), rows * bs_,
                                 &out_->error))
                return false;
        }
        return true;
    }

    // Cuts [r0, r1) into pieces within one stripe, with one set of readable members and one
    // side of the row filter, and checks each.
    void check_step(uint64_t r0, uint64_t r1) {
        for (uint64_t a = r0; a < r1;) {
            uint64_t b = r1;
            if (g_.strip_blocks) b = std::min(b, (a / g_.strip_blocks + 1) * g_.strip_blocks);
            for (uint32_t m = 0; m < g_.members; ++m)
                if (limit_[m] > a && limit_[m] < b) b = limit_[m];
            b = std::min(b, next_boundary(a));
            if (!wanted(a))
                out_->rows_filtered += b - a;
            else if (g_.level == Level::Raid1)
                check_mirror(a, b);
            else
                check_parity(a, b);
            a = b;
        }
    }

    void record(Mismatch m) {
        m.dirty = dirty_.row_dirty(m.row);
        m.pending = pending(m.row);
        ++out_->mismatches;
        out_->mismatches_pending += m.pending;
        if (out_->first.size() < opts_.max_report) out_->first.push_back(std::move(m));
    }
    bool reporting() const { return out_->first.size() < opts_.max_report; }

    // raid1: every readable copy against the first readable one (the copy resync and scrub
    // repair copy from).
    void check_mirror(uint64_t a, uint64_t b) {
        std::vector<uint32_t> copies;
        for (uint32_t m = 0; m < g_.members; ++m)
            if (readable(m, a)) copies.push_back(m);
        if (copies.size() < 2) {
            out_->rows_unchecked += b - a;
            return;
        }
        for (uint64_t row = a; row < b; ++row) {
            Mismatch mm;
            for (size_t i = 1; i < copies.size(); ++i)
                if (std::memcmp(block(copies[i], row), block(copies[0], row), bs_) != 0)
                    mm.slots.push_back(copies[i]);
            if (mm.slots.empty()) continue;
            mm.row = row;
            mm.kind = MismatchKind::Mirror;
            mm.reference = copies[0];
            mm.degraded = copies.size() < g_.members;
            record(std::move(mm));
        }
        out_->rows_checked += b - a;
    }

    // raid6, P and Q both wrong in `row`: the data slot whose strip, rebuilt from P and the
    // others, makes Q match (the strip that was corrupted), or -1 if none or several do.
    int64_t suspect_data_slot(uint64_t stripe, uint64_t row) {
        const uint32_t k = g_.data_members();
        const uint32_t pm = g_.p_member(stripe), qm = g_.q_member(stripe);
        int64_t found = -1;
        for (uint32_t d = 0; d < k; ++d) {
            uint8_t* data[kMaxMembers];
            for (uint32_t i = 0; i < k; ++i) data[i] = block(g_.data_member(stripe, i), row);
            data[d] = row_d_.get();
            if (!parity_->reconstruct(bs_, data, &d, 1, block(pm, row), nullptr)) continue;
            parity_->generate(bs_, data, nullptr, row_q_.get());
            if (std::memcmp(row_q_.get(), block(qm, row), bs_) != 0) continue;
            if (found >= 0) return -1;
            found = g_.data_member(stripe, d);
        }
        return found;
    }

    // raid5/6: rows [a, b) of one stripe.
    void check_parity(uint64_t a, uint64_t b) {
        const uint64_t stripe = a / g_.strip_blocks;
        const uint32_t k = g_.data_members();
        const uint32_t pm = g_.p_member(stripe);
        const uint32_t qm = g_.parity_members() == 2 ? g_.q_member(stripe) : kNoSlot;
        std::vector<uint32_t> unreadable;
        for (uint32_t m = 0; m < g_.members; ++m)
            if (!readable(m, a)) unreadable.push_back(m);
        const size_t len = (b - a) * bs_;
        uint8_t* data[kMaxMembers];
        for (uint32_t d = 0; d < k; ++d) {
            const uint32_t m = g_.data_member(stripe, d);
            data[d] = readable(m, a) ? block(m, a) : nullptr;
        }

        if (unreadable.empty()) {
            parity_->generate(len, data, p_.get(), qm != kNoSlot ? q_.get() : nullptr);
            for (uint64_t row = a; row < b; ++row) {
                const size_t off = (row - a) * bs_;
                const bool bad_p = std::memcmp(p_.get() + off, block(pm, row), bs_) != 0;
                const bool bad_q =
                    qm != kNoSlot && std::memcmp(q_.get() + off, block(qm, row), bs_) != 0;
                if (!bad_p && !bad_q) continue;
                Mismatch mm;
                mm.row = row;
                mm.stripe = stripe;
                if (bad_p && bad_q) {
                    mm.kind = MismatchKind::PQ;
                    mm.slots = {pm, qm};
                    if (reporting()) mm.suspect = suspect_data_slot(stripe, row);
                } else if (bad_p) {
                    mm.kind = MismatchKind::P;
                    mm.slots = {pm};
                    if (qm != kNoSlot) mm.suspect = pm;  // Q vouches for the data
                } else {
                    mm.kind = MismatchKind::Q;
                    mm.slots = {qm};
                    mm.suspect = qm;
                }
                record(std::move(mm));
            }
            out_->rows_checked += b - a;
            return;
        }
        // raid6 with one member unreadable still has one equation to spare.
        if (qm == kNoSlot || unreadable.size() > 1) {
            out_->rows_unchecked += b - a;
            return;
        }
        const uint32_t gone = unreadable[0];
        MismatchKind kind;
        const uint8_t* computed;
        uint32_t against;
        if (gone == pm) {
            parity_->generate(len, data, nullptr, q_.get());
            kind = MismatchKind::Q, computed = q_.get(), against = qm;
        } else if (gone == qm) {
            parity_->generate(len, data, p_.get(), nullptr);
            kind = MismatchKind::P, computed = p_.get(), against = pm;
        } else {
            // Rebuild the missing data strip from P, then see whether Q agrees.
            uint32_t d = 0;
            while (g_.data_member(stripe, d) != gone) ++d;
            data[d] = d_.get();
            parity_->reconstruct(len, data, &d, 1, block(pm, a), nullptr);
            parity_->generate(len, data, nullptr, q_.get());
            kind = MismatchKind::PQ, computed = q_.get(), against = qm;
        }
        for (uint64_t row = a; row < b; ++row) {
            if (std::memcmp(computed + (row - a) * bs_, block(against, row), bs_) == 0) continue;
            Mismatch mm;
            mm.row = row;
            mm.stripe = stripe;
            mm.kind = kind;
            mm.slots = kind == MismatchKind::PQ ? std::vector<uint32_t>{pm, qm}
                                                : std::vector<uint32_t>{against};
            mm.degraded = true;
            record(std::move(mm));
        }
        out_->rows_checked += b - a;
    }

    Geometry g_;
    const IntentBitmap& dirty_;
    const CheckOptions& opts_;
    CheckResult* out_;
    uint64_t bs_ = 0;
    uint32_t strip_kb_ = 0;
    uint64_t step_rows_ = 0;
    uint64_t step0_ = 0;  // first row in the buffers
    const MemberFile* files_[kMaxMembers] = {};
    uint64_t limit_[kMaxMembers] = {};      // rows [0, limit) of each slot are readable
    bool outside_dirty_[kMaxMembers] = {};  // and, if set, the rows of clean regions
    bool clean_ = false;
    uint64_t resync_from_ = UINT64_MAX;  // rows from here on are not resynced yet
    AlignedBuf bufs_[kMaxMembers];
    std::unique_ptr<Parity> parity_;
    AlignedBuf p_, q_, d_, row_d_, row_q_;
};

}  // namespace

bool check_redundancy(const Superblock& sb, const std::vector<DataSource>& sources,
                      const IntentBitmap& dirty, const CheckOptions& opts, CheckResult* result) {
    *result = CheckResult{};
    Checker c(sb, sources, dirty, opts, result);
    return c.run();
}

}  // namespace nocstor::raid_tool
