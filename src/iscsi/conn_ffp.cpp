// The full feature phase: SCSI commands (immediate data, R2T + Data-Out, execution, Data-In
// with the status in the last PDU or a SCSI Response with sense data and residuals), the
// CmdSN window, NOP-Out/In, Text (SendTargets), Logout and task management.
#include <algorithm>
#include <cstring>

#include "iscsi/conn.h"
#include "iscsi/poll_group.h"
#include "iscsi/target.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::iscsi_tgt {

namespace {
constexpr uint32_t kLargeChunk = 128 * 1024;
// Reads and writes above this size move chunk by chunk through buffers of this size.
constexpr uint32_t kChunkBytes = 1024 * 1024;
}  // namespace

// --- tasks and buffers ---

ConnTask* Conn::alloc_task() {
    ConnTask* t = free_tasks_;
    if (!t) return nullptr;
    free_tasks_ = static_cast<ConnTask*>(t->next);
    t->next = nullptr;
    t->in_tx = false;
    t->last = true;
    t->state = ConnTask::State::WaitBuffers;
    t->immediate_cmd = t->counted = t->aborted = false;
    t->pglun = nullptr;
    t->nbufs = 0;
    t->want = t->received = t->r2t_end = t->r2t_sn = t->data_sn = 0;
    t->din_total = t->din_off = t->din_sn = 0;
    t->din_phase = false;
    t->chunked = false;
    t->chunk_base = t->chunk_len = t->total = 0;
    t->rsp_flags = 0;
    t->residual = 0;
    t->scsi.iovcnt = 0;
    t->scsi.data_len = 0;
    t->scsi.scratch = {};
    ++busy_tasks_;
    return t;
}

void Conn::put_buffers(ConnTask* t) {
    for (int i = 0; i < t->nbufs; ++i) pg_->buffers().put(t->bufs[i]);
    t->nbufs = 0;
    t->scsi.iovcnt = 0;
}

void Conn::free_task(ConnTask* t) {
    if (t->state == ConnTask::State::Free) return;
    if (t->in_tx) {  // still referenced by the send FIFO: freed once it leaves it
        t->aborted = true;
        return;
    }
    put_buffers(t);
    if (t->counted) {
        t->counted = false;
        --outstanding_;
    }
    if (rx_task_ == t) {
        rx_task_ = nullptr;
        if (sink_ == Sink::Task) sink_ = Sink::Discard;
        if (rx_blocked_) rx_blocked_ = false;
    }
    t->state = ConnTask::State::Free;
    ++t->gen;
    t->next = free_tasks_;
    free_tasks_ = t;
    --busy_tasks_;
}

bool Conn::get_buffers(ConnTask* t, uint32_t len) {
    scsi::Task& s = t->scsi;
    if (len == 0) {
        s.iovcnt = 0;
        s.data_len = 0;
        return true;
    }
    BufferCache& bc = pg_->buffers();
    const uint32_t small = bc.pool().buffer_size(BufClass::Small);
    if (len <= small) {
        Buffer b = bc.get(BufClass::Small);
        if (!b) return false;
        t->bufs[0] = b;
        t->nbufs = 1;
        s.iov[0] = {b.data, len};
        s.iovcnt = 1;
        s.data_len = len;
        return true;
    }
    uint32_t left = len;
    while (left) {
        Buffer b = bc.get(BufClass::Large);
        if (!b) {
            put_buffers(t);
            return false;
        }
        const uint32_t n = std::min(left, kLargeChunk);
        t->bufs[t->nbufs] = b;
        s.iov[t->nbufs] = {b.data, n};
        ++t->nbufs;
        left -= n;
    }
    s.iovcnt = t->nbufs;
    s.data_len = len;
    return true;
}

PgLun* Conn::lun_of(uint32_t lun_id) {
    if (!node_) return nullptr;
    for (const auto& l : node_->luns)
        if (l->id == lun_id) return pg_->lun(l);
    return nullptr;
}

// --- SCSI Command ---

