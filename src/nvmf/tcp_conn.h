// One NVMe/TCP connection (= one queue pair) on a poll group's thread, for its whole life:
// batched receive into a staging buffer fed to the PduReceiver, request state machine
// (in-capsule data, R2T/H2CData, C2HData), gather sends with partial-write handling, and
// C2HTermReq + close on protocol errors. Command semantics live in *_cmds.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "nvmf/request.h"
#include "nvmf/tcp_pdu.h"
#include "security/tls_session.h"

namespace nocstor::nvmf {

class PollGroup;
class Controller;
class QueueAuth;
struct UringConnIo;
struct PgSubsystem;

class TcpConn final : public tcp::PduHandler {
  public:
    TcpConn(PollGroup* pg, int fd, uint64_t id, uint32_t listener_id);
    ~TcpConn() override;
    TcpConn(const TcpConn&) = delete;
    TcpConn& operator=(const TcpConn&) = delete;

    uint64_t id() const { return id_; }
    int fd() const { return fd_; }
    PollGroup* pg() const { return pg_; }
    uint32_t listener_id() const { return listener_id_; }
    bool closed() const { return closed_; }
    // Closed and no bdev I/O or message refers to it any more: the poll group may delete it.
    // (fd_ < 0: the socket is closed and no io_uring operation refers to the connection.)
    bool reapable() const { return closed_ && external_ == 0 && fd_ < 0; }
    uint64_t created_ns() const { return created_ns_; }

    // The host's ICReq arrived (the ICResp may still be on its way).
    bool icreq_received() const { return icreq_received_; }

    // --- queue identity, set by Connect ---
    bool connected() const { return connected_; }
    uint16_t qid() const { return qid_; }
    uint16_t cntlid() const { return cntlid_; }
    uint16_t sq_entries() const { return sq_entries_; }
    Controller* ctrl() const { return ctrl_; }       // admin queue only
    PgSubsystem* subsys() const { return subsys_; }  // I/O queues (and admin of NVM subsys)
    void set_admin(Controller* c, PgSubsystem* s, uint16_t cntlid, uint16_t sq_entries);
    void set_io(PgSubsystem* s, uint16_t cntlid, uint16_t qid, uint16_t sq_entries);
    void detach_ctrl() { ctrl_ = nullptr; }
    void detach_subsys() { subsys_ = nullptr; }
    // DH-HMAC-CHAP: set at Connect when the host must authenticate; until it has, the queue
    // takes nothing but AUTH_Send / AUTH_Receive.
    void require_auth(std::unique_ptr<QueueAuth> a);
    QueueAuth* auth() const { return auth_.get(); }
    // When the queue's (re-)authentication began: the poll group's deadline counts from here.
    uint64_t auth_started_ns() const { return auth_started_ns_; }
    void restart_auth_clock();
    bool auth_pending() const;

    // --- socket I/O (epoll driver here, io_uring driver in uring_sock.cpp) ---
    static constexpr int kMaxTxIov = 64;
    // Where the next received bytes go: the rest of a large PDU's data buffer (zero copy),
    // then `staging`. Returns the iovec count (1 or 2).
    int recv_iov(iovec iov[2], uint8_t* staging, size_t staging_len) const;
    // `n` bytes arrived in the iovecs recv_iov() gave.
    void received(size_t n, const iovec* iov, int iovcnt);
    // The TX queue as at most `max` iovecs; *bytes is their total.
    int tx_iov(iovec* iov, int max, size_t* bytes) const;
    // `n` bytes of what tx_iov() gave went out.
    void tx_sent(size_t n);
    // The TX queue ran empty: after a TermReq, send FIN.
    void tx_idle();
    // The connection is served by the poll group's io_uring instead of epoll.
    void use_uring(std::unique_ptr<UringConnIo> io);
    UringConnIo* uring_io() const { return uio_.get(); }
    // The connection is a TLS secure channel (tcp_conn_tls.cpp): every byte goes through the
    // session, the handshake first. Such connections use the epoll driver.
    void use_tls(std::unique_ptr<security::TlsSession> s);
    const security::TlsSession* tls() const { return tls_.get(); }
    // Closed, and the last io_uring operation came back: close the socket, free the requests.
    void release_all();

