#include "tools/nocstor_lvs_check/inspect.h"

#include "tools/common/image_file.h"
#include "tools/common/report_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace nocstor::lvs_tool {

using namespace nocstor::lvol;
using tools::copy_name;
using tools::ImageFile;

namespace {

// The superblock copies sit in the store's first two pages; pages are at most 64 KiB.
constexpr uint64_t kHeadBytes = 2 * 65536;
// Messages of one kind listed before "... and N more".
constexpr size_t kMaxListed = 10;

// Collects messages of one kind, listing the first few.
class Limited {
  public:
    Limited(std::vector<std::string>* out, std::string what) : out_(out), what_(std::move(what)) {}
    ~Limited() {
        if (n_ > kMaxListed)
            out_->push_back(fmt::format("... and {} more {}", n_ - kMaxListed, what_));
    }
    void add(std::string msg) {
        if (n_++ < kMaxListed) out_->push_back(std::move(msg));
    }

  private:
    std::vector<std::string>* out_;
    std::string what_;
    size_t n_ = 0;
};

void read_copies(Inspection& in, const std::vector<uint8_t>& head) {
    // Where read_superblock looks: A at 0, B one page later (A's page size, or 4 KiB).
    uint64_t page = 4096;
    for (int i = 0; i < 2; ++i) {
        SbCopy& c = in.copies[i];
        c.offset = i == 0 ? 0 : page;
        if (c.offset + kSbBytes > head.size()) {
            c.why = "past the end of the file";
            continue;
        }
        const uint8_t* p = head.data() + c.offset;
        c.has_magic = sb_has_magic(p);
        c.valid = c.has_magic && sb_decode(p, &c.sb, &c.why);
        if (!c.has_magic) c.why = "no lvstore superblock";
        if (i == 0 && c.valid) page = c.sb.page_bytes;
    }
}

void copy_warnings(Inspection& in) {
    const int used = in.sb_copy, other = 1 - used;
    const SbCopy& o = in.copies[other];
    if (o.has_magic && !o.valid)
        in.warnings.push_back(fmt::format(
            "superblock copy {} (byte {}) is damaged ({}); copy {} (seq {}) is used. Expected "
            "after a crash in the middle of a superblock update",
            copy_name(other), o.offset, o.why, copy_name(used), in.sb.seq));
    else if (o.valid && o.sb.uuid != in.sb.uuid)
        in.warnings.push_back(fmt::format(
            "superblock copy {} (byte {}) belongs to another lvstore (uuid {}): ignored",
            copy_name(other), o.offset, uuid_to_string(o.sb.uuid)));
}

void analyze_checkpoint(Inspection& in, uint32_t slot_index) {
    const CkptSlot& slot = in.slots[slot_index];
    CkptAnalysis& a = in.ckpt;
    a.done = true;
    a.slot = slot_index;
    const uint64_t total = in.sb.total_clusters;
    const std::string where = fmt::format("checkpoint {} (slot {})", slot.header.seq, slot_index);
    if (slot.used.size() > total)
        in.problems.push_back(
            fmt::format("{}: its allocation bitmap covers {} clusters, the store has {}", where,
                        slot.used.size(), total));
    else if (slot.used.size() < total)
        in.warnings.push_back(fmt::format(
            "{}: its allocation bitmap covers {} clusters, the store has {} (it grew after the "
            "checkpoint?): the rest is taken as free",
            where, slot.used.size(), total));

    std::map<uint32_t, const LvolMeta*> by_id;
    {
        Limited dup(&in.problems, "lvol ids used twice");
        for (const LvolMeta& l : slot.lvols)
            if (!by_id.emplace(l.id, &l).second)
                dup.add(fmt::format("{}: lvol id {} is used twice ({})", where, l.id, l.name));
    }
    auto name_of = [&](uint32_t id) {
        auto it = by_id.find(id);
        return it == by_id.end() ? fmt::format("id {}", id) : it->second->name;
    };

    std::vector<uint32_t> owner(total, kNoLvol);
    {
        Limited sizes(&in.problems, "lvols with a bad map size");
        Limited past(&in.problems, "clusters past the end of the store");
        Limited twice(&in.problems, "clusters owned twice");
        Limited parents(&in.problems, "missing parents");
        for (const LvolMeta& l : slot.lvols) {
            if (l.map.size() != l.num_clusters)
                sizes.add(fmt::format("{}: lvol {}: {} map entries for {} clusters", where, l.name,
                                      l.map.size(), l.num_clusters));
            for (uint64_t i = 0; i < l.map.size(); ++i) {
                const uint32_t c = l.map[i];
                if (c == kUnallocated) continue;
                if (c >= total) {
                    ++a.past_end;
                    past.add(fmt::format(
                        "{}: lvol {}: cluster {} points past the end of the store (base "
                        "cluster {} of {})",
                        where, l.name, i, c, total));
                } else if (owner[c] != kNoLvol) {
                    ++a.double_owned;
                    twice.add(fmt::format("{}: base cluster {} is owned by {} and {}", where, c,
                                          name_of(owner[c]), l.name));
                } else {
                    owner[c] = l.id;
                }
            }
            if (l.parent != kNoLvol && !by_id.count(l.parent))
                parents.add(fmt::format("{}: lvol {}: its parent (lvol id {}) does not exist",
                                        where, l.name, l.parent));
        }
    }
    {
        Limited leaked(&in.problems, "leaked clusters");
        Limited unmarked(&in.problems, "owned clusters free in the bitmap");
        for (uint64_t c = 0; c < total; ++c) {
            const bool owned = owner[c] != kNoLvol;
            const bool marked = c < slot.used.size() && slot.used[c];
            a.owned += owned;
            a.marked += marked;
            if (marked && !owned) {
                ++a.leaked;
                leaked.add(fmt::format(
                    "{}: base cluster {} is marked used in the allocation bitmap but no lvol owns "
                    "it (leaked)",
                    where, c));
            } else if (owned && !marked) {
                ++a.unmarked;
                unmarked.add(fmt::format(
                    "{}: base cluster {} is owned by {} but free in the allocation bitmap (it "
                    "could be handed out twice)",
                    where, c, name_of(owner[c])));
            }
        }
    }
}

}  // namespace