void Conn::on_scsi_cmd_header(const Bhs& h) {
    if (discovery_) {
        send_reject(RejectReason::ProtocolError, rx_hdr_);
        return;
    }
    const bool imm = h.immediate();
    if (!imm && h.cmd_sn() != exp_cmd_sn_) {
        // Outside the window (or a gap on our single connection): ignored, as RFC 7143
        // 4.2.2.1 requires; its data is dropped.
        NOC_DEBUG("iscsi", "connection {}: CmdSN {} ignored (expected {})", id_, h.cmd_sn(),
                  exp_cmd_sn_);
        return;
    }
    ConnTask* t = alloc_task();
    if (!t) {
        send_reject(imm ? RejectReason::ImmediateCommandReject : RejectReason::OutOfResources,
                    rx_hdr_);
        return;
    }
    if (!imm) {
        ++exp_cmd_sn_;
        t->counted = true;
        ++outstanding_;
    }
    ++stats_.commands;
    ++pg_->stats().commands;
    t->immediate_cmd = imm;
    t->itt = h.itt();
    t->lun_field = h.lun_field();
    t->edtl = h.expected_xfer_len();
    t->read_flag = h.flags() & kCmdRead;
    t->write_flag = h.flags() & kCmdWrite;
    scsi::Task& s = t->scsi;
    std::memcpy(s.cdb, h.cdb(), 16);
    s.lun_id = decode_lun(t->lun_field);
    t->pglun = lun_of(s.lun_id);
    s.lun = t->pglun ? t->pglun->lun.get() : nullptr;
    s.luns = node_ ? &node_->luns : nullptr;
    s.ch = t->pglun ? t->pglun->ch : nullptr;
    s.buffers = &pg_->buffers();
    s.done = &Conn::scsi_done;
    s.done_arg = t;
    scsi::plan(s);
    s.nexus = nexus_;
    s.initiator_port = &initiator_port_;
    if (s.status == scsi::kGood) scsi::check_reservation(s);
    scsi::check_unit_attention(s, &ua_asc_);
    if (s.dir == scsi::DataDir::Out) {
        const uint32_t edtl = t->write_flag ? t->edtl : 0;
        if (edtl < s.xfer_len) {
            // The initiator sends less than the CDB says (an overflow, reported as a
            // residual). A plain write writes the whole blocks it gets (RFC 7143 11.4.5.2,
            // as libiscsi's residual tests expect); anything else is refused before data moves.
            t->rsp_flags = kRspOverflow;
            t->residual = s.xfer_len - edtl;
            if (scsi::is_plain_write(s.cdb[0])) {
                s.nblocks = edtl / s.lun->block_size;
                s.xfer_len = s.nblocks * s.lun->block_size;
                if (s.nblocks == 0) s.dir = scsi::DataDir::None;
                t->want = s.xfer_len;
            } else {
                s.check_condition(scsi::kIllegalRequest, scsi::kAscInvalidFieldInCdb);
            }
        } else if (s.cdb[0] == 0x89 && edtl != s.xfer_len) {
            // COMPARE AND WRITE moves exactly both halves.
            s.check_condition(scsi::kIllegalRequest, scsi::kAscInvalidFieldInCdb);
        } else {
            t->want = s.xfer_len;
        }
    } else if (s.cdb[0] == 0x89 && s.status == scsi::kGood && t->edtl != 0) {
        s.check_condition(scsi::kIllegalRequest, scsi::kAscInvalidFieldInCdb);  // 0 blocks
    }
    const uint32_t chunk = s.lun ? kChunkBytes - kChunkBytes % s.lun->block_size : kChunkBytes;
    if (s.dir != scsi::DataDir::None && s.xfer_len > chunk) {
        const bool rw = s.dir == scsi::DataDir::Out ? scsi::is_plain_write(s.cdb[0])
                                                    : scsi::is_plain_read(s.cdb[0]);
        if (!rw || t->edtl != s.xfer_len) {
            // Only plain reads and writes with matching lengths go chunk by chunk.
            t->want = 0;
            t->rsp_flags = 0;
            s.check_condition(scsi::kIllegalRequest, scsi::kAscInvalidFieldInCdb);
        } else {
            t->chunked = true;
            t->total = s.xfer_len;
            t->full_lba = s.lba;
            t->chunk_base = 0;
            t->chunk_len = chunk;
            s.nblocks = chunk / s.lun->block_size;
            s.xfer_len = chunk;
        }
    }
    rx_task_ = t;
    const uint32_t need = s.dir == scsi::DataDir::None ? 0 : s.xfer_len;
    if (!get_buffers(t, need)) {
        rx_blocked_ = true;  // retry_blocked() goes on once buffers are back
        return;
    }
    setup_immediate_data(t);
}

