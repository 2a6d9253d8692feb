// An NVMe controller: created by an admin-queue Connect, lives on its admin queue's poll group
// for life. Holds the fabrics properties (CC/CSTS), features, keep-alive state, async events
// and the list of its I/O queues (which may sit on other poll groups: they are reached by
// message, by connection id).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nvmf/request.h"

namespace nocstor::nvmf {

class PollGroup;
class TcpConn;
struct PgSubsystem;

struct IoQueueRef {
    uint16_t qid = 0;
    uint32_t pg_index = 0;
    uint64_t conn_id = 0;
};

class Controller {
  public:
    Controller(PollGroup* pg, TcpConn* admin, PgSubsystem* subsys, uint16_t cntlid,
               std::string hostnqn, const uint8_t hostid[16], uint32_t kato_ms);
    // Closes the I/O queues (by message) and releases held AERs.
    ~Controller();

    PollGroup* pg() const { return pg_; }
    TcpConn* admin() const { return admin_; }
    PgSubsystem* subsys() const { return subsys_; }  // nullptr: discovery controller
    bool discovery() const { return subsys_ == nullptr; }
    uint16_t cntlid() const { return cntlid_; }
    const std::string& hostnqn() const { return hostnqn_; }
    const std::array<uint8_t, 16>& hostid() const { return hostid_; }
    const std::string& subnqn() const;

    // --- properties ---
    uint64_t cap() const;
    uint32_t cc() const { return cc_; }
    uint32_t csts() const { return csts_; }
    // Applies a CC write; false when the value is rejected (Invalid Field).
    bool set_cc(uint32_t v);
    bool ready() const { return csts_ & 1; }

    // --- keep alive ---
    uint32_t kato_ms() const { return kato_ms_; }
    void set_kato_ms(uint32_t ms) { kato_ms_ = ms; }
    void keep_alive(uint64_t now_ns) { last_keep_alive_ns_ = now_ns; }
    bool kato_expired(uint64_t now_ns) const;

    // --- features ---
    uint16_t io_queues_granted() const { return io_queues_; }  // count, not 0-based
    bool io_queues_set() const { return io_queues_set_; }
    void set_io_queues(uint16_t n) {
        io_queues_ = n;
        io_queues_set_ = true;
    }
    uint32_t aec() const { return aec_; }
    void set_aec(uint32_t v) { aec_ = v; }
    bool write_cache() const { return wce_; }
    void set_write_cache(bool on) { wce_ = on; }

    // --- I/O queues ---
    bool qid_in_use(uint16_t qid) const;
    size_t io_queue_count() const { return ioqs_.size(); }
    void add_io_queue(IoQueueRef q) { ioqs_.push_back(q); }
    void remove_io_queue(uint16_t qid, uint64_t conn_id);
    const std::vector<IoQueueRef>& io_queues() const { return ioqs_; }

    // --- async events ---
    // Parks an AER; false when AERL+1 are already held.
    bool add_aer(Request* r);
    void ns_changed(uint32_t nsid);
    void discovery_changed();
    // Changed Namespace List log (read clears it).
    std::vector<uint32_t> take_changed_ns();
    // A log page was read with RAE=0: events of its kind may be reported again.
    void log_page_read(uint8_t lid);

  private:
    void post_event(uint32_t dw0, uint32_t aec_bit, uint8_t mask_bit);
    void deliver_events();

    PollGroup* pg_;
    TcpConn* admin_;
    PgSubsystem* subsys_;
    uint16_t cntlid_;
    std::string hostnqn_;
    std::array<uint8_t, 16> hostid_{};
    uint32_t kato_ms_;
    uint64_t last_keep_alive_ns_;
    uint32_t cc_ = 0;
    uint32_t csts_ = 0;
    uint16_t io_queues_ = 0;
    bool io_queues_set_ = false;
    uint32_t aec_ = 0;
    bool wce_ = true;
    std::vector<IoQueueRef> ioqs_;
    std::vector<Request*> aers_;
    std::vector<uint32_t> pending_events_;  // dw0 of events not yet delivered
    uint32_t masked_logs_ = 0;              // bit per event whose log page was not read yet
    std::vector<uint32_t> changed_ns_;
    bool changed_ns_overflow_ = false;
};

}  // namespace nocstor::nvmf
