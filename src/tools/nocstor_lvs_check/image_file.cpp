#include "tools/nocstor_lvs_check/image_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nocstor::lvs_tool {

ImageFile::ImageFile(std::string path, int fd, uint64_t size)
    : path_(std::move(path)), fd_(fd), size_(size) {}

ImageFile::~ImageFile() {
    ::close(fd_);
}

std::unique_ptr<ImageFile> ImageFile::open(const std::string& path, std::string* err) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = fmt::format("cannot open: {}", std::strerror(errno));
        return nullptr;
    }
    struct stat st {};
    uint64_t size = 0;
    err->clear();
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
    return std::unique_ptr<ImageFile>(new ImageFile(path, fd, size));
}

bool ImageFile::read(uint64_t off, void* buf, size_t len, std::string* err) const {
    if (off > size_ || len > size_ - off) {
        *err = fmt::format("reading {} bytes at byte {} goes past the end ({} bytes)", len, off,
                           size_);
        return false;
    }
    auto* p = static_cast<uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = pread(fd_, p + done, len - done, off_t(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *err = fmt::format("read error at byte {}: {}", off + done, std::strerror(errno));
            return false;
        }
        if (n == 0) {
            *err = fmt::format("unexpected end of file at byte {}", off + done);
            return false;
        }
        done += size_t(n);
    }
    return true;
}

}  // namespace nocstor::lvs_tool