void Conn::setup_immediate_data(ConnTask* t) {
    t->state = ConnTask::State::ReceivingData;
    if (rx_data_len_ == 0) return;
    if (!params_.immediate_data || rx_data_len_ > params_.first_burst_length) {
        fatal("immediate data not negotiated or over FirstBurstLength");
        return;
    }
    if (t->want == 0) return;  // dropped (the command is refused or moves no data)
    sink_ = Sink::Task;
    rx_task_ = t;
    rx_task_off_ = 0;
    rx_task_len_ = std::min(rx_data_len_, t->chunk_end());
}

int Conn::retry_blocked() {
    if (!rx_blocked_ || closed_ || closing_after_tx_) return 0;
    ConnTask* t = rx_task_;
    if (!t || t->state != ConnTask::State::WaitBuffers) return 0;
    const uint32_t need = t->scsi.dir == scsi::DataDir::None ? 0 : t->scsi.xfer_len;
    if (!get_buffers(t, need)) return 0;
    rx_blocked_ = false;
    setup_immediate_data(t);
    if (closed_) return 1;
    rx_state_ = RxState::Data;
    if (rx_data_len_ == 0) {
        rx_trailer_need_ = rx_trailer_have_ = 0;
        rx_state_ = RxState::Trailer;
    }
    consume_staging();
    return 1;
}

void Conn::scsi_cmd_complete() {
    ConnTask* t = rx_task_;
    if (!t || t->state != ConnTask::State::ReceivingData) return;  // ignored command
    const Bhs h{rx_hdr_};
    if (t->want) {
        t->received = std::min(rx_data_len_, t->chunk_end());
        if (t->received < t->chunk_end()) {
            if (!h.final()) {  // unsolicited Data-Out would follow: InitialR2T is Yes
                fatal("unsolicited Data-Out announced although InitialR2T=Yes");
                return;
            }
            return send_r2t(t);
        }
    }
    run_task(t);
}

void Conn::send_r2t(ConnTask* t) {
    t->r2t_end = t->received + std::min(t->chunk_end() - t->received, params_.max_burst_length);
    t->data_sn = 0;
    t->state = ConnTask::State::ReceivingData;
    uint8_t* h = t->pdu.hdr;
    std::memset(h, 0, kBhsLen);
    h[0] = uint8_t(TOp::R2T);
    h[1] = kFinal;
    put64(h + off::kLun, t->lun_field);
    put32(h + off::kItt, t->itt);
    put32(h + off::kTtt, t->ttt());
    put_sns(h, stat_sn_);  // R2T does not advance StatSN
    put32(h + 36, t->r2t_sn++);
    put32(h + 40, t->received);
    put32(h + 44, t->r2t_end - t->received);
    t->pdu.src = nullptr;
    t->pdu.srccnt = 0;
    t->pdu.dlen = 0;
    t->last = true;
    t->pdu.finalize(params_.header_digest, params_.data_digest);
    queue_tx(t);
}

void Conn::on_data_out_header(const Bhs& h) {
    const uint32_t ttt = h.ttt();
    const uint32_t idx = ttt & 0xffff;
    ConnTask* t = idx < ntasks_ ? &tasks_[idx] : nullptr;
    if (!t || t->ttt() != ttt || t->itt != h.itt() || t->state != ConnTask::State::ReceivingData ||
        t->r2t_end == 0) {
        send_reject(RejectReason::InvalidPduField, rx_hdr_);
        return;
    }
    const uint32_t offset = h.buffer_offset();
    if (offset != t->received || uint64_t(offset) + rx_data_len_ > t->r2t_end) {
        fatal("Data-Out outside the range of its R2T");
        return;
    }
    if (h.data_sn() != t->data_sn) {
        fatal("Data-Out with a wrong DataSN");
        return;
    }
    sink_ = Sink::Task;
    rx_task_ = t;
    rx_task_off_ = offset - t->chunk_base;
    rx_task_len_ = rx_data_len_;
}

