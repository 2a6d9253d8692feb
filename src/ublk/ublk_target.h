// The ublk target: the control device and every ublk disk of the process, behind SPDK's
// ublk_* methods. Created by ublk_create_target, gone after ublk_destroy_target or at shutdown
// (which stops and deletes the disks). Control thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "ublk/control_ring.h"
#include "ublk/ublk_disk.h"

namespace nocstor::ublk {

struct TargetOptions {
    std::string cpumask;             // empty: every data-plane core
    bool disable_user_copy = false;  // accepted for SPDK compatibility; buffers are always ours
};

class UblkTarget {
  public:
    using Done = UblkDisk::Done;
    static constexpr uint32_t kMaxId = (1u << 20) - 1;  // the driver's minor numbers
    static constexpr uint32_t kMaxQueues = 64;
    static constexpr uint32_t kRecoverWaitMs = 15'000;

    static UblkTarget* instance();
    // rc 0, or -EEXIST (already created), -ENODEV (no ublk driver), -EINVAL (cpumask) + *err.
    static int create(TargetOptions o, std::string* err);
    // Stops and deletes every disk, then the target.
    static void destroy(std::function<void()> done);

    const TargetOptions& options() const { return opts_; }
    uint64_t features() const { return ctl_->features(); }

    void start_disk(DiskParams p, Done done);
    void recover_disk(const std::string& bdev_name, uint32_t id, Done done);
    void stop_disk(uint32_t id, Done done);
    void get_disks(std::optional<uint32_t> id,
                   std::function<void(int, std::vector<DiskInfo>)> done);
    // Live disks in creation order (save_config).
    std::vector<DiskParams> saved() const;

  private:
    UblkTarget(TargetOptions o, std::unique_ptr<ControlRing> ctl, std::vector<Thread*> threads);
    void shutdown(std::function<void()> done);
    UblkDisk* find(uint32_t id);
    void remove(UblkDisk* d);
    std::unique_ptr<UblkDisk> make_disk(DiskParams p, int* rc, std::string* err);
    void begin(uint32_t id, DiskParams p, bool recover, Done done);

    TargetOptions opts_;
    std::unique_ptr<ControlRing> ctl_;
    std::vector<Thread*> threads_;
    uint32_t next_offset_ = 0;
    std::vector<std::unique_ptr<UblkDisk>> disks_;
};

// Registers the shutdown step that stops the target's disks.
void ublk_init(Runtime& rt);

}  // namespace nocstor::ublk
