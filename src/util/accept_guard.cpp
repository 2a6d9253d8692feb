#include "util/accept_guard.h"

#include "util/log.h"
#include "util/tick.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

namespace nocstor {

namespace {

struct CounterRegistry {
    std::mutex mu;
    std::map<std::string, std::unique_ptr<AcceptCounters>> by_kind;
};

CounterRegistry& registry() {
    static auto* r = new CounterRegistry();  // never destroyed: guards may outlive statics
    return *r;
}

bool out_of_descriptors(int err) {
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace

AcceptGuard::AcceptGuard(std::string kind, std::string name) : name_(std::move(name)) {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    auto& slot = r.by_kind[kind];
    if (!slot) slot = std::make_unique<AcceptCounters>();
    counters_ = slot.get();
    take_spare();
}

AcceptGuard::~AcceptGuard() {
    if (spare_fd_ >= 0) ::close(spare_fd_);
}

std::map<std::string, const AcceptCounters*> AcceptGuard::counters() {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    std::map<std::string, const AcceptCounters*> out;
    for (auto& [kind, c] : r.by_kind) out.emplace(kind, c.get());
    return out;
}

void AcceptGuard::take_spare() {
    if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

AcceptGuard::Result AcceptGuard::accept(int listen_fd, int flags, sockaddr* addr,
                                        socklen_t* addr_len) {
    take_spare();  // taken back as soon as descriptors are free again
    int fd = ::accept4(listen_fd, addr, addr_len, flags);
    if (fd >= 0) {
        counters_->accepted.fetch_add(1, std::memory_order_relaxed);
        return {Kind::kAccepted, fd};
    }
    const int err = errno;
    if (!out_of_descriptors(err)) {
        // EAGAIN: nothing pending. ECONNABORTED, EPROTO, EPERM (firewall), EINTR: that one
        // connection is gone; the next pass tries again.
        if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED)
            NOC_DEBUG("net", "accept on {}: {}", name_, std::strerror(err));
        return {Kind::kEmpty};
    }
    const uint64_t now = now_ns();
    counters_->fd_exhausted.fetch_add(1, std::memory_order_relaxed);
    Result result{Kind::kPause};
    if (spare_fd_ >= 0 && (err == EMFILE || err == ENFILE)) {
        ::close(spare_fd_);
        spare_fd_ = -1;
        fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
            ::close(fd);
            counters_->shed.fetch_add(1, std::memory_order_relaxed);
            ++unlogged_shed_;
            result.kind = Kind::kShed;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            result.kind = Kind::kEmpty;
        }
        take_spare();
    }
    if (result.kind == Kind::kPause) {
        pause_until_ns_ = now + kPauseNs;
        counters_->pauses.fetch_add(1, std::memory_order_relaxed);
    }
    note_exhausted(err, now);
    return result;
}

void AcceptGuard::note_exhausted(int err, uint64_t now) {
    ++unlogged_failures_;
    if (last_log_ns_ != 0 && now - last_log_ns_ < kLogIntervalNs) return;
    NOC_WARN("net",
             "{}: cannot accept connections: {} ({} time(s) since the last report, {} "
             "connection(s) closed unserved); raise the open-file limit (ulimit -n) or reduce "
             "the number of connections",
             name_, std::strerror(err), unlogged_failures_, unlogged_shed_);
    last_log_ns_ = now;
    unlogged_failures_ = 0;
    unlogged_shed_ = 0;
}

}  // namespace nocstor
