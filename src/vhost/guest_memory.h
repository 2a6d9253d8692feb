// A front-end's memory table, mapped into this process: SET_MEM_TABLE's regions, each an fd
// (the VM's RAM, a shared memfd) mmapped once. Translations are bounds-checked against the
// table, so a descriptor that points outside the guest's RAM fails instead of reaching any other
// memory of the daemon. Immutable once built; queues share it through a shared_ptr and a new
// table replaces it whole.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vhost/vhost_user_proto.h"

namespace nocstor::vhost {

class GuestMemory {
  public:
    struct Region {
        uint64_t gpa = 0;
        uint64_t size = 0;
        uint64_t uva = 0;         // the front-end's address of the region
        uint8_t* host = nullptr;  // our address of gpa
        void* map_base = nullptr;
        size_t map_len = 0;
    };

    // Maps the regions; takes ownership of the fds (closed here whatever happens). nullptr and
    // *err on a bad table (overlaps, zero sizes, offsets past the file, mmap failure).
    static std::shared_ptr<GuestMemory> map(const MemTable& table, const int* fds, size_t nfds,
                                            std::string* err);
    // For tests: regions over memory the caller owns (no mapping, nothing unmapped).
    static std::shared_ptr<GuestMemory> wrap(std::vector<Region> regions);
    ~GuestMemory();
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    // The host address of guest-physical [gpa, gpa + len) if it lies in one region.
    void* gpa_to_host(uint64_t gpa, uint64_t len) const;
    // The same for the front-end's virtual addresses (vring addresses).
    void* uva_to_host(uint64_t uva, uint64_t len) const;
    // Guest-physical [gpa, gpa + len) as iovecs appended at out[*n] (several when it spans
    // adjacent regions); false when any byte is outside the table or more than max are needed.
    bool gpa_to_iov(uint64_t gpa, uint64_t len, iovec* out, int* n, int max) const;

    const std::vector<Region>& regions() const { return regions_; }

  private:
    GuestMemory() = default;
    std::vector<Region> regions_;
    bool owns_ = true;
};

}  // namespace nocstor::vhost
