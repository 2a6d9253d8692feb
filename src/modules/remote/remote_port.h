// One cluster's end of the remote bdevs, run by that cluster's NoC thread (Runtime::noc_thread),
// which alone touches its NocEndpoint:
//   - as the client (cluster X): turns a remote bdev's BdevIo into a request descriptor for the
//     owner cluster Y, keeps it in a request slot until Y's completion comes back or it times
//     out, and copies data through an arena buffer only when the caller's buffers are not in
//     the arena;
//   - as the server (cluster Y): submits the requests that arrive for its exports to their base
//     bdevs, with iovecs that point straight into the arena, and sends the completions back.
// Descriptors leave through per-destination outboxes that a tail poller flushes with one
// send_batch (one doorbell at most) per destination and loop pass. An outbox holds everything
// that could ever be waiting (every request slot, plus one abort each), so nothing is dropped
// when a ring is full: it waits in the outbox and the poller retries.
#pragma once

#include "bdev/bdev.h"
#include "modules/remote/remote_export.h"
#include "modules/remote/remote_proto.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace nocstor::remote {

class RemoteBdev;

struct PortStats {
    std::atomic<uint64_t> requests_sent{0}, completions_received{0}, requests_served{0};
    std::atomic<uint64_t> no_slot{0}, stray_completions{0}, unknown_export{0}, bad_descriptors{0};
    std::atomic<uint64_t> peer_down_failures{0};  // I/O failed at once: its owner process died
};

class RemotePort {
  public:
    static constexpr uint32_t kClientSlots = 2048;
    static constexpr uint32_t kServerSlots = 2048;

    RemotePort(Runtime& rt, int cluster);
    ~RemotePort();
    RemotePort(const RemotePort&) = delete;
    RemotePort& operator=(const RemotePort&) = delete;

    int cluster() const { return cluster_; }
    Thread* thread() const { return thread_; }
    const PortStats& stats() const { return stats_; }

    // --- NoC thread ---
    void submit(RemoteBdev* b, BdevIo* io);
    void on_descriptor(int src, const NocDescriptor& d);
    // Requests of `b` still in a slot (answered or not): the bdev waits for 0 before it goes.
    uint32_t slots_in_use(const RemoteBdev* b) const;
    // The bdev is going away with requests still unanswered: their slots no longer name it.
    void forget(const RemoteBdev* b);
    // The process that ran cluster `dst` died: what waits for it fails now (Namespace Not
    // Ready), the slots of requests that timed out are freed, and nothing queued is sent.
    void fail_peer(int dst);
    // Tells cluster `dst` (another process) that export `id`'s base now has `blocks` blocks.
    void announce_resize(int dst, uint32_t id, uint64_t blocks);
    // Unregisters the pollers; the port is then destroyed by the control thread.
    void stop();

  private:
    struct ClientReq;
    struct ServerReq;
    struct Outbox {
        std::vector<NocDescriptor> ring;
        uint64_t head = 0, tail = 0;
    };

    void ensure_pollers();
    void push(int dst, const NocDescriptor& d);
    int flush();
    int check_timeouts();

    // Client side.
    bool map_data(ClientReq& r, BdevIo* io, NocDescriptor& d);
    void release(ClientReq& r);
    void on_completion(const NocDescriptor& d);
    void finish(BdevIo* io, IoStatus status, uint8_t sct, uint8_t sc);

    // Server side.
    void on_request(int src, const NocDescriptor& d);
    void on_abort(int src, const NocDescriptor& d);
    void serve(ServerReq* s);
    static void served(BdevIo* io, bool ok, void* arg);
    void answer(ServerReq* s, IoStatus status, uint32_t result = 0);

    Runtime& rt_;
    int cluster_;
    Thread* thread_;
    NocEndpoint* ep_;
    BufferCache buffers_;
    std::vector<Outbox> outbox_;  // by destination cluster
    std::vector<ClientReq> client_;
    std::vector<uint32_t> client_free_;
    uint32_t client_gen_ = 0;
    uint32_t in_flight_ = 0;
    std::vector<ServerReq> server_;
    std::vector<uint32_t> server_free_;
    Poller* flush_poller_ = nullptr;
    Poller* timeout_poller_ = nullptr;
    bool timeout_poller_paused_ = false;
    uint64_t coarse_now_ns_ = 0;  // now_ns() at the timeout poller's last run
    PortStats stats_;
};

// The ports of the running runtime, one per data cluster (control thread creates them with the
// first remote bdev; NoC handlers read them).
RemotePort* port_of(int cluster);
RemotePort* ports_start(int cluster);  // control thread: this cluster's port, created if needed
// Control thread: stops every port on its thread, destroys them, then done().
void ports_stop(std::function<void()> done);
// Installs the NoC handlers of the remote opcodes as the runtime's defaults (module start-up).
void install_noc_handlers();

}  // namespace nocstor::remote