void Conn::data_out_complete() {
    ConnTask* t = rx_task_;
    if (!t || sink_ != Sink::Task) return;
    const Bhs h{rx_hdr_};
    t->received += rx_data_len_;
    ++t->data_sn;
    if (t->received == t->r2t_end) {
        if (!h.final()) {
            fatal("Data-Out sequence complete without the F bit");
            return;
        }
        if (t->received < t->chunk_end()) return send_r2t(t);
        return run_task(t);
    }
    if (h.final()) fatal("Data-Out sequence ended before its R2T's length");
}

void Conn::run_task(ConnTask* t) {
    t->state = ConnTask::State::Executing;
    ++external_;
    if (t->pglun) ++t->pglun->inflight;
    scsi::execute(t->scsi);
}

void Conn::scsi_done(scsi::Task* s, void* arg) {
    auto* t = static_cast<ConnTask*>(arg);
    (void)s;
    Conn* c = t->conn;
    --c->external_;
    if (t->pglun) c->pg_->lun_io_done(t->pglun);
    t->state = ConnTask::State::Responding;
    if (c->closed_ || t->aborted) {
        c->free_task(t);
        if (c->tmf_pending_) {
            --c->tmf_waiting_;
            c->finish_tmf_if_done();
        }
        return;
    }
    if (t->chunked && s->status == scsi::kGood && t->chunk_base + t->chunk_len < t->total) {
        if (s->dir == scsi::DataDir::Out) {  // this chunk is on the bdev: fetch the next one
            c->next_chunk(t);
            t->state = ConnTask::State::ReceivingData;
            return c->send_r2t(t);
        }
        // A read chunk: its Data-In goes out, the next chunk is read once it has left.
        t->state = ConnTask::State::ChunkTx;
        t->din_total = t->total;
        t->din_phase = true;
        c->build_task_pdu(t);
        return c->queue_tx(t);
    }
    if (t->chunked && s->status == scsi::kGood && s->dir == scsi::DataDir::In)
        s->data_in_len = t->total;
    if (t->chunked) s->xfer_len = t->total;  // residuals against the whole command
    c->respond(t);
}

void Conn::respond(ConnTask* t) {
    scsi::Task& s = t->scsi;
    if (t->counted) {  // the window slot opens with this response
        t->counted = false;
        --outstanding_;
    }
    // What goes back as data, and the residual.
    if (s.dir == scsi::DataDir::Out || t->rsp_flags) {
        if (!t->rsp_flags && t->edtl > s.xfer_len && s.dir == scsi::DataDir::Out) {
            t->rsp_flags = kRspUnderflow;
            t->residual = t->edtl - s.xfer_len;
        }
        t->din_total = 0;
    } else {
        const uint32_t produced = s.data_in_len;
        const uint32_t allowed = t->read_flag ? t->edtl : 0;
        t->din_total = std::min(produced, allowed);
        if (produced > allowed) {
            t->rsp_flags = kRspOverflow;
            t->residual = produced - allowed;
        } else if (allowed > produced) {
            t->rsp_flags = kRspUnderflow;
            t->residual = allowed - produced;
        }
        if (!t->read_flag && t->edtl > 0 && produced == 0) {
            t->rsp_flags = kRspUnderflow;
            t->residual = t->edtl;
        }
    }
    if (s.dir == scsi::DataDir::None && !t->rsp_flags && t->edtl > 0 && s.data_in_len == 0) {
        t->rsp_flags = kRspUnderflow;
        t->residual = t->edtl;
    }
    t->stat_sn = stat_sn_++;
    t->state = ConnTask::State::Responding;
    if (!t->chunked) t->din_off = t->din_sn = 0;  // a chunked read goes on where it was
    t->din_phase = t->din_off < t->din_total;
    build_task_pdu(t);
    queue_tx(t);
}

