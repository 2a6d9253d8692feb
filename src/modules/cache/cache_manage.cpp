// Management of running caches: listing, statistics in SPDK's bdev_ocf_get_stats layout, the
// cache mode, and flushing (writing every dirty line back).
#include "modules/cache/cache.h"
#include "modules/cache/cache_bdev.h"
#include "modules/module_util.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>

namespace nocstor::cache {

namespace {

using nlohmann::json;

std::vector<CacheBdev*> all_caches() {
    std::vector<CacheBdev*> out;
    for (Bdev* b : bdev_list())
        if (b->module == cache_bdev_module()) out.push_back(static_cast<CacheBdev*>(b));
    return out;
}

json stat(uint64_t count, uint64_t total, const char* units) {
    const double pct = total ? 100.0 * double(count) / double(total) : 0.0;
    return {{"count", count}, {"percentage", fmt::format("{:.1f}", pct)}, {"units", units}};
}

}  // namespace

json cache_get_bdevs(const std::string& name) {
    json out = json::array();
    for (CacheBdev* c : all_caches()) {
        const std::string cache = c->cache_desc->bdev()->name, core = c->core_desc->bdev()->name;
        if (!name.empty() && name != c->name && name != cache && name != core) continue;
        json j = {{"name", c->name},
                  {"started", true},
                  {"cache", {{"name", cache}, {"attached", true}}},
                  {"base", {{"name", core}, {"attached", true}}},
                  {"core", {{"name", core}, {"attached", true}}}};
        c->dump_info_json(j);
        out.push_back(j);
    }
    return out;
}

int cache_get_stats(const std::string& name, json* out) {
    CacheBdev* c = find_cache(name);
    if (!c) return -ENODEV;
    uint64_t k[20] = {};
    for (size_t i = 0; i < c->owners.size(); ++i) {
        const Owner* o = c->owners[i].get();  // created once, destroyed only in destruct
        if (!o) continue;
        const Counters& n = o->counters;
        const std::atomic<uint64_t>* f[] = {
            &n.rd_hits,        &n.rd_partial_misses, &n.rd_full_misses,  &n.rd_pt,
            &n.wr_hits,        &n.wr_partial_misses, &n.wr_full_misses,  &n.wr_pt,
            &n.core_rd_blocks, &n.core_wr_blocks,    &n.cache_rd_blocks, &n.cache_wr_blocks,
            &n.core_rd_errors, &n.core_wr_errors,    &n.cache_rd_errors, &n.cache_wr_errors,
            &n.cleaned_lines,  &n.evictions,         &n.table_writes,    &n.lost_dirty_lines};
        for (size_t j = 0; j < std::size(f); ++j) k[j] += f[j]->load(std::memory_order_relaxed);
    }
    uint64_t mapped = 0, dirty = 0;
    for (const auto& s : c->sets) {
        mapped += s->mapped_lines();
        dirty += s->dirty_lines();
    }
    const uint64_t lines = c->sb.line_count;
    // Blocks in SPDK's statistics are 4 KiB units.
    const uint64_t per4k = 4096 / c->bs ? 4096 / c->bs : 1;
    const uint64_t line4k = std::max<uint64_t>(1, c->sb.line_size / 4096);
    const char* blk = "4KiB blocks";
    const uint64_t rd = k[0] + k[1] + k[2] + k[3], wr = k[4] + k[5] + k[6] + k[7];
    const uint64_t total = rd + wr;
    const uint64_t crd = k[8] / per4k, cwr = k[9] / per4k, xrd = k[10] / per4k, xwr = k[11] / per4k;
    const uint64_t ce = k[12] + k[13], xe = k[14] + k[15];
    *out = {{"usage",
             {{"occupancy", stat(mapped * line4k, lines * line4k, blk)},
              {"free", stat((lines - mapped) * line4k, lines * line4k, blk)},
              {"clean", stat((mapped - dirty) * line4k, mapped * line4k, blk)},
              {"dirty", stat(dirty * line4k, mapped * line4k, blk)}}},
            {"requests",
             {{"rd_hits", stat(k[0], total, "Requests")},
              {"rd_partial_misses", stat(k[1], total, "Requests")},
              {"rd_full_misses", stat(k[2], total, "Requests")},
              {"rd_total", stat(rd - k[3], total, "Requests")},
              {"wr_hits", stat(k[4], total, "Requests")},
              {"wr_partial_misses", stat(k[5], total, "Requests")},
              {"wr_full_misses", stat(k[6], total, "Requests")},
              {"wr_total", stat(wr - k[7], total, "Requests")},
              {"rd_pt", stat(k[3], total, "Requests")},
              {"wr_pt", stat(k[7], total, "Requests")},
              {"serviced", stat(total - k[3] - k[7], total, "Requests")},
              {"total", stat(total, total, "Requests")}}},
            {"blocks",
             {{"core_volume_rd", stat(crd, crd + cwr + xrd + xwr, blk)},
              {"core_volume_wr", stat(cwr, crd + cwr + xrd + xwr, blk)},
              {"core_volume_total", stat(crd + cwr, crd + cwr + xrd + xwr, blk)},
              {"cache_volume_rd", stat(xrd, crd + cwr + xrd + xwr, blk)},
              {"cache_volume_wr", stat(xwr, crd + cwr + xrd + xwr, blk)},
              {"cache_volume_total", stat(xrd + xwr, crd + cwr + xrd + xwr, blk)},
              {"volume_rd", stat(crd + xrd, crd + cwr + xrd + xwr, blk)},
              {"volume_wr", stat(cwr + xwr, crd + cwr + xrd + xwr, blk)},
              {"volume_total", stat(crd + cwr + xrd + xwr, crd + cwr + xrd + xwr, blk)}}},
            {"errors",
             {{"core_volume_rd", stat(k[12], ce + xe, "Requests")},
              {"core_volume_wr", stat(k[13], ce + xe, "Requests")},
              {"core_volume_total", stat(ce, ce + xe, "Requests")},
              {"cache_volume_rd", stat(k[14], ce + xe, "Requests")},
              {"cache_volume_wr", stat(k[15], ce + xe, "Requests")},
              {"cache_volume_total", stat(xe, ce + xe, "Requests")},
              {"total", stat(ce + xe, ce + xe, "Requests")}}},
            // nocstor's own figures.
            {"lines",
             {{"cleaned", k[16]},
              {"evicted", k[17]},
              {"table_writes", k[18]},
              {"lost_dirty", k[19]},
              {"cache_device_failed", c->failed.load()},
              {"damaged_at_load", c->damaged_entries}}}};
    return 0;
}

int cache_reset_stats(const std::string& name) {
    CacheBdev* c = find_cache(name);
    if (!c) return -ENODEV;
    // Counters are single-writer relaxed atomics: a reset racing an update may keep that one.
    for (auto& o : c->owners)
        if (o) o->counters.reset();
    return 0;
}

void cache_save_settings(CacheBdev* c, Done done) {
    Superblock s = c->sb;
    s.seq += 1;
    c->store_settings(&s);
    const std::string name = c->name;
    write_superblock(c->cache_desc, s, [name, s, done](int rc) {
        if (rc) return done(rc, "cannot write the superblock");
        if (CacheBdev* c = find_cache(name)) c->sb = s;
        done(0, "");
    });
}

void cache_set_mode(const std::string& name, const std::string& mode, Done done) {
    CacheBdev* c = find_cache(name);
    if (!c) return done(-ENODEV, "no cache bdev named " + name);
    Mode m;
    if (!parse_mode(mode, &m))
        return done(-EINVAL, "mode '" + mode + "' is not wt, wb, wa, pt, wi or wo");
    c->mode.store(m);
    cache_save_settings(c, std::move(done));
}

void cache_set_seqcutoff(const std::string& name, const std::string& policy, uint32_t threshold_kb,
                         uint32_t promotion_count, Done done) {
    CacheBdev* c = find_cache(name);
    if (!c) return done(-ENODEV, "no cache bdev named " + name);
    SeqCutoff p;
    if (!parse_seqcutoff(policy, &p))
        return done(-EINVAL, "policy '" + policy + "' is not always, full or never");
    if (threshold_kb > 4 * 1024 * 1024)
        return done(-EINVAL, "threshold must be at most 4194304 KiB");
    c->seqcutoff.store(p);
    if (threshold_kb) c->seqcutoff_bytes.store(threshold_kb * 1024);
    if (promotion_count) c->seqcutoff_promotion.store(promotion_count);
    cache_save_settings(c, std::move(done));
}

void cache_set_cleaning(const std::string& name, const CleaningOptions& o, Done done) {
    CacheBdev* c = find_cache(name);
    if (!c) return done(-ENODEV, "no cache bdev named " + name);
    CleaningPolicy p = c->cleaning.load();
    if (o.policy == "alru")
        p = CleaningPolicy::Alru;
    else if (o.policy == "nop")
        p = CleaningPolicy::Nop;
    else if (!o.policy.empty())
        return done(-EINVAL, "policy '" + o.policy + "' is not alru or nop");
    const uint32_t high = o.dirty_high_pct ? o.dirty_high_pct : c->dirty_high_pct.load();
    const uint32_t low = o.dirty_low_pct ? o.dirty_low_pct : c->dirty_low_pct.load();
    if (high > 100 || low >= high)
        return done(-EINVAL, "dirty_low_pct must be below dirty_high_pct, both at most 100");
    c->cleaning.store(p);
    c->dirty_high_pct.store(uint8_t(high));
    c->dirty_low_pct.store(uint8_t(low));
    if (o.stale_ms) c->stale_ms.store(o.stale_ms);
    if (o.max_lines_per_sec >= 0) c->max_lines_per_sec.store(uint32_t(o.max_lines_per_sec));
    cache_save_settings(c, std::move(done));
}

void cache_set_promotion(const std::string& name, const std::string& policy, uint32_t hits,
                         Done done) {
    CacheBdev* c = find_cache(name);
    if (!c) return done(-ENODEV, "no cache bdev named " + name);
    if (policy == "always") {
        c->promotion_hits.store(1);
    } else if (policy == "nhit") {
        if (hits < 2 || hits > 1000) return done(-EINVAL, "nhit needs hits between 2 and 1000");
        c->promotion_hits.store(hits);
    } else {
        return done(-EINVAL, "policy '" + policy + "' is not always or nhit");
    }
    cache_save_settings(c, std::move(done));
}

int cache_flush_start(const std::string& name, std::string* err) {
    CacheBdev* c = find_cache(name);
    if (!c) return fail(err, -ENODEV, "no cache bdev named " + name);
    if (c->flush_owners_running.load()) return 0;  // already flushing
    c->flush_status.store(0);
    flush_all_lines(c, nullptr);
    return 0;
}

int cache_flush_status(const std::string& name, json* out) {
    CacheBdev* c = find_cache(name);
    if (!c) return -ENODEV;
    uint64_t dirty = 0;
    for (const auto& s : c->sets) dirty += s->dirty_lines();
    *out = {{"in_progress", c->flush_owners_running.load() != 0},
            {"status", c->flush_status.load()},
            {"dirty_lines", dirty}};
    return 0;
}

}  // namespace nocstor::cache
