// A minimal vhost-user front-end and virtio-blk driver for tests: guest memory is a memfd this
// process maps, one split virtqueue, requests built by hand. It talks to the real daemon's
// controller socket, so the server's message handling, ring processing and bdev I/O run exactly
// as they do for QEMU, without a VM.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "vhost/message_io.h"
#include "vhost/vhost_user_proto.h"

namespace nocstor::testing {

class VhostDriver {
  public:
    static constexpr uint64_t kRamSize = 4 << 20;
    static constexpr uint64_t kDesc = 0, kAvail = 0x1000, kUsed = 0x2000, kHdr = 0x3000,
                              kStatus = 0x3100, kData = 0x10000;
    static constexpr uint64_t kGpaBase = 0x40000000;

    ~VhostDriver() { close_all(); }

    bool connect(const std::string& path) {
        sock_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
        timeval tv{5, 0};
        setsockopt(sock_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return ::connect(sock_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    }

    // Sends a message; with `reply` waits for the answer's payload (false if none came).
    bool send(vhost::Req req, const void* payload, uint32_t size, int fd = -1,
              std::vector<uint8_t>* reply = nullptr, uint32_t extra_flags = 0) {
        vhost::MsgHeader h{uint32_t(req), vhost::kVersion | extra_flags, size};
        std::vector<uint8_t> buf(sizeof(h) + size);
        memcpy(buf.data(), &h, sizeof(h));
        if (size) memcpy(buf.data() + sizeof(h), payload, size);
        if (vhost::send_with_fd(sock_, buf.data(), buf.size(), fd) != ssize_t(buf.size()))
            return false;
        if (!reply) return true;
        return read_reply(uint32_t(req), reply);
    }

    bool read_reply(uint32_t req, std::vector<uint8_t>* reply, int* fd_out = nullptr) {
        vhost::MsgHeader h{};
        alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
        iovec iov{&h, sizeof(h)};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        if (::recvmsg(sock_, &mh, MSG_WAITALL) != ssize_t(sizeof(h))) return false;
        if (fd_out) {
            cmsghdr* c = CMSG_FIRSTHDR(&mh);
            *fd_out = -1;
            if (c && c->cmsg_type == SCM_RIGHTS) memcpy(fd_out, CMSG_DATA(c), sizeof(int));
        }
        if (h.request != req || !(h.flags & vhost::kFlagReply)) return false;
        reply->resize(h.size);
        return h.size == 0 || ::recv(sock_, reply->data(), h.size, MSG_WAITALL) == ssize_t(h.size);
    }

    uint64_t get_u64(vhost::Req req) {
        std::vector<uint8_t> r;
        if (!send(req, nullptr, 0, -1, &r) || r.size() != 8) return ~0ull;
        uint64_t v;
        memcpy(&v, r.data(), 8);
        return v;
    }
    bool set_u64(vhost::Req req, uint64_t v, int fd = -1) { return send(req, &v, 8, fd); }
    // With REPLY_ACK: the server's answer to a message sent with NEED_REPLY (0 = success).
    uint64_t set_u64_acked(vhost::Req req, uint64_t v, int fd = -1) {
        std::vector<uint8_t> r;
        if (!send(req, &v, 8, fd, &r, vhost::kFlagNeedReply) || r.size() != 8) return ~0ull;
        uint64_t a;
        memcpy(&a, r.data(), 8);
        return a;
    }

    // Negotiates BACKEND_REQ on top of what setup() chose and hands the server one end of a
    // socketpair with SET_BACKEND_REQ_FD. Returns our end (-1 on failure).
    int backend_channel() {
        const uint64_t pf = get_u64(vhost::Req::GetProtocolFeatures);
        set_u64(vhost::Req::SetProtocolFeatures,
                pf & (vhost::bit(vhost::kPfReplyAck) | vhost::bit(vhost::kPfConfig) |
                      vhost::bit(vhost::kPfMq) | vhost::bit(vhost::kPfBackendReq)));
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
        std::vector<uint8_t> ack;
        const bool ok =
            send(vhost::Req::SetBackendReqFd, nullptr, 0, sv[1], &ack, vhost::kFlagNeedReply);
        ::close(sv[1]);
        if (!ok) {
            ::close(sv[0]);
            return -1;
        }
        return sv[0];
    }

    vhost::BlkConfig config() {
        vhost::ConfigMsg c{};
        c.size = sizeof(vhost::BlkConfig);
        std::vector<uint8_t> r;
        vhost::BlkConfig out{};
        if (send(vhost::Req::GetConfig, &c, vhost::kConfigHeaderSize + c.size, -1, &r) &&
            r.size() == vhost::kConfigHeaderSize + sizeof(out))
            memcpy(&out, r.data() + vhost::kConfigHeaderSize, sizeof(out));
        return out;
    }

    // Negotiates and starts queue 0 with `qsize` entries. Returns the features the server offered.
    uint64_t setup(uint16_t qsize = 16, bool event_idx = false) {
        qsize_ = qsize;
        const uint64_t offered = get_u64(vhost::Req::GetFeatures);
        uint64_t want =
            offered & (vhost::bit(vhost::kVersion1) | vhost::bit(vhost::kProtocolFeatures) |
                       vhost::bit(vhost::kBlkRo) | vhost::bit(vhost::kBlkFlush) |
                       vhost::bit(vhost::kBlkDiscard) | vhost::bit(vhost::kBlkWriteZeroes));
        if (event_idx) want |= offered & vhost::bit(vhost::kRingEventIdx);
        const uint64_t pf = get_u64(vhost::Req::GetProtocolFeatures);
        set_u64(vhost::Req::SetProtocolFeatures,
                pf & (vhost::bit(vhost::kPfReplyAck) | vhost::bit(vhost::kPfConfig) |
                      vhost::bit(vhost::kPfMq)));
        send(vhost::Req::SetOwner, nullptr, 0);
        set_u64(vhost::Req::SetFeatures, want);
        memfd_ = ::memfd_create("vhost-test-ram", MFD_CLOEXEC);
        if (::ftruncate(memfd_, kRamSize) != 0) return 0;
        ram_ = static_cast<uint8_t*>(
            ::mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0));
        vhost::MemTable t{};
        t.nregions = 1;
        t.regions[0] = vhost::MemRegion{kGpaBase, kRamSize, uint64_t(uintptr_t(ram_)), 0};
        std::vector<uint8_t> ack;
        send(vhost::Req::SetMemTable, &t, 8 + sizeof(vhost::MemRegion), memfd_, &ack,
             vhost::kFlagNeedReply);
        const vhost::VringState num{0, qsize};
        send(vhost::Req::SetVringNum, &num, sizeof(num));
        const vhost::VringState base{0, 0};
        send(vhost::Req::SetVringBase, &base, sizeof(base));
        const vhost::VringAddr addr{0, 0, uva(kDesc), uva(kUsed), uva(kAvail), 0};
        send(vhost::Req::SetVringAddr, &addr, sizeof(addr));
        kick_ = ::eventfd(0, EFD_CLOEXEC);
        call_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        set_u64(vhost::Req::SetVringKick, 0, kick_);
        set_u64(vhost::Req::SetVringCall, 0, call_);
        const vhost::VringState en{0, 1};
        send(vhost::Req::SetVringEnable, &en, sizeof(en));
        // A GET_FEATURES round trip: every message before it has been handled.
        get_u64(vhost::Req::GetFeatures);
        return offered;
    }

    uint8_t* ram() { return ram_; }
    uint8_t* data(uint64_t off = 0) { return ram_ + kData + off; }
    vhost::VringDesc* desc() { return reinterpret_cast<vhost::VringDesc*>(ram_ + kDesc); }
    vhost::VringAvail* avail() { return reinterpret_cast<vhost::VringAvail*>(ram_ + kAvail); }
    vhost::VringUsed* used() { return reinterpret_cast<vhost::VringUsed*>(ram_ + kUsed); }
    uint64_t gpa(uint64_t off) const { return kGpaBase + off; }
    uint64_t uva(uint64_t off) const { return uint64_t(uintptr_t(ram_)) + off; }

    // Publishes head `head` (whose descriptors the caller wrote) and kicks.
    void publish(uint16_t head) {
        vhost::VringAvail* a = avail();
        a->ring[a->idx % qsize_] = head;
        __atomic_store_n(&a->idx, uint16_t(a->idx + 1), __ATOMIC_RELEASE);
        const uint64_t one = 1;
        (void)!::write(kick_, &one, 8);
    }

    // Waits until the used index reaches `idx` (false after `ms`) on the call eventfd, looking at
    // the ring every 10 ms; with `poll_ring` every millisecond (a polling driver: interrupts may
    // then come late or not at all without slowing it down much).
    bool poll_ring = false;
    bool wait_used(uint16_t idx, int ms = 5000) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (__atomic_load_n(&used()->idx, __ATOMIC_ACQUIRE) != idx) {
            if (std::chrono::steady_clock::now() > end) return false;
            pollfd p{call_, POLLIN, 0};
            ::poll(&p, 1, poll_ring ? 1 : 10);
            uint64_t v;
            (void)!::read(call_, &v, 8);
        }
        return true;
    }