void Conn::build_task_pdu(ConnTask* t) {
    scsi::Task& s = t->scsi;
    uint8_t* h = t->pdu.hdr;
    std::memset(h, 0, kBhsLen);
    const bool good = s.status == scsi::kGood;
    if (t->din_phase) {
        // A chunked read sends what its buffers hold now: up to the chunk's end.
        const uint32_t end =
            t->chunked ? std::min(t->din_total, t->chunk_base + t->chunk_len) : t->din_total;
        const uint32_t len = std::min(end - t->din_off, params_.initiator_mrdsl);
        const bool last_data = t->din_off + len == t->din_total;
        const bool chunk_done = t->din_off + len == end;
        const bool burst_end = (t->din_off + len) % params_.max_burst_length == 0;
        const bool with_status = last_data && good;
        h[0] = uint8_t(TOp::DataIn);
        h[1] = uint8_t((last_data || burst_end ? kFinal : 0) |
                       (with_status ? kDataInStatus | t->rsp_flags : 0));
        if (with_status) h[3] = s.status;
        put64(h + off::kLun, t->lun_field);
        put32(h + off::kItt, t->itt);
        put32(h + off::kTtt, kReservedTag);
        put_sns(h, with_status ? t->stat_sn : 0);
        if (!with_status) put32(h + off::kStatSn, 0);
        put32(h + off::kDataSn, t->din_sn++);
        put32(h + off::kBufferOffset, t->din_off);
        if (with_status) put32(h + 44, t->residual);
        put24(h + off::kDataSegLen, len);
        t->pdu.src = s.iov;
        t->pdu.srccnt = s.iovcnt;
        t->pdu.src_off = t->din_off - (t->chunked ? t->chunk_base : 0);
        t->pdu.dlen = len;
        t->din_off += len;
        if (last_data) t->din_phase = false;
        // The item leaves the send FIFO after its status, or after a chunk (ChunkTx).
        t->last = with_status || (chunk_done && t->state == ConnTask::State::ChunkTx);
    } else {
        h[0] = uint8_t(TOp::ScsiRsp);
        h[1] = uint8_t(kFinal | t->rsp_flags);
        h[2] = 0x00;  // command completed at target
        h[3] = s.status;
        put32(h + off::kItt, t->itt);
        put_sns(h, t->stat_sn);
        put32(h + 36, t->din_sn);  // ExpDataSN: Data-In PDUs sent
        put32(h + 44, t->residual);
        uint32_t dlen = 0;
        if (s.sense_len) {
            put16(t->sense_data, s.sense_len);
            std::memcpy(t->sense_data + 2, s.sense, s.sense_len);
            dlen = 2u + s.sense_len;
        }
        t->sense_iov = {t->sense_data, dlen};
        put24(h + off::kDataSegLen, dlen);
        t->pdu.src = &t->sense_iov;
        t->pdu.srccnt = 1;
        t->pdu.src_off = 0;
        t->pdu.dlen = dlen;
        t->last = true;
    }
    t->pdu.finalize(params_.header_digest, params_.data_digest);
}

// The next chunk of a chunked read or write: the same buffers, the next LBAs.
void Conn::next_chunk(ConnTask* t) {
    scsi::Task& s = t->scsi;
    const uint32_t bs = s.lun->block_size;
    t->chunk_base += t->chunk_len;
    t->chunk_len = std::min(t->chunk_len, t->total - t->chunk_base);
    s.lba = t->full_lba + t->chunk_base / bs;
    s.nblocks = t->chunk_len / bs;
    s.xfer_len = t->chunk_len;
    uint32_t left = t->chunk_len;
    int n = 0;
    for (; n < t->nbufs && left; ++n) {
        s.iov[n].iov_len = std::min(left, kLargeChunk);
        left -= uint32_t(s.iov[n].iov_len);
    }
    s.iovcnt = n;
    s.data_len = t->chunk_len;
}

// --- NOP, Text, Logout ---

