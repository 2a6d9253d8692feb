// One NVMe command on a TCP queue, from its CapsuleCmd to the last byte of its CapsuleResp.
// Preallocated per connection (kRequestsPerConn); nothing is allocated per command.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "bdev/bdev.h"
#include "nvmf/spec.h"
#include "nvmf/tcp_pdu.h"
#include "runtime/buffer_pool.h"

namespace nocstor::nvmf {

class TcpConn;
struct PgNamespace;
struct Request;

using ReqFn = void (*)(Request*);

enum class ReqState : uint8_t {
    Free,
    RecvCapsule,  // in-capsule data arriving
    WaitBuffer,   // no pool buffer free yet: queued on the connection
    AwaitH2C,     // R2T sent (or queued), H2CData arriving
    Executing,    // handler / bdev / cross-thread work in progress
    Held,         // an Async Event Request parked in its controller
    Sending,      // in the connection's TX queue
};

enum class TxKind : uint8_t { R2T, Final };

struct Request {
    TcpConn* conn = nullptr;
    uint16_t index = 0;  // also the R2T TTAG
    ReqState state = ReqState::Free;
    TxKind tx_kind = TxKind::Final;
    bool incapsule = false;      // data arrived in the capsule
    bool buffer_failed = false;  // in-capsule data dropped: no buffer was free
    bool ddgst_error = false;
    bool external = false;    // bdev I/O or a cross-thread message is outstanding
    bool r2t_queued = false;  // the R2T is not fully sent yet: H2CData would be premature

    nvme::SubmissionQueueEntry cmd{};
    nvme::CompletionQueueEntry rsp{};

    uint32_t icd_len = 0;   // in-capsule data bytes received
    uint32_t data_len = 0;  // bytes the command transfers (SGL length)
    uint32_t h2c_next = 0;  // next expected H2CData DATAO
    Buffer buf;             // pool buffer holding the data, if any
    iovec h2c_iov{};        // destination of the H2CData being received
    ReqFn after_data = nullptr;

    PgNamespace* ns = nullptr;
    nvme::Status sub_status{};  // DSM: first error of its unmaps
    BdevIoWaitEntry io_wait;
    int (*submit)(Request*) = nullptr;  // issues the bdev call (again after -ENOMEM)
    uint32_t range_idx = 0;             // DSM: next range to unmap

    // TX: one item at a time (an R2T, or the C2HData + CapsuleResp that end the command).
    // data_hdr holds a data PDU header with digest and padding for any HPDA (<= 128 bytes).
    alignas(8) uint8_t data_hdr[128];
    uint8_t resp_hdr[32];
    uint8_t ddgst[4];
    iovec tx_iov[4];
    uint8_t tx_niov = 0;
    uint32_t tx_bytes = 0;

    Request* next = nullptr;  // TX queue / buffer wait list / free list
};

}  // namespace nocstor::nvmf
