// The cache vbdev as a bdev: geometry, channels, where each I/O goes, teardown, JSON.
#include "modules/cache/cache_bdev.h"

#include "modules/vbdev.h"
#include "runtime/runtime.h"
#include "util/log.h"

#include <nlohmann/json.hpp>

namespace nocstor::cache {

CacheBdev::CacheBdev(const Superblock& s, BdevModule* module)
    : Bdev(s.name, module), sb(s), mode(s.mode) {
    load_settings(s);
    product_name = "cache";
    bs = s.block_size;
    blocks_per_line = s.blocks_per_line();
    data_offset_blocks = s.data_offset / bs;
    table_offset_blocks = kTableOffset / bs;
    block_size = s.block_size;
    num_blocks = s.core_blocks;
    optimal_io_boundary = blocks_per_line;
    max_num_segments = Op::kMaxIovs;  // an operation slices the user's iovecs into its own array
    const uint32_t per_block = std::max<uint32_t>(1, bs / kEntryBytes);
    const uint64_t per_set = s.lines_per_set();
    for (uint32_t i = 0; i < s.set_count; ++i)
        sets.push_back(std::make_unique<CacheSet>(i, i * per_set, uint32_t(per_set), per_block));
}

// destruct() closes the descriptors; a cache that never registered closes them here.
CacheBdev::~CacheBdev() {
    for (BdevDesc* d : {cache_desc, core_desc}) {
        if (!d) continue;
        bdev_release_claim(d->bdev());
        bdev_close(d);
    }
}

Owner* CacheBdev::owner_here(uint32_t i) {
    if (i >= owners.size() || owner_threads[i] != Thread::current() || !owners[i]) return nullptr;
    if (!owners[i]->cache_ch || !owners[i]->core_ch) return nullptr;
    return owners[i].get();
}

bool CacheBdev::io_type_supported(IoType t) const {
    // Write-zeroes is not handled here: the bdev layer turns it into writes of zeroes, which go
    // through the cache like any write. Unmap goes to the core (see submit_request).
    if (t == IoType::Unmap) return core_desc && core_desc->bdev()->io_type_supported(t);
    return t == IoType::Read || t == IoType::Write || t == IoType::Flush || t == IoType::Reset;
}

CacheChannel::CacheChannel(CacheBdev* c)
    : cache_ch(bdev_get_io_channel(c->cache_desc)), core_ch(bdev_get_io_channel(c->core_desc)) {}

CacheChannel::~CacheChannel() {
    if (cache_ch) bdev_put_io_channel(cache_ch);
    if (core_ch) bdev_put_io_channel(core_ch);
}

bool CacheChannel::cut_off(const CacheBdev* c, const BdevIo* io) {
    const SeqCutoff policy = c->seqcutoff.load(std::memory_order_relaxed);
    if (policy == SeqCutoff::Never) return false;
    Stream* s = nullptr;
    for (Stream& st : streams)
        if (st.next == io->offset_blocks) s = &st;
    if (!s) {
        s = &streams[next_victim];
        next_victim = (next_victim + 1) % kStreams;
        *s = Stream{};
    }
    s->next = io->offset_blocks + io->num_blocks;
    s->bytes += io->num_blocks * c->bs;
    ++s->requests;
    if (s->bytes < c->seqcutoff_bytes.load(std::memory_order_relaxed) ||
        s->requests < c->seqcutoff_promotion.load(std::memory_order_relaxed))
        return false;
    return policy == SeqCutoff::Always || c->nearly_full();
}

bool CacheBdev::nearly_full() const {
    uint64_t mapped = 0;
    for (const auto& s : sets) mapped += s->mapped_lines();
    return mapped * 100 >= sb.line_count * 95;
}

void CacheBdev::load_settings(const Superblock& s) {
    seqcutoff = s.seqcutoff;
    seqcutoff_bytes = s.seqcutoff_threshold_kb ? s.seqcutoff_threshold_kb * 1024 : 1024 * 1024;
    seqcutoff_promotion = std::max<uint32_t>(1, s.promotion_count);
    cleaning = s.cleaning;
    dirty_high_pct = s.dirty_high_pct ? s.dirty_high_pct : kDefaultDirtyHighPct;
    dirty_low_pct = s.dirty_low_pct ? s.dirty_low_pct : kDefaultDirtyLowPct;
    stale_ms = s.stale_ms ? s.stale_ms : kDefaultStaleMs;
    max_lines_per_sec = s.max_lines_per_sec;
    promotion_hits = std::max<uint32_t>(1, s.promotion_hits);
}

void CacheBdev::store_settings(Superblock* s) const {
    s->mode = mode.load();
    s->seqcutoff = seqcutoff.load();
    s->seqcutoff_threshold_kb = seqcutoff_bytes.load() / 1024;
    s->promotion_count = seqcutoff_promotion.load();
    s->cleaning = cleaning.load();
    s->dirty_high_pct = dirty_high_pct.load();
    s->dirty_low_pct = dirty_low_pct.load();
    s->stale_ms = stale_ms.load();
    s->max_lines_per_sec = max_lines_per_sec.load();
    s->promotion_hits = promotion_hits.load();
    s->failed = failed.load();
}

std::unique_ptr<IoChannel> CacheBdev::create_channel() {
    auto ch = std::make_unique<CacheChannel>(this);
    if (!ch->cache_ch || !ch->core_ch) return nullptr;
    return ch;
}

namespace {

// Flush (and reset): both bdevs; the upper I/O completes with the worse result.
struct BothCtx {
    uint32_t pending;
    IoStatus status;
};

void both_done(BdevIo* bio, bool ok, void* arg) {
    auto* io = static_cast<BdevIo*>(arg);
    auto* c = io->ctx<BothCtx>();
    bdev_free_io(bio);
    if (!ok) c->status = IoStatus::Failed;
    if (--c->pending == 0) bdev_io_complete(io, c->status);
}

}  // namespace

void CacheBdev::submit_request(IoChannel* ch, BdevIo* io) {
    auto* cc = static_cast<CacheChannel*>(ch);
    switch (io->type) {
        case IoType::Read:
        case IoType::Write:
            return run_user_io(this, io, cc->cut_off(this, io));
        case IoType::Flush: {
            auto* c = io->ctx<BothCtx>();
            c->pending = 2;
            c->status = IoStatus::Success;
            BdevDesc* d[2] = {cache_desc, core_desc};
            IoChannel* chs[2] = {cc->cache_ch, cc->core_ch};
            for (int i = 0; i < 2; ++i) {
                const int rc = bdev_flush(d[i], chs[i], 0, d[i]->bdev()->num_blocks, both_done, io);
                if (rc == 0) continue;
                if (rc == -ENOMEM)
                    c->status = IoStatus::NoMemory;
                else if (rc != -ENOTSUP)
                    c->status = IoStatus::Failed;
                if (--c->pending == 0) return bdev_io_complete(io, c->status);
            }
            return;
        }
        case IoType::Unmap: {
            // Passed to the core, which reclaims the space. The cache keeps its copies: what a
            // deallocated block reads as is unspecified (the namespace reports DLFEAT 0), so
            // a clean copy may still be served, and a dirty one is written back by the cleaner
            // like any other (dropping it first would lose data if the core's unmap failed).
            const int rc = bdev_forward_io(
                core_desc, cc->core_ch, io, io->offset_blocks,
                [](BdevIo* done_io, bool, void*) { bdev_io_complete(done_io, done_io->status); },
                nullptr);
            if (rc == 0) return;
            const int rc2 = bdev_unmap(
                core_desc, cc->core_ch, io->offset_blocks, io->num_blocks,
                [](BdevIo* bio, bool ok, void* arg) {
                    bdev_free_io(bio);
                    bdev_io_complete(static_cast<BdevIo*>(arg),
                                     ok ? IoStatus::Success : IoStatus::Failed);
                },
                io);
            if (rc2 == 0) return;
            return bdev_io_complete(io, rc2 == -ENOMEM ? IoStatus::NoMemory : IoStatus::Failed);
        }
        case IoType::Reset: {
            // The core is the device that may hang; the cache is left alone.
            const int rc = bdev_reset(
                core_desc, cc->core_ch,
                [](BdevIo* bio, bool ok, void* arg) {
                    bdev_free_io(bio);
                    bdev_io_complete(static_cast<BdevIo*>(arg),
                                     ok ? IoStatus::Success : IoStatus::Failed);
                },
                io);
            if (rc) bdev_io_complete(io, status_from_submit_rc(rc));
            return;
        }
        default:
            return bdev_io_complete(io, IoStatus::Unsupported);
    }
}

void CacheBdev::dump_info_json(nlohmann::json& out) const {
    uint64_t dirty = 0, mapped = 0;
    for (const auto& s : sets) {
        dirty += s->dirty_lines();
        mapped += s->mapped_lines();
    }
    out["cache"] = {{"mode", mode_name(mode.load())},
                    {"seqcutoff",
                     {{"policy", seqcutoff_name(seqcutoff.load())},
                      {"threshold_kb", seqcutoff_bytes.load() / 1024},
                      {"promotion_count", seqcutoff_promotion.load()}}},
                    {"cleaning",
                     {{"policy", cleaning.load() == CleaningPolicy::Alru ? "alru" : "nop"},
                      {"stale_ms", stale_ms.load()},
                      {"dirty_high_pct", dirty_high_pct.load()},
                      {"dirty_low_pct", dirty_low_pct.load()},
                      {"max_lines_per_sec", max_lines_per_sec.load()}}},
                    {"promotion",
                     {{"policy", promotion_hits.load() > 1 ? "nhit" : "always"},
                      {"hits", promotion_hits.load()}}},
                    {"cache_line_size", sb.line_size / 1024},
                    {"cache_bdev_name", cache_desc ? cache_desc->bdev()->name : ""},
                    {"core_bdev_name", core_desc ? core_desc->bdev()->name : ""},
                    {"lines", sb.line_count},
                    {"sets", sb.set_count},
                    {"occupied_lines", mapped},
                    {"dirty_lines", dirty},
                    {"cache_uuid", uuid_to_string(sb.cache_uuid)}};
}

// A cache comes back by itself: examine finds its superblock on the cache bdev.
void CacheBdev::write_config_json(nlohmann::json& out) const {
    out = nullptr;
}

}  // namespace nocstor::cache
