// Where a RAID array's blocks live: levels, geometry and the block mapping (pure functions).
//
// Every member holds `data_offset` blocks of metadata (superblock, write-intent bitmap), then
// `member_blocks` blocks of array data. Striped levels cut the data into strips of
// `strip_blocks`; a stripe is one strip per member at the same member offset.
//
//   raid0   data strip d of stripe s on member d (n strips of data per stripe)
//   raid1   every member holds the whole array
//   concat  the members one after the other (each rounded down to whole strips)
//   raid5   left-symmetric, as Linux md: P on member (n-1) - s%n, data d on (P+1+d) % n
//   raid6   left-symmetric: P as raid5, Q on (P+1) % n, data d on (P+2+d) % n;
//           P = XOR of the data, Q = sum of g^d * data d over GF(2^8), polynomial 0x11D, g = 2
//           (Linux md's and ISA-L's syndrome), d the data index within the stripe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::raid {

enum class Level : uint8_t { Raid0, Raid1, Raid5, Raid6, Concat };

const char* level_name(Level l);  // "raid0", "raid1", "raid5", "raid6", "concat"
// Accepts SPDK's spellings too: "0", "raid0", "1", "raid1", "5", "raid5", "6", "raid6", "concat".
bool parse_level(const std::string& text, Level* out);

inline constexpr uint32_t kMaxMembers = 32;

struct Geometry {
    Level level = Level::Raid0;
    uint32_t members = 0;
    uint32_t block_size = 512;
    uint64_t strip_blocks = 0;            // 0 for raid1
    uint64_t data_offset = 0;             // blocks of metadata at the start of every member
    uint64_t member_blocks = 0;           // data blocks per member (raid0/1/5/6)
    std::vector<uint64_t> concat_blocks;  // concat: data blocks of each member

    uint32_t parity_members() const {
        return level == Level::Raid5 ? 1 : level == Level::Raid6 ? 2 : 0;
    }
    uint32_t data_members() const { return members - parity_members(); }
    // Members that may be missing with the array still whole.
    uint32_t tolerance() const { return level == Level::Raid1 ? members - 1 : parity_members(); }
    bool striped() const { return level != Level::Raid1 && level != Level::Concat; }
    bool parity() const { return parity_members() != 0; }
    uint64_t num_blocks() const;
    uint64_t stripe_data_blocks() const { return strip_blocks * data_members(); }

    // --- parity levels ---
    uint32_t p_member(uint64_t stripe) const { return uint32_t(members - 1 - stripe % members); }
    uint32_t q_member(uint64_t stripe) const { return (p_member(stripe) + 1) % members; }
    uint32_t data_member(uint64_t stripe, uint32_t d) const {
        return (p_member(stripe) + parity_members() + d) % members;
    }
};

// One piece of an array I/O that lives on a single member.
struct Extent {
    uint32_t member = 0;
    uint64_t member_block = 0;  // including data_offset
    uint64_t blocks = 0;
};

// concat: the member extent where array block `lba` lives (blocks 0 past the end).
Extent map_concat(const Geometry& g, uint64_t lba, uint64_t blocks);

// raid0 / concat: the member extent where array block `lba` lives and how many blocks follow
// it on that member (at most `blocks`). Inline: raid0 maps every I/O with it.
inline Extent map_plain(const Geometry& g, uint64_t lba, uint64_t blocks) {
    if (g.level == Level::Concat) return map_concat(g, lba, blocks);
    // The strip is a power of two of blocks whenever the block size is one, and the member count
    // often is: masks and shifts then, not divisions, per I/O.
    const uint64_t sb = g.strip_blocks;
    uint64_t strip, row;
    if ((sb & (sb - 1)) == 0) {
        strip = lba >> __builtin_ctzll(sb);
        row = lba & (sb - 1);
    } else {
        strip = lba / sb;
        row = lba % sb;
    }
    Extent e;
    uint64_t stripe;
    if (g.members && (g.members & (g.members - 1)) == 0) {
        e.member = uint32_t(strip & (g.members - 1));
        stripe = strip >> __builtin_ctz(g.members);
    } else {
        e.member = uint32_t(strip % g.members);
        stripe = strip / g.members;
    }
    e.member_block = g.data_offset + stripe * sb + row;
    e.blocks = blocks < sb - row ? blocks : sb - row;
    return e;
}

// raid5 / raid6: array block `lba` is in stripe `stripe`, data index `d`, row `row` of the strip.
struct StripeAddr {
    uint64_t stripe = 0;
    uint32_t d = 0;
    uint64_t row = 0;
};
StripeAddr map_stripe(const Geometry& g, uint64_t lba);
// The member block of row `row` in any strip of stripe `stripe`.
inline uint64_t strip_block(const Geometry& g, uint64_t stripe, uint64_t row) {
    return g.data_offset + stripe * g.strip_blocks + row;
}

}  // namespace nocstor::raid
