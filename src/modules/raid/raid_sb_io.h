// Reading and writing RAID superblocks on member bdevs (control thread, asynchronous).
#pragma once

#include "modules/raid/raid_superblock.h"

#include <functional>
#include <string>
#include <vector>

namespace nocstor::raid {

struct SbReadResult {
    int rc = 0;            // I/O error, or 0
    bool found = false;    // a valid superblock
    bool damaged = false;  // the magic is there but no copy is valid
    Superblock sb;
};

// Reads both copies from bdev `name` (opened read-only for the time of the read); the valid
// copy with the highest seq wins.
void sb_read(const std::string& name, std::function<void(SbReadResult)> done);

struct SbTarget {
    uint32_t slot;
    BdevDesc* desc;
};
// Writes `sb` (with each target's slot) to copy sb.seq % 2 of every target; done(mask of the
// slots whose write failed).
void sb_write(const std::vector<SbTarget>& targets, const Superblock& sb,
              std::function<void(uint32_t failed_slots)> done);
// Zeroes both copies and the bitmap area of every target.
void sb_clear(const std::vector<SbTarget>& targets,
              std::function<void(uint32_t failed_slots)> done);

// Other metadata (the write-intent bitmap): writes `bytes` of `data` (a whole number of blocks)
// at byte offset `off` of every target, then, with flush, flushes each target so that it is
// durable before done(mask of the slots that failed) runs.
void meta_write(const std::vector<SbTarget>& targets, uint64_t off, const uint8_t* data,
                size_t bytes, bool flush, std::function<void(uint32_t failed_slots)> done);
// Flushes every target (their completed writes are durable once done runs).
void meta_flush(const std::vector<SbTarget>& targets,
                std::function<void(uint32_t failed_slots)> done);
// Reads `bytes` at byte offset `off` through an open descriptor: done(0, data) or done(-EIO).
void meta_read(BdevDesc* desc, uint64_t off, size_t bytes,
               std::function<void(int rc, const uint8_t* data)> done);

}  // namespace nocstor::raid