    // One request: header, `len` data bytes at data() (device-writable for IN and GET_ID),
    // status. Returns the status byte, or -1 when no completion came.
    int request(uint32_t type, uint64_t sector, uint32_t len) {
        auto* hdr = reinterpret_cast<vhost::BlkOutHdr*>(ram_ + kHdr);
        *hdr = vhost::BlkOutHdr{type, 0, sector};
        ram_[kStatus] = 0xff;
        const bool dev_writes = type == vhost::kBlkTIn || type == vhost::kBlkTGetId;
        desc()[0] = vhost::VringDesc{gpa(kHdr), sizeof(*hdr), vhost::kDescNext, 1};
        uint16_t status_desc = 1;
        if (len) {
            desc()[1] = vhost::VringDesc{
                gpa(kData), len, uint16_t(vhost::kDescNext | (dev_writes ? vhost::kDescWrite : 0)),
                2};
            status_desc = 2;
        }
        desc()[status_desc] = vhost::VringDesc{gpa(kStatus), 1, vhost::kDescWrite, 0};
        const uint16_t want = uint16_t(used()->idx + 1);
        publish(0);
        if (!wait_used(want)) return -1;
        return ram_[kStatus];
    }

    void close_socket() {
        if (sock_ >= 0) ::close(sock_);
        sock_ = -1;
    }
    int sock() const { return sock_; }

  private:
    void close_all() {
        close_socket();
        for (int* fd : {&memfd_, &kick_, &call_})
            if (*fd >= 0) ::close(*fd);
        if (ram_) ::munmap(ram_, kRamSize);
    }
    int sock_ = -1, memfd_ = -1, kick_ = -1, call_ = -1;
    uint8_t* ram_ = nullptr;
    uint16_t qsize_ = 16;
};

}  // namespace nocstor::testing