    // --- poll group ---
    // Returns work done (bytes or PDUs).
    int on_readable();
    void on_writable();
    int flush();
    bool has_waiting() const { return wait_head_ != nullptr; }
    void retry_waiting();
    bool tx_pending() const {
        return tx_head_ != nullptr || ctl_len_ > ctl_off_ || term_len_ > term_off_;
    }
    void close(const char* reason);
    bool draining() const { return draining_; }
    uint64_t drain_deadline_ns() const { return drain_deadline_ns_; }

    // --- command side ---
    // Validates SGL1 for a transfer of `len` bytes and gets the data buffer; host_to_ctrl data
    // is fetched (in-capsule, or R2T + H2CData). Then `next` runs (maybe later). On an error the
    // request is completed with the right status and `next` never runs.
    void with_data(Request* r, uint32_t len, bool host_to_ctrl, ReqFn next);
    // Sends the CapsuleResp with r->rsp.dw0/dw1 and `status`.
    void complete(Request* r, nvme::Status status);
    // Sends `bytes` of r->buf as C2HData, then a successful CapsuleResp.
    void complete_c2h(Request* r, uint32_t bytes);
    // Bracket anything that will call back later (bdev I/O, messages): a closed connection
    // stays allocated until every such callback has come back.
    void begin_external(Request* r);
    // Returns false when the connection closed meanwhile: r was released, drop the result.
    bool end_external(Request* r);
    // Releases a request without answering (held AERs on teardown).
    void release(Request* r);
    void hold(Request* r) { r->state = ReqState::Held; }
    const tcp::TxFormat& tx_format() const { return txf_; }

    // Statistics.
    uint64_t commands() const { return commands_; }

  private:
    // PduHandler
    tcp::DataDestination on_header(const tcp::PduHeader& h) override;
    tcp::AfterPdu on_pdu_complete(const tcp::PduHeader& h, bool data_digest_ok) override;

    tcp::DataDestination on_capsule_header(const tcp::PduHeader& h);
    tcp::DataDestination on_h2c_header(const tcp::PduHeader& h);
    void on_icreq(const tcp::PduHeader& h);
    void on_h2c_complete(bool digest_ok);
    void dispatch(Request* r);
    void send_term_req(tcp::Fes fes, uint32_t fei, const uint8_t* hdr, size_t len);
    bool get_buffer(Request* r, uint32_t len);
    void start_transfer(Request* r);  // buffer in hand: R2T or run after_data
    void queue_tx(Request* r);
    void tx_done(Request* r);
    Request* alloc_request();
    void want_write(bool on);
    void consume(const uint8_t* buf, size_t n);
    int on_readable_tls();
    void drain_tls();
    int flush_tls();
    void log_tls_failure();

    PollGroup* pg_;
    int fd_;
    uint64_t id_;
    uint32_t listener_id_;
    uint64_t created_ns_;
    bool closed_ = false;
    bool draining_ = false;  // TermReq sent: discard input until the peer closes
    uint64_t drain_deadline_ns_ = 0;
    bool epollout_ = false;

    tcp::PduReceiver rx_;
    tcp::TxFormat txf_;

    bool icreq_received_ = false;
    bool connected_ = false;
    uint16_t qid_ = 0;
    uint16_t cntlid_ = 0;
    uint16_t sq_entries_ = kMaxQueueEntriesForInit;
    uint16_t sqhd_ = 0;
    Controller* ctrl_ = nullptr;
    PgSubsystem* subsys_ = nullptr;
    std::unique_ptr<QueueAuth> auth_;
    uint64_t auth_started_ns_ = 0;

    std::unique_ptr<Request[]> reqs_;
    Request* free_head_ = nullptr;
    Request* cur_ = nullptr;  // request whose PDU is being received
    Request* wait_head_ = nullptr;
    Request* wait_tail_ = nullptr;
    Request* tx_head_ = nullptr;
    Request* tx_tail_ = nullptr;
    uint32_t tx_off_ = 0;  // bytes of the head item already sent
    uint8_t ctl_[160];     // ICResp, sent before the TX queue
    uint32_t ctl_len_ = 0;
    uint32_t ctl_off_ = 0;
    uint8_t term_[160];  // C2HTermReq, sent after what is kept of the TX queue
    uint32_t term_len_ = 0;
    uint32_t term_off_ = 0;
    uint32_t external_ = 0;
    uint64_t commands_ = 0;
    std::unique_ptr<UringConnIo> uio_;
    std::unique_ptr<security::TlsSession> tls_;

    static constexpr uint16_t kMaxQueueEntriesForInit = 32;
};

}  // namespace nocstor::nvmf
