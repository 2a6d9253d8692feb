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
#include <vector>

namespace nocstor::remote {

class RemotePort;
struct RemoteExport;
struct ExportInfo;

struct RemoteCounters {                         // written by X's NoC thread only, read anywhere
    std::atomic<uint64_t> zero_copy{0};         // data requests whose buffers were all in the arena
    std::atomic<uint64_t> bounced{0};           // data requests copied through an arena buffer
    std::atomic<uint64_t> bounced_bytes{0};     // bytes those copies moved
    std::atomic<uint64_t> indirect_sgl{0};      // requests with more than two segments
    std::atomic<uint64_t> timeouts{0};          // requests the peer did not answer in time
    std::atomic<uint64_t> late_completions{0};  // answers that came after a timeout
    std::atomic<uint64_t> aborts_sent{0};
    std::atomic<uint64_t> peer_down_failures{0};  // failed at once: the owner's process was down
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
    int base_cluster = -1;        // the base's owner when it runs in another process (optional)
};

class RemoteBdev : public Bdev {
  public:
    // `local`: the export when Y runs in this process (the bdev closes it when it goes); null
    // when Y is another process's, which holds the export for it.
    RemoteBdev(const std::string& name, const ExportInfo& target, RemoteExport* local,
               RemotePort* port, uint64_t timeout_ms);
    ~RemoteBdev() override;

    // The export requests name; 0 while the owner's process is down (its I/O fails at once).
    uint32_t export_id() const { return export_id_.load(std::memory_order_acquire); }
    int owner_cluster() const { return owner_; }
    const std::string& base_name() const { return base_name_; }
    RemoteExport* local_export() const { return local_; }
    RemotePort* port() const { return port_; }
    uint64_t timeout_ns() const { return timeout_ns_; }
    RemoteCounters& counters() { return counters_; }
    const RemoteCounters& counters() const { return counters_; }

    // Control thread, for a bdev whose owner is another process: the process died (unlink),
    // or came back and exported the base again under a new id (relink).
    void unlink() { export_id_.store(0, std::memory_order_release); }
    void relink(uint32_t id) { export_id_.store(id, std::memory_order_release); }
    // Control thread: how the owner process is told that the export is no longer needed.
    std::function<void(uint32_t id)> release_peer_export;

    bool io_type_supported(IoType t) const override;
    std::unique_ptr<IoChannel> create_channel() override;
    void submit_request(IoChannel* ch, BdevIo* io) override;
    void destruct(std::function<void()> done) override;
    void dump_info_json(nlohmann::json& out) const override;
    void write_config_json(nlohmann::json& out) const override;

  private:
    std::atomic<uint32_t> export_id_;
    int owner_;
    std::string base_name_;
    uint32_t io_types_;
    RemoteExport* local_;
    RemotePort* port_;
    uint64_t timeout_ns_;
    RemoteCounters counters_;
};

BdevModule* remote_bdev_module();
// Control thread. 0, or -errno with *err.
int remote_bdev_check_options(const RemoteCreateOptions& o, std::string* err);
int remote_bdev_create(const RemoteCreateOptions& o, std::string* err);
// Control thread: a remote bdev towards an export that another process made (`target`,
// from its nocstor_remote_export); o.base_bdev_name is not looked up here.
int remote_bdev_create_linked(const RemoteCreateOptions& o, const ExportInfo& target,
                              std::string* err);
// Control thread: the remote bdevs of this process whose owner is `cluster` and in another
// process; when that process dies, remote_peer_down fails their I/O at once.
std::vector<RemoteBdev*> remote_bdevs_towards(int cluster);
void remote_peer_down(int cluster);
// Control thread: the owner process says export `id`'s base now has `blocks` blocks.
void remote_export_resized(uint32_t id, uint64_t blocks);
void remote_bdev_delete(const std::string& name, std::function<void(int rc, std::string err)> done);

}  // namespace nocstor::remote
