// A shared memory region: memfd_create (with MFD_HUGETLB when /proc/meminfo reports enough free
// hugepages, else normal pages), mmapped MAP_SHARED and prefaulted. The fd is kept so the region
// can be passed to another process (SCM_RIGHTS) and attached there at a different address, which
// is why everything placed inside must refer to other parts by offset, never by pointer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace nocstor {

struct ShmOptions {
    bool allow_hugepages = true;
    bool populate = true;  // MAP_POPULATE: no page faults later on the data path
};

class ShmRegion {
  public:
    // Creates a zero-filled region of at least `size` bytes (rounded up to the page size).
    static std::optional<ShmRegion> create(const std::string& name, size_t size, std::string* err,
                                           const ShmOptions& opts = {});
    // Maps an existing region from its fd (received from another process); takes ownership of fd.
    static std::optional<ShmRegion> attach(int fd, std::string* err, const ShmOptions& opts = {});

    ShmRegion() = default;
    ShmRegion(ShmRegion&& o) noexcept { *this = std::move(o); }
    ShmRegion& operator=(ShmRegion&& o) noexcept;
    ShmRegion(const ShmRegion&) = delete;
    ShmRegion& operator=(const ShmRegion&) = delete;
    ~ShmRegion();

    std::byte* base() const { return base_; }
    size_t size() const { return size_; }
    int fd() const { return fd_; }
    bool hugepages() const { return huge_; }
    size_t page_size() const { return page_size_; }

    template <class T>
    T* at(uint64_t offset) const {
        return reinterpret_cast<T*>(base_ + offset);
    }
    uint64_t offset_of(const void* p) const {
        return uint64_t(static_cast<const std::byte*>(p) - base_);
    }
    bool contains(uint64_t offset, size_t len) const {
        return offset <= size_ && len <= size_ - offset;
    }

  private:
    void release();

    std::byte* base_ = nullptr;
    size_t size_ = 0;
    size_t page_size_ = 0;
    int fd_ = -1;
    bool huge_ = false;
};

// Free hugepage bytes and the hugepage size from /proc/meminfo (0 when none).
struct HugepageInfo {
    size_t page_size = 0;
    size_t free_pages = 0;
};
HugepageInfo read_hugepage_info(const std::string& meminfo_path = "/proc/meminfo");

}  // namespace nocstor
