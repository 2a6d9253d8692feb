// Helpers shared by the tests that run third-party initiators (the Linux kernel's, SPDK's)
// against the real daemon: running a shell command, and serving one RAM volume.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon_env.h"

namespace nocstor::testing {

inline bool have_tool(const char* tool) {
    return system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// Runs a shell command; returns its stdout (add 2>&1 for stderr) and sets *rc to its exit code.
inline std::string run_command(const std::string& cmd, int* rc) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
        *rc = -1;
        return out;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

// `nqn` and the discovery subsystem listening on 127.0.0.1:port (what the kernel harness needs).
inline void listen_with_discovery(Daemon& d, uint16_t port, const std::string& nqn) {
    nlohmann::json la = {{"trtype", "TCP"},
                         {"adrfam", "IPv4"},
                         {"traddr", "127.0.0.1"},
                         {"trsvcid", std::to_string(port)}};
    d.ok("nvmf_subsystem_add_listener", {{"nqn", nqn}, {"listen_address", la}});
    d.ok("nvmf_subsystem_add_listener",
         {{"nqn", "nqn.2014-08.org.nvmexpress.discovery"}, {"listen_address", la}});
}

// A 256 MiB malloc volume exported as `nqn` on 127.0.0.1:port, with discovery on the same port.
inline void serve_volume(Daemon& d, uint16_t port, const std::string& nqn) {
    d.ok("bdev_malloc_create", {{"name", "Vol"}, {"num_blocks", 65536}, {"block_size", 4096}});
    d.ok("nvmf_create_transport", {{"trtype", "TCP"}});
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}, {"allow_any_host", true}});
    d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", {{"bdev_name", "Vol"}}}});
    listen_with_discovery(d, port, nqn);
}

}  // namespace nocstor::testing
