// Helpers of the in-process lvol tests (lvol_test.cpp, lvol_esnap_test.cpp): the module's
// asynchronous methods run on the control thread and waited for, lists, and patterned data.
#pragma once

#include "mod_test_env.h"

#include "modules/lvol/lvol.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nocstor::test {

inline constexpr uint64_t kMiB = 1ull << 20;

// What a module method answered (rc -999: it never did).
struct Answer {
    int rc = -999;
    std::string msg;
};

// Runs fn on the control thread and waits for its Result.
Answer call(ModEnv& env, std::function<void(lvol::Result)> fn);
Answer make_store(ModEnv& env, const std::string& bdev, const std::string& name,
                  uint64_t cluster = kMiB);
Answer make_lvol(ModEnv& env, const std::string& lvs, const std::string& name, uint64_t bytes,
                 bool thin);

nlohmann::json lvols(ModEnv& env);                                // bdev_lvol_get_lvols
nlohmann::json lvol_entry(ModEnv& env, const std::string& name);  // {} when absent
nlohmann::json stores(ModEnv& env);                               // bdev_lvol_get_lvstores

// Writes `blocks` 4 KiB blocks of pattern `seed` at block `at` of bdev `name`.
void write_pattern(ModEnv& env, const std::string& name, uint64_t at, uint64_t blocks,
                   uint64_t seed);
// What write_pattern(seed) starting at block `from` put at [at, at + blocks) (seed 0: zeroes).
std::vector<uint8_t> expected(uint64_t at, uint64_t blocks, uint64_t seed, uint64_t from);
// True if those blocks hold what write_pattern(seed) wrote there when it started at block
// `from` (default: at; seed 0: zeroes).
bool holds(TestDesc& d, uint64_t at, uint64_t blocks, uint64_t seed, uint64_t from = UINT64_MAX);
bool holds(ModEnv& env, const std::string& name, uint64_t at, uint64_t blocks, uint64_t seed,
           uint64_t from = UINT64_MAX);

void wait_examine(ModEnv& env);

// A passthru `name` over `base` (uuid: its UUID, empty: a random one); its delete, waited for
// (an lvstore on it closes: the base's hot-remove).
void passthru(ModEnv& env, const std::string& base, const std::string& name,
              const std::string& uuid = "");
void passthru_delete(ModEnv& env, const std::string& name);

}  // namespace nocstor::test
