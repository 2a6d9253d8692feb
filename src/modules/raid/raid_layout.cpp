#include "modules/raid/raid_layout.h"

namespace nocstor::raid {

const char* level_name(Level l) {
    switch (l) {
        case Level::Raid0:
            return "raid0";
        case Level::Raid1:
            return "raid1";
        case Level::Raid5:
            return "raid5";
        case Level::Raid6:
            return "raid6";
        case Level::Concat:
            return "concat";
    }
    return "?";
}

bool parse_level(const std::string& text, Level* out) {
    if (text == "0" || text == "raid0") {
        *out = Level::Raid0;
    } else if (text == "1" || text == "raid1") {
        *out = Level::Raid1;
    } else if (text == "5" || text == "raid5" || text == "raid5f" || text == "5f") {
        // SPDK's raid5f takes only full-stripe writes; raid5 takes any write and is laid out
        // the same way, so SPDK configurations naming raid5f work.
        *out = Level::Raid5;
    } else if (text == "6" || text == "raid6") {
        *out = Level::Raid6;
    } else if (text == "concat") {
        *out = Level::Concat;
    } else {
        return false;
    }
    return true;
}

uint64_t Geometry::num_blocks() const {
    switch (level) {
        case Level::Raid1:
            return member_blocks;
        case Level::Concat: {
            uint64_t sum = 0;
            for (uint64_t b : concat_blocks) sum += b;
            return sum;
        }
        default:
            return member_blocks * data_members();
    }
}

Extent map_concat(const Geometry& g, uint64_t lba, uint64_t blocks) {
    Extent e;
    uint64_t start = 0;
    for (uint32_t m = 0; m < g.members; ++m) {
        const uint64_t size = g.concat_blocks[m];
        if (lba < start + size) {
            e.member = m;
            e.member_block = g.data_offset + (lba - start);
            e.blocks = std::min(blocks, start + size - lba);
            return e;
        }
        start += size;
    }
    return e;  // beyond the end: blocks 0
}

StripeAddr map_stripe(const Geometry& g, uint64_t lba) {
    StripeAddr a;
    const uint64_t per_stripe = g.stripe_data_blocks();
    a.stripe = lba / per_stripe;
    const uint64_t in_stripe = lba % per_stripe;
    a.d = uint32_t(in_stripe / g.strip_blocks);
    a.row = in_stripe % g.strip_blocks;
    return a;
}

}  // namespace nocstor::raid
