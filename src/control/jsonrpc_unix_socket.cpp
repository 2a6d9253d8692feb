#include "control/jsonrpc_unix_socket.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace nocstor::control {

namespace {

bool make_address(const std::string& path, sockaddr_un* addr, std::string* error) {
    std::memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr->sun_path)) {
        *error = fmt::format("invalid socket path '{}' (empty or longer than {} bytes)", path,
                             sizeof(addr->sun_path) - 1);
        return false;
    }
    std::memcpy(addr->sun_path, path.data(), path.size());
    return true;
}

int new_socket() {
    return ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

// True if a process accepts connections at path (a short blocking probe, startup only).
bool someone_listens(const sockaddr_un& addr) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ||
                errno == EAGAIN;  // backlog full: still a live listener
    ::close(fd);
    return live;
}

}  // namespace

// A group name or numeric gid; false with *error.
static bool resolve_group(const std::string& group, gid_t* gid, std::string* error) {
    char* end = nullptr;
    const unsigned long n = std::strtoul(group.c_str(), &end, 10);
    if (!group.empty() && end && *end == '\0') {
        *gid = gid_t(n);
        return true;
    }
    std::vector<char> buf(16384);
    struct group g {};
    struct group* found = nullptr;
    const int rc = ::getgrnam_r(group.c_str(), &g, buf.data(), buf.size(), &found);
    if (rc != 0 || !found) {
        *error = fmt::format("--rpc-group: no group '{}'{}", group,
                             rc ? std::string(": ") + std::strerror(rc) : std::string());
        return false;
    }
    *gid = found->gr_gid;
    return true;
}

int listen_unix_socket(const std::string& path, int backlog, std::string* error,
                       const std::string& group) {
    sockaddr_un addr;
    if (!make_address(path, &addr, error)) return -1;
    gid_t gid = 0;
    if (!group.empty() && !resolve_group(group, &gid, error)) return -1;
    const mode_t mode = group.empty() ? 0600 : 0660;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *error = fmt::format("{} exists and is not a socket; refusing to replace it", path);
            return -1;
        }
        if (someone_listens(addr)) {
            *error = fmt::format(
                "another process (nocstor or SPDK?) is already listening on {}; use a different "
                "RPC socket path",
                path);
            return -1;
        }
        ::unlink(path.c_str());  // stale socket left by a dead process
    }
    int fd = new_socket();
    if (fd < 0) {
        *error = fmt::format("socket(AF_UNIX): {}", std::strerror(errno));
        return -1;
    }
    // Linux creates the socket file with the mode of the socket's inode: set before bind, no
    // other user can ever connect in the moment between bind and chmod.
    (void)::fchmod(fd, mode);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        *error = fmt::format("cannot listen on {}: {}", path, std::strerror(errno));
        ::close(fd);
        return -1;
    }
    if ((!group.empty() && ::chown(path.c_str(), uid_t(-1), gid) != 0) ||
        ::chmod(path.c_str(), mode) != 0 || ::listen(fd, backlog) != 0) {
        *error =
            fmt::format("cannot set up {} (mode {:o}{}): {}", path, mode,
                        group.empty() ? std::string() : ", group " + group, std::strerror(errno));
        ::close(fd);
        ::unlink(path.c_str());
        return -1;
    }
    return fd;
}

int connect_unix_socket(const std::string& path, std::chrono::milliseconds timeout,
                        std::string* error) {
    sockaddr_un addr;
    if (!make_address(path, &addr, error)) return -1;
    int fd = new_socket();
    if (fd < 0) {
        *error = fmt::format("socket(AF_UNIX): {}", std::strerror(errno));
        return -1;
    }
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    if (rc != 0 && errno == EAGAIN) {
        // Listener backlog full: wait for it to drain, then retry once.
        pollfd pfd{fd, POLLOUT, 0};
        ::poll(&pfd, 1, static_cast<int>(timeout.count()));
        rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    }
    if (rc != 0) {
        *error = fmt::format("cannot connect to {}: is nocstor running? ({})", path,
                             std::strerror(errno));
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace nocstor::control
