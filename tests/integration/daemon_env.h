// Starts the real `nocstor` daemon binary for a test: a private RPC socket, free ports, an empty
// or given configuration; stops it with SIGINT and reports how it exited.
#pragma once

#include "control/rpc_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace nocstor::testing {

// A TCP port nobody listens on right now (bind to 0, read it, close).
inline uint16_t free_tcp_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    uint16_t port = ntohs(a.sin_port);
    close(fd);
    return port;
}

inline std::string temp_dir() {
    char tmpl[] = "/tmp/nocstor-test.XXXXXX";
    return mkdtemp(tmpl);
}

class Daemon {
  public:
    // max_open_files: RLIMIT_NOFILE of the daemon (0: inherited).
    explicit Daemon(std::vector<std::string> extra_args, std::string dir = temp_dir(),
                    rlim_t max_open_files = 0)
        : dir_(std::move(dir)), args_(std::move(extra_args)), max_open_files_(max_open_files) {
        socket_ = dir_ + "/rpc.sock";
        http_port_ = free_tcp_port();
        start();
    }
    ~Daemon() { stop(); }

    void start() {
        log_ = dir_ + "/nocstor.log";
        std::vector<std::string> argv = {std::string(NOCSTOR_BIN_DIR) + "/nocstor",
                                         "-r",
                                         socket_,
                                         "--http-port",
                                         std::to_string(http_port_),
                                         "--idle-sleep-us",
                                         "200"};
        // One data cluster on core 0 unless the test asks for its own plan.
        if (std::find(args_.begin(), args_.end(), "--clusters") == args_.end()) {
            argv.push_back("--clusters");
            argv.push_back("0:control:0;1:data:0");
        }
        argv.insert(argv.end(), args_.begin(), args_.end());
        pid_ = fork();
        if (pid_ == 0) {
            FILE* f = freopen(log_.c_str(), "a", stderr);
            (void)f;
            if (max_open_files_ != 0) {
                rlimit rl{max_open_files_, max_open_files_};
                setrlimit(RLIMIT_NOFILE, &rl);
            }
            std::vector<char*> cargs;
            for (auto& a : argv) cargs.push_back(a.data());
            cargs.push_back(nullptr);
            execv(cargs[0], cargs.data());
            _exit(127);
        }
        // Ready when the RPC socket answers.
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < end) {
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                exit_status_ = status;
                return;
            }
            if (std::filesystem::exists(socket_)) {
                control::RpcClient c(socket_, std::chrono::seconds(5));
                if (c.call("framework_wait_init").ok()) return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ADD_FAILURE() << "nocstor did not become ready; log:\n" << log();
    }

