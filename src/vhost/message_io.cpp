#include "vhost/message_io.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace nocstor::vhost {

int Message::take_fd(size_t i) {
    if (i >= nfds) return -1;
    const int fd = fds[i];
    fds[i] = -1;
    return fd;
}

void Message::close_fds() {
    for (size_t i = 0; i < nfds; ++i) {
        if (fds[i] >= 0) ::close(fds[i]);
        fds[i] = -1;
    }
    nfds = 0;
}

void MessageReader::reset() {
    got_ = 0;
}

MessageReader::Result MessageReader::read(int fd, Message* msg, std::string* err) {
    for (;;) {
        const size_t want = got_ < sizeof(MsgHeader) ? sizeof(MsgHeader) - got_
                                                     : sizeof(MsgHeader) + msg->hdr.size - got_;
        if (got_ >= sizeof(MsgHeader) && want == 0) {
            got_ = 0;
            return Result::Message;
        }
        uint8_t* dst = got_ < sizeof(MsgHeader) ? reinterpret_cast<uint8_t*>(&msg->hdr) + got_
                                                : msg->payload + (got_ - sizeof(MsgHeader));
        iovec iov{dst, want};
        alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        const ssize_t n = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return Result::More;
            if (errno == EINTR) continue;
            *err = fmt::format("recvmsg: {}", strerror(errno));
            return Result::Error;
        }
        if (n == 0) return Result::Closed;
        for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            const int* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
            for (size_t i = 0; i < count; ++i) {
                if (msg->nfds < kMaxFds)
                    msg->fds[msg->nfds++] = fds[i];
                else
                    ::close(fds[i]);
            }
        }
        const bool truncated = mh.msg_flags & MSG_CTRUNC;
        got_ += size_t(n);
        if (got_ == sizeof(MsgHeader)) {
            if ((msg->hdr.flags & kVersionMask) != kVersion) {
                *err = fmt::format("message {} with protocol version {} (want {})",
                                   msg->hdr.request, msg->hdr.flags & kVersionMask, kVersion);
                return Result::Error;
            }
            if (msg->hdr.size > kMaxPayload) {
                *err = fmt::format("{} with a {}-byte payload (at most {})",
                                   req_name(msg->hdr.request), msg->hdr.size, kMaxPayload);
                return Result::Error;
            }
            const int want_size = expected_payload(msg->hdr.request);
            if (want_size >= 0 && msg->hdr.size != uint32_t(want_size)) {
                *err = fmt::format("{} with a {}-byte payload (want {})",
                                   req_name(msg->hdr.request), msg->hdr.size, want_size);
                return Result::Error;
            }
        }
        if (truncated) {
            *err = "more file descriptors than a vhost-user message may carry";
            return Result::Error;
        }
    }
}

int expected_payload(uint32_t request) {
    switch (static_cast<Req>(request)) {
        case Req::GetFeatures:
        case Req::GetProtocolFeatures:
        case Req::GetQueueNum:
        case Req::GetStatus:
        case Req::GetMaxMemSlots:
            return 0;
        case Req::SetFeatures:
        case Req::SetProtocolFeatures:
        case Req::SetVringKick:
        case Req::SetVringCall:
        case Req::SetVringErr:
        case Req::SetStatus:
        case Req::SetLogBase:
        case Req::SetLogFd:
            return sizeof(uint64_t);
        case Req::SetVringNum:
        case Req::SetVringBase:
        case Req::GetVringBase:
        case Req::SetVringEnable:
        case Req::SetVringEndian:
            return sizeof(VringState);
        case Req::SetVringAddr:
            return sizeof(VringAddr);
        case Req::GetInflightFd:
        case Req::SetInflightFd:
            return sizeof(InflightMsg);
        default:
            // SET_MEM_TABLE, GET/SET_CONFIG: checked by their handlers. SET_OWNER, RESET_OWNER
            // and RESET_DEVICE carry nothing, but some front-ends send a u64 0 with them.
            return -1;
    }
}

ssize_t send_with_fd(int sock, const void* data, size_t len, int fd) {
    iovec iov{const_cast<void*>(data), len};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    for (;;) {
        const ssize_t n = ::sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        return n;
    }
}

bool send_reply(int sock, uint32_t request, const void* payload, uint32_t size, int fd) {
    uint8_t buf[sizeof(MsgHeader) + kMaxPayload];
    if (size > kMaxPayload) return false;
    const MsgHeader hdr{request, kVersion | kFlagReply, size};
    memcpy(buf, &hdr, sizeof(hdr));
    if (size) memcpy(buf + sizeof(hdr), payload, size);
    return send_with_fd(sock, buf, sizeof(hdr) + size, fd) == ssize_t(sizeof(hdr) + size);
}

const char* req_name(uint32_t req) {
    switch (static_cast<Req>(req)) {
        case Req::GetFeatures:
            return "GET_FEATURES";
        case Req::SetFeatures:
            return "SET_FEATURES";
        case Req::SetOwner:
            return "SET_OWNER";
        case Req::ResetOwner:
            return "RESET_OWNER";
        case Req::SetMemTable:
            return "SET_MEM_TABLE";
        case Req::SetLogBase:
            return "SET_LOG_BASE";
        case Req::SetLogFd:
            return "SET_LOG_FD";
        case Req::SetVringNum:
            return "SET_VRING_NUM";
        case Req::SetVringAddr:
            return "SET_VRING_ADDR";
        case Req::SetVringBase:
            return "SET_VRING_BASE";
        case Req::GetVringBase:
            return "GET_VRING_BASE";
        case Req::SetVringKick:
            return "SET_VRING_KICK";
        case Req::SetVringCall:
            return "SET_VRING_CALL";
        case Req::SetVringErr:
            return "SET_VRING_ERR";
        case Req::GetProtocolFeatures:
            return "GET_PROTOCOL_FEATURES";
        case Req::SetProtocolFeatures:
            return "SET_PROTOCOL_FEATURES";
        case Req::GetQueueNum:
            return "GET_QUEUE_NUM";
        case Req::SetVringEnable:
            return "SET_VRING_ENABLE";
        case Req::SendRarp:
            return "SEND_RARP";
        case Req::NetSetMtu:
            return "NET_SET_MTU";
        case Req::SetBackendReqFd:
            return "SET_BACKEND_REQ_FD";
        case Req::IotlbMsg:
            return "IOTLB_MSG";
        case Req::SetVringEndian:
            return "SET_VRING_ENDIAN";
        case Req::GetConfig:
            return "GET_CONFIG";
        case Req::SetConfig:
            return "SET_CONFIG";
        case Req::GetInflightFd:
            return "GET_INFLIGHT_FD";
        case Req::SetInflightFd:
            return "SET_INFLIGHT_FD";
        case Req::ResetDevice:
            return "RESET_DEVICE";
        case Req::GetMaxMemSlots:
            return "GET_MAX_MEM_SLOTS";
        case Req::SetStatus:
            return "SET_STATUS";
        case Req::GetStatus:
            return "GET_STATUS";
    }
    return "UNKNOWN";
}

}  // namespace nocstor::vhost
