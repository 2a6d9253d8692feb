// error: a vbdev named "EE_<base>" that injects failures into chosen I/O types (SPDK
// bdev_error_create / bdev_error_inject_error).
//
// Injection settings are written on the control thread and read on every data thread. They
// live in the bdev as atomics rather than being pushed to each channel with for_each_channel:
// "fail the next N I/Os" is a count shared by all threads, which per-channel copies cannot
// express, and the data path reads a single relaxed atomic flag while no injection is active
// (the counters are touched only while one is).
#pragma once

#include "bdev/bdev_module.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace nocstor {

struct ErrorBdevOptions {
    std::string base_name;  // the bdev is named "EE_" + base_name
    std::string uuid;       // optional
};

struct ErrorInjectOptions {
    std::string name;          // the error bdev ("EE_...")
    std::string io_type;       // read, write, flush, unmap, write_zeroes, all, clear
    std::string error_type;    // failure, pending, corrupt_data, nomem, nvme_failure
    uint32_t num = 1;          // how many I/Os to affect (0: none, as SPDK)
    uint32_t queue_depth = 0;  // only inject while this many I/Os (or more) are in flight on the
                               // channel, counting the new one; 0 = always
    // Our extensions.
    uint32_t percent = 100;  // each eligible I/O is chosen with this probability (1..100)
    uint8_t sct = 0;         // failure with an NVMe status: sct/sc reach the NVMe host
    uint8_t sc = 0;          // (0/0: plain IoStatus::Failed). SPDK: nvme_failure + nvme_sct/sc
    // corrupt_data: the byte at corrupt_offset of the I/O's data is XORed with corrupt_value
    // (SPDK's semantics; without a value, nocstor flips every bit of it).
    uint64_t corrupt_offset = 0;
    std::optional<uint8_t> corrupt_value;
};

int error_bdev_create(const ErrorBdevOptions& opts, std::string* err);
void error_bdev_delete(const std::string& name, std::function<void(int)> done);
int error_bdev_inject(const ErrorInjectOptions& opts, std::string* err);

BdevModule* error_bdev_module();

}  // namespace nocstor
