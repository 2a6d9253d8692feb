// The remote bdev: on cluster X, a bdev whose data lives in a bdev owned by cluster Y. Each I/O
// becomes one descriptor on the X->Y NoC ring with its data left in the shared arena (see
// remote_port.h); the base bdev is opened, claimed and driven on Y. Use case 1 stacks a RAID0
// on the front-end cluster over remote bdevs towards the data clusters' lvols.
#pragma once

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace nocstor::remote {

class RemotePort;
struct RemoteExport;

struct RemoteCounters {                         // written by X's NoC thread only, read anywhere
    std::atomic<uint64_t> zero_copy{0};         // data requests whose buffers were all in the arena
    std::atomic<uint64_t> bounced{0};           // data requests copied through an arena buffer
    std::atomic<uint64_t> bounced_bytes{0};     // bytes those copies moved
    std::atomic<uint64_t> indirect_sgl{0};      // requests with more than two segments
    std::atomic<uint64_t> timeouts{0};          // requests the peer did not answer in time
    std::atomic<uint64_t> late_completions{0};  // answers that came after a timeout
    std::atomic<uint64_t> aborts_sent{0};
    static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
};

struct RemoteCreateOptions {
    std::string name;
    std::string base_bdev_name;
    int cluster = -1;             // X; the owner of base_bdev_name is Y
    uint64_t timeout_ms = 30000;  // per I/O, before the request is aborted and fails
    std::string uuid;             // "" = random
};

class RemoteBdev : public Bdev {
  public:
    RemoteBdev(const std::string& name, RemoteExport* exp, RemotePort* port, uint64_t timeout_ms);
    ~RemoteBdev() override;

    RemoteExport* exp() const { return exp_; }
    RemotePort* port() const { return port_; }
    int owner_cluster() const;  // Y
    uint64_t timeout_ns() const { return timeout_ns_; }
    RemoteCounters& counters() { return counters_; }
    const RemoteCounters& counters() const { return counters_; }

    bool io_type_supported(IoType t) const override;
    std::unique_ptr<IoChannel> create_channel() override;
    void submit_request(IoChannel* ch, BdevIo* io) override;
    void destruct(std::function<void()> done) override;
    void dump_info_json(nlohmann::json& out) const override;
    void write_config_json(nlohmann::json& out) const override;

  private:
    RemoteExport* exp_;
    RemotePort* port_;
    uint64_t timeout_ns_;
    RemoteCounters counters_;
};

BdevModule* remote_bdev_module();
// Control thread. 0, or -errno with *err.
int remote_bdev_create(const RemoteCreateOptions& o, std::string* err);
void remote_bdev_delete(const std::string& name, std::function<void(int rc, std::string err)> done);

}  // namespace nocstor::remote
