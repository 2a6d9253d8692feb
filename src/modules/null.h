// null: discards writes; reads return zeroes (memset of the caller's buffers) unless
// zero_reads is false, which leaves the buffers untouched as SPDK's null bdev does: that is the
// cheapest bdev possible, for measuring the bdev layer itself. SPDK: bdev_null_create.
#pragma once

#include "bdev/bdev_module.h"

#include <cstdint>
#include <functional>
#include <string>

namespace nocstor {

struct NullBdevOptions {
    std::string name;
    uint64_t num_blocks = 0;
    uint32_t block_size = 512;
    std::string uuid;
    bool zero_reads = true;  // our extension; false = SPDK behaviour (buffers not touched)
};

int null_bdev_create(const NullBdevOptions& opts, std::string* err);
void null_bdev_delete(const std::string& name, std::function<void(int)> done);

BdevModule* null_bdev_module();

}  // namespace nocstor
