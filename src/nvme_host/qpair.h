// One NVMe/TCP queue pair of the initiator: a TCP connection with its ICReq/ICResp exchange and
// Fabrics Connect, then commands with in-capsule data, R2T -> H2CData, C2HData and digests.
//
// Polled and single-threaded: created, connected, used and destroyed on one lightweight thread,
// whose pollers drive it (the socket is also a reactor interrupt fd, so an idle reactor sleeps).
// Request objects are preallocated by depth; submit() never allocates or locks.
//
// Failure: a connection loss, protocol error or command timeout completes every outstanding
// command with NvmeCpl::transport_rc < 0 (the target may or may not have executed it), then
// calls the failure callback once. The qpair is then dead; make a new one to reconnect.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nvme_host/host_auth.h"
#include "nvme_host/tcp_socket.h"
#include "nvme_host/transport_id.h"
#include "nvmf/spec.h"
#include "nvmf/tcp_pdu.h"

namespace nocstor {
class Thread;
struct Poller;
}  // namespace nocstor

namespace nocstor::nvme_host {

// A command's outcome: either the controller's completion entry (transport_rc == 0), or a
// transport failure (-ECONNRESET, -ETIMEDOUT, -EPROTO, -ECANCELED at disconnect...).
struct NvmeCpl {
    nvme::CompletionQueueEntry cqe{};
    int transport_rc = 0;
    bool ok() const { return transport_rc == 0 && cqe.status.ok(); }
};
using NvmeCmdCb = void (*)(void* arg, const NvmeCpl& cpl);

enum class DataDir : uint8_t { kNone, kHostToCtrl, kCtrlToHost };

struct QpairOptions {
    TransportId trid;  // adrfam/traddr/trsvcid/subnqn/hostnqn
    uint8_t hostid[16] = {};
    uint16_t qid = 0;
    uint16_t depth = 32;   // commands outstanding at once (Connect SQSIZE = depth, 0-based)
    uint32_t kato_ms = 0;  // admin queue Connect only
    uint16_t cntlid = nvme::kCntlidDynamic;  // I/O queues: the admin queue's CNTLID
    bool hdgst = false;
    bool ddgst = false;
    uint32_t incapsule_max = 8192;  // write data sent in the capsule up to this many bytes
    uint64_t command_timeout_us = 30'000'000;  // 0: none
    uint64_t connect_timeout_us = 10'000'000;
    uint32_t max_c2h_pdu = 16u << 20;  // largest C2HData accepted
    // DH-HMAC-CHAP keys: the queue authenticates when the controller asks for it (and insists
    // on it when a controller key is given). Null: a controller that asks is refused.
    std::shared_ptr<const HostAuthConfig> auth;
    // TLS secure channel (null: plain TCP).
    std::shared_ptr<const HostTlsConfig> tls;
};

enum class QpairState : uint8_t {
    kIdle,
    kTcpConnect,
    kIcExchange,
    kFabricConnect,
    kAuthenticate,  // DH-HMAC-CHAP after Connect
    kReady,
    kFailed
};

struct QpairStats {
    uint64_t commands = 0;
    uint64_t incapsule_writes = 0;
    uint64_t r2t = 0;
    uint64_t h2c_pdus = 0;
    uint64_t c2h_pdus = 0;
    uint64_t bytes_sent = 0;
    uint64_t bytes_received = 0;
};

class NvmeTcpQpair final : private nvmf::tcp::PduHandler {
  public:
    static constexpr uint32_t kMaxIovs = 256;  // per command

    explicit NvmeTcpQpair(QpairOptions opts);
    ~NvmeTcpQpair() override;  // disconnects (outstanding commands get -ECANCELED)
    NvmeTcpQpair(const NvmeTcpQpair&) = delete;
    NvmeTcpQpair& operator=(const NvmeTcpQpair&) = delete;

    using ConnectDone = std::function<void(int rc, const std::string& err)>;
    // Starts connecting on the calling reactor thread; done runs from a poller of it.
    void connect(ConnectDone done);
    // Called once when a ready qpair fails, after its commands were completed.
    void set_failure_callback(std::function<void(int rc, const std::string& why)> fn) {
        on_failure_ = std::move(fn);
    }

    // 0 when queued (cb will run, possibly from a later poll), else -EAGAIN (depth reached),
    // -ENOTCONN (not ready) or -EINVAL (too many iovecs / len beyond them). Never calls cb
    // inline. The iovecs must stay valid until cb.
    int submit(const nvme::SubmissionQueueEntry& sqe, DataDir dir, const iovec* iov, int iovcnt,
               uint32_t len, NvmeCmdCb cb, void* arg);
    // Closes the connection now; outstanding commands complete with -ECANCELED. No failure
    // callback. Not from inside one of this qpair's own callbacks' loops is fine too.
    void disconnect();

