// The vhost-user messages of a blk controller's session (QEMU docs/interop/vhost-user.rst).
// Control thread. A malformed message ends the session; a well-formed one that cannot be
// honoured gets a failed REPLY_ACK where the front-end asked for one.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/log.h"
#include "vhost/blk_controller.h"

namespace nocstor::vhost {

namespace {

constexpr uint32_t kSizeMax = 1u << 20;            // bytes per segment
constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per discard / write zeroes

}  // namespace

uint64_t BlkController::offered_features() const {
    uint64_t f = bit(kVersion1) | bit(kProtocolFeatures) | bit(kRingIndirectDesc) |
                 bit(kRingEventIdx) | bit(kBlkSizeMax) | bit(kBlkSegMax) | bit(kBlkBlkSize) |
                 bit(kBlkFlush) | bit(kBlkConfigWce) | bit(kBlkMq);
    if (p_.readonly) f |= bit(kBlkRo);
    const BlkDisk d = disk();
    if (d.discard) f |= bit(kBlkDiscard);
    if (d.write_zeroes) f |= bit(kBlkWriteZeroes);
    return f;
}

uint64_t BlkController::offered_protocol_features() const {
    return bit(kPfMq) | bit(kPfReplyAck) | bit(kPfBackendReq) | bit(kPfConfig) |
           bit(kPfInflightShmfd) | bit(kPfResetDevice) | bit(kPfStatus);
}

BlkConfig BlkController::config_space() const {
    BlkConfig c{};
    const uint32_t bs = bdev_->block_size;
    c.capacity = bdev_->num_blocks * bs / kSectorSize;
    c.size_max = kSizeMax;
    c.seg_max = BlkQueue::kSegMax;
    c.blk_size = bs;
    c.writeback = writeback_ ? 1 : 0;
    c.num_queues = uint16_t(p_.num_queues);
    c.max_discard_sectors = kMaxDiscardSectors;
    c.max_discard_seg = 1;
    c.discard_sector_alignment = bs / kSectorSize;
    c.max_write_zeroes_sectors = kMaxDiscardSectors;
    c.max_write_zeroes_seg = 1;
    return c;
}

void BlkController::reply_u64(uint32_t req, uint64_t v) {
    if (!send_reply(conn_fd_, req, &v, sizeof(v))) NOC_WARN("vhost", "{}: cannot reply", p_.name);
}

void BlkController::ack(const Message& m, bool ok) {
    if ((m.hdr.flags & kFlagNeedReply) && (protocol_features_ & bit(kPfReplyAck)))
        reply_u64(m.hdr.request, ok ? 0 : 1);
}

void BlkController::handle(Message& m) {
    const uint32_t req = m.hdr.request;
    NOC_DEBUG("vhost", "{}: {} ({} bytes, {} fds)", p_.name, req_name(req), m.hdr.size, m.nfds);
    // The reply-ack of the messages finished later, after queues stopped.
    auto later_ack = [this, flags = m.hdr.flags, req](bool ok) {
        Message h;
        h.hdr.request = req;
        h.hdr.flags = flags;
        ack(h, ok);
    };
    const bool protocol_features_on = features_ & bit(kProtocolFeatures);
    auto queue_index = [&](uint32_t idx) {
        if (idx < vqs_.size()) return true;
        NOC_WARN("vhost", "{}: {} for queue {} (the controller has {})", p_.name, req_name(req),
                 idx, vqs_.size());
        return false;
    };

    switch (static_cast<Req>(req)) {
        case Req::GetFeatures:
            return reply_u64(req, offered_features());
        case Req::GetProtocolFeatures:
            return reply_u64(req, offered_protocol_features());
        case Req::GetQueueNum:
            return reply_u64(req, p_.num_queues);
        case Req::GetStatus:
            return reply_u64(req, status_);
        case Req::SetOwner:
        case Req::SetVringEndian:  // little-endian only, which every modern front-end uses
            return ack(m, static_cast<Req>(req) == Req::SetOwner || m.as<VringState>().num == 1);
        case Req::SetStatus:
            status_ = uint8_t(m.u64());
            return ack(m, true);
        case Req::SetProtocolFeatures: {
            const uint64_t f = m.u64();
            protocol_features_ = f & offered_protocol_features();
            if (f != protocol_features_)
                NOC_WARN("vhost", "{}: front-end set protocol features {:#x} we did not offer",
                         p_.name, f & ~offered_protocol_features());
            return ack(m, f == protocol_features_);
        }
        case Req::SetFeatures: {
            const uint64_t f = m.u64();
            const uint64_t ok = f & offered_features();
            if (f != ok)
                NOC_WARN("vhost", "{}: front-end set features {:#x} we did not offer", p_.name,
                         f & ~offered_features());
            return quiesce([this, ok, later_ack, f] {
                features_ = ok;
                features_set_ = true;
                later_ack(f == ok);
            });
        }
        case Req::ResetOwner:
        case Req::ResetDevice:
            return quiesce([this, later_ack] {
                for (Vq& v : vqs_) {
                    if (v.kick >= 0) ::close(v.kick);
                    if (v.call >= 0) ::close(v.call);
                    v.kick = v.call = -1;
                    v.kicked = v.enabled = v.addr_set = false;
                    v.base = 0;
                }
                features_set_ = false;
                status_ = 0;
                later_ack(true);
            });
        case Req::SetMemTable:
            if (!handle_mem_table(m)) return;
            return;
        case Req::SetVringNum: {
            const auto s = m.as<VringState>();
            if (!queue_index(s.index)) return ack(m, false);
            if (s.num == 0 || s.num > kMaxQueueSize || (s.num & (s.num - 1))) {
                NOC_WARN("vhost", "{}: queue {} size {} is not a power of two up to {}", p_.name,
                         s.index, s.num, kMaxQueueSize);
                return ack(m, false);
            }
            return quiesce(
                [this, s, later_ack] {
                    vqs_[s.index].num = uint16_t(s.num);
                    later_ack(true);
                },
                int(s.index));
        }
        case Req::SetVringAddr: {
            const auto a = m.as<VringAddr>();
            if (!queue_index(a.index)) return ack(m, false);
            return quiesce(
                [this, a, later_ack] {
                    vqs_[a.index].addr = a;
                    vqs_[a.index].addr_set = true;
                    later_ack(true);
                },
                int(a.index));
        }
        case Req::SetVringBase: {
            const auto s = m.as<VringState>();
            if (!queue_index(s.index)) return ack(m, false);
            return quiesce(
                [this, s, later_ack] {
                    vqs_[s.index].base = uint16_t(s.num);
                    later_ack(true);
                },
                int(s.index));
        }
        case Req::GetVringBase: {
            const auto s = m.as<VringState>();
            if (!queue_index(s.index)) {
                // The front-end waits for an answer: give it one rather than hang it.
                const VringState r{s.index, 0};
                send_reply(conn_fd_, req, &r, sizeof(r));
                return;
            }
            // Stopping the ring: its requests finish first, then the fds are dropped.
            return quiesce(
                [this, idx = s.index, req] {
                    Vq& v = vqs_[idx];
                    v.kicked = false;
                    if (v.kick >= 0) ::close(v.kick);
                    if (v.call >= 0) ::close(v.call);
                    v.kick = v.call = -1;
                    const VringState r{idx, v.base};
                    send_reply(conn_fd_, req, &r, sizeof(r));
                },
                int(s.index));
        }
        case Req::SetVringKick:
        case Req::SetVringCall:
        case Req::SetVringErr: {
            const uint64_t v = m.u64();
            const uint32_t idx = uint32_t(v & 0xff);
            const int fd = (v & kVringNoFd) ? -1 : m.take_fd(0);
            if (!(v & kVringNoFd) && fd < 0) {
                NOC_WARN("vhost", "{}: {} without its file descriptor", p_.name, req_name(req));
                return ack(m, false);
            }
            if (!queue_index(idx) || static_cast<Req>(req) == Req::SetVringErr) {
                if (fd >= 0) ::close(fd);
                return ack(m, static_cast<Req>(req) == Req::SetVringErr);
            }
            const bool kick = static_cast<Req>(req) == Req::SetVringKick;
            return quiesce(
                [this, idx, fd, kick, later_ack, protocol_features_on] {
                    Vq& q = vqs_[idx];
                    int& slot = kick ? q.kick : q.call;
                    if (slot >= 0) ::close(slot);
                    slot = fd;
                    if (kick) {
                        q.kicked = true;
                        // Without VHOST_USER_F_PROTOCOL_FEATURES a ring runs as soon as it is
                        // kicked.
                        if (!protocol_features_on) q.enabled = true;
                    }
                    later_ack(true);
                },
                int(idx));
        }
        case Req::SetVringEnable: {
            const auto s = m.as<VringState>();
            if (!queue_index(s.index)) return ack(m, false);
            if (s.num) {
                vqs_[s.index].enabled = true;
                maybe_start(s.index);
                return ack(m, true);
            }
            return quiesce(
                [this, s, later_ack] {
                    vqs_[s.index].enabled = false;
                    later_ack(true);
                },
                int(s.index));
        }
        case Req::GetConfig:
            handle_get_config(m);
            return;
        case Req::SetConfig:
            handle_set_config(m);
            return;
        case Req::GetInflightFd:
            handle_get_inflight(m);
            return;
        case Req::SetInflightFd:
            handle_set_inflight(m);
            return;
        case Req::SetBackendReqFd: {
            // The channel for config-change notices (a resized bdev); the fd is ours now.
            const int fd = m.nfds ? m.take_fd(0) : -1;
            if (backend_fd_ >= 0) ::close(backend_fd_);
            backend_fd_ = fd;
            return ack(m, fd >= 0);
        }
        default:
            NOC_WARN("vhost", "{}: unsupported request {} ({})", p_.name, req, req_name(req));
            return ack(m, false);
    }
}

bool BlkController::handle_mem_table(Message& m) {
    const auto& t = m.as<MemTable>();
    if (m.hdr.size < 8 || t.nregions > kMaxMemRegions ||
        m.hdr.size < 8 + t.nregions * sizeof(MemRegion)) {
        disconnect("SET_MEM_TABLE with a malformed region table");
        return false;
    }
    int fds[kMaxFds];
    const size_t nfds = m.nfds;
    for (size_t i = 0; i < nfds; ++i) fds[i] = m.take_fd(i);
    std::string err;
    auto mem = GuestMemory::map(t, fds, nfds, &err);
    if (!mem) {
        NOC_ERROR("vhost", "{}: SET_MEM_TABLE: {}", p_.name, err);
        ack(m, false);
        return false;
    }
    uint64_t total = 0;
    for (const auto& r : mem->regions()) total += r.size;
    NOC_INFO("vhost", "{}: guest memory: {} region(s), {} MiB", p_.name, mem->regions().size(),
             total >> 20);
    const uint32_t flags = m.hdr.flags, req = m.hdr.request;
    quiesce([this, mem = std::move(mem), flags, req] {
        mem_ = mem;
        Message h;
        h.hdr.request = req;
        h.hdr.flags = flags;
        ack(h, true);
    });
    return true;
}

bool BlkController::handle_get_config(const Message& m) {
    const auto& c = m.as<ConfigMsg>();
    if (m.hdr.size < kConfigHeaderSize || c.size > kConfigSpaceMax ||
        m.hdr.size != kConfigHeaderSize + c.size || c.offset > kConfigSpaceMax ||
        c.offset + c.size > kConfigSpaceMax) {
        disconnect("GET_CONFIG with a malformed size or offset");
        return false;
    }
    uint8_t space[kConfigSpaceMax] = {};
    const BlkConfig cfg = config_space();
    memcpy(space, &cfg, sizeof(cfg));
    ConfigMsg r{};
    r.offset = c.offset;
    r.size = c.size;
    r.flags = c.flags;
    memcpy(r.region, space + c.offset, c.size);
    send_reply(conn_fd_, m.hdr.request, &r, uint32_t(kConfigHeaderSize + c.size));
    return true;
}

bool BlkController::handle_set_config(const Message& m) {
    const auto& c = m.as<ConfigMsg>();
    if (m.hdr.size < kConfigHeaderSize || c.size > kConfigSpaceMax ||
        m.hdr.size != kConfigHeaderSize + c.size || c.offset + c.size > kConfigSpaceMax) {
        disconnect("SET_CONFIG with a malformed size or offset");
        return false;
    }
    // Only the cache mode is writable (VIRTIO_BLK_F_CONFIG_WCE).
    if (c.offset != kBlkConfigWritebackOffset || c.size != 1) {
        NOC_WARN("vhost", "{}: SET_CONFIG of {} bytes at {}: only the writeback byte is writable",
                 p_.name, c.size, c.offset);
        ack(m, false);
        return false;
    }
    const bool wb = c.region[0] != 0;
    NOC_INFO("vhost", "{}: the guest switched the cache to {}", p_.name,
             wb ? "write back" : "write through (FUA writes)");
    const uint32_t flags = m.hdr.flags, req = m.hdr.request;
    quiesce([this, wb, flags, req] {
        writeback_ = wb;
        Message h;
        h.hdr.request = req;
        h.hdr.flags = flags;
        ack(h, true);
    });
    return true;
}

bool BlkController::handle_get_inflight(const Message& m) {
    const auto& in = m.as<InflightMsg>();
    if (in.num_queues == 0 || in.num_queues > kMaxQueues || in.queue_size == 0 ||
        in.queue_size > kMaxQueueSize) {
        disconnect("GET_INFLIGHT_FD with a bad queue count or size");
        return false;
    }
    unmap_inflight();
    const uint64_t per_queue = inflight_queue_bytes(in.queue_size);
    const uint64_t size = per_queue * in.num_queues;
    const int fd = ::memfd_create("nocstor-vhost-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void* map = MAP_FAILED;
    if (fd >= 0 && ::ftruncate(fd, off_t(size)) == 0)
        map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        NOC_ERROR("vhost", "{}: cannot create the inflight region: {}", p_.name, strerror(errno));
        if (fd >= 0) ::close(fd);
        const InflightMsg r{};
        send_reply(conn_fd_, m.hdr.request, &r, sizeof(r));
        return false;
    }
    memset(map, 0, size);
    for (uint16_t i = 0; i < in.num_queues; ++i)
        reinterpret_cast<InflightQueue*>(static_cast<uint8_t*>(map) + i * per_queue)->desc_num =
            in.queue_size;
    inflight_fd_ = fd;
    inflight_map_ = map;
    inflight_size_ = size;
    inflight_queues_ = in.num_queues;
    inflight_queue_size_ = in.queue_size;
    const InflightMsg r{size, 0, in.num_queues, in.queue_size};
    send_reply(conn_fd_, m.hdr.request, &r, sizeof(r), fd);
    return true;
}

bool BlkController::handle_set_inflight(Message& m) {
    const auto in = m.as<InflightMsg>();
    const int fd = m.take_fd(0);
    if (fd < 0 || in.num_queues == 0 || in.num_queues > kMaxQueues || in.queue_size == 0 ||
        in.queue_size > kMaxQueueSize ||
        in.mmap_size < inflight_queue_bytes(in.queue_size) * in.num_queues) {
        if (fd >= 0) ::close(fd);
        NOC_WARN("vhost", "{}: SET_INFLIGHT_FD with a bad region ({} bytes, {} queues of {})",
                 p_.name, in.mmap_size, in.num_queues, in.queue_size);
        ack(m, false);
        return false;
    }
    void* map = ::mmap(nullptr, in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                       off_t(in.mmap_offset));
    if (map == MAP_FAILED) {
        NOC_ERROR("vhost", "{}: cannot map the inflight region: {}", p_.name, strerror(errno));
        ::close(fd);
        ack(m, false);
        return false;
    }
    const uint32_t flags = m.hdr.flags, req = m.hdr.request;
    quiesce([this, fd, map, in, flags, req] {
        unmap_inflight();
        inflight_fd_ = fd;
        inflight_map_ = map;
        inflight_size_ = in.mmap_size;
        inflight_queues_ = in.num_queues;
        inflight_queue_size_ = in.queue_size;
        NOC_INFO("vhost", "{}: inflight region handed over ({} queues of {})", p_.name,
                 in.num_queues, in.queue_size);
        Message h;
        h.hdr.request = req;
        h.hdr.flags = flags;
        ack(h, true);
    });
    return true;
}

void BlkController::on_conn_readable() {
    while (conn_fd_ >= 0 && !reading_paused_ && !closing_) {
        std::string err;
        switch (reader_.read(conn_fd_, &msg_, &err)) {
            case MessageReader::Result::More:
                return;
            case MessageReader::Result::Closed:
                msg_.close_fds();
                return disconnect("the front-end closed the connection");
            case MessageReader::Result::Error:
                msg_.close_fds();
                NOC_WARN("vhost", "{}: {}", p_.name, err);
                return disconnect("protocol error");
            case MessageReader::Result::Message:
                handle(msg_);
                msg_.close_fds();
                break;
        }
    }
}

}  // namespace nocstor::vhost
