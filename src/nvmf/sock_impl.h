// How a poll group drives its TCP sockets: epoll + recvmsg/sendmsg ("posix"), or io_uring.
#pragma once

#include <cstdint>
#include <string>

namespace nocstor::nvmf {

enum class SockImpl : uint8_t { kPosix, kUring };

const char* sock_impl_name(SockImpl s);
// "posix" or "uring"; false for anything else.
bool parse_sock_impl(const std::string& name, SockImpl* out);

}  // namespace nocstor::nvmf
