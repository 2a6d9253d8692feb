#include "modules/cache/cache_format.h"

#include "util/crc32c.h"
#include "util/le_codec.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace nocstor::cache {

namespace {

using le::get;
using le::put;

// Superblock field offsets of format version 1.
constexpr size_t kOffMagic = 0, kOffVersion = 8, kOffSize = 12, kOffCrc = 16, kOffFlags = 20,
                 kOffSeq = 24, kOffCacheUuid = 32, kOffName = 48, kOffCoreName = 112,
                 kOffCoreUuid = 176, kOffCoreBlocks = 192, kOffBlockSize = 200, kOffLineSize = 204,
                 kOffLineCount = 208, kOffSetCount = 216, kOffDataOffset = 224, kOffMode = 232,
                 kOffSeqCutoff = 233, kOffSeqThreshold = 236, kOffPromotion = 240,
                 kOffCleaning = 244, kOffDirtyHigh = 245, kOffDirtyLow = 246, kOffStaleMs = 248,
                 kOffMaxLines = 252, kOffPromotionHits = 256;
constexpr size_t kNameBytes = 64;
constexpr uint32_t kFlagClean = 1, kFlagFailed = 2;

// Entry field offsets.
constexpr size_t kEntCore = 0, kEntValid = 8, kEntDirty = 24, kEntGen = 40, kEntCrc = 60;

std::string fixed_string(const uint8_t* p) {
    return std::string(reinterpret_cast<const char*>(p),
                       strnlen(reinterpret_cast<const char*>(p), kNameBytes - 1));
}

}  // namespace

const char* mode_name(Mode m) {
    switch (m) {
        case Mode::WriteThrough:
            return "wt";
        case Mode::WriteBack:
            return "wb";
        case Mode::WriteAround:
            return "wa";
        case Mode::PassThrough:
            return "pt";
        case Mode::WriteInvalidate:
            return "wi";
        case Mode::WriteOnly:
            return "wo";
    }
    return "?";
}

bool parse_mode(const std::string& s, Mode* out) {
    for (Mode m : {Mode::WriteThrough, Mode::WriteBack, Mode::WriteAround, Mode::PassThrough,
                   Mode::WriteInvalidate, Mode::WriteOnly}) {
        if (s == mode_name(m)) {
            *out = m;
            return true;
        }
    }
    return false;
}

const char* seqcutoff_name(SeqCutoff p) {
    switch (p) {
        case SeqCutoff::Always:
            return "always";
        case SeqCutoff::Full:
            return "full";
        case SeqCutoff::Never:
            return "never";
    }
    return "?";
}

bool parse_seqcutoff(const std::string& s, SeqCutoff* out) {
    for (SeqCutoff p : {SeqCutoff::Always, SeqCutoff::Full, SeqCutoff::Never}) {
        if (s == seqcutoff_name(p)) {
            *out = p;
            return true;
        }
    }
    return false;
}

LineMask LineMask::range(uint32_t first, uint32_t count) {
    LineMask m;
    for (uint32_t i = first; i < first + count; ++i) m.w[i >> 6] |= 1ull << (i & 63);
    return m;
}

uint32_t LineMask::count() const {
    return uint32_t(std::popcount(w[0]) + std::popcount(w[1]));
}

void entry_encode(const Entry& e, uint8_t* out) {
    std::memset(out, 0, kEntryBytes);
    put<uint64_t>(out, kEntCore, e.core_line);
    put<uint64_t>(out, kEntValid, e.valid.w[0]);
    put<uint64_t>(out, kEntValid + 8, e.valid.w[1]);
    put<uint64_t>(out, kEntDirty, e.dirty.w[0]);
    put<uint64_t>(out, kEntDirty + 8, e.dirty.w[1]);
    put<uint64_t>(out, kEntGen, e.gen);
    put<uint32_t>(out, kEntCrc, crc32c(out, kEntCrc));
}

