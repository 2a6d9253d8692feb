#include "tools/common/image_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nocstor::tools {

ImageFile::ImageFile(std::string path, int fd, uint64_t size, Options opts)
    : path_(std::move(path)), fd_(fd), size_(size), opts_(opts) {}

ImageFile::~ImageFile() {
    ::close(fd_);
}

std::unique_ptr<ImageFile> ImageFile::open(const std::string& path, std::string* err,
                                           Options opts) {
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
    if (opts.sequential) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<ImageFile>(new ImageFile(path, fd, size, opts));
}

bool ImageFile::read(uint64_t off, void* buf, size_t len, std::string* err) const {
    const std::string who = opts_.path_in_errors ? path_ + ": " : std::string();
    if (off > size_ || len > size_ - off) {
        *err = fmt::format("{}reading {} bytes at byte {} goes past {} end ({} bytes)", who, len,
                           off, opts_.path_in_errors ? "its" : "the", size_);
        return false;
    }
    auto* p = static_cast<uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = pread(fd_, p + done, len - done, off_t(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *err =
                fmt::format("{}read error at byte {}: {}", who, off + done, std::strerror(errno));
            return false;
        }
        if (n == 0) {
            *err = fmt::format("{}unexpected end of file at byte {}", who, off + done);
            return false;
        }
        done += size_t(n);
    }
    return true;
}

}  // namespace nocstor::tools