    // Sends and receives what it can; returns the work done. The registered poller calls it.
    int poll();

    QpairState state() const { return state_; }
    bool ready() const { return state_ == QpairState::kReady; }
    uint16_t qid() const { return opts_.qid; }
    uint16_t cntlid() const { return cntlid_; }
    uint32_t maxh2cdata() const { return maxh2cdata_; }
    uint16_t depth() const { return opts_.depth; }
    uint32_t outstanding() const { return outstanding_; }
    bool has_free_slot() const { return !free_.empty(); }
    const QpairStats& stats() const { return stats_; }
    const QpairOptions& options() const { return opts_; }
    const std::string& last_error() const { return last_error_; }

  private:
    struct Request;

    // PduHandler
    nvmf::tcp::DataDestination on_header(const nvmf::tcp::PduHeader& h) override;
    nvmf::tcp::AfterPdu on_pdu_complete(const nvmf::tcp::PduHeader& h, bool digest_ok) override;

    int submit_internal(const nvme::SubmissionQueueEntry& sqe, DataDir dir, const iovec* iov,
                        int iovcnt, uint32_t len, NvmeCmdCb cb, void* arg, bool force_incapsule);
    Request* find(uint16_t cid);
    void complete(Request* r, const NvmeCpl& cpl);
    void build_capsule(Request* r);
    void build_h2c(Request* r);
    void enqueue_tx(Request* r);
    void on_pdu_sent(Request* r);
    int flush_tx();
    int receive();
    std::string recv_error(ssize_t n) const;
    int check_timeouts();
    void want_write(bool on);
    void send_icreq();
    void send_connect();
    static void connect_cpl(void* arg, const NvmeCpl& cpl);
    void become_ready();
    void auth_send(bool last);
    void auth_receive();
    static void auth_send_cpl(void* arg, const NvmeCpl& cpl);
    static void auth_receive_cpl(void* arg, const NvmeCpl& cpl);
    void auth_next(HostAuth::Next next, std::vector<uint8_t> out);
    void fail(int rc, std::string why);
    void fail_all(int rc);
    void stop_pollers();
    nvmf::tcp::DataDestination reject(nvmf::tcp::Fes fes, uint32_t fei, std::string why);

    QpairOptions opts_;
    QpairState state_ = QpairState::kIdle;
    TcpSocket sock_;
    Thread* thread_ = nullptr;
    Poller* poller_ = nullptr;
    Poller* timer_ = nullptr;
    bool fd_registered_ = false;
    bool writable_wanted_ = false;
    ConnectDone connect_done_;
    std::function<void(int, const std::string&)> on_failure_;
    uint64_t connect_deadline_ns_ = 0;

    std::unique_ptr<Request[]> reqs_;
    std::vector<uint16_t> free_;
    uint32_t outstanding_ = 0;
    uint32_t cid_bits_ = 0;
    Request* tx_head_ = nullptr;
    Request* tx_tail_ = nullptr;

    nvmf::tcp::PduReceiver rx_;
    nvmf::tcp::TxFormat tx_fmt_;
    std::vector<uint8_t> rx_buf_;
    std::vector<iovec> rx_slice_;
    std::vector<iovec> tx_iov_;
    Request* rx_req_ = nullptr;  // command whose C2HData / R2T is being received
    uint8_t ic_buf_[nvmf::tcp::kMaxTxHeaderBytes] = {};
    size_t ic_len_ = 0, ic_sent_ = 0;
    nvme::ConnectData connect_data_{};
    iovec connect_iov_{};
    std::unique_ptr<HostAuth> auth_;
    // Alive as long as this qpair: a DH computation sent to the control thread checks it
    // when its result comes back.
    std::shared_ptr<int> life_ = std::make_shared<int>(0);
    std::vector<uint8_t> auth_buf_;  // the message being sent or received
    iovec auth_iov_{};
    bool auth_last_ = false;  // the message being sent ends the exchange
    uint16_t cntlid_ = 0;
    uint32_t maxh2cdata_ = 0;
    bool in_callbacks_ = false;
    QpairStats stats_;
    std::string last_error_;
};

// Slices [off, off+len) of an iovec list into out (at most out_max entries). Returns the
// number of entries, or -1 if the list is too short or out too small.
int iov_slice(const iovec* iov, uint32_t iovcnt, size_t off, size_t len, iovec* out,
              size_t out_max);

}  // namespace nocstor::nvme_host
