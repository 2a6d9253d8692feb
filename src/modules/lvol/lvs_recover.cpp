#include "modules/lvol/lvs_recover.h"

#include <cstring>

namespace nocstor::lvol {

bool read_superblock(const uint8_t* first_pages, size_t n, Superblock* sb, bool* damaged,
                     std::string* why) {
    *damaged = false;
    Superblock copies[2];
    bool valid[2] = {false, false};
    std::string reasons[2];
    // Copy B sits one page after A; the page size is in A. When A is unreadable, B is looked for
    // at every page size a base can have (4-64 KiB) and must name that page size itself.
    uint64_t page = 4096;
    for (int i = 0; i < 2; ++i) {
        uint64_t off = i == 0 ? 0 : page;
        if (i == 1 && !valid[0]) {
            for (uint64_t p = 4096; p <= 65536 && p + kSbBytes <= n; p *= 2) {
                Superblock b;
                std::string why_b;
                if (sb_has_magic(first_pages + p) && sb_decode(first_pages + p, &b, &why_b) &&
                    b.page_bytes == p) {
                    off = p;
                    break;
                }
            }
        }
        if (off + kSbBytes > n) {
            reasons[i] = "truncated";
            continue;
        }
        const uint8_t* p = first_pages + off;
        if (sb_has_magic(p)) {
            valid[i] = sb_decode(p, &copies[i], &reasons[i]);
            if (!valid[i]) *damaged = true;
        } else {
            reasons[i] = "no lvstore superblock";
        }
        if (i == 0 && valid[0]) page = copies[0].page_bytes;
    }
    if (!valid[0] && !valid[1]) {
        *why = *damaged ? "lvstore superblock damaged (" + reasons[0] + "; " + reasons[1] + ")"
                        : "no lvstore superblock";
        return false;
    }
    if (valid[0] && valid[1] && copies[0].uuid != copies[1].uuid) valid[1] = false;
    *sb = valid[0] && (!valid[1] || copies[0].seq >= copies[1].seq) ? copies[0] : copies[1];
    *damaged = false;
    return true;
}

bool recover(const uint8_t* md, size_t n, const Superblock& sb, Recovered* out, std::string* why) {
    if (n < sb.data_offset) return (*why = "metadata region truncated"), false;
    // The newest valid checkpoint.
    int best = -1;
    CheckpointHeader heads[2];
    std::vector<LvolMeta> lvols[2];
    std::vector<bool> used[2];
    std::string reasons[2];
    for (int s = 0; s < 2; ++s) {
        const uint8_t* p = md + sb.ckpt_offset + uint64_t(s) * sb.ckpt_bytes;
        if (!ckpt_decode(p, sb.ckpt_bytes, sb.uuid, &heads[s], &lvols[s], &used[s], &reasons[s]))
            continue;
        if (best < 0 || heads[s].seq > heads[best].seq) best = s;
    }
    if (best < 0) {
        *why = "no valid checkpoint (slot 0: " + reasons[0] + "; slot 1: " + reasons[1] + ")";
        return false;
    }
    Recovered r;
    r.sb = sb;
    r.ckpt_slot = uint32_t(best);
    r.ckpt = heads[best];
    r.ckpt_used = used[best];
    if (!r.state.load(sb.total_clusters, heads[best].next_id, std::move(lvols[best]), why)) {
        *why = "checkpoint " + std::to_string(heads[best].seq) + ": " + *why;
        return false;
    }
    if (r.ckpt.journal_pos >= sb.journal_bytes || r.ckpt.journal_pos % sb.page_bytes)
        return (*why = "checkpoint points outside the journal"), false;
    // Replay: batch `seq` is at `pos`, or at the start of the journal when it did not fit
    // before the end.
    const uint8_t* j = md + sb.journal_offset;
    uint64_t seq = r.ckpt.journal_seq, pos = r.ckpt.journal_pos, used_bytes = 0;
    // The writer starts the first batch after a checkpoint at 0 when it does not fit before the
    // end; that skipped tail was never live (LvsJournal), so it does not count against the ring.
    uint64_t first_skip = 0;
    std::vector<Op> ops;
    BatchHeader h;
    while (true) {
        uint64_t at = pos;
        bool found = pos < sb.journal_bytes &&
                     batch_decode(j + pos, sb.journal_bytes - pos, sb.uuid, seq, &h, &ops);
        if (!found && pos != 0) {
            at = 0;
            found = batch_decode(j, sb.journal_bytes, sb.uuid, seq, &h, &ops);
        }
        if (!found) break;
        for (const Op& op : ops) {
            std::string e;
            if (!r.state.apply(op, &e)) {
                *why = "journal batch " + std::to_string(seq) + ": " + op_type_name(op.type) +
                       " does not apply: " + e;
                return false;
            }
            ++r.ops;
        }
        const uint64_t bytes = batch_bytes(h.payload_bytes, sb.page_bytes);
        const uint64_t skip = at == pos ? 0 : sb.journal_bytes - pos;
        if (r.batches == 0) first_skip = skip;
        used_bytes += skip + bytes;
        pos = at + bytes;
        ++seq;
        ++r.batches;
        if (used_bytes - first_skip > sb.journal_bytes)
            return (*why = "journal replay wraps onto itself"), false;
    }
    r.next_seq = seq;
    r.next_pos = pos >= sb.journal_bytes ? 0 : pos;
    r.used_bytes = used_bytes;
    *out = std::move(r);
    return true;
}

}  // namespace nocstor::lvol
