// passthru: the minimal vbdev. It claims a base bdev and forwards every I/O unchanged; it is
// the template for every later vbdev (see vbdev.h). SPDK: bdev_passthru_create.
#pragma once

#include "bdev/bdev_module.h"

#include <functional>
#include <string>

namespace nocstor {

struct PassthruBdevOptions {
    std::string base_bdev_name;
    std::string name;
    std::string uuid;  // optional
};

// Control thread. 0, or -EINVAL, -EEXIST, -ENODEV (no base), -EPERM (base already claimed).
int passthru_bdev_create(const PassthruBdevOptions& opts, std::string* err);
void passthru_bdev_delete(const std::string& name, std::function<void(int)> done);

BdevModule* passthru_bdev_module();

}  // namespace nocstor
