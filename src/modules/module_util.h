// Helpers shared by the bdev modules' control-path create / delete functions.
#pragma once

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"

#include <functional>
#include <string>

namespace nocstor {

// Sets *err (if given) and returns rc, so that "return fail(err, -EINVAL, msg)" reads well.
inline int fail(std::string* err, int rc, std::string msg) {
    if (err) *err = std::move(msg);
    return rc;
}

// Parses an optional UUID string into b->uuid ("" keeps the random one bdev_register assigns).
bool parse_optional_uuid(const std::string& text, Uuid* out, std::string* err);

// True for a power of two in [512, 65536].
bool valid_block_size(uint32_t bs);

// Unregisters the bdev `name` if it belongs to `module`; done(-ENODEV) otherwise.
void delete_module_bdev(const std::string& name, BdevModule* module, std::function<void(int)> done);

}  // namespace nocstor
