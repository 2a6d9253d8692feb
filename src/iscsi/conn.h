// One iSCSI connection (= one session: MaxConnections is 1) on a poll group's thread, for its
// whole life: batched receives into a staging buffer and, for large Data-Out segments, straight
// into the command's pool buffers; the login phases (conn_login.cpp); the full feature phase
// (conn_ffp.cpp: SCSI commands, R2T/Data-Out, Data-In with status, NOP, Text, Logout, task
// management); gather sends of PDUs built from a FIFO of pending items (conn_io.cpp).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "iscsi/negotiation.h"
#include "iscsi/pdu.h"
#include "iscsi/scsi/scsi.h"
#include "iscsi/target_config.h"
#include "iscsi/text_params.h"

namespace nocstor::iscsi_tgt {

class IscsiPollGroup;
class Conn;
struct PgLun;
struct LoginState;

// One PDU to send: header (+digest), data taken from iovecs at an offset, padding (+digest).
struct OutPdu {
    uint8_t hdr[kBhsLen + kDigestLen];
    uint8_t hlen = 0;
    const iovec* src = nullptr;
    int srccnt = 0;
    uint32_t src_off = 0;
    uint32_t dlen = 0;
    uint8_t trailer[8];
    uint8_t tlen = 0;

    uint32_t total() const { return hlen + dlen + tlen; }
    // The bytes after `skip` as at most `max` iovecs; returns the count.
    int to_iov(uint32_t skip, iovec* out, int max) const;
    // Fills hlen/tlen: header digest, data padding and data digest as negotiated.
    void finalize(bool hd, bool dd);
};

struct TxItem {
    enum class Kind : uint8_t { Ctl, Task };
    TxItem* next = nullptr;
    Kind kind = Kind::Ctl;
    bool last = true;    // the current PDU is the item's last
    bool in_tx = false;  // in the send FIFO
    OutPdu pdu;
};

// A control PDU (login/text/logout/TMF responses, NOP-In, Reject, Async) with its own data.
struct CtlPdu : TxItem {
    std::vector<uint8_t> data;
    iovec iov{};
    bool in_use = false;
};

struct ConnTask : TxItem {
    // ChunkTx: a read larger than one chunk is sending a chunk's Data-In, more chunks follow.
    enum class State : uint8_t { Free, WaitBuffers, ReceivingData, Executing, Responding, ChunkTx };
    scsi::Task scsi;
    Conn* conn = nullptr;
    uint16_t index = 0;
    uint16_t gen = 0;
    State state = State::Free;
    bool immediate_cmd = false;
    bool counted = false;  // occupies a CmdSN window slot
    bool aborted = false;  // answer suppressed (task management)
    bool write_flag = false, read_flag = false;
    uint32_t itt = 0;
    uint64_t lun_field = 0;
    uint32_t edtl = 0;  // expected data transfer length
    PgLun* pglun = nullptr;
    Buffer bufs[scsi::Task::kMaxIov];
    int nbufs = 0;
    // Data-Out.
    uint32_t want = 0;      // bytes taken from the initiator
    uint32_t received = 0;  // in place
    uint32_t r2t_end = 0;   // end of the outstanding R2T's range
    uint32_t r2t_sn = 0;
    uint32_t data_sn = 0;  // next expected DataSN of the current sequence
    // Reads and writes larger than one chunk move through the same buffers chunk by chunk:
    // bytes [chunk_base, chunk_base + chunk_len) of the command's data are in the buffers.
    bool chunked = false;
    uint32_t chunk_base = 0;
    uint32_t chunk_len = 0;
    uint32_t total = 0;  // the whole transfer
    uint64_t full_lba = 0;
    uint32_t chunk_end() const { return chunked ? chunk_base + chunk_len : want; }
    // Response.
    uint32_t stat_sn = 0;
    uint32_t din_total = 0;
    uint32_t din_off = 0;
    uint32_t din_sn = 0;
    bool din_phase = false;
    uint8_t rsp_flags = 0;  // residual over/underflow
    uint32_t residual = 0;
    uint8_t sense_data[2 + 18];
    iovec sense_iov{};
    uint32_t ttt() const { return uint32_t(gen) << 16 | index; }
};

enum class ConnPhase : uint8_t { Login, FullFeature, LoggingOut };

struct ConnStats {
    uint64_t pdus_in = 0, pdus_out = 0, commands = 0, rejects = 0;
    uint64_t bytes_read = 0, bytes_written = 0;
};

class Conn {
  public:
    Conn(IscsiPollGroup* pg, int fd, uint64_t id, uint32_t listener_id);
    ~Conn();
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    uint64_t id() const { return id_; }
    int fd() const { return fd_; }
    IscsiPollGroup* pg() const { return pg_; }
    bool closed() const { return closed_; }
    bool reapable() const { return closed_ && external_ == 0; }
    ConnPhase phase() const { return phase_; }
    const std::string& initiator_name() const { return initiator_; }
    const std::string& target_name() const { return target_name_; }
    const std::string& peer_addr() const { return peer_addr_; }
    const std::string& local_addr() const { return local_addr_; }
    bool discovery() const { return discovery_; }
    const uint8_t* isid() const { return isid_; }
    uint16_t tsih() const { return tsih_; }
    uint16_t cid() const { return cid_; }
    int pg_tag() const { return pg_tag_; }
    const NegotiatedParams& params() const { return params_; }
    const ConnStats& stats() const { return stats_; }
    uint64_t created_ns() const { return created_ns_; }

