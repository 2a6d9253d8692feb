#include "vhost/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace nocstor::vhost {

std::shared_ptr<GuestMemory> GuestMemory::map(const MemTable& table, const int* fds, size_t nfds,
                                              std::string* err) {
    auto close_all = [&] {
        for (size_t i = 0; i < nfds; ++i)
            if (fds[i] >= 0) ::close(fds[i]);
    };
    if (table.nregions == 0 || table.nregions > kMaxMemRegions || table.nregions != nfds) {
        *err = fmt::format("memory table with {} regions and {} fds", table.nregions, nfds);
        close_all();
        return nullptr;
    }
    std::shared_ptr<GuestMemory> m(new GuestMemory());
    for (uint32_t i = 0; i < table.nregions; ++i) {
        const MemRegion& r = table.regions[i];
        if (r.memory_size == 0 || r.guest_phys_addr + r.memory_size < r.guest_phys_addr ||
            r.userspace_addr + r.memory_size < r.userspace_addr ||
            r.mmap_offset + r.memory_size < r.mmap_offset) {
            *err = fmt::format("memory region {} is empty or wraps around", i);
            close_all();
            return nullptr;
        }
        for (const Region& o : m->regions_) {
            if (r.guest_phys_addr < o.gpa + o.size && o.gpa < r.guest_phys_addr + r.memory_size) {
                *err = fmt::format("memory region {} overlaps another", i);
                close_all();
                return nullptr;
            }
        }
        struct stat st {};
        if (::fstat(fds[i], &st) == 0 && S_ISREG(st.st_mode) &&
            uint64_t(st.st_size) < r.mmap_offset + r.memory_size) {
            *err = fmt::format("memory region {} extends past the end of its file", i);
            close_all();
            return nullptr;
        }
        // mmap's offset must be page aligned; the region starts inside the first page.
        const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
        const uint64_t skip = r.mmap_offset & (page - 1);
        const size_t len = skip + r.memory_size;
        void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i],
                         off_t(r.mmap_offset - skip));
        if (p == MAP_FAILED) {
            *err = fmt::format("mmap of memory region {} ({} bytes) failed: {}", i, len,
                               strerror(errno));
            close_all();
            return nullptr;
        }
        // The guest's pages are not part of a core dump of the daemon.
        ::madvise(p, len, MADV_DONTDUMP);
        m->regions_.push_back(Region{.gpa = r.guest_phys_addr,
                                     .size = r.memory_size,
                                     .uva = r.userspace_addr,
                                     .host = static_cast<uint8_t*>(p) + skip,
                                     .map_base = p,
                                     .map_len = len});
    }
    close_all();  // the mappings keep the memory
    return m;
}

std::shared_ptr<GuestMemory> GuestMemory::wrap(std::vector<Region> regions) {
    std::shared_ptr<GuestMemory> m(new GuestMemory());
    m->regions_ = std::move(regions);
    m->owns_ = false;
    return m;
}

GuestMemory::~GuestMemory() {
    if (!owns_) return;
    for (const Region& r : regions_) ::munmap(r.map_base, r.map_len);
}

void* GuestMemory::gpa_to_host(uint64_t gpa, uint64_t len) const {
    for (const Region& r : regions_) {
        if (gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.size - (gpa - r.gpa))
            return r.host + (gpa - r.gpa);
    }
    return nullptr;
}

void* GuestMemory::uva_to_host(uint64_t uva, uint64_t len) const {
    for (const Region& r : regions_) {
        if (uva >= r.uva && uva - r.uva < r.size && len <= r.size - (uva - r.uva))
            return r.host + (uva - r.uva);
    }
    return nullptr;
}

bool GuestMemory::gpa_to_iov(uint64_t gpa, uint64_t len, iovec* out, int* n, int max) const {
    while (len > 0) {
        const Region* hit = nullptr;
        for (const Region& r : regions_) {
            if (gpa >= r.gpa && gpa - r.gpa < r.size) {
                hit = &r;
                break;
            }
        }
        if (!hit || *n >= max) return false;
        const uint64_t chunk = std::min(len, hit->size - (gpa - hit->gpa));
        out[(*n)++] = iovec{hit->host + (gpa - hit->gpa), size_t(chunk)};
        gpa += chunk;
        len -= chunk;
    }
    return true;
}

}  // namespace nocstor::vhost
