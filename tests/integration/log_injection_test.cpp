// Peer-controlled strings reach the log escaped: a host NQN with a newline and terminal escape
// sequences, an HTTP path, an RPC method name cannot forge a log line or drive a terminal.
#include "daemon_env.h"
#include "nvmf_host.h"
#include "nvmf_host_cmds.h"

#include <sstream>

using namespace nocstor::testing;
using namespace nocstor::nvmf::testing;

namespace {

const std::string kForged = "[2026-01-01 00:00:00.000] [app] [info] nocstor is ready";

// Every line of the log starts with a timestamp: none was forged.
void expect_no_forged_line(const std::string& log) {
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        EXPECT_NE(line.rfind("[20", 0), std::string::npos) << "line without a header: " << line;
        EXPECT_NE(line.rfind(kForged, 0), 0u) << "forged line: " << line;
    }
    EXPECT_EQ(log.find('\x1b'), std::string::npos) << "raw escape sequence in the log";
    EXPECT_EQ(log.find('\x07'), std::string::npos);
}

TEST(LogInjection, PeerStringsAreEscaped) {
    Daemon d({"--empty", "-L", "info,rpc=debug,http=debug"});
    const std::string nqn = "nqn.2024-01.io.nocstor:log";
    const uint16_t port = free_tcp_port();
    d.ok("bdev_malloc_create", {{"name", "M"}, {"num_blocks", 256}, {"block_size", 512}});
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}});  // no host allowed: the Connect is logged
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", nqn},
          {"listen_address",
           {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}});
    const std::string evil_host = "nqn.evil\n" + kForged + "\x1b]0;owned\x07\x1b[2J";
    {
        TestHost h(port);
        ASSERT_TRUE(h.ok());
        ASSERT_TRUE(h.ic());
        auto c = connect(h, 0, 0xFFFF, nqn, evil_host);
        ASSERT_TRUE(c);
        EXPECT_FALSE(c->status.ok());
    }
    // An HTTP path and an RPC method name.
    http_request(d.http_port(), "GET", "/api/v1/%0a" + std::string("\x1b[31m"), "");
    http_request(d.http_port(), "POST", "/api/v1/bdevs", "{}", "wrong\x1b[2J");
    d.call("evil\n" + kForged + "\x1b[31m");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const std::string log = d.log();
    EXPECT_NE(log.find("nqn.evil\\n[2026-01-01"), std::string::npos) << log;
    expect_no_forged_line(log);
}

}  // namespace
