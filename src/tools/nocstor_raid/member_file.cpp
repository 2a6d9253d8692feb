#include "tools/nocstor_raid/member_file.h"

#include <fmt/format.h>

#include <vector>

namespace nocstor::raid_tool {

using namespace nocstor::raid;

uint64_t MemberInfo::data_blocks() const {
    const Superblock* s = sb();
    if (!s) return 0;
    return s->level == Level::Concat ? s->members[s->slot].data_blocks : s->member_blocks;
}

std::string MemberInfo::no_superblock_reason() const {
    if (!copies[0].has_magic && !copies[1].has_magic)
        return "no nocstor raid superblock (neither byte 0 nor byte 4096 starts with "
               "\"NOCRAID1\"): not a raid member, or its superblocks were cleared (clear_sb)";
    return fmt::format("both superblock copies are damaged (A: {}; B: {})", copies[0].why,
                       copies[1].why);
}

std::string MemberInfo::size_problem() const {
    const Superblock* s = sb();
    if (!s) return "";
    const uint64_t need = (s->data_offset + data_blocks()) * s->block_size;
    if (size >= need) return "";
    return fmt::format("the file has {} bytes, its superblock describes {} ({} blocks of {} B)",
                       size, need, s->data_offset + data_blocks(), s->block_size);
}

MemberInfo inspect_member(const std::string& path) {
    MemberInfo m;
    m.path = path;
    std::string err;
    m.file = MemberFile::open(path, &err, {.sequential = true, .path_in_errors = true});
    if (!m.file) {
        m.error = err;
        return m;
    }
    m.size = m.file->size();
    const size_t sb_area = kSbCopyOffset[1] + kSbBytes;
    if (m.size < sb_area) {
        m.error = fmt::format(
            "too small to be a raid member ({} bytes; a member starts with two 4 KiB superblock "
            "copies)",
            m.size);
        return m;
    }
    std::vector<uint8_t> buf(sb_area);
    if (!m.file->read(0, buf.data(), buf.size(), &err)) {
        m.error = err;
        return m;
    }
    for (int i = 0; i < 2; ++i) {
        SbCopy& c = m.copies[i];
        c.offset = kSbCopyOffset[i];
        c.has_magic = sb_has_magic(buf.data() + c.offset);
        c.valid = sb_decode(buf.data() + c.offset, &c.sb, &c.why);
        if (c.valid && (m.current < 0 || c.sb.seq > m.copies[m.current].sb.seq)) m.current = i;
    }
    if (m.current >= 0 && !m.bitmap.load(*m.file, *m.sb(), m.data_blocks(), &err))
        m.bitmap_error = err;
    return m;
}

}  // namespace nocstor::raid_tool