bool entry_decode(const uint8_t* in, Entry* out) {
    static const uint8_t zero[kEntryBytes] = {};
    if (std::memcmp(in, zero, kEntryBytes) == 0) {
        *out = Entry{};
        return true;
    }
    if (crc32c(in, kEntCrc) != get<uint32_t>(in, kEntCrc)) return false;
    out->core_line = get<uint64_t>(in, kEntCore);
    out->valid.w[0] = get<uint64_t>(in, kEntValid);
    out->valid.w[1] = get<uint64_t>(in, kEntValid + 8);
    out->dirty.w[0] = get<uint64_t>(in, kEntDirty);
    out->dirty.w[1] = get<uint64_t>(in, kEntDirty + 8);
    out->gen = get<uint64_t>(in, kEntGen);
    // A dirty block is always valid; a free line holds nothing.
    if (!out->valid.covers(out->dirty)) return false;
    if (out->core_line == kNoCoreLine && out->valid.any()) return false;
    return true;
}

void sb_encode(const Superblock& sb, uint8_t* out) {
    std::memset(out, 0, kSbBytes);
    std::memcpy(out + kOffMagic, kSbMagic, 8);
    put<uint32_t>(out, kOffVersion, kFormatVersion);
    put<uint32_t>(out, kOffSize, kSbBytes);
    put<uint32_t>(out, kOffFlags, (sb.clean ? kFlagClean : 0) | (sb.failed ? kFlagFailed : 0));
    put<uint64_t>(out, kOffSeq, sb.seq);
    std::memcpy(out + kOffCacheUuid, sb.cache_uuid.data(), 16);
    std::memcpy(out + kOffName, sb.name.data(), std::min(sb.name.size(), kNameBytes - 1));
    std::memcpy(out + kOffCoreName, sb.core_name.data(),
                std::min(sb.core_name.size(), kNameBytes - 1));
    std::memcpy(out + kOffCoreUuid, sb.core_uuid.data(), 16);
    put<uint64_t>(out, kOffCoreBlocks, sb.core_blocks);
    put<uint32_t>(out, kOffBlockSize, sb.block_size);
    put<uint32_t>(out, kOffLineSize, sb.line_size);
    put<uint64_t>(out, kOffLineCount, sb.line_count);
    put<uint32_t>(out, kOffSetCount, sb.set_count);
    put<uint64_t>(out, kOffDataOffset, sb.data_offset);
    out[kOffMode] = uint8_t(sb.mode);
    out[kOffSeqCutoff] = uint8_t(sb.seqcutoff);
    put<uint32_t>(out, kOffSeqThreshold, sb.seqcutoff_threshold_kb);
    put<uint32_t>(out, kOffPromotion, sb.promotion_count);
    out[kOffCleaning] = uint8_t(sb.cleaning);
    out[kOffDirtyHigh] = sb.dirty_high_pct;
    out[kOffDirtyLow] = sb.dirty_low_pct;
    put<uint32_t>(out, kOffStaleMs, sb.stale_ms);
    put<uint32_t>(out, kOffMaxLines, sb.max_lines_per_sec);
    put<uint32_t>(out, kOffPromotionHits, sb.promotion_hits);
    put<uint32_t>(out, kOffCrc, crc32c(out, kSbBytes));
}

bool sb_has_magic(const uint8_t* in) {
    return std::memcmp(in + kOffMagic, kSbMagic, 8) == 0;
}

