// Creates bdevs from SPDK-style JSON: the "bdev" subsystem of a config file, or one RPC method
// with its params. Shared by nocstor-bdevperf and the daemon's configuration loader.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace nocstor {

// Control thread. Synchronous create / update methods of the built-in modules:
// bdev_malloc_create, bdev_null_create, bdev_uring_create, bdev_passthru_create,
// bdev_delay_create, bdev_delay_update_latency, bdev_error_create, bdev_error_inject_error.
// 0, -ENOTSUP for an unknown method, or -errno with *err (bad params included: -EINVAL).
int apply_bdev_method(const std::string& method, const nlohmann::json& params, std::string* err);

// Whether apply_bdev_method knows `method`.
bool is_bdev_config_method(const std::string& method);

// {"subsystems":[{"subsystem":"bdev","config":[{"method":..,"params":{..}}, ...]}, ...]}:
// applies every entry of the bdev subsystem in order. bdev_*_set_options and other methods it
// does not know are skipped with a warning. Stops at the first failure (*err names the entry).
int apply_bdev_subsystem_config(const nlohmann::json& config, std::string* err);
int load_bdev_config_file(const std::string& path, std::string* err);

}  // namespace nocstor
