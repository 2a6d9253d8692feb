#include "runtime/shm_region.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "util/log.h"

namespace nocstor {
namespace {

size_t round_up(size_t v, size_t align) {
    return (v + align - 1) / align * align;
}

std::string errno_text(const char* what) {
    return fmt::format("{}: {}", what, std::strerror(errno));
}

// Maps fd of `size` bytes; nullptr on failure (errno kept).
std::byte* map_fd(int fd, size_t size, bool populate) {
    int flags = MAP_SHARED | (populate ? MAP_POPULATE : 0);
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
}

}  // namespace

HugepageInfo read_hugepage_info(const std::string& meminfo_path) {
    HugepageInfo info;
    std::ifstream in(meminfo_path);
    std::string key;
    size_t value = 0;
    while (in >> key >> value) {
        if (key == "HugePages_Free:") info.free_pages = value;
        if (key == "Hugepagesize:") info.page_size = value * 1024;  // reported in kB
        in.ignore(1 << 10, '\n');
    }
    return info;
}

std::optional<ShmRegion> ShmRegion::create(const std::string& name, size_t size, std::string* err,
                                           const ShmOptions& opts) {
    ShmRegion r;
    if (opts.allow_hugepages) {
        HugepageInfo hp = read_hugepage_info();
        size_t want = hp.page_size ? round_up(size, hp.page_size) : 0;
        if (hp.page_size && hp.free_pages * hp.page_size >= want) {
            int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_HUGETLB);
            // For hugetlbfs the mmap reserves the pages, so a shortage shows up here, not later.
            if (fd >= 0 && ftruncate(fd, off_t(want)) == 0) {
                if (std::byte* p = map_fd(fd, want, opts.populate)) {
                    r.base_ = p;
                    r.size_ = want;
                    r.page_size_ = hp.page_size;
                    r.fd_ = fd;
                    r.huge_ = true;
                    return r;
                }
            }
            NOC_INFO("runtime", "shm '{}': hugepages unavailable ({}), using normal pages", name,
                     std::strerror(errno));
            if (fd >= 0) close(fd);
        }
    }
    size_t page = size_t(sysconf(_SC_PAGESIZE));
    size_t want = round_up(size ? size : 1, page);
    int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
    if (fd < 0) {
        if (err) *err = errno_text("memfd_create");
        return std::nullopt;
    }
    if (ftruncate(fd, off_t(want)) != 0) {
        if (err) *err = errno_text("ftruncate");
        close(fd);
        return std::nullopt;
    }
    std::byte* p = map_fd(fd, want, opts.populate);
    if (!p) {
        if (err) *err = errno_text("mmap");
        close(fd);
        return std::nullopt;
    }
    r.base_ = p;
    r.size_ = want;
    r.page_size_ = page;
    r.fd_ = fd;
    return r;
}

std::optional<ShmRegion> ShmRegion::attach(int fd, std::string* err, const ShmOptions& opts) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        if (err) *err = errno_text("fstat");
        close(fd);
        return std::nullopt;
    }
    std::byte* p = map_fd(fd, size_t(st.st_size), opts.populate);
    if (!p) {
        if (err) *err = errno_text("mmap");
        close(fd);
        return std::nullopt;
    }
    ShmRegion r;
    r.base_ = p;
    r.size_ = size_t(st.st_size);
    r.fd_ = fd;
    // st_blksize is the hugepage size on hugetlbfs and the normal page size otherwise.
    r.page_size_ = size_t(st.st_blksize);
    r.huge_ = r.page_size_ > size_t(sysconf(_SC_PAGESIZE));
    return r;
}

ShmRegion& ShmRegion::operator=(ShmRegion&& o) noexcept {
    if (this != &o) {
        release();
        base_ = std::exchange(o.base_, nullptr);
        size_ = std::exchange(o.size_, 0);
        page_size_ = std::exchange(o.page_size_, 0);
        fd_ = std::exchange(o.fd_, -1);
        huge_ = std::exchange(o.huge_, false);
    }
    return *this;
}

ShmRegion::~ShmRegion() {
    release();
}

void ShmRegion::release() {
    if (base_) munmap(base_, size_);
    if (fd_ >= 0) close(fd_);
    base_ = nullptr;
    fd_ = -1;
}

}  // namespace nocstor