int Inspection::exit_status() const {
    if (!error.empty()) return damaged ? kExitProblems : kExitError;
    return problems.empty() ? kExitOk : kExitProblems;
}

Inspection inspect(const std::string& path, uint64_t offset) {
    Inspection in;
    in.path = path;
    in.offset = offset;
    std::string err;
    const std::unique_ptr<ImageFile> f = ImageFile::open(path, &err);
    if (!f) {
        in.error = err;
        return in;
    }
    if (offset >= f->size()) {
        in.error = fmt::format("offset {} is not inside the file ({} bytes)", offset, f->size());
        return in;
    }
    in.store_bytes = f->size() - offset;
    if (in.store_bytes < kSbBytes) {
        in.error = fmt::format("too small to hold an lvstore ({} bytes)", in.store_bytes);
        return in;
    }

    // Superblock.
    std::vector<uint8_t> head(std::min(in.store_bytes, kHeadBytes));
    if (!f->read(offset, head.data(), head.size(), &err)) {
        in.error = err;
        return in;
    }
    read_copies(in, head);
    bool damaged = false;
    std::string why;
    if (!read_superblock(head.data(), head.size(), &in.sb, &damaged, &why)) {
        in.damaged = damaged;
        in.error = damaged ? why
                           : "not an lvstore: no lvstore superblock (neither byte 0 nor byte "
                             "4096 starts with \"NOCLVS01\")";
        return in;
    }
    in.have_sb = true;
    const SbCopy& a = in.copies[0];
    const SbCopy& b = in.copies[1];
    const bool b_counts = b.valid && (!a.valid || b.sb.uuid == a.sb.uuid);
    in.sb_copy = a.valid && (!b_counts || a.sb.seq >= b.sb.seq) ? 0 : 1;
    copy_warnings(in);
    const Superblock& sb = in.sb;

    // The file against the geometry.
    if (sb.data_offset > in.store_bytes) {
        in.problems.push_back(fmt::format(
            "the file holds {} bytes of the store, its metadata region alone takes {}: truncated",
            in.store_bytes, sb.data_offset));
        return in;
    }
    const unsigned __int128 data_end =
        (unsigned __int128)sb.total_clusters * sb.cluster_bytes + sb.data_offset;
    if (data_end > in.store_bytes)
        in.problems.push_back(fmt::format(
            "the store's {} clusters of {} bytes end at byte {} of the store, past the end of the "
            "file ({} bytes from the store's start)",
            sb.total_clusters, sb.cluster_bytes, uint64_t(data_end), in.store_bytes));

    // Metadata region.
    std::vector<uint8_t> md(sb.data_offset);
    if (!f->read(offset, md.data(), md.size(), &err)) {
        in.error = "reading the metadata region: " + err;
        return in;
    }
    in.have_md = true;
    int best = -1;
    for (int s = 0; s < 2; ++s) {
        CkptSlot& slot = in.slots[s];
        slot.offset = sb.ckpt_offset + uint64_t(s) * sb.ckpt_bytes;
        slot.valid = ckpt_decode(md.data() + slot.offset, sb.ckpt_bytes, sb.uuid, &slot.header,
                                 &slot.lvols, &slot.used, &slot.why);
        if (slot.valid && (best < 0 || slot.header.seq > in.slots[best].header.seq)) best = s;
    }
    in.recovered = recover(md.data(), md.size(), sb, &in.rec, &in.recover_error);
    if (!in.recovered) in.problems.push_back("the metadata does not load: " + in.recover_error);
    if (best >= 0) analyze_checkpoint(in, uint32_t(best));

    if (in.recovered) {
        for (const std::string& m : in.rec.state.check()) in.problems.push_back(m);
        if (sb.clean && in.rec.batches)
            in.warnings.push_back(fmt::format(
                "the superblock says the store was stopped cleanly, yet {} journal batches "
                "follow the checkpoint",
                in.rec.batches));
    } else if (best >= 0) {
        // The journal did not replay: judge the checkpoint alone, if it loads.
        LvsState ck;
        if (ck.load(sb.total_clusters, in.slots[best].header.next_id, in.slots[best].lvols, &why))
            for (const std::string& m : ck.check())
                in.problems.push_back(
                    fmt::format("checkpoint {} (slot {}): {}", in.slots[best].header.seq, best, m));
    }
    return in;
}

}  // namespace nocstor::lvs_tool
