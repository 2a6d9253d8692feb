// uring: a file or block device through io_uring (SPDK bdev_uring_create). One ring per thread
// (the channel) with the file registered; SQEs are prepared in submit_request and submitted in
// one batch per poller pass, which also reaps completions. The ring's eventfd wakes a sleeping
// reactor when a completion arrives.
//
// O_DIRECT is used where the file system allows it, buffered I/O (with a warning) otherwise.
// With O_DIRECT the bdev sets required_alignment = block_size, so the bdev layer rejects
// misaligned buffers with -EINVAL; every iovec length must also be a multiple of the file's
// direct-I/O size granule (512 B for most devices), else the I/O fails with IoStatus::Failed.
// Flush is fdatasync (IORING_OP_FSYNC), unmap is fallocate(PUNCH_HOLE); write-zeroes is left to
// the bdev layer, which emulates it with writes of a zero buffer.
//
// SPDK's aio bdev (bdev_aio_create) is the same engine under the module name "aio", with aio's
// options and semantics: readonly (writes fail), fallocate (unmap and write-zeroes through
// fallocate, else unsupported), nowait (RWF_NOWAIT, block devices only). Both rescan their file's
// size (bdev_aio_rescan / bdev_uring_rescan): a grown file grows the bdev and its namespaces.
#pragma once

#include "bdev/bdev_module.h"

#include <cstdint>
#include <functional>
#include <string>

namespace nocstor {

struct UringBdevOptions {
    std::string name;
    std::string filename;
    uint32_t block_size = 0;  // 0: detected (block device: logical block size; file: 512 or
                              // the direct-I/O granule if larger)
    std::string uuid;         // optional
    bool aio = false;         // the "aio" module (SPDK's bdev_aio_create)
    bool readonly = false;    // open read-only; writes fail
    bool fallocate = false;   // aio: unmap (punch hole) and write-zeroes (zero range)
    bool nowait = false;      // RWF_NOWAIT on reads and writes; block devices only
};

// Control thread (opens and inspects the file: blocking). 0 or -errno with *err.
int uring_bdev_create(const UringBdevOptions& opts, std::string* err);
void uring_bdev_delete(const std::string& name, std::function<void(int)> done);
void aio_bdev_delete(const std::string& name, std::function<void(int)> done);
// Re-reads the size of the file of a uring (aio: false) or aio bdev: a new size is announced
// (bdev_notify_blockcnt_change: shrinking an open bdev is -EBUSY), size 0 removes the bdev.
int uring_bdev_rescan(const std::string& name, bool aio, std::string* err);
// Tests: pretend the file system refuses O_DIRECT, to exercise the buffered fallback.
void uring_set_refuse_direct_for_test(bool refuse);
// Whether the named uring bdev runs with O_DIRECT (false also when no such bdev).
bool uring_bdev_is_direct(const std::string& name);

BdevModule* uring_bdev_module();
BdevModule* aio_bdev_module();

}  // namespace nocstor
