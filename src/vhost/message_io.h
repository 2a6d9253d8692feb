// Reading and writing vhost-user messages on the front-end's Unix socket: a 12-byte header,
// a payload of at most kMaxPayload bytes, and file descriptors (SCM_RIGHTS) that arrive with the
// header. The socket is non-blocking; a message may arrive in pieces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <sys/types.h>

#include "vhost/vhost_user_proto.h"

namespace nocstor::vhost {

struct Message {
    MsgHeader hdr{};
    alignas(8) uint8_t payload[kMaxPayload]{};
    int fds[kMaxFds];
    size_t nfds = 0;

    Message() {
        for (int& fd : fds) fd = -1;
    }
    // Hands fd i to the caller (-1 when absent); what is not taken is closed by close_fds().
    int take_fd(size_t i = 0);
    void close_fds();
    template <typename T>
    const T& as() const {
        return *reinterpret_cast<const T*>(payload);
    }
    uint64_t u64() const { return as<uint64_t>(); }
};

class MessageReader {
  public:
    enum class Result { Message, More, Closed, Error };
    // Reads from fd until a whole message is in `msg` (Message), the socket has no more bytes
    // (More), the peer closed it (Closed), or the stream is not vhost-user (Error, with *err).
    Result read(int fd, Message* msg, std::string* err);
    void reset();

  private:
    size_t got_ = 0;  // header + payload bytes of the message being read
};

// The payload size a request must carry (or -1: variable, checked by its handler).
int expected_payload(uint32_t request);

// Sends `len` bytes as one message, with `fd` (if >= 0) as SCM_RIGHTS; the number of bytes sent
// or -1 (errno set). EINTR is retried; MSG_NOSIGNAL.
ssize_t send_with_fd(int sock, const void* data, size_t len, int fd);

// Sends a reply: `req`'s header with the reply flag, the payload and optionally one fd.
bool send_reply(int sock, uint32_t request, const void* payload, uint32_t size, int fd = -1);

}  // namespace nocstor::vhost