void Conn::handle_nop_out() {
    const Bhs h{rx_hdr_};
    if (!h.immediate()) {
        if (h.cmd_sn() != exp_cmd_sn_) return;
        ++exp_cmd_sn_;
    }
    if (h.itt() == kReservedTag) return;  // an answer to our NOP-In, or a ping needing none
    CtlPdu* c = alloc_ctl();
    if (!c) return;
    uint8_t* o = c->pdu.hdr;
    o[0] = uint8_t(TOp::NopIn);
    o[1] = kFinal;
    std::memcpy(o + off::kLun, rx_hdr_ + off::kLun, 8);
    put32(o + off::kItt, h.itt());
    put32(o + off::kTtt, kReservedTag);
    put_sns(o, stat_sn_++);
    send_ctl(c, rx_text_.data(), uint32_t(rx_text_.size()));
}

std::string Conn::send_targets(std::string_view what) const {
    const IscsiSnapshot& snap = pg_->snapshot();
    TextParams out;
    for (const auto& t : snap.targets) {
        if (what != "All" && !(what.empty() && t->name == target_name_) && t->name != what)
            continue;
        if (!snap.visible(*t, initiator_, peer_addr_)) continue;
        out.add("TargetName", t->name);
        for (const auto& [pg_tag, ig] : t->pg_ig_maps) {
            if (!snap.allowed(*t, pg_tag, initiator_, peer_addr_)) continue;
            auto it = snap.portal_groups.find(pg_tag);
            if (it == snap.portal_groups.end() || it->second.is_private) continue;
            for (const Portal& p : it->second.portals) {
                Portal shown = p;
                if (p.host == "0.0.0.0" || p.host == "::" || p.host == "[::]") {
                    shown.host = local_addr_;
                }
                const std::string addr = shown.to_string() + "," + std::to_string(pg_tag);
                bool dup = false;
                for (const auto& [k, v] : out.pairs()) dup |= k == "TargetAddress" && v == addr;
                if (!dup) out.add("TargetAddress", addr);
            }
        }
    }
    return out.serialize();
}

void Conn::handle_text() {
    const Bhs h{rx_hdr_};
    if (!h.immediate()) {
        if (h.cmd_sn() != exp_cmd_sn_) return;
        ++exp_cmd_sn_;
    }
    std::string reply;
    if (h.ttt() != kReservedTag) {
        // The initiator asks for the rest of a long answer (RFC 7143 11.10.4).
        if (h.ttt() != text_ttt_ || text_pending_.empty()) {
            send_reject(RejectReason::InvalidPduField, rx_hdr_);
            return;
        }
        reply.swap(text_pending_);
    } else {
        text_pending_.clear();
        TextParams in;
        std::string err;
        if (!in.parse(rx_text_.data(), rx_text_.size(), &err)) {
            send_reject(RejectReason::ProtocolError, rx_hdr_);
            return;
        }
        TextParams rest;
        for (const auto& [k, v] : in.pairs()) {
            if (k == "SendTargets") {
                reply += send_targets(v);
            } else if (k == "MaxRecvDataSegmentLength") {
                uint64_t n;
                if (parse_number(v, 512, 16777215, &n)) params_.initiator_mrdsl = uint32_t(n);
            } else {
                rest.add(k, "NotUnderstood");
            }
        }
        reply += rest.serialize();
    }
    // Longer than the initiator takes in one PDU: this piece with the C bit and a target
    // transfer tag, the rest when the initiator asks for it with that tag.
    bool more = false;
    if (reply.size() > params_.initiator_mrdsl) {
        text_pending_ = reply.substr(params_.initiator_mrdsl);
        reply.resize(params_.initiator_mrdsl);
        more = true;
        text_ttt_ = (text_ttt_ + 1) & 0x7fffffff;
    }
    CtlPdu* c = alloc_ctl();
    if (!c) return;
    uint8_t* o = c->pdu.hdr;
    o[0] = uint8_t(TOp::TextRsp);
    o[1] = more ? 0x40 : kFinal;  // C bit, or F
    std::memcpy(o + off::kLun, rx_hdr_ + off::kLun, 8);
    put32(o + off::kItt, h.itt());
    put32(o + off::kTtt, more ? text_ttt_ : kReservedTag);
    put_sns(o, stat_sn_++);
    send_ctl(c, reinterpret_cast<const uint8_t*>(reply.data()), uint32_t(reply.size()));
}

