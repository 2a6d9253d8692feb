#include "nvmf/sock_impl.h"

namespace nocstor::nvmf {

const char* sock_impl_name(SockImpl s) {
    return s == SockImpl::kUring ? "uring" : "posix";
}

bool parse_sock_impl(const std::string& name, SockImpl* out) {
    if (name == "posix") {
        *out = SockImpl::kPosix;
    } else if (name == "uring") {
        *out = SockImpl::kUring;
    } else {
        return false;
    }
    return true;
}

}  // namespace nocstor::nvmf
