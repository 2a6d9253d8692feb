// Idle or slow clients never lock management out: more idle connections than the caps of the
// JSON-RPC and HTTP servers, and requests that trickle in, while a well-behaved client is served.
#include "daemon_env.h"

#include <poll.h>
#include <sys/un.h>

#include <algorithm>
#include <memory>

using namespace nocstor::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int tcp_connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int unix_connect(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Waits until the peer closes fd (EOF or reset), reading what it sends; returns what was read
// and sets *closed.
std::string read_until_closed(int fd, int timeout_ms, bool* closed) {
    std::string got;
    *closed = false;
    const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        char buf[4096];
        const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            got.append(buf, size_t(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            *closed = true;
            break;
        }
    }
    return got;
}

struct Fds {
    std::vector<int> fds;
    ~Fds() {
        for (int fd : fds)
            if (fd >= 0) close(fd);
    }
};

// With the default caps (64 HTTP, 128 JSON-RPC connections), more idle connections than that on
// both servers, plus requests that stop half-way: a normal client is served at once, every time.
TEST(MgmtLimits, IdleConnectionsBeyondTheCapsDoNotLockManagementOut) {
    Daemon d({"--empty"});
    Fds idle;
    for (int i = 0; i < 80; ++i) idle.fds.push_back(tcp_connect(d.http_port()));
    for (int i = 0; i < 140; ++i) idle.fds.push_back(unix_connect(d.socket()));
    for (int i = 0; i < 10; ++i) {  // half a request each
        int h = tcp_connect(d.http_port());
        (void)!write(h, "GET /api/v1/bdevs HTTP/1.1\r\nHost: x\r\n", 38);
        idle.fds.push_back(h);
        int r = unix_connect(d.socket());
        (void)!write(r, "{\"jsonrpc\":\"2.0\",\"method\":", 26);
        idle.fds.push_back(r);
    }
    for (int fd : idle.fds) ASSERT_GE(fd, 0);
    for (int round = 0; round < 5; ++round) {
        const auto start = Clock::now();
        HttpReply r = http_request(d.http_port(), "GET", "/api/v1/version");
        EXPECT_EQ(r.status, 200) << "round " << round;
        nocstor::control::RpcClient c(d.socket(), std::chrono::seconds(5));
        EXPECT_TRUE(c.call("spdk_get_version").ok()) << "round " << round;
        EXPECT_LT(Clock::now() - start, std::chrono::seconds(2)) << "round " << round;
    }
    HttpReply m = http_request(d.http_port(), "GET", "/metrics");
    ASSERT_EQ(m.status, 200);
    for (const char* server : {"http", "rpc"}) {
        const std::string key =
            std::string("nocstor_mgmt_connections_evicted_total{server=\"") + server + "\"} ";
        const size_t at = m.body.find(key);
        ASSERT_NE(at, std::string::npos) << key;
        EXPECT_GT(std::stoul(m.body.substr(at + key.size())), 10u) << key;
    }
}

TEST(MgmtLimits, TricklingRequestsAreClosedAtTheDeadline) {
    Daemon d({"--empty", "--http-request-timeout-ms", "500", "--rpc-request-timeout-ms", "500"});
    int h = tcp_connect(d.http_port());
    int r = unix_connect(d.socket());
    ASSERT_GE(h, 0);
    ASSERT_GE(r, 0);
    const auto start = Clock::now();
    // One byte every 100 ms: each arrives before any per-byte timer would fire.
    const std::string http_req = "GET /api/v1/version HTTP/1.1\r\nHost: slowloris\r\nX-Pad: ";
    const std::string rpc_req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"spdk_get_version\"";
    bool h_closed = false, r_closed = false;
    std::string h_got, r_got;
    for (size_t i = 0; i < 30 && !(h_closed && r_closed); ++i) {
        if (!h_closed) (void)!send(h, &http_req[i % http_req.size()], 1, MSG_NOSIGNAL);
        if (!r_closed) (void)!send(r, &rpc_req[i % rpc_req.size()], 1, MSG_NOSIGNAL);
        if (!h_closed) h_got += read_until_closed(h, 100, &h_closed);
        if (!r_closed) r_got += read_until_closed(r, 1, &r_closed);
    }
    const auto took = Clock::now() - start;
    EXPECT_TRUE(h_closed);
    EXPECT_TRUE(r_closed);
    EXPECT_GE(took, std::chrono::milliseconds(450));
    EXPECT_LT(took, std::chrono::milliseconds(2500));
    EXPECT_NE(h_got.find("HTTP/1.1 408"), std::string::npos) << h_got;
    EXPECT_NE(r_got.find("not received completely"), std::string::npos) << r_got;
    close(h);
    close(r);
}

TEST(MgmtLimits, IdleConnectionsAreClosedAfterTheIdleDeadline) {
    Daemon d({"--empty", "--http-idle-timeout-ms", "300", "--rpc-idle-timeout-ms", "300"});
    int h = tcp_connect(d.http_port());
    int r = unix_connect(d.socket());
    bool closed = false;
    read_until_closed(h, 3000, &closed);
    EXPECT_TRUE(closed);
    read_until_closed(r, 3000, &closed);
    EXPECT_TRUE(closed);
    close(h);
    close(r);
    // A keep-alive connection that is used stays open past the deadline as long as it is used.
    int k = tcp_connect(d.http_port());
    std::string all;
    for (int i = 0; i < 5; ++i) {
        const std::string req = "GET /api/v1/version HTTP/1.1\r\nHost: x\r\n\r\n";
        ASSERT_EQ(send(k, req.data(), req.size(), MSG_NOSIGNAL), ssize_t(req.size()));
        all += read_until_closed(k, 150, &closed);
        ASSERT_FALSE(closed) << "request " << i;
    }
    EXPECT_GE(std::count(all.begin(), all.end(), '{'), 5) << all;
    close(k);
}

// Per-peer cap: one address cannot hold more than its share; its own oldest idle connection
// makes room for its new one.
TEST(MgmtLimits, PerPeerCapEvictsThatPeersOldestIdleConnection) {
    Daemon d({"--empty", "--http-max-per-peer", "3"});
    int first = tcp_connect(d.http_port());
    Fds more;
    for (int i = 0; i < 3; ++i) more.fds.push_back(tcp_connect(d.http_port()));
    bool closed = false;
    read_until_closed(first, 2000, &closed);
    EXPECT_TRUE(closed) << "the oldest idle connection of 127.0.0.1 made room";
    close(first);
    EXPECT_EQ(http_request(d.http_port(), "GET", "/api/v1/version").status, 200);
}

}  // namespace