void Conn::handle_logout() {
    const Bhs h{rx_hdr_};
    if (!h.immediate()) {
        if (h.cmd_sn() != exp_cmd_sn_) return;
        ++exp_cmd_sn_;
    }
    const uint8_t reason = h.flags() & 0x7f;
    uint8_t response = 0;
    if (reason == 1 && get16(rx_hdr_ + 20) != cid_) response = 1;  // CID not found
    if (reason == 2) response = 2;                                 // recovery not supported
    if (reason > 2) {
        send_reject(RejectReason::ProtocolError, rx_hdr_);
        return;
    }
    CtlPdu* c = alloc_ctl();
    if (!c) return;
    uint8_t* o = c->pdu.hdr;
    o[0] = uint8_t(TOp::LogoutRsp);
    o[1] = kFinal;
    o[2] = response;
    put32(o + off::kItt, h.itt());
    put_sns(o, stat_sn_++);
    put16(o + 40, 0);  // Time2Wait
    put16(o + 42, 0);  // Time2Retain
    send_ctl(c, nullptr, 0);
    if (response == 0) {
        phase_ = ConnPhase::LoggingOut;
        closing_after_tx_ = true;
        rx_blocked_ = true;
    }
}

// --- task management ---

void Conn::handle_tmf() {
    const Bhs h{rx_hdr_};
    if (!h.immediate()) {
        if (h.cmd_sn() != exp_cmd_sn_) return;
        ++exp_cmd_sn_;
    }
    const uint8_t fn = h.flags() & 0x7f;
    const uint32_t lun = decode_lun(h.lun_field());
    uint8_t response = kTmfComplete;
    if (tmf_pending_) {
        response = kTmfRejected;
    } else if (discovery_) {
        response = kTmfNotSupported;
    } else {
        auto abort_if = [&](auto pred) {
            uint32_t waiting = 0;
            for (uint32_t i = 0; i < ntasks_; ++i) {
                ConnTask* t = &tasks_[i];
                if (t->state == ConnTask::State::Free || t->aborted || !pred(t)) continue;
                if (t->state == ConnTask::State::Executing) {
                    t->aborted = true;
                    ++waiting;
                } else if (t->state != ConnTask::State::Responding) {
                    free_task(t);  // waiting for buffers or Data-Out: nothing ran yet
                }
            }
            return waiting;
        };
        uint32_t waiting = 0;
        switch (fn) {
            case kTmfAbortTask: {
                const uint32_t ref = h.ttt();  // Referenced Task Tag
                bool found = false;
                for (uint32_t i = 0; i < ntasks_; ++i) {
                    const ConnTask& t = tasks_[i];
                    found |= t.state != ConnTask::State::Free && t.itt == ref;
                }
                if (!found) {
                    response = kTmfNoTask;
                    break;
                }
                waiting = abort_if([&](ConnTask* t) { return t->itt == ref; });
                break;
            }
            case kTmfAbortTaskSet:
            case kTmfClearTaskSet:
            case kTmfLunReset:
                if (!node_ || !node_->find_lun(lun)) {
                    response = kTmfNoLun;
                    break;
                }
                waiting = abort_if([&](ConnTask* t) { return t->scsi.lun_id == lun; });
                if (fn == kTmfLunReset) scsi::reset_reservation(*node_->find_lun(lun));
                break;
            case kTmfTargetWarmReset:
            case kTmfTargetColdReset:
                waiting = abort_if([](ConnTask*) { return true; });
                if (node_)
                    for (const auto& l : node_->luns) scsi::reset_reservation(*l);
                break;
            case kTmfTaskReassign:
                response = kTmfReassignUnsupported;
                break;
            default:
                response = kTmfNotSupported;
                break;
        }
        if (response == kTmfComplete && waiting) {
            std::memcpy(tmf_bhs_, rx_hdr_, kBhsLen);
            tmf_pending_ = true;
            tmf_waiting_ = waiting;
            return;
        }
    }
    CtlPdu* c = alloc_ctl();
    if (!c) return;
    uint8_t* o = c->pdu.hdr;
    o[0] = uint8_t(TOp::TaskMgmtRsp);
    o[1] = kFinal;
    o[2] = response;
    put32(o + off::kItt, h.itt());
    put_sns(o, stat_sn_++);
    send_ctl(c, nullptr, 0);
    if (fn == kTmfTargetColdReset && response == kTmfComplete) {
        closing_after_tx_ = true;
        rx_blocked_ = true;
    }
}

