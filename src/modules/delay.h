// delay: a vbdev that adds latency to reads and writes (SPDK bdev_delay_create). Latencies are
// in microseconds; as in SPDK about 1% of the I/Os of a type take the p99 value, the others the
// average. The delay starts when the base completes; held I/O waits in a per-channel FIFO and a
// poller completes it when due (the poller keeps its reactor awake while it holds I/O). Other
// I/O types pass through undelayed.
#pragma once

#include "bdev/bdev_module.h"

#include <cstdint>
#include <functional>
#include <string>

namespace nocstor {

struct DelayBdevOptions {
    std::string base_bdev_name;
    std::string name;
    std::string uuid;               // optional
    uint64_t avg_read_latency = 0;  // µs
    uint64_t p99_read_latency = 0;
    uint64_t avg_write_latency = 0;
    uint64_t p99_write_latency = 0;
};

int delay_bdev_create(const DelayBdevOptions& opts, std::string* err);
void delay_bdev_delete(const std::string& name, std::function<void(int)> done);
// SPDK bdev_delay_update_latency: latency_type is avg_read, p99_read, avg_write or p99_write.
// Applies to I/O completing from now on. 0, -ENODEV or -EINVAL with *err.
int delay_bdev_update_latency(const std::string& name, const std::string& latency_type,
                              uint64_t latency_us, std::string* err);

BdevModule* delay_bdev_module();

}  // namespace nocstor