bool sb_decode(const uint8_t* in, Superblock* out, std::string* why) {
    auto bad = [why](const char* m) {
        if (why) *why = m;
        return false;
    };
    if (!sb_has_magic(in)) return bad("no cache superblock");
    if (get<uint32_t>(in, kOffVersion) != kFormatVersion) return bad("unknown format version");
    if (get<uint32_t>(in, kOffSize) != kSbBytes) return bad("bad superblock size");
    uint8_t copy[kSbBytes];
    std::memcpy(copy, in, kSbBytes);
    put<uint32_t>(copy, kOffCrc, 0);
    if (crc32c(copy, kSbBytes) != get<uint32_t>(in, kOffCrc)) return bad("superblock CRC mismatch");
    Superblock sb;
    sb.clean = get<uint32_t>(in, kOffFlags) & kFlagClean;
    sb.failed = get<uint32_t>(in, kOffFlags) & kFlagFailed;
    sb.seq = get<uint64_t>(in, kOffSeq);
    std::memcpy(sb.cache_uuid.data(), in + kOffCacheUuid, 16);
    sb.name = fixed_string(in + kOffName);
    sb.core_name = fixed_string(in + kOffCoreName);
    std::memcpy(sb.core_uuid.data(), in + kOffCoreUuid, 16);
    sb.core_blocks = get<uint64_t>(in, kOffCoreBlocks);
    sb.block_size = get<uint32_t>(in, kOffBlockSize);
    sb.line_size = get<uint32_t>(in, kOffLineSize);
    sb.line_count = get<uint64_t>(in, kOffLineCount);
    sb.set_count = get<uint32_t>(in, kOffSetCount);
    sb.data_offset = get<uint64_t>(in, kOffDataOffset);
    if (in[kOffMode] > uint8_t(Mode::WriteOnly)) return bad("unknown cache mode");
    sb.mode = Mode(in[kOffMode]);
    if (in[kOffSeqCutoff] > uint8_t(SeqCutoff::Never)) return bad("unknown seqcutoff policy");
    sb.seqcutoff = SeqCutoff(in[kOffSeqCutoff]);
    sb.seqcutoff_threshold_kb = get<uint32_t>(in, kOffSeqThreshold);
    sb.promotion_count = get<uint32_t>(in, kOffPromotion);
    if (in[kOffCleaning] > uint8_t(CleaningPolicy::Nop)) return bad("unknown cleaning policy");
    sb.cleaning = CleaningPolicy(in[kOffCleaning]);
    sb.dirty_high_pct = in[kOffDirtyHigh];
    sb.dirty_low_pct = in[kOffDirtyLow];
    sb.stale_ms = get<uint32_t>(in, kOffStaleMs);
    sb.max_lines_per_sec = get<uint32_t>(in, kOffMaxLines);
    sb.promotion_hits = get<uint32_t>(in, kOffPromotionHits);
    if (sb.block_size < 512 || !std::has_single_bit(sb.block_size) || sb.line_size == 0 ||
        sb.line_size % sb.block_size || sb.line_size / sb.block_size > kMaxBlocksPerLine ||
        sb.set_count == 0 || sb.line_count == 0 || sb.line_count % sb.set_count ||
        sb.data_offset < kTableOffset + sb.line_count * kEntryBytes)
        return bad("inconsistent geometry");
    *out = std::move(sb);
    return true;
}

bool plan_layout(uint64_t cache_bytes, uint32_t block_size, uint32_t line_size, Superblock* sb,
                 std::string* why) {
    auto bad = [why](std::string m) {
        if (why) *why = std::move(m);
        return false;
    };
    if (!std::has_single_bit(line_size) || line_size < 4096 || line_size > 65536)
        return bad("cache_line_size must be 4, 8, 16, 32 or 64 KiB");
    if (line_size % block_size || line_size / block_size > kMaxBlocksPerLine)
        return bad("cache line of " + std::to_string(line_size) + " bytes does not fit blocks of " +
                   std::to_string(block_size));
    constexpr uint64_t kMiB = 1024 * 1024;
    if (cache_bytes < 3 * kMiB) return bad("cache device too small (at least 3 MiB)");
    // Lines and their entries share what is left after the superblock area and the alignment
    // of the data region.
    uint64_t lines = (cache_bytes - kTableOffset - kMiB) / (uint64_t(line_size) + kEntryBytes);
    const uint32_t per_block = std::max<uint32_t>(1, block_size / kEntryBytes);
    uint32_t sets = uint32_t(std::clamp<uint64_t>(lines / 4096, 1, 64));
    uint64_t per_set = lines / sets / per_block * per_block;
    if (per_set < 16) return bad("cache device too small for its lines");
    sb->block_size = block_size;
    sb->line_size = line_size;
    sb->set_count = sets;
    sb->line_count = per_set * sets;
    const uint64_t table_end = kTableOffset + sb->line_count * kEntryBytes;
    sb->data_offset = (table_end + kMiB - 1) / kMiB * kMiB;
    if (sb->data_offset + sb->line_count * line_size > cache_bytes)
        return bad("cache device too small for its lines");
    return true;
}

}  // namespace nocstor::cache
