// An NVMe-oF controller seen from the host: the admin queue and its bring-up (Connect, CAP/VS,
// CC.EN, CSTS.RDY, Identify, Number of Queues, namespace scan), keep-alive, discovery log,
// shutdown. Lives on the thread that called connect() (the control thread in the daemon); I/O
// queues are separate NvmeTcpQpair objects that any thread creates with io_qpair_options().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nvme_host/host_auth.h"
#include "nvme_host/qpair.h"
#include "nvme_host/transport_id.h"
#include "nvmf/spec.h"

namespace nocstor::nvme_host {

struct CtrlrOptions {
    TransportId trid;  // subnqn empty = the discovery NQN
    bool hdgst = false;
    bool ddgst = false;
    uint32_t kato_ms = 10'000;  // 0: no keep-alive
    uint16_t admin_depth = 32;
    uint16_t io_queue_depth = 128;
    uint16_t num_io_queues = 64;  // asked for with Set Features Number of Queues
    uint64_t admin_timeout_us = 10'000'000;
    uint64_t io_timeout_us = 30'000'000;  // 0: none
    uint64_t connect_timeout_us = 10'000'000;
    uint8_t hostid[16] = {};                     // all zero: derived from the host NQN
    std::shared_ptr<const HostAuthConfig> auth;  // DH-HMAC-CHAP on every queue when asked
    std::shared_ptr<const HostTlsConfig> tls;    // TLS secure channel on every queue
};

struct NamespaceData {
    uint32_t nsid = 0;
    uint64_t num_blocks = 0;
    uint32_t block_size = 512;
    uint8_t nguid[16] = {};
    uint8_t eui64[8] = {};
    uint8_t uuid[16] = {};
    bool has_uuid = false;
    bool has_nguid = false;
};

struct DiscoveryEntry {
    uint8_t trtype = 0;
    uint8_t adrfam = 0;
    uint8_t subtype = 0;
    uint16_t portid = 0;
    uint16_t cntlid = 0;
    std::string trsvcid;
    std::string traddr;
    std::string subnqn;
};

using CtrlrDone = std::function<void(int rc, const std::string& err)>;

class NvmeCtrlr {
  public:
    explicit NvmeCtrlr(CtrlrOptions opts);
    ~NvmeCtrlr();  // abrupt: closes the admin queue (call shutdown() first to be graceful)
    NvmeCtrlr(const NvmeCtrlr&) = delete;
    NvmeCtrlr& operator=(const NvmeCtrlr&) = delete;

    // Brings the controller up on the calling reactor thread. For the discovery NQN it stops
    // after Identify. done(0) when ready; otherwise rc < 0 (or the NVMe status as -EIO) + text.
    void connect(CtrlrDone done);
    // Admin queue lost or keep-alive failed (once, after connect succeeded).
    void set_failure_callback(std::function<void(int rc, const std::string& why)> fn) {
        on_failure_ = std::move(fn);
    }
    // Graceful: CC.SHN = normal, wait for CSTS.SHST = complete (bounded), close the admin
    // queue. I/O queues must be gone already. done always runs.
    void shutdown(CtrlrDone done);

    // An admin command; cb runs on this thread. buf must stay valid until cb.
    using AdminCb = std::function<void(const NvmeCpl&)>;
    int admin_command(const nvme::SubmissionQueueEntry& sqe, DataDir dir, void* buf, uint32_t len,
                      AdminCb cb);
    // Log page `lid` bytes [offset, offset + len) into buf (len a multiple of 4).
    int get_log_page(uint8_t lid, uint64_t offset, void* buf, uint32_t len, AdminCb cb);
    // The whole discovery log (reads header, entries by offset, re-checks GENCTR).
    void get_discovery_log(
        std::function<void(int rc, const std::string& err, std::vector<DiscoveryEntry>)> done);

    // Any thread, after connect: options for a new I/O queue with a free QID (-ENOSPC when
    // none is left). Give the QID back with release_qid() after the queue is destroyed.
    int io_qpair_options(QpairOptions* out, uint16_t depth = 0);
    void release_qid(uint16_t qid);

    bool ready() const { return ready_; }
    bool is_discovery() const { return discovery_; }
    const CtrlrOptions& options() const { return opts_; }
    const nvme::IdentifyController& cdata() const { return *cdata_; }
    uint64_t cap() const { return cap_; }
    uint32_t vs() const { return vs_; }
    uint16_t cntlid() const { return cntlid_; }
    uint16_t io_queues_granted() const { return io_queues_; }
    uint32_t io_incapsule_bytes() const { return io_incapsule_; }
    uint32_t max_transfer_bytes() const { return max_xfer_; }
    const std::vector<NamespaceData>& namespaces() const { return namespaces_; }
    const std::string& hostnqn() const { return opts_.trid.hostnqn; }
    NvmeTcpQpair* admin_qpair() const { return admin_.get(); }

  private:
    void step_property_get_cap();
    void step_enable();
    void wait_ready(uint64_t deadline_ns);
    void step_identify();
    void step_num_queues();
    void step_ns_list(uint32_t after);
    void step_identify_ns(size_t i);
    void step_ns_descriptors(size_t i);
    void finish_connect(int rc, const std::string& err);
    void start_keep_alive();
    void after_us(uint64_t us, std::function<void()> fn);
    void on_admin_failure(int rc, const std::string& why);
    bool alive() const { return !destroying_; }

    CtrlrOptions opts_;
    std::unique_ptr<NvmeTcpQpair> admin_;
    CtrlrDone connect_done_;
    std::function<void(int, const std::string&)> on_failure_;
    std::unique_ptr<nvme::IdentifyController> cdata_;
    std::unique_ptr<uint8_t[]> scratch_;  // 4 KiB for Identify data
    std::vector<uint32_t> nsids_;
    std::vector<NamespaceData> namespaces_;
    uint64_t cap_ = 0;
    uint32_t vs_ = 0;
    uint16_t cntlid_ = 0;
    uint16_t io_queues_ = 0;
    uint32_t io_incapsule_ = 0;
    uint32_t max_xfer_ = 0;
    bool discovery_ = false;
    bool ready_ = false;
    bool destroying_ = false;
    bool ka_outstanding_ = false;
    Thread* thread_ = nullptr;
    std::vector<Poller*> timers_;
    Poller* ka_poller_ = nullptr;
    std::mutex qid_mu_;
    std::vector<bool> qid_used_;
};

// Connects to a discovery controller, fetches the log and disconnects. On the calling thread.
void discover(
    const CtrlrOptions& opts,
    std::function<void(int rc, const std::string& err, std::vector<DiscoveryEntry>)> done);

// "sct 0x0 sc 0x2 (Invalid Field)" style text for an NVMe status.
std::string status_text(const NvmeCpl& cpl);

}  // namespace nocstor::nvme_host
