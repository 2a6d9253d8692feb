// The cache device's on-disk format (docs/cache.md has the byte layout), version 1:
//
//   cache bytes [0, 4 KiB)          superblock copy A  } written alternately (seq even: A, odd: B);
//   cache bytes [4 KiB, 8 KiB)      superblock copy B  } the valid copy with the highest seq counts
//   cache bytes [1 MiB, ...)        line table: one 64-byte entry per cache line
//   cache bytes [data_offset, ...)  the lines' data, line i at data_offset + i * line_size
//
// A line entry names the core line it holds (or none) and, per block of the line, whether the
// cache holds that block (valid) and whether the core lacks it (dirty). Entries are written
// after the data they describe and a block is marked dirty before the cache's copy may differ
// from the core's, so the table on disk is never "less dirty" nor "more valid" than the truth.
// Lines are grouped in sets of consecutive lines; a core line can only live in the set its
// number hashes to, so each set is looked after by one thread.
#pragma once

#include "bdev/bdev.h"

#include <cstdint>
#include <string>

namespace nocstor::cache {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kSbBytes = 4096;
inline constexpr uint64_t kSbCopyOffset[2] = {0, 4096};
inline constexpr uint64_t kTableOffset = 1024 * 1024;
inline constexpr uint32_t kEntryBytes = 64;
inline constexpr uint64_t kNoCoreLine = UINT64_MAX;
inline constexpr uint32_t kMaxBlocksPerLine = 128;  // 64 KiB lines of 512-byte blocks
inline constexpr char kSbMagic[8] = {'N', 'O', 'C', 'C', 'A', 'C', 'H', '1'};

enum class Mode : uint8_t {
    WriteThrough,
    WriteBack,
    WriteAround,
    PassThrough,
    WriteInvalidate,
    WriteOnly
};
// SPDK/OCF names: wt, wb, wa, pt, wi, wo.
const char* mode_name(Mode m);
bool parse_mode(const std::string& s, Mode* out);

enum class SeqCutoff : uint8_t { Always, Full, Never };
// alru: dirty lines are written back when they have not been used for a while or when a set is
// too dirty; nop: only bdev_ocf_flush_start (and delete) write them back.
enum class CleaningPolicy : uint8_t { Alru, Nop };
inline constexpr uint8_t kDefaultDirtyHighPct = 50, kDefaultDirtyLowPct = 30;
inline constexpr uint32_t kDefaultStaleMs = 1000;
const char* seqcutoff_name(SeqCutoff p);
bool parse_seqcutoff(const std::string& s, SeqCutoff* out);

// Which blocks of a line (bit i: block i of the line).
struct LineMask {
    uint64_t w[2] = {0, 0};
    static LineMask range(uint32_t first, uint32_t count);
    bool any() const { return (w[0] | w[1]) != 0; }
    bool covers(const LineMask& m) const {
        return (w[0] & m.w[0]) == m.w[0] && (w[1] & m.w[1]) == m.w[1];
    }
    bool test(uint32_t i) const { return (w[i >> 6] >> (i & 63)) & 1; }
    uint32_t count() const;
    LineMask operator&(const LineMask& o) const { return {{w[0] & o.w[0], w[1] & o.w[1]}}; }
    LineMask operator|(const LineMask& o) const { return {{w[0] | o.w[0], w[1] | o.w[1]}}; }
    LineMask operator~() const { return {{~w[0], ~w[1]}}; }
    bool operator==(const LineMask& o) const { return w[0] == o.w[0] && w[1] == o.w[1]; }
};

struct Entry {
    uint64_t core_line = kNoCoreLine;
    LineMask valid, dirty;
    // Bumped (per set) each time a line is mapped to a core line: after a crash, of two entries
    // naming the same core line the newer mapping wins (the other one was being evicted).
    uint64_t gen = 0;
    // In memory only (cache_set.h): when the line was last used (ms) and whether it was used
    // since the replacement clock last passed it. Kept here, next to what a hit reads anyway.
    uint32_t atime = 0;
    bool referenced = false;
};

// Encodes into 64 bytes (CRC32C over the first 60). Decoding an all-zero entry (a formatted
// table) gives a free line; false for a damaged one.
void entry_encode(const Entry& e, uint8_t* out);
bool entry_decode(const uint8_t* in, Entry* out);

struct Superblock {
    uint64_t seq = 0;
    bool clean = false;  // stopped cleanly (informational: the table is always consistent)
    // The cache device failed an I/O while attached: at the next load only dirty blocks are
    // trusted (clean copies may be stale: their invalidation may not have reached the table).
    bool failed = false;
    Uuid cache_uuid{};
    std::string name;       // the cache vbdev, at most 63 bytes
    std::string core_name;  // the core bdev, at most 63 bytes
    Uuid core_uuid{};
    uint64_t core_blocks = 0;
    uint32_t block_size = 0;
    uint32_t line_size = 0;  // bytes
    uint64_t line_count = 0;
    uint32_t set_count = 0;
    uint64_t data_offset = 0;  // bytes
    Mode mode = Mode::WriteThrough;
    SeqCutoff seqcutoff = SeqCutoff::Never;
    uint32_t seqcutoff_threshold_kb = 1024;
    uint32_t promotion_count = 1;
    // Background cleaning (0 in a superblock: the defaults).
    CleaningPolicy cleaning = CleaningPolicy::Alru;
    uint8_t dirty_high_pct = 0;  // a set dirtier than this is cleaned down to dirty_low_pct
    uint8_t dirty_low_pct = 0;
    uint32_t stale_ms = 0;           // a dirty line unused for this long is cleaned
    uint32_t max_lines_per_sec = 0;  // per owner thread; 0: no cap
    // A core line gets a cache line on its Nth miss (0 or 1: the first).
    uint32_t promotion_hits = 0;

    uint64_t lines_per_set() const { return line_count / set_count; }
    uint32_t blocks_per_line() const { return line_size / block_size; }
};

void sb_encode(const Superblock& sb, uint8_t* out);  // kSbBytes
bool sb_has_magic(const uint8_t* in);
bool sb_decode(const uint8_t* in, Superblock* out, std::string* why);

// The geometry of a new cache on a device of `cache_bytes` with blocks of `block_size`: false
// (and *why) when the device is too small for at least one set of lines.
bool plan_layout(uint64_t cache_bytes, uint32_t block_size, uint32_t line_size, Superblock* sb,
                 std::string* why);
inline uint64_t table_bytes(const Superblock& sb) {
    return sb.line_count * kEntryBytes;
}

// The set a core line lives in.
inline uint32_t set_of(uint64_t core_line, uint32_t set_count) {
    uint64_t x = core_line * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing spreads strides
    return uint32_t((x >> 32) % set_count);
}

}  // namespace nocstor::cache
