#include "modules/remote/remote_port.h"

#include "modules/iov_util.h"
#include "modules/remote/remote_bdev.h"
#include "modules/vbdev.h"
#include "util/log.h"
#include "util/tick.h"

#include <array>
#include <cassert>
#include <cerrno>

namespace nocstor::remote {

namespace {

constexpr int kMaxClusters = 1024;
std::array<std::atomic<RemotePort*>, kMaxClusters> g_ports{};

constexpr uint64_t kTimeoutCheckUs = 10'000;

uint64_t next_pow2(uint64_t v) {
    uint64_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

bool in_arena(const NocEndpoint& ep, const void* p, size_t len) {
    auto* b = static_cast<const std::byte*>(p);
    return b >= ep.arena() && len <= ep.arena_size() &&
           size_t(b - ep.arena()) <= ep.arena_size() - len;
}

}  // namespace

// One request of a remote bdev, from submission until Y's answer (or, after a timeout, until
// Y's late answer frees its buffers: a zombie whose `io` is null).
struct RemotePort::ClientReq {
    BdevIo* io = nullptr;
    RemoteBdev* bdev = nullptr;
    Buffer bounce;
    Buffer sgl;
    uint64_t deadline_ns = 0;
    uint32_t gen = 0;
    uint32_t target_id = 0;
    uint16_t dst = 0;
    bool in_use = false;
    bool zero_copy = false;  // the peer reads or writes the caller's own buffers
    bool abort_sent = false;
};

// One request served for another cluster, from arrival until its completion is queued.
struct RemotePort::ServerReq {
    NocDescriptor d{};
    int src = 0;
    RemoteExport* exp = nullptr;
    RemotePort* port = nullptr;
    BdevIoWaitEntry wait;
    int iovcnt = 0;
    bool waiting = false;  // for a bdev_io (the only state an abort can cut short)
    bool aborted = false;
    bool in_use = false;
    iovec iov[kMaxSegments];
};

RemotePort::RemotePort(Runtime& rt, int cluster)
    : rt_(rt),
      cluster_(cluster),
      thread_(rt.noc_thread(cluster)),
      ep_(&rt.noc().endpoint(cluster)),
      buffers_(rt.noc().buffers(cluster)),
      outbox_(size_t(rt.noc().clusters())),
      client_(kClientSlots),
      server_(kServerSlots) {
    // Everything that can wait for a ring at once: each request slot's request and abort, and
    // each served request's completion.
    const uint64_t cap = next_pow2(2 * kClientSlots + kServerSlots);
    for (auto& o : outbox_) o.ring.resize(cap);
    client_free_.reserve(kClientSlots);
    for (uint32_t i = kClientSlots; i-- > 0;) client_free_.push_back(i);
    server_free_.reserve(kServerSlots);
    for (uint32_t i = kServerSlots; i-- > 0;) server_free_.push_back(i);
    for (auto& s : server_) s.port = this;
}

RemotePort::~RemotePort() = default;

void RemotePort::ensure_pollers() {
    if (flush_poller_) return;
    coarse_now_ns_ = now_ns();
    flush_poller_ = thread_->register_tail_poller("remote_flush", [this] { return flush(); });
    timeout_poller_ = thread_->register_poller(
        "remote_timeouts", [this] { return check_timeouts(); }, kTimeoutCheckUs);
}

void RemotePort::stop() {
    if (flush_poller_) thread_->unregister_poller(flush_poller_);
    if (timeout_poller_) thread_->unregister_poller(timeout_poller_);
    flush_poller_ = timeout_poller_ = nullptr;
    buffers_.flush();
}

void RemotePort::push(int dst, const NocDescriptor& d) {
    Outbox& o = outbox_[size_t(dst)];
    assert(o.tail - o.head < o.ring.size());
    o.ring[o.tail++ & (o.ring.size() - 1)] = d;
}

int RemotePort::flush() {
    int sent = 0;
    bool left = false;
    for (size_t dst = 0; dst < outbox_.size(); ++dst) {
        Outbox& o = outbox_[dst];
        const uint64_t mask = o.ring.size() - 1;
        while (o.head != o.tail) {
            const uint64_t at = o.head & mask;
            const size_t n = size_t(std::min<uint64_t>(o.tail - o.head, o.ring.size() - at));
            const size_t k = ep_->send_batch(int(dst), &o.ring[at], n);
            o.head += k;
            sent += int(k);
            if (k < n) {  // the ring is full: the rest waits for the next pass
                left = true;
                break;
            }
        }
    }
    // Busy while something waits, so the reactor does not sleep on descriptors of its own.
    return sent + (left ? 1 : 0);
}

// --- client side (cluster X) ---

void RemotePort::submit(RemoteBdev* b, BdevIo* io) {
    ensure_pollers();
    if (client_free_.empty()) {
        RemoteCounters::bump(stats_.no_slot);
        return finish(io, IoStatus::NoMemory, 0, 0);  // the bdev layer retries it
    }
    const uint32_t slot = client_free_.back();
    ClientReq& r = client_[slot];
    r = ClientReq{};
    r.io = io;
    r.bdev = b;
    r.gen = ++client_gen_;
    r.target_id = b->export_id();
    r.dst = uint16_t(b->owner_cluster());
    if (r.target_id == 0) {  // the owner's process is down: fail fast, the host may retry
        RemoteCounters::bump(stats_.peer_down_failures);
        RemoteCounters::bump(b->counters().peer_down_failures);
        return finish(io, IoStatus::NvmeError, 0, kScNamespaceNotReady);
    }
    NocDescriptor d{};
    d.opcode = opcode_of(io->type);
    d.cid = uint16_t(slot);
    d.user_ctx = make_ctx(r.gen, slot);
    d.target_id = r.target_id;
    d.slba = io->offset_blocks;
    d.nlb = uint32_t(io->num_blocks);
    if (has_data(d.opcode) && !map_data(r, io, d)) {
        release(r);
        return finish(io, IoStatus::NoMemory, 0, 0);
    }
    client_free_.pop_back();
    r.in_use = true;
    if (in_flight_++ == 0 && timeout_poller_paused_) {
        thread_->resume_poller(timeout_poller_);
        timeout_poller_paused_ = false;
        coarse_now_ns_ = now_ns();
    }
    // A coarse clock (the timeout poller's) is precise enough for deadlines and costs no clock
    // read per I/O; one period is added so that no request times out early.
    r.deadline_ns = coarse_now_ns_ + b->timeout_ns() + kTimeoutCheckUs * 1000;
    push(r.dst, d);
    RemoteCounters::bump(stats_.requests_sent);
}

// Arena offsets for the data: the caller's buffers when they are all in the arena (no copy),
// else one arena buffer that a write is copied into and a read out of.
bool RemotePort::map_data(ClientReq& r, BdevIo* io, NocDescriptor& d) {
    RemoteCounters& c = r.bdev->counters();
    const uint64_t len = io->num_blocks * io->bdev->block_size;
    bool arena = io->iovcnt <= int(kMaxSegments);
    for (int i = 0; arena && i < io->iovcnt; ++i)
        arena = in_arena(*ep_, io->iovs[i].iov_base, io->iovs[i].iov_len);
    if (arena && io->iovcnt <= 2) {
        d.iov_cnt = uint8_t(io->iovcnt);
        for (int i = 0; i < io->iovcnt; ++i) {
            d.buf_off[i] = ep_->arena_offset(io->iovs[i].iov_base);
            d.buf_len[i] = uint32_t(io->iovs[i].iov_len);
        }
        r.zero_copy = true;
        RemoteCounters::bump(c.zero_copy);
        return true;
    }
    if (arena) {
        r.sgl = buffers_.get(BufClass::Small);
        if (!r.sgl) return false;
        auto* sge = reinterpret_cast<NocSge*>(r.sgl.data);
        for (int i = 0; i < io->iovcnt; ++i)
            sge[i] = {ep_->arena_offset(io->iovs[i].iov_base), uint32_t(io->iovs[i].iov_len), 0};
        d.flags |= kNocFlagSglIndirect;
        d.iov_cnt = uint8_t(io->iovcnt);
        d.buf_off[0] = r.sgl.offset;
        d.buf_len[0] = uint32_t(io->iovcnt * sizeof(NocSge));
        r.zero_copy = true;
        RemoteCounters::bump(c.zero_copy);
        RemoteCounters::bump(c.indirect_sgl);
        return true;
    }
    const BufferPool& pool = buffers_.pool();
    const BufClass cls =
        len <= pool.buffer_size(BufClass::Small) ? BufClass::Small : BufClass::Large;
    if (len > pool.buffer_size(cls)) return false;  // max_transfer_blocks prevents it
    r.bounce = buffers_.get(cls);
    if (!r.bounce) return false;
    if (io->type == IoType::Write) iov_copy_to_buf(io->iovs, io->iovcnt, r.bounce.data, len);
    d.iov_cnt = 1;
    d.buf_off[0] = r.bounce.offset;
    d.buf_len[0] = uint32_t(len);
    RemoteCounters::bump(c.bounced);
    RemoteCounters::bump(c.bounced_bytes, len);
    return true;
}

void RemotePort::release(ClientReq& r) {
    if (r.bounce) buffers_.put(r.bounce);
    if (r.sgl) buffers_.put(r.sgl);
    r.bounce = r.sgl = Buffer{};
    if (r.in_use) {
        r.in_use = false;
        client_free_.push_back(uint32_t(&r - client_.data()));
        --in_flight_;
    }
}

void RemotePort::on_completion(const NocDescriptor& d) {
    RemoteCounters::bump(stats_.completions_received);
    if (d.cid >= kClientSlots || !client_[d.cid].in_use ||
        make_ctx(client_[d.cid].gen, d.cid) != d.user_ctx) {
        RemoteCounters::bump(stats_.stray_completions);
        return;
    }
    ClientReq& r = client_[d.cid];
    BdevIo* io = r.io;
    if (!io) {  // it timed out: only its buffers were waiting for this
        if (r.bdev) RemoteCounters::bump(r.bdev->counters().late_completions);
        return release(r);
    }
    IoStatus status = IoStatus(d.status);
    if (status == IoStatus::Aborted && r.abort_sent) status = IoStatus::Timeout;
    if (status == IoStatus::Success && r.bounce && io->type == IoType::Read)
        iov_copy_from_buf(io->iovs, io->iovcnt, r.bounce.data,
                          io->num_blocks * io->bdev->block_size);
    release(r);
    finish(io, status, uint8_t(d.result >> 8), uint8_t(d.result));
}

// Completes the caller's I/O on the thread that submitted it.
void RemotePort::finish(BdevIo* io, IoStatus status, uint8_t sct, uint8_t sc) {
    auto complete = [](BdevIo* io, IoStatus status, uint8_t sct, uint8_t sc) {
        if (status == IoStatus::NvmeError)
            bdev_io_complete_nvme(io, sct, sc);
        else
            bdev_io_complete(io, status);
    };
    Thread* owner = io->module_channel->thread();
    if (owner == Thread::current()) return complete(io, status, sct, sc);
    owner->send([complete, io, status, sct, sc] { complete(io, status, sct, sc); });
}

int RemotePort::check_timeouts() {
    if (in_flight_ == 0) {
        thread_->pause_poller(timeout_poller_);
        timeout_poller_paused_ = true;
        return 0;
    }
    const uint64_t now = coarse_now_ns_ = now_ns();
    int n = 0;
    for (ClientReq& r : client_) {
        if (!r.in_use || !r.io || now < r.deadline_ns) continue;
        RemoteBdev* b = r.bdev;
        if (!r.abort_sent) {
            // Y drops the request if it has not reached the base bdev yet and answers it at once.
            NocDescriptor a{};
            a.opcode = kOpAbort;
            a.cid = uint16_t(&r - client_.data());
            a.user_ctx = make_ctx(r.gen, a.cid);
            a.target_id = r.target_id;
            push(r.dst, a);
            r.abort_sent = true;
            RemoteCounters::bump(b->counters().aborts_sent);
            RemoteCounters::bump(b->counters().timeouts);
            NOC_WARN("remote", "{}: an I/O to cluster {} got no answer in {} ms; aborting it",
                     b->name, r.dst, b->timeout_ns() / 1'000'000);
            // The peer may still read or write the caller's own buffers until it answers:
            // give the abort one more timeout before failing such a request.
            if (r.zero_copy) {
                r.deadline_ns = now + b->timeout_ns();
                continue;
            }
        } else {
            NOC_ERROR("remote",
                      "{}: cluster {} answered neither an I/O nor its abort; failing the I/O (its "
                      "buffers may still be written by that cluster)",
                      b->name, r.dst);
        }
        // The slot stays taken (a zombie) with its arena buffers until the late answer.
        BdevIo* io = r.io;
        r.io = nullptr;
        finish(io, IoStatus::Timeout, 0, 0);
        ++n;
    }
    return n;
}

uint32_t RemotePort::slots_in_use(const RemoteBdev* b) const {
    uint32_t n = 0;
    for (const ClientReq& r : client_) n += r.in_use && r.bdev == b;
    return n;
}

void RemotePort::forget(const RemoteBdev* b) {
    for (ClientReq& r : client_)
        if (r.in_use && r.bdev == b) r.bdev = nullptr;
}

void RemotePort::fail_peer(int dst) {
    Outbox& o = outbox_[size_t(dst)];
    o.head = o.tail;  // its successor discards what reached the ring; the rest is never sent
    uint32_t failed = 0;
    for (ClientReq& r : client_) {
        if (!r.in_use || r.dst != dst) continue;
        BdevIo* io = r.io;
        RemoteBdev* b = r.bdev;
        r.io = nullptr;
        release(r);  // the dead process can no longer touch the buffers
        if (io) {
            ++failed;
            RemoteCounters::bump(stats_.peer_down_failures);
            if (b) RemoteCounters::bump(b->counters().peer_down_failures);
            finish(io, IoStatus::NvmeError, 0, kScNamespaceNotReady);
        }
    }
    if (failed)
        NOC_WARN("remote", "cluster {}: its process died; failed {} I/O waiting for it", dst,
                 failed);
}

// --- server side (cluster Y) ---

void RemotePort::announce_resize(int dst, uint32_t id, uint64_t blocks) {
    ensure_pollers();
    NocDescriptor d{};
    d.opcode = kOpResized;
    d.target_id = id;
    d.slba = blocks;
    push(dst, d);
}

void RemotePort::on_descriptor(int src, const NocDescriptor& d) {
    if (d.flags & kNocFlagCompletion) return on_completion(d);
    ensure_pollers();
    if (d.opcode == kOpAbort) return on_abort(src, d);
    if (d.opcode == kOpResized) {
        rt_.control_thread()->send(
            [id = d.target_id, blocks = d.slba] { remote_export_resized(id, blocks); });
        return;
    }
    on_request(src, d);
}

void RemotePort::on_request(int src, const NocDescriptor& d) {
    auto reject = [&](IoStatus status) {
        NocDescriptor c = d;
        c.flags = kNocFlagCompletion;
        c.status = uint16_t(status);
        c.result = 0;
        push(src, c);
    };
    if (server_free_.empty()) return reject(IoStatus::NoMemory);  // X's bdev layer retries
    RemoteExport* exp = export_lookup(d.target_id);
    if (!exp || exp->cluster != cluster_) {
        RemoteCounters::bump(stats_.unknown_export);
        return reject(IoStatus::Aborted);
    }
    ServerReq* s = &server_[server_free_.back()];
    s->d = d;
    s->src = src;
    s->exp = exp;
    s->iovcnt = 0;
    s->aborted = s->waiting = false;
    if (has_data(d.opcode)) {
        const NocSge* sge = nullptr;
        const size_t n = d.iov_cnt;
        bool ok = n > 0 && n <= kMaxSegments;
        if (ok && (d.flags & kNocFlagSglIndirect)) {
            ok = d.buf_off[0] <= ep_->arena_size() &&
                 n * sizeof(NocSge) <= ep_->arena_size() - d.buf_off[0];
            if (ok) sge = reinterpret_cast<const NocSge*>(ep_->arena_ptr(d.buf_off[0]));
        } else {
            ok = ok && n <= 2;
        }
        for (size_t i = 0; ok && i < n; ++i) {
            const uint64_t off = sge ? sge[i].offset : d.buf_off[i];
            const uint64_t len = sge ? sge[i].length : d.buf_len[i];
            ok = off <= ep_->arena_size() && len <= ep_->arena_size() - off;
            s->iov[i] = {ep_->arena_ptr(off), size_t(len)};
        }
        if (!ok) {
            RemoteCounters::bump(stats_.bad_descriptors);
            return reject(IoStatus::Failed);
        }
        s->iovcnt = int(n);
    }
    server_free_.pop_back();
    s->in_use = true;
    if (!exp->ch) exp->ch = bdev_get_io_channel(exp->desc);
    serve(s);
}

void RemotePort::serve(ServerReq* s) {
    if (s->aborted) return answer(s, IoStatus::Aborted);
    const NocDescriptor& d = s->d;
    BdevDesc* desc = s->exp->desc;
    IoChannel* ch = s->exp->ch;
    int rc;
    switch (d.opcode) {
        case kNocOpRead:
            rc = bdev_readv(desc, ch, s->iov, s->iovcnt, d.slba, d.nlb, served, s);
            break;
        case kNocOpWrite:
            rc = bdev_writev(desc, ch, s->iov, s->iovcnt, d.slba, d.nlb, served, s);
            break;
        case kNocOpFlush:
            rc = bdev_flush(desc, ch, d.slba, d.nlb, served, s);
            break;
        case kNocOpDsm:
            rc = bdev_unmap(desc, ch, d.slba, d.nlb, served, s);
            break;
        case kNocOpWriteZeroes:
            rc = bdev_write_zeroes(desc, ch, d.slba, d.nlb, served, s);
            break;
        case kOpReset:
            rc = bdev_reset(desc, ch, served, s);
            break;
        default:
            rc = -ENOTSUP;
            break;
    }
    if (rc == -ENOMEM) {
        s->waiting = true;
        s->wait.cb = [](void* arg) {
            auto* s = static_cast<ServerReq*>(arg);
            s->waiting = false;
            s->port->serve(s);
        };
        s->wait.arg = s;
        bdev_queue_io_wait(ch, &s->wait);
        return;
    }
    if (rc) answer(s, status_from_submit_rc(rc));
}

void RemotePort::served(BdevIo* io, bool, void* arg) {
    auto* s = static_cast<ServerReq*>(arg);
    const IoStatus status = io->status;
    const uint32_t result =
        status == IoStatus::NvmeError ? uint32_t(io->nvme_sct) << 8 | io->nvme_sc : 0;
    bdev_free_io(io);
    s->port->answer(s, status, result);
}

void RemotePort::answer(ServerReq* s, IoStatus status, uint32_t result) {
    NocDescriptor c = s->d;
    c.flags = kNocFlagCompletion;
    c.status = uint16_t(status);
    c.result = result;
    push(s->src, c);
    s->in_use = false;
    server_free_.push_back(uint32_t(s - server_.data()));
    RemoteCounters::bump(stats_.requests_served);
}

void RemotePort::on_abort(int src, const NocDescriptor& d) {
    // Only a request still waiting for a bdev_io can be cut short; one at the base bdev is
    // answered when the base completes it.
    for (ServerReq& s : server_) {
        if (s.in_use && s.waiting && s.src == src && s.d.cid == d.cid &&
            s.d.user_ctx == d.user_ctx) {
            s.aborted = true;  // answered Aborted when its wait entry fires
            return;
        }
    }
}

// --- the table of ports ---

RemotePort* port_of(int cluster) {
    return cluster >= 0 && cluster < kMaxClusters
               ? g_ports[size_t(cluster)].load(std::memory_order_acquire)
               : nullptr;
}

RemotePort* ports_start(int cluster) {
    if (RemotePort* p = port_of(cluster)) return p;
    Runtime* rt = Runtime::instance();
    if (!rt || cluster < 0 || cluster >= rt->noc().clusters()) return nullptr;
    auto* p = new RemotePort(*rt, cluster);
    g_ports[size_t(cluster)].store(p, std::memory_order_release);
    return p;
}

void ports_stop(std::function<void()> done) {
    std::vector<RemotePort*> ports;
    for (auto& slot : g_ports)
        if (RemotePort* p = slot.load(std::memory_order_acquire)) ports.push_back(p);
    if (ports.empty()) return done();
    std::vector<Thread*> threads;
    for (RemotePort* p : ports) threads.push_back(p->thread());
    run_on_threads(
        threads,
        [ports](Thread* t) {
            for (RemotePort* p : ports)
                if (p->thread() == t) p->stop();
        },
        [ports, done] {
            for (RemotePort* p : ports) {
                g_ports[size_t(p->cluster())].store(nullptr, std::memory_order_release);
                delete p;
            }
            done();
        });
}

void install_noc_handlers() {
    auto handler = [](int cluster, int src, const NocDescriptor& d) {
        RemotePort* p = port_of(cluster);
        if (!p) {
            NOC_WARN("remote",
                     "cluster {}: remote I/O descriptor from cluster {} before any remote "
                     "bdev exists; dropped",
                     cluster, src);
            return;
        }
        p->on_descriptor(src, d);
    };
    for (uint8_t op :
         {uint8_t(kNocOpFlush), uint8_t(kNocOpWrite), uint8_t(kNocOpRead),
          uint8_t(kNocOpWriteZeroes), uint8_t(kNocOpDsm), kOpReset, kOpAbort, kOpResized})
        noc_register_default_handler(op, handler);
}

}  // namespace nocstor::remote
