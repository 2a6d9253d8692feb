#include "modules/builtin.h"

#include "bdev/bdev_module.h"
#include "modules/cache/cache.h"
#include "modules/delay.h"
#include "modules/error.h"
#include "modules/iscsi/iscsi_bdev.h"
#include "modules/lvol/lvol.h"
#include "modules/malloc.h"
#include "modules/null.h"
#include "modules/passthru.h"
#include "modules/raid/raid.h"
#include "modules/remote/remote_bdev.h"
#include "modules/uring.h"

namespace nocstor {

void register_builtin_bdev_modules() {
    // Base bdevs first, then vbdevs: examine() runs in registration order.
    bdev_module_register(malloc_bdev_module());
    bdev_module_register(null_bdev_module());
    bdev_module_register(uring_bdev_module());
    bdev_module_register(aio_bdev_module());
    bdev_module_register(iscsi::iscsi_bdev_module());
    bdev_module_register(passthru_bdev_module());
    bdev_module_register(delay_bdev_module());
    bdev_module_register(error_bdev_module());
    bdev_module_register(raid::raid_bdev_module());
    bdev_module_register(lvol::lvol_bdev_module());
    bdev_module_register(remote::remote_bdev_module());
    bdev_module_register(cache::cache_bdev_module());
}

}  // namespace nocstor
