#include "tools/nocstor_lvs_check/report.h"

#include <fmt/format.h>

#include <map>

namespace nocstor::lvs_tool {

using namespace nocstor::lvol;
using nlohmann::json;
using tools::copy_name;

namespace {

// The lvols to show: the recovered state's, or the newest checkpoint's when recovery failed.
std::vector<const LvolMeta*> shown_lvols(const Inspection& in) {
    if (in.recovered) return in.rec.state.all();
    std::vector<const LvolMeta*> out;
    if (in.ckpt.done)
        for (const LvolMeta& l : in.slots[in.ckpt.slot].lvols) out.push_back(&l);
    return out;
}

std::string parent_text(const LvolMeta& l, const std::map<uint32_t, const LvolMeta*>& by_id) {
    if (l.parent != kNoLvol) {
        auto it = by_id.find(l.parent);
        return it == by_id.end() ? fmt::format("missing (id {})", l.parent) : it->second->name;
    }
    if (!l.esnap.empty()) return "external bdev " + l.esnap;
    return "none";
}

std::string copy_text(const SbCopy& c) {
    if (c.valid) return fmt::format("seq {}{}", c.sb.seq, c.sb.clean ? ", clean" : "");
    if (c.has_magic) return "damaged (" + c.why + ")";
    return c.why;
}

json sb_json(const Superblock& sb) {
    return {{"name", sb.name},
            {"uuid", uuid_to_string(sb.uuid)},
            {"seq", sb.seq},
            {"clean", sb.clean},
            {"block_size", sb.block_size},
            {"page_bytes", sb.page_bytes},
            {"cluster_bytes", sb.cluster_bytes},
            {"total_clusters", sb.total_clusters},
            {"max_clusters", sb.max_clusters},
            {"data_offset", sb.data_offset},
            {"ckpt_offset", sb.ckpt_offset},
            {"ckpt_bytes", sb.ckpt_bytes},
            {"journal_offset", sb.journal_offset},
            {"journal_bytes", sb.journal_bytes},
            {"base_bytes", sb.base_bytes}};
}

}  // namespace

json report_json(const Inspection& in) {
    json j = {{"file", in.path}, {"offset", in.offset}, {"store_bytes", in.store_bytes}};
    if (!in.error.empty()) {
        j["error"] = in.error;
        j["damaged"] = in.damaged;
    }
    json copies = json::array();
    for (int i = 0; i < 2; ++i) {
        const SbCopy& c = in.copies[i];
        json cj = {{"copy", copy_name(i)},
                   {"offset", c.offset},
                   {"present", c.has_magic},
                   {"valid", c.valid}};
        if (c.valid) cj["seq"] = c.sb.seq;
        if (!c.valid) cj["why"] = c.why;
        copies.push_back(cj);
    }
    j["superblock_copies"] = copies;
    if (in.have_sb) {
        j["superblock"] = sb_json(in.sb);
        j["superblock"]["copy"] = copy_name(in.sb_copy);
    }
    if (in.have_md) {
        json slots = json::array();
        for (int s = 0; s < 2; ++s) {
            const CkptSlot& c = in.slots[s];
            json sj = {{"slot", s}, {"offset", c.offset}, {"valid", c.valid}};
            if (c.valid)
                sj.update({{"seq", c.header.seq},
                           {"journal_seq", c.header.journal_seq},
                           {"journal_pos", c.header.journal_pos},
                           {"payload_bytes", c.header.payload_bytes},
                           {"next_id", c.header.next_id},
                           {"lvols", c.header.lvols}});
            else
                sj["why"] = c.why;
            slots.push_back(sj);
        }
        j["checkpoints"] = slots;
        j["recovered"] = in.recovered;
        if (!in.recovered) j["recover_error"] = in.recover_error;
        if (in.ckpt.done)
            j["checkpoint_check"] = {{"slot", in.ckpt.slot},
                                     {"owned_clusters", in.ckpt.owned},
                                     {"bitmap_used_clusters", in.ckpt.marked},
                                     {"leaked_clusters", in.ckpt.leaked},
                                     {"owned_but_free_clusters", in.ckpt.unmarked},
                                     {"double_owned_clusters", in.ckpt.double_owned},
                                     {"clusters_past_end", in.ckpt.past_end}};
    }
    if (in.recovered) {
        const Recovered& r = in.rec;
        j["journal"] = {{"checkpoint_slot", r.ckpt_slot}, {"checkpoint_seq", r.ckpt.seq},
                        {"batches_replayed", r.batches},  {"ops_replayed", r.ops},
                        {"next_seq", r.next_seq},         {"next_pos", r.next_pos},
                        {"used_bytes", r.used_bytes},     {"bytes", in.sb.journal_bytes}};
        j["clusters"] = {{"total", r.state.total_clusters()},
                         {"used", r.state.used_clusters()},
                         {"free", r.state.free_clusters()}};
    } else if (in.ckpt.done) {
        j["clusters"] = {{"total", in.sb.total_clusters},
                         {"used", in.ckpt.owned},
                         {"free", in.sb.total_clusters - in.ckpt.owned},
                         {"as_of_checkpoint", true}};
    }
    const std::vector<const LvolMeta*> lvols = shown_lvols(in);
    std::map<uint32_t, const LvolMeta*> by_id;
    for (const LvolMeta* l : lvols) by_id.emplace(l->id, l);
    json lj = json::array();
    for (const LvolMeta* l : lvols) {
        json e = {{"id", l->id},
                  {"name", l->name},
                  {"uuid", uuid_to_string(l->uuid)},
                  {"num_clusters", l->num_clusters},
                  {"size_bytes", l->num_clusters * (in.have_sb ? in.sb.cluster_bytes : 0)},
                  {"allocated_clusters", l->allocated()},
                  {"thin", l->thin},
                  {"read_only", l->read_only},
                  {"snapshot", l->snapshot},
                  {"clear_method", clear_method_name(l->clear_method)}};
        if (l->parent != kNoLvol) {
            e["parent_id"] = l->parent;
            auto it = by_id.find(l->parent);
            e["parent"] = it == by_id.end() ? json(nullptr) : json(it->second->name);
        } else {
            e["parent"] = nullptr;
        }
        if (!l->esnap.empty()) e["external_parent"] = l->esnap;
        lj.push_back(e);
    }
    if (in.have_md) j["lvols"] = lj;
    j["problems"] = in.problems;
    j["warnings"] = in.warnings;
    j["consistent"] = in.exit_status() == kExitOk;
    return j;
}

void print_text(const Inspection& in, bool verbose) {
    if (!in.error.empty()) {
        fmt::print(stderr, "nocstor-lvs-check: {}: {}\n", in.path, in.error);
        return;
    }
    const Superblock& sb = in.sb;
    fmt::print("{}: lvstore {} (uuid {}){}\n", in.path, sb.name, uuid_to_string(sb.uuid),
               in.offset ? fmt::format(" at byte {}", in.offset) : std::string());
    fmt::print("  superblock: copy {}, seq {}, {}\n", copy_name(in.sb_copy), sb.seq,
               sb.clean ? "clean" : "not clean (the journal is replayed at the next load)");
    fmt::print("  copies: A {}; B {}\n", copy_text(in.copies[0]), copy_text(in.copies[1]));
    fmt::print(
        "  geometry: {} B blocks, {} metadata pages, {} clusters; checkpoint slots 2 x {} at byte "
        "{}, journal {} at byte {}, data from byte {}\n",
        sb.block_size, human_bytes(sb.page_bytes), human_bytes(sb.cluster_bytes),
        human_bytes(sb.ckpt_bytes), sb.ckpt_offset, human_bytes(sb.journal_bytes),
        sb.journal_offset, sb.data_offset);
    if (in.have_md) {
        for (int s = 0; s < 2; ++s) {
            const CkptSlot& c = in.slots[s];
            if (c.valid)
                fmt::print(
                    "  checkpoint slot {}: seq {}, {} lvols, journal from batch {} at byte {}\n", s,
                    c.header.seq, c.header.lvols, c.header.journal_seq, c.header.journal_pos);
            else
                fmt::print("  checkpoint slot {}: {}\n", s, c.why);
        }
    }
    if (in.recovered) {
        const Recovered& r = in.rec;
        fmt::print(
            "  journal: {} batches, {} operations replayed after checkpoint slot {}; next batch {} "
            "at byte {}; {} of {} in use\n",
            r.batches, r.ops, r.ckpt_slot, r.next_seq, r.next_pos, human_bytes(r.used_bytes),
            human_bytes(sb.journal_bytes));
        fmt::print("  clusters: {} total, {} used, {} free (of {} bytes each)\n",
                   r.state.total_clusters(), r.state.used_clusters(), r.state.free_clusters(),
                   sb.cluster_bytes);
    } else if (in.have_md) {
        fmt::print("  journal: not replayed: {}\n", in.recover_error);
        if (in.ckpt.done)
            fmt::print("  clusters: {} total, {} owned at checkpoint slot {}\n", sb.total_clusters,
                       in.ckpt.owned, in.ckpt.slot);
    }
    const std::vector<const LvolMeta*> lvols = shown_lvols(in);
    if (in.have_md) {
        fmt::print("  lvols: {}{}\n", lvols.size(),
                   in.recovered ? "" : " (as of the newest valid checkpoint)");
        if (verbose) {
            std::map<uint32_t, const LvolMeta*> by_id;
            for (const LvolMeta* l : lvols) by_id.emplace(l->id, l);
            for (const LvolMeta* l : lvols)
                fmt::print(
                    "    {}: id {}, uuid {}, size {} ({} clusters), {} allocated, {}{}{}, parent "
                    "{}\n",
                    l->name, l->id, uuid_to_string(l->uuid),
                    human_bytes(l->num_clusters * sb.cluster_bytes), l->num_clusters,
                    l->allocated(), l->thin ? "thin" : "thick", l->read_only ? ", read-only" : "",
                    l->snapshot ? ", snapshot" : "", parent_text(*l, by_id));
        }
    }
    for (const std::string& w : in.warnings) fmt::print("  warning: {}\n", w);
    if (!in.problems.empty()) {
        fmt::print("  problems: {}\n", in.problems.size());
        for (const std::string& p : in.problems) fmt::print("    - {}\n", p);
    }
    fmt::print("  result: {}\n", in.problems.empty() ? "consistent" : "INCONSISTENT");
}

}  // namespace nocstor::lvs_tool
