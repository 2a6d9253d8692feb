// Random concurrent I/O against a bdev with a shadow copy of its contents: writes of random sizes
// and iovec shapes (never two overlapping ranges in flight at once, but many in one stripe), reads
// checked against the shadow. Runs on one reactor thread; the test thread waits for it.
#pragma once

#include "mod_test_env.h"

#include <memory>
#include <random>
#include <vector>

namespace nocstor::test {

struct VerifyOptions {
    uint32_t ops = 2000;
    uint32_t queue_depth = 16;
    uint32_t max_blocks = 64;
    uint32_t write_percent = 60;
    uint64_t seed = 1;
    uint64_t region_blocks = 0;    // 0: the whole bdev
    bool scattered_iovecs = true;  // else one contiguous aligned iovec per I/O
};

struct VerifyResult {
    uint32_t reads = 0, writes = 0, mismatches = 0, errors = 0;
    IoStatus first_error = IoStatus::Success;
    bool finished = false;
};

// The shadow starts as the bdev's current contents, which the caller provides (zeros for a new
// malloc-based array). Runs `opts.ops` I/Os on thread t with the descriptor's channel there.
class RandomVerify {
  public:
    RandomVerify(ModEnv& env, Thread* t, const std::string& bdev, std::vector<uint8_t>* shadow);
    ~RandomVerify();
    VerifyResult run(const VerifyOptions& opts, int timeout_ms = 60000);
    // Reads the whole bdev and compares it to the shadow; returns mismatching blocks.
    uint64_t check_all(int timeout_ms = 60000);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Independent RAID parity (not ISA-L): GF(2^8) with polynomial 0x11D, g = 2.
uint8_t gf_mul_ref(uint8_t a, uint8_t b);
// Reads member bdevs raw (read-only) and checks the P/Q of every stripe of a raid5/6 array with
// the documented layout; returns the number of bad rows.
uint64_t check_parity_on_members(ModEnv& env, const std::vector<std::string>& members,
                                 uint32_t parity, uint64_t strip_blocks, uint64_t data_offset,
                                 uint64_t member_blocks, uint32_t block_size,
                                 const std::vector<bool>& skip = {});

}  // namespace nocstor::test
