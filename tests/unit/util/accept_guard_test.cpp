#include "util/accept_guard.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fcntl.h>
#include <vector>

namespace nocstor {
namespace {

int listen_loopback(uint16_t* port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd, 64), 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    *port = ntohs(a.sin_port);
    return fd;
}

int connect_to(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
}

// The process's descriptors are used up to the soft limit while the test runs, then given back.
class FdExhaustion {
  public:
    FdExhaustion() {
        getrlimit(RLIMIT_NOFILE, &saved_);
        rlimit low = saved_;
        low.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 256);
        setrlimit(RLIMIT_NOFILE, &low);
        for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers_.push_back(fd);
    }
    ~FdExhaustion() {
        release();
        setrlimit(RLIMIT_NOFILE, &saved_);
    }
    void release() {
        for (int fd : fillers_) close(fd);
        fillers_.clear();
    }

  private:
    rlimit saved_{};
    std::vector<int> fillers_;
};

// UBSan checks a polymorphic object by probing its memory through a pipe, which it cannot open
// while the test holds every descriptor: it then reports the object as invalid. The daemon-level
// test (integration FdExhaustion) covers the same path without sanitizers.
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_SANITIZERS() GTEST_SKIP() << "the sanitizer runtime needs free descriptors"
#else
#define SKIP_UNDER_SANITIZERS() (void)0
#endif

uint64_t counter(const char* kind, std::atomic<uint64_t> AcceptCounters::*field) {
    return (AcceptGuard::counters().at(kind)->*field).load();
}

TEST(AcceptGuard, ShedsPendingConnectionsWhenOutOfDescriptorsAndRecovers) {
    SKIP_UNDER_SANITIZERS();
    uint16_t port = 0;
    const int lfd = listen_loopback(&port);
    std::vector<int> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(connect_to(port));
    AcceptGuard guard("test_shed", "test listener");
    {
        FdExhaustion full;
        for (int i = 0; i < 3; ++i) {
            const auto r = guard.accept(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC);
            EXPECT_EQ(r.kind, AcceptGuard::Kind::kShed) << i;
        }
        EXPECT_EQ(guard.accept(lfd, SOCK_NONBLOCK).kind, AcceptGuard::Kind::kEmpty);
        // The shed clients see their connection closed instead of waiting.
        for (int c : clients) {
            pollfd p{c, POLLIN, 0};
            ASSERT_EQ(poll(&p, 1, 1000), 1);
            char b;
            EXPECT_LE(recv(c, &b, 1, 0), 0);
        }
        EXPECT_EQ(counter("test_shed", &AcceptCounters::shed), 3u);
        EXPECT_GE(counter("test_shed", &AcceptCounters::fd_exhausted), 3u);
        full.release();
        const int late = connect_to(port);
        const auto r = guard.accept(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC);
        EXPECT_EQ(r.kind, AcceptGuard::Kind::kAccepted);
        close(r.fd);
        close(late);
    }
    for (int c : clients) close(c);
    close(lfd);
}

TEST(AcceptGuard, PausesWhenNothingCanBeShed) {
    SKIP_UNDER_SANITIZERS();
    uint16_t port = 0;
    const int lfd = listen_loopback(&port);
    const int client = connect_to(port);
    FdExhaustion full;  // before the guard exists: it has no spare descriptor
    AcceptGuard guard("test_pause", "test listener");
    const auto r = guard.accept(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC);
    EXPECT_EQ(r.kind, AcceptGuard::Kind::kPause);
    EXPECT_GT(guard.pause_until_ns(), 0u);
    EXPECT_EQ(counter("test_pause", &AcceptCounters::pauses), 1u);
    full.release();
    const auto again = guard.accept(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC);
    EXPECT_EQ(again.kind, AcceptGuard::Kind::kAccepted);
    close(again.fd);
    close(client);
    close(lfd);
}

}  // namespace
}  // namespace nocstor
