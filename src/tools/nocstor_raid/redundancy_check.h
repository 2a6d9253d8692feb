// Offline check of a RAID array's redundancy from its member files: every block row (the same
// member data block on every member) is read with large sequential preads and verified: raid1
// every copy equal, raid5 the XOR parity P, raid6 P and Q (ISA-L's GF(2^8) syndrome, as the
// daemon computes it), with the left-symmetric rotation of raid_layout.h.
#pragma once

#include "modules/raid/raid_superblock.h"
#include "tools/nocstor_raid/intent_bitmap.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::tools {
class ImageFile;
}

namespace nocstor::raid_tool {

using MemberFile = tools::ImageFile;  // tools/common/image_file.h

// A member whose data can be read: rows [0, readable_rows) of slot `slot`, and with
// outside_dirty every row of a region the bitmap marks clean too (a member rebuilt only where it
// missed writes holds everything else).
struct DataSource {
    uint32_t slot = 0;
    const MemberFile* file = nullptr;
    uint64_t readable_rows = 0;
    bool outside_dirty = false;
};

// Which rows to check, by whether the daemon resyncs them at its next start ("pending"): the
// regions the bitmap marks dirty on an array not stopped cleanly (every row without a bitmap),
// and the rows past an unfinished whole-array resync (resync_offset).
enum class RowFilter { All, DirtyOnly, SkipDirty };

struct CheckOptions {
    size_t max_report = 10;
    RowFilter filter = RowFilter::All;
};

enum class MismatchKind {
    P,       // raid5/6: P does not match the data (raid6: Q does, so P is the odd one out)
    Q,       // raid6: Q does not match the data while P does
    PQ,      // raid6: neither matches (a data strip is wrong), or, degraded, P and Q disagree
    Mirror,  // raid1: copies differ
};
const char* mismatch_kind_name(MismatchKind k);  // "P", "Q", "P+Q", "mirror"

struct Mismatch {
    uint64_t row = 0;     // member data block (counted from data_offset)
    uint64_t stripe = 0;  // raid5/6
    MismatchKind kind = MismatchKind::P;
    std::vector<uint32_t> slots;      // the parity slot(s) involved; raid1: the differing copies
    uint32_t reference = UINT32_MAX;  // raid1: the copy compared against
    int64_t suspect = -1;             // raid6: the slot whose strip is most likely wrong
    bool degraded = false;            // raid6 checked with one member unreadable
    bool dirty = false;               // in a region the write-intent bitmap marks dirty
    bool pending = false;             // the daemon resyncs this row at its next start
};

struct CheckResult {
    uint64_t rows = 0;                // member data blocks of the array
    uint64_t rows_checked = 0;        // verified
    uint64_t rows_unchecked = 0;      // too few readable members there
    uint64_t rows_filtered = 0;       // left out by --dirty-only / --skip-dirty
    uint64_t mismatches = 0;          // block rows that do not match
    uint64_t mismatches_pending = 0;  // of those, rows the daemon resyncs anyway (expected)
    std::vector<Mismatch> first;      // the first max_report
    std::string error;                // an I/O error stopped the check
};

// Checks every row of a raid1, raid5 or raid6 array described by `sb` from `sources` (members
// not listed cannot be read). `dirty` is the union of the members' write-intent bitmaps. False
// (with result->error) on an I/O error.
bool check_redundancy(const raid::Superblock& sb, const std::vector<DataSource>& sources,
                      const IntentBitmap& dirty, const CheckOptions& opts, CheckResult* result);

}  // namespace nocstor::raid_tool