void Conn::finish_tmf_if_done() {
    if (!tmf_pending_ || tmf_waiting_ > 0 || closed_) return;
    tmf_pending_ = false;
    const Bhs h{tmf_bhs_};
    CtlPdu* c = alloc_ctl();
    if (!c) return;
    uint8_t* o = c->pdu.hdr;
    o[0] = uint8_t(TOp::TaskMgmtRsp);
    o[1] = kFinal;
    o[2] = kTmfComplete;
    put32(o + off::kItt, h.itt());
    put_sns(o, stat_sn_++);
    send_ctl(c, nullptr, 0);
    if ((h.flags() & 0x7f) == kTmfTargetColdReset) {
        closing_after_tx_ = true;
        rx_blocked_ = true;
    }
}

// --- timers and configuration changes ---

void Conn::on_timer(uint64_t now) {
    if (closed_) return;
    const IscsiOptions& o = pg_->snapshot().options;
    if (phase_ == ConnPhase::Login) {
        if (now - created_ns_ > 30ull * 1'000'000'000) {
            ++pg_->stats().login_timeouts;
            close("no login within 30 s");
        }
        return;
    }
    if (phase_ != ConnPhase::FullFeature || o.nop_in_interval == 0) return;
    if (nop_sent_ns_ && now - nop_sent_ns_ > uint64_t(o.nop_timeout) * 1'000'000'000) {
        ++pg_->stats().nop_timeouts;
        close("no answer to NOP-In within nop_timeout");
        return;
    }
    if (!nop_sent_ns_ && now - last_rx_ns_ > uint64_t(o.nop_in_interval) * 1'000'000'000) {
        CtlPdu* c = alloc_ctl();
        if (!c) return;
        uint8_t* h = c->pdu.hdr;
        h[0] = uint8_t(TOp::NopIn);
        h[1] = kFinal;
        put32(h + off::kItt, kReservedTag);
        put32(h + off::kTtt, nop_ttt_++ & 0x7fffffff);
        put_sns(h, stat_sn_);  // not advanced
        send_ctl(c, nullptr, 0);
        nop_sent_ns_ = now;
    }
}

void Conn::on_snapshot() {
    if (closed_ || discovery_ || target_name_.empty() || phase_ == ConnPhase::Login) return;
    auto n = pg_->find_target(target_name_);
    if (!n) {
        close("target node deleted");
        return;
    }
    if (node_ && n != node_) {
        // LUNs added or removed, or a LUN's capacity changed: the initiator hears of it through
        // a unit attention on its next command (SAM-5 5.14, SPC-4 7.5.4).
        bool luns_changed = node_->luns.size() != n->luns.size();
        bool capacity_changed = false;
        for (size_t i = 0; i < n->luns.size() && !luns_changed; ++i) {
            luns_changed |= n->luns[i]->id != node_->luns[i]->id ||
                            n->luns[i]->shared != node_->luns[i]->shared;
            capacity_changed |= n->luns[i]->num_blocks != node_->luns[i]->num_blocks;
        }
        if (luns_changed) {
            ua_asc_ = scsi::kAscReportedLunsDataChanged;
        } else if (capacity_changed && ua_asc_ == 0) {
            ua_asc_ = scsi::kAscCapacityDataChanged;
        }
    }
    node_ = std::move(n);
}

}  // namespace nocstor::iscsi_tgt
