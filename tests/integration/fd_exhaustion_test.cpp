// The daemon out of file descriptors: with a limit of 128 and 300 connections to the NVMe/TCP
// port it must not spin (or fill the log), must close the connections it cannot serve instead
// of leaving them hanging, count it in /metrics, and recover by itself once fds free up.
#include "daemon_env.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <poll.h>

#include <fstream>
#include <sstream>

using namespace nocstor::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// utime + stime of a process, in clock ticks.
long cpu_ticks(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
    }
    return utime + stime;
}

long file_size(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? long(st.st_size) : -1;
}

TEST(FdExhaustion, AcceptLoopBacksOffShedsAndRecovers) {
    Daemon d({"--empty", "--nvmf-icreq-timeout-ms", "1500"}, temp_dir(), 128);
    ASSERT_TRUE(d.alive()) << d.log();
    const std::string nqn = "nqn.2024-01.io.nocstor:fd";
    const uint16_t port = free_tcp_port();
    d.ok("bdev_malloc_create", {{"name", "M"}, {"num_blocks", 2048}, {"block_size", 512}});
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", {{"bdev_name", "M"}}}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", nqn},
          {"listen_address",
           {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});

    std::vector<int> socks;
    for (int i = 0; i < 300; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socks.push_back(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const long log_before = file_size(d.log_path());
    const long ticks_before = cpu_ticks(d.pid());
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const long ticks = cpu_ticks(d.pid()) - ticks_before;
    const long log_growth = file_size(d.log_path()) - log_before;
    // A spinning accept loop burns a whole core (100 ticks per second) and logs megabytes.
    EXPECT_LT(ticks, 30) << "CPU ticks in 1 s while out of file descriptors";
    EXPECT_LT(log_growth, 4096) << d.log().substr(0, 4096);

    // What could not be served was closed, not left hanging.
    size_t closed = 0;
    for (int fd : socks) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0) {
            char c;
            if (recv(fd, &c, 1, MSG_DONTWAIT) <= 0) ++closed;
        }
    }
    EXPECT_GE(closed, 150u);
    EXPECT_NE(d.log().find("cannot accept connections"), std::string::npos) << d.log();
    for (int fd : socks) close(fd);

    // Fds come back (the clients closed; silent sockets pass their ICReq deadline): a host
    // connects and the management servers answer again.
    bool recovered = false;
    for (int i = 0; i < 100 && !recovered; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        nocstor::nvmf::testing::TestHost h(port);
        recovered = h.ok() && nocstor::nvmf::testing::bring_up_admin(h, false, false, 0, nqn) != 0;
    }
    EXPECT_TRUE(recovered) << d.log();
    HttpReply m = http_request(d.http_port(), "GET", "/metrics");
    ASSERT_EQ(m.status, 200);
    const std::string key = "nocstor_accept_shed_total{listener=\"nvmf\"} ";
    const size_t at = m.body.find(key);
    ASSERT_NE(at, std::string::npos) << m.body;
    EXPECT_GE(std::stoul(m.body.substr(at + key.size())), 150u);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
