// Members sorted into arrays (by array UUID) and the array's metadata checked the way assembly
// judges it (raid_assemble.cpp): the newest superblock (highest seq) describes the array; a
// member with an older one missed updates (stale); each slot belongs to the member whose UUID the
// newest table lists there.
#pragma once

#include "tools/nocstor_raid/intent_bitmap.h"
#include "tools/nocstor_raid/member_file.h"

#include <string>
#include <vector>

namespace nocstor::raid_tool {

// How a member file relates to its array's newest superblock.
enum class FileRole {
    Current,   // newest seq, and the member the table lists in its slot
    Stale,     // an older seq: it missed updates
    Replaced,  // its slot now belongs to another member (another UUID in the newest table)
    Conflict,  // another file already is the current member of the same slot
};
const char* file_role_name(FileRole r);  // "current", "stale", "replaced", "conflict"

struct GroupFile {
    const MemberInfo* info = nullptr;
    FileRole role = FileRole::Current;
};

struct SlotView {
    uint32_t slot = 0;
    raid::SbMember entry;              // from the newest superblock
    const MemberInfo* file = nullptr;  // its current member among the files given, or null
    uint64_t readable_rows = 0;        // rows [0, readable_rows) of `file` hold valid data
    bool outside_dirty = false;        // and so do the regions the bitmap marks clean
};

struct ArrayGroup {
    const MemberInfo* newest = nullptr;  // the file whose superblock describes the array
    std::vector<GroupFile> files;
    std::vector<SlotView> slots;
    std::vector<std::string> problems;  // inconsistent metadata (check exits 1)
    std::vector<std::string> notes;     // worth knowing, consistent
    IntentBitmap dirty;                 // union of the current members' bitmaps
    bool bitmaps_differ = false;

    const raid::Superblock& sb() const { return *newest->sb(); }
};

// Groups the members that have a superblock; files without one are not in any group.
std::vector<ArrayGroup> group_arrays(const std::vector<MemberInfo>& members);

}  // namespace nocstor::raid_tool
