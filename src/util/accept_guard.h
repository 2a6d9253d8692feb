// Accepting connections when the process may run out of file descriptors.
//
// A listener whose accept() fails with EMFILE keeps its pending connection, so a level-triggered
// poll loop sees it readable on every pass: it spins, logs each failure, and the client waits
// until it times out. AcceptGuard keeps one spare descriptor: when accept fails for lack of
// descriptors it closes the spare, accepts the pending connection, closes it at once (the client
// sees the connection end instead of a hang), and takes the spare back. If even that fails (no
// spare could be taken back, or the kernel is out of memory), the caller stops watching the
// listener until pause_until_ns(). Failures are counted per listener kind (for /metrics) and
// logged at most once per interval, with how many connections were shed meanwhile. As soon as
// descriptors are free again, accepting works again by itself.
//
//   for (int i = 0; i < budget; ++i) {
//       AcceptGuard::Result r = guard_.accept(listen_fd, SOCK_NONBLOCK | SOCK_CLOEXEC);
//       if (r.kind == AcceptGuard::Kind::kAccepted) hand_over(r.fd);
//       else if (r.kind != AcceptGuard::Kind::kShed) break;  // kEmpty or kPause
//   }
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

namespace nocstor {

struct AcceptCounters {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> fd_exhausted{0};  // accept() failed with EMFILE/ENFILE/ENOBUFS/ENOMEM
    std::atomic<uint64_t> shed{0};          // pending connections closed for lack of fds
    std::atomic<uint64_t> pauses{0};        // times the listener was left alone for a while
};

class AcceptGuard {
  public:
    enum class Kind {
        kAccepted,  // fd is a new connection
        kEmpty,     // nothing pending (or a transient error): stop for this pass
        kShed,      // out of fds: one pending connection was closed; more may be pending
        kPause,     // out of fds and nothing could be shed: stop watching until pause_until_ns()
    };
    struct Result {
        Kind kind;
        int fd = -1;
    };

    // kind: the listener's kind for /metrics ("nvmf", "http", "rpc"); name: for the log
    // ("NVMe/TCP 127.0.0.1:4420").
    AcceptGuard(std::string kind, std::string name);
    ~AcceptGuard();
    AcceptGuard(const AcceptGuard&) = delete;
    AcceptGuard& operator=(const AcceptGuard&) = delete;

    Result accept(int listen_fd, int flags, sockaddr* addr = nullptr,
                  socklen_t* addr_len = nullptr);
    uint64_t pause_until_ns() const { return pause_until_ns_; }
    bool paused(uint64_t now_ns) const { return now_ns < pause_until_ns_; }

    // Totals by listener kind since the process started (any thread).
    static std::map<std::string, const AcceptCounters*> counters();

    static constexpr uint64_t kPauseNs = 100'000'000;          // 100 ms
    static constexpr uint64_t kLogIntervalNs = 5'000'000'000;  // at most one warning per 5 s

  private:
    void take_spare();
    void note_exhausted(int err, uint64_t now);

    std::string name_;
    AcceptCounters* counters_;
    int spare_fd_ = -1;
    uint64_t pause_until_ns_ = 0;
    uint64_t last_log_ns_ = 0;
    uint64_t unlogged_failures_ = 0;
    uint64_t unlogged_shed_ = 0;
};

}  // namespace nocstor
