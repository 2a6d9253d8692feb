// One ublk device (/dev/ublkbN) exporting one bdev: its life cycle through the control device
// (ADD_DEV, SET_PARAMS, START_DEV / START_USER_RECOVERY + END_USER_RECOVERY, STOP_DEV, DEL_DEV)
// and its queues on the data threads. Devices are created with USER_RECOVERY and
// USER_RECOVERY_REISSUE: when this process dies, the kernel holds the device's I/O (state
// "quiesced") until a new server recovers it, and requests the dead one had taken are issued
// again, so applications see no error. Control thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "ublk/control_ring.h"
#include "ublk/ublk_queue.h"

namespace nocstor::ublk {

struct DiskParams {
    std::string bdev_name;
    uint32_t id = 0;
    uint32_t queue_depth = 128;
    uint32_t num_queues = 1;
};

struct DiskInfo {
    DiskParams params;
    std::string state;  // starting, live, recovering, stopping, stopped
    uint64_t num_blocks = 0;
    uint32_t block_size = 0;
    std::vector<std::pair<uint32_t, std::string>> queue_threads;
    QueueStats stats;
};

class UblkDisk {
  public:
    using Done = std::function<void(int rc, std::string err)>;
    static constexpr uint32_t kMaxIoBytes = 512 * 1024;

    // Opens the bdev; nullptr with *rc and *err when it cannot be used.
    static std::unique_ptr<UblkDisk> create(DiskParams p, ControlRing* ctl,
                                            std::vector<Thread*> threads, int* rc,
                                            std::string* err);
    ~UblkDisk();

    const DiskParams& params() const { return p_; }
    bool live() const { return state_ == State::Live; }
    bool stopped() const { return state_ == State::Stopped; }

    // A new device: ADD_DEV, SET_PARAMS, queues fetch, START_DEV. done(0) once the block
    // device exists. On failure everything is undone before done(-errno, why).
    void start(Done done);
    // Takes over a device left quiesced by a server that died (waits up to `wait_ms` for the
    // kernel to notice the death): START_USER_RECOVERY, queues fetch, END_USER_RECOVERY.
    void recover(uint32_t wait_ms, Done done);
    // STOP_DEV (the block device goes away after its I/O drained), queues stop, DEL_DEV.
    void stop(std::function<void()> done);
    // Statistics gathered from the queues' threads.
    void info(std::function<void(DiskInfo)> done) const;

  private:
    enum class State { Idle, Starting, Recovering, Live, Stopping, Stopped };
    UblkDisk(DiskParams p, ControlRing* ctl, std::vector<Thread*> threads);
    void cmd(uint32_t nr, void* buf, uint32_t len, uint64_t data0, std::function<void(int)> cb);
    void fill_params();
    int open_char_dev(std::string* err);
    void start_queues(std::function<void(int)> done);
    void stop_queues(std::function<void()> done);
    void wait_quiesced(uint64_t deadline_ns, Done done);
    void fail(int rc, std::string why, bool added);
    const char* state_name() const;

    DiskParams p_;
    ControlRing* ctl_;
    std::vector<Thread*> threads_;
    BdevDesc* desc_ = nullptr;
    Bdev* bdev_ = nullptr;
    State state_ = State::Idle;
    int char_fd_ = -1;
    ublksrv_ctrl_dev_info dev_info_{};
    ublk_params kparams_{};
    std::vector<std::unique_ptr<UblkQueue>> queues_;
    Done done_;
    std::string disk_name_;
};

}  // namespace nocstor::ublk