    // SIGINT and wait; returns the exit status (or -1 on timeout, after SIGKILL).
    int stop() {
        if (pid_ <= 0) return exit_status_;
        if (!exited_) {
            kill(pid_, SIGINT);
            auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
            while (std::chrono::steady_clock::now() < end) {
                int status;
                if (waitpid(pid_, &status, WNOHANG) == pid_) {
                    exited_ = true;
                    exit_status_ = status;
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            if (!exited_) {
                kill(pid_, SIGKILL);
                waitpid(pid_, nullptr, 0);
                exit_status_ = -1;
                exited_ = true;
            }
        }
        pid_ = -1;
        return exit_status_;
    }
    void restart() {
        stop();
        exited_ = false;
        start();
    }

    bool alive() {
        if (exited_ || pid_ <= 0) return false;
        int status;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            exit_status_ = status;
            return false;
        }
        return true;
    }
    bool exited() const { return exited_; }
    int exit_status() const { return exit_status_; }

    control::RpcResult call(const std::string& method, const nlohmann::json& params = nullptr) {
        control::RpcClient c(socket_, std::chrono::seconds(20));
        return c.call(method, params);
    }
    nlohmann::json ok(const std::string& method, const nlohmann::json& params = nullptr) {
        auto r = call(method, params);
        EXPECT_TRUE(r.ok()) << method << " " << params.dump() << " -> " << r.message;
        return r.result;
    }

    const std::string& log_path() const { return log_; }
    std::string log() const {
        std::string s;
        if (FILE* f = fopen(log_.c_str(), "r")) {
            char buf[4096];
            size_t n;
            while ((n = fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
            fclose(f);
        }
        return s;
    }
    // The REST API's management token (the daemon writes it next to the RPC socket).
    std::string token() const {
        std::string t;
        if (FILE* f = fopen((socket_ + ".token").c_str(), "r")) {
            char buf[256];
            if (fgets(buf, sizeof(buf), f)) t = buf;
            fclose(f);
        }
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
        return t;
    }
    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }
    uint16_t http_port() const { return http_port_; }
    pid_t pid() const { return pid_; }

  private:
    std::string dir_, socket_, log_;
    std::vector<std::string> args_;
    rlim_t max_open_files_ = 0;
    uint16_t http_port_ = 0;
    pid_t pid_ = -1;
    bool exited_ = false;
    int exit_status_ = 0;
};

// Three data clusters (1-3) sharing core 0 with the control plane: multi-cluster tests on 2 cpus.
inline const std::string kThreeClusterPlan = "0:control:0;1:data:0;2:data:0;3:data:0";

// Polls p() every 100 ms until it holds (true) or `seconds` pass (false).
template <typename Pred>
bool wait_until(Pred p, int seconds) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (p()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

// With --cluster-processes: true once the daemon lists `n` children, all running and answering.
inline bool wait_cluster_processes(Daemon& d, size_t n) {
    return wait_until(
        [&] {
            auto r = d.call("nocstor_get_cluster_processes");
            bool all = r.ok() && r.result.size() == n;
            for (size_t i = 0; all && i < r.result.size(); ++i)
                all = r.result[i]["state"] == "running" &&
                      d.call("bdev_get_bdevs", {{"cluster", r.result[i]["cluster"]}}).ok();
            return all;
        },
        30);
}

// n pseudo-random bytes from `seed`.
inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937_64 g(seed);
    for (auto& b : v) b = uint8_t(g());
    return v;
}

// A subsystem open to any host, with `bdev` as a namespace when given, listening on
// 127.0.0.1:port (bound to data cluster `cluster` when >= 0).
inline void export_over_nvmf(Daemon& d, const std::string& nqn, const std::string& bdev,
                             uint16_t port, int cluster = -1) {
    d.ok("nvmf_create_subsystem", {{"nqn", nqn}, {"allow_any_host", true}});
    if (!bdev.empty())
        d.ok("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", {{"bdev_name", bdev}}}});
    nlohmann::json params = {
        {"nqn", nqn},
        {"listen_address",
         {{"trtype", "TCP"}, {"traddr", "127.0.0.1"}, {"trsvcid", std::to_string(port)}}}};
    if (cluster >= 0) params["cluster"] = cluster;
    d.ok("nvmf_subsystem_add_listener", params);
}

// One HTTP/1.1 request on a fresh connection (Connection: close); returns status and body.
struct HttpReply {
    int status = 0;
    std::string headers, body;
};
// With a token, the request carries "Authorization: Bearer <token>".
inline HttpReply http_request(uint16_t port, const std::string& method, const std::string& path,
                              const std::string& body = "", const std::string& token = "") {
    HttpReply r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(fd);
        return r;
    }
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    if (!body.empty())
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n";
    req += "\r\n" + body;
    (void)!write(fd, req.data(), req.size());
    std::string resp;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, size_t(n));
    close(fd);
    auto hdr_end = resp.find("\r\n\r\n");
    if (resp.size() < 12 || hdr_end == std::string::npos) return r;
    r.status = std::stoi(resp.substr(9, 3));
    r.headers = resp.substr(0, hdr_end);
    r.body = resp.substr(hdr_end + 4);
    return r;
}

}  // namespace nocstor::testing
