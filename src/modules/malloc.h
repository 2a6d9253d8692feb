// malloc: a RAM disk. Page-aligned anonymous memory allocated at creation; reads and writes are
// memcpy, unmap and write-zeroes are memset, flush is a no-op. SPDK: bdev_malloc_create.
#pragma once

#include "bdev/bdev_module.h"

#include <cstdint>
#include <functional>
#include <string>

namespace nocstor {

struct MallocBdevOptions {
    std::string name;
    uint64_t num_blocks = 0;
    uint32_t block_size = 512;         // power of two, 512..65536
    std::string uuid;                  // optional, random when empty
    uint32_t optimal_io_boundary = 0;  // blocks; I/O crossing it is split by the bdev layer
    uint32_t max_transfer_blocks = 0;  // our extension: larger I/O is split (0 = no limit)
};

// Control thread. 0, or -EINVAL (bad name/size/block size/uuid), -EEXIST, -ENOMEM with *err.
int malloc_bdev_create(const MallocBdevOptions& opts, std::string* err);
// Control thread. done(0) once unregistered, done(-ENODEV) if no such malloc bdev.
void malloc_bdev_delete(const std::string& name, std::function<void(int)> done);

BdevModule* malloc_bdev_module();

}  // namespace nocstor