    // --- poll group ---
    int on_readable();
    void on_writable();
    int flush();
    void close(const char* reason);
    // Periodic: login deadline, NOP-In keepalive. Returns false if the connection was closed.
    void on_timer(uint64_t now_ns);
    // Work that waits for pool buffers; returns work done.
    int retry_blocked();
    bool blocked() const { return rx_blocked_; }
    // A new configuration: the target node may have changed (LUNs) or disappeared.
    void on_snapshot();

    // --- SCSI completion (scsi::Task done) ---
    static void scsi_done(scsi::Task* t, void* arg);

  private:
    friend struct LoginCtx;
    // conn_io.cpp
    void consume_staging();
    size_t consume(const uint8_t* p, size_t n);
    bool header_complete();
    void pdu_complete();
    void queue_tx(TxItem* item);
    void tx_item_sent(TxItem* item);
    int tx_iov(iovec* iov, int max) const;
    void tx_sent(size_t n);
    void want_write(bool on);
    CtlPdu* alloc_ctl();
    void send_ctl(CtlPdu* c, const uint8_t* data, uint32_t len);
    void send_reject(RejectReason reason, const uint8_t* bhs);
    void fatal(const char* why);  // protocol error: close after what was queued is sent
    // Fields every target PDU carries: StatSN / ExpCmdSN / MaxCmdSN.
    void put_sns(uint8_t* h, uint32_t stat_sn) const;
    uint32_t max_cmd_sn() const;

    // conn_login.cpp
    void on_login_header(const Bhs& h);
    void handle_login();
    void login_reply(uint16_t status, const TextParams* keys, bool transit, uint8_t csg,
                     uint8_t nsg);
    void login_fail(uint16_t status, const std::string& why);
    bool login_security(const TextParams& in, TextParams* out, bool* auth_ok);
    bool login_operational(const TextParams& in, TextParams* out);
    bool enter_full_feature();
    bool first_login_keys(const TextParams& in);
    bool chap_required(bool* mutual, int* group) const;
    const AuthSettings& auth_settings() const;

    // conn_ffp.cpp
    void on_scsi_cmd_header(const Bhs& h);
    void setup_immediate_data(ConnTask* t);
    void on_data_out_header(const Bhs& h);
    void scsi_cmd_complete();
    void data_out_complete();
    bool get_buffers(ConnTask* t, uint32_t len);
    void put_buffers(ConnTask* t);
    void after_data(ConnTask* t);
    void send_r2t(ConnTask* t);
    void next_chunk(ConnTask* t);
    void run_task(ConnTask* t);
    void respond(ConnTask* t);
    void build_task_pdu(ConnTask* t);
    void free_task(ConnTask* t);
    ConnTask* alloc_task();
    void handle_nop_out();
    void handle_text();
    void handle_logout();
    void handle_tmf();
    void finish_tmf_if_done();
    std::string send_targets(std::string_view what) const;
    PgLun* lun_of(uint32_t lun_id);

