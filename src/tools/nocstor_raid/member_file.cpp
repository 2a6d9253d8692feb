#include "tools/nocstor_raid/member_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace nocstor::raid_tool {

using namespace nocstor::raid;

MemberFile::MemberFile(std::string path, int fd, uint64_t size)
    : path_(std::move(path)), fd_(fd), size_(size) {}

MemberFile::~MemberFile() {
    ::close(fd_);
}

std::unique_ptr<MemberFile> MemberFile::open(const std::string& path, std::string* err) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = fmt::format("cannot open: {}", std::strerror(errno));
        return nullptr;
    }
    struct stat st {};
    uint64_t size = 0;
    if (fstat(fd, &st) != 0) {
        *err = fmt::format("cannot stat: {}", std::strerror(errno));
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) != 0)
            *err = fmt::format("cannot get the device size: {}", std::strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        size = uint64_t(st.st_size);
    } else {
        *err = "not a regular file or a block device";
    }
    if (!err->empty()) {
        ::close(fd);
        return nullptr;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<MemberFile>(new MemberFile(path, fd, size));
}

bool MemberFile::read(uint64_t off, void* buf, size_t len, std::string* err) const {
    if (off > size_ || len > size_ - off) {
        *err = fmt::format("{}: reading {} bytes at byte {} goes past its end ({} bytes)", path_,
                           len, off, size_);
        return false;
    }
    auto* p = static_cast<uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = pread(fd_, p + done, len - done, off_t(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *err = fmt::format("{}: read error at byte {}: {}", path_, off + done,
                               std::strerror(errno));
            return false;
        }
        if (n == 0) {
            *err = fmt::format("{}: unexpected end of file at byte {}", path_, off + done);
            return false;
        }
        done += size_t(n);
    }
    return true;
}

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
    m.file = MemberFile::open(path, &err);
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
