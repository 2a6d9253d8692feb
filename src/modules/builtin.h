// Registration of the bdev modules built into nocstor.
#pragma once

namespace nocstor {

// Registers every built-in module with the bdev layer (idempotent). Explicit rather than static
// constructors, which a static library silently drops. Call before bdev_modules_init().
void register_builtin_bdev_modules();

}  // namespace nocstor