    IscsiPollGroup* pg_;
    int fd_;
    uint64_t id_;
    uint32_t listener_id_;
    int pg_tag_ = 0;
    uint64_t created_ns_;
    std::string peer_addr_, local_addr_;
    bool closed_ = false;
    bool closing_after_tx_ = false;
    bool epollout_ = false;
    uint32_t external_ = 0;
    ConnPhase phase_ = ConnPhase::Login;
    ConnStats stats_;

    // Session identity (one connection per session).
    std::string initiator_, target_name_;
    bool discovery_ = false;
    uint8_t isid_[6] = {};
    uint16_t tsih_ = 0;
    uint16_t cid_ = 0;
    std::shared_ptr<const TargetNode> node_;
    std::string initiator_port_;  // "iqn...,i,0x<ISID>": the SCSI initiator port name
    uint64_t nexus_ = 0;          // the I_T nexus (initiator port + portal group), never 0
    uint16_t ua_asc_ = 0;         // a pending unit attention (ASC/ASCQ), 0 = none
    NegotiatedParams params_;
    TargetOffer offer_;
    std::unique_ptr<LoginState> login_;

    // Sequence numbers.
    uint32_t stat_sn_ = 0;
    uint32_t exp_cmd_sn_ = 0;
    uint32_t queue_depth_ = 1;
    uint32_t outstanding_ = 0;  // window slots in use

    // Receive side.
    enum class RxState : uint8_t { Header, Data, Trailer };
    enum class Sink : uint8_t { Discard, Text, Task };
    RxState rx_state_ = RxState::Header;
    bool rx_blocked_ = false;  // header processed partly: waits for buffers
    uint8_t rx_hdr_[kBhsLen + 1020 + kDigestLen];
    uint32_t rx_hdr_have_ = 0;
    uint32_t rx_hdr_need_ = kBhsLen;
    Sink sink_ = Sink::Discard;
    ConnTask* rx_task_ = nullptr;
    uint32_t rx_task_off_ = 0;  // offset in the task's data of the segment's first byte
    uint32_t rx_task_len_ = 0;  // bytes of the segment that go to the task (rest discarded)
    uint32_t rx_data_len_ = 0;
    uint32_t rx_data_have_ = 0;
    uint8_t rx_trailer_[8];
    uint32_t rx_trailer_need_ = 0;
    uint32_t rx_trailer_have_ = 0;
    uint32_t rx_crc_ = 0;
    std::vector<uint8_t> rx_text_;
    std::unique_ptr<uint8_t[]> staging_;
    uint32_t staging_off_ = 0, staging_len_ = 0;

    // Tasks.
    std::unique_ptr<ConnTask[]> tasks_;
    uint32_t ntasks_ = 0;
    ConnTask* free_tasks_ = nullptr;  // linked through TxItem::next while free
    uint32_t busy_tasks_ = 0;

    // Task management waiting for aborted tasks.
    bool tmf_pending_ = false;
    uint8_t tmf_bhs_[kBhsLen];
    uint32_t tmf_waiting_ = 0;

    // Send side.
    TxItem* tx_head_ = nullptr;
    TxItem* tx_tail_ = nullptr;
    uint32_t tx_off_ = 0;
    static constexpr int kCtlSlots = 16;
    CtlPdu ctl_[kCtlSlots];

    // A Text answer longer than the initiator's MaxRecvDataSegmentLength, sent in pieces.
    std::string text_pending_;
    uint32_t text_ttt_ = 0;

    // Keepalive.
    uint64_t last_rx_ns_ = 0;
    uint64_t nop_sent_ns_ = 0;
    uint32_t nop_ttt_ = 1;
};

}  // namespace nocstor::iscsi_tgt
