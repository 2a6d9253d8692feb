// Test harness for the bdev modules: a real Runtime (control thread + one data thread) and
// blocking helpers that run work on those threads and wait for it, with timeouts.
#pragma once

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "modules/builtin.h"
#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nocstor::test {

class ModEnv {
  public:
    explicit ModEnv(int data_threads = 1);
    // Any cluster plan (reactors unpinned, so clusters may share cores) and NoC ring size.
    explicit ModEnv(std::vector<ClusterSpec> plan, uint32_t ring_slots = 512);
    ~ModEnv();  // unregisters every bdev left, then stops the runtime

    Thread* ctl() const { return rt_->control_thread(); }
    Thread* data(size_t i = 0) const { return rt_->data_threads().at(i); }
    Runtime& rt() const { return *rt_; }

    // Runs fn on t and waits for it (false on timeout).
    bool run(Thread* t, std::function<void()> fn, int timeout_ms = 10000);
    // Runs fn(done) on t and waits until done() has been called.
    bool run_async(Thread* t, std::function<void(std::function<void()>)> fn,
                   int timeout_ms = 10000);

    // Control thread: deletes every bdev (bdev_layer_fini); true when the registry is empty.
    bool remove_all_bdevs();

  private:
    std::unique_ptr<Runtime> rt_;
};

struct IoResult {
    int rc = 0;  // submission result
    bool ok = false;
    IoStatus status = IoStatus::Pending;
    uint8_t sct = 0, sc = 0;
    bool completed = false;
};

// An open descriptor + channel held on the data thread.
class TestDesc {
  public:
    TestDesc(ModEnv& env, const std::string& name, bool writable = true);
    ~TestDesc();  // closes (if still open)
    int open_rc() const { return open_rc_; }
    BdevDesc* desc() const { return desc_; }
    IoChannel* ch() const { return ch_; }
    Bdev* bdev() const { return desc_ ? desc_->bdev() : nullptr; }
    void close();

    // One I/O, submitted and waited for from the test thread.
    IoResult io(IoType t, iovec* iov, int iovcnt, uint64_t offset_blocks, uint64_t num_blocks);
    IoResult write(void* buf, uint64_t offset_blocks, uint64_t num_blocks);
    IoResult read(void* buf, uint64_t offset_blocks, uint64_t num_blocks);

  private:
    ModEnv& env_;
    BdevDesc* desc_ = nullptr;
    IoChannel* ch_ = nullptr;
    int open_rc_ = 0;
};

// 4 KiB-aligned heap buffer.
struct AlignedBuf {
    explicit AlignedBuf(size_t n);
    ~AlignedBuf();
    AlignedBuf(const AlignedBuf&) = delete;
    AlignedBuf& operator=(const AlignedBuf&) = delete;
    unsigned char* p;
    size_t size;
};

// Fills with a deterministic pattern derived from (seed, byte index).
void fill_pattern(void* buf, size_t n, uint64_t seed);

// Statistics of a bdev, fetched on the control thread.
BdevStats get_stats(ModEnv& env, Bdev* b);

// Creates a temp directory on a disk file system (O_DIRECT capable), removed on destruction.
struct TempDir {
    TempDir();
    ~TempDir();
    std::string path;
    std::string make_file(const std::string& name, uint64_t size);
};

}  // namespace nocstor::test
