// The vhost target: every vhost-user-blk controller of the process, their sockets watched by
// one epoll set on the control thread (a reactor interrupt fd, so an idle control thread
// sleeps), and the operations behind SPDK's vhost_* methods. Control thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "vhost/blk_controller.h"

namespace nocstor::vhost {

struct VhostOptions {
    std::string socket_dir = ".";  // where controllers' sockets go when ctrlr is a plain name
    std::vector<Thread*> threads;  // empty = Runtime::data_threads()
};

struct CreateBlkParams {
    std::string ctrlr;
    std::string dev_name;
    bool readonly = false;
    std::string cpumask;
    uint32_t num_queues = 0;
};

struct Coalescing {
    uint32_t delay_base_us = 0;
    uint32_t iops_threshold = 0;
};

class VhostTarget {
  public:
    explicit VhostTarget(VhostOptions opts);
    ~VhostTarget();
    static VhostTarget* instance();

    void start();
    void shutdown(std::function<void()> done);

    // rc 0 or -errno with *err (-EINVAL bad parameter, -EEXIST name taken, -ENODEV no bdev...).
    int create_blk_controller(const CreateBlkParams& p, std::string* err);
    void delete_controller(const std::string& name, std::function<void(int, std::string)> done);
    int set_coalescing(const std::string& name, Coalescing c, std::string* err);
    // All controllers, or the one named (-ENOENT when it does not exist).
    void get_controllers(const std::optional<std::string>& name,
                         std::function<void(int, std::vector<ControllerInfo>)> done);
    // What save_config writes, in creation order.
    std::vector<std::pair<CreateBlkParams, Coalescing>> saved() const;
    const std::string& socket_dir() const { return opts_.socket_dir; }

  private:
    struct Entry {
        uint64_t id;
        CreateBlkParams params;
        Coalescing coalescing;
        std::unique_ptr<BlkController> ctrlr;
    };
    int poll();
    void watch(uint64_t id, int fd, bool is_conn, bool add);
    Entry* find(const std::string& name);

    VhostOptions opts_;
    int epfd_ = -1;
    Poller* poller_ = nullptr;
    uint64_t next_id_ = 1;
    uint32_t next_offset_ = 0;
    std::vector<std::unique_ptr<Entry>> entries_;
};

void vhost_target_init(Runtime& rt, VhostOptions opts);

}  // namespace nocstor::vhost
