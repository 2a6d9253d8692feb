// Debian's tgt (tgtd + tgtadm) as a real iSCSI target for the iSCSI bdev's tests: started on
// 127.0.0.1 on a free port with its own management id, file-backed LUNs, stopped (or killed and
// started again, for reconnect tests) by the test. Tests skip when tgtd is not installed or
// they do not run as root (tgtd creates /var/run/tgtd/socket.N).
#pragma once

#include "daemon_env.h"
#include "interop_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace nocstor::testing {

class TgtServer {
  public:
    explicit TgtServer(std::string dir) : dir_(std::move(dir)) {
        if (!have_tool("tgtd") || !have_tool("tgtadm")) {
            why_ = "tgtd is not installed (apt-get install tgt)";
            return;
        }
        if (geteuid() != 0) {
            why_ = "tgtd needs root";
            return;
        }
        port_ = free_tcp_port();
        std::mt19937 rng(uint32_t(getpid()) ^ uint32_t(port_));
        ctl_ = 3000 + int(rng() % 27000);
        start();
    }
    ~TgtServer() { stop(); }

    bool ok() const { return pid_ > 0; }
    const std::string& why() const { return why_; }
    uint16_t port() const { return port_; }
    std::string portal() const { return "127.0.0.1:" + std::to_string(port_); }

    // Target `tid` named `iqn` with LUN 1 = `file` (LUN 0 is tgt's controller); open to any
    // initiator. `params` e.g. "thin_provisioning=1" (UNMAP).
    bool add_target(int tid, const std::string& iqn, const std::string& file,
                    const std::string& params = "") {
        targets_.push_back({tid, iqn, file, params});
        return configure(targets_.back());
    }
    // A CHAP account bound to the target (outgoing: the target's own, for mutual CHAP).
    bool add_chap(int tid, const std::string& user, const std::string& secret,
                  bool outgoing = false) {
        for (auto& t : targets_)
            if (t.tid == tid) t.chap.push_back({user, secret, outgoing});
        return adm("--lld iscsi --op new --mode account --user " + user + " --password " +
                   secret) &&
               adm("--lld iscsi --op bind --mode account --tid " + std::to_string(tid) +
                   " --user " + user + (outgoing ? " --outgoing" : ""));
    }

    // An iSCSI parameter of the target, e.g. HeaderDigest "CRC32C,None" (tgt offers no digest
    // unless told so).
    bool set_param(int tid, const std::string& name, const std::string& value) {
        for (auto& t : targets_)
            if (t.tid == tid) t.params_set.push_back({name, value});
        return adm("--lld iscsi --op update --mode target --tid " + std::to_string(tid) +
                   " --name " + name + " --value " + value);
    }

    // kill -9, as a crash or a power cut of the target would look.
    void kill_hard() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
        cleanup_socket();
    }
    // Starts tgtd again on the same port with the same targets.
    bool restart() {
        kill_hard();
        if (!start()) return false;
        for (const auto& t : targets_) {
            if (!configure(t)) return false;
            for (const auto& [name, value] : t.params_set)
                adm("--lld iscsi --op update --mode target --tid " + std::to_string(t.tid) +
                    " --name " + name + " --value " + value);
            for (const auto& c : t.chap) {
                adm("--lld iscsi --op new --mode account --user " + c.user + " --password " +
                    c.secret);
                adm("--lld iscsi --op bind --mode account --tid " + std::to_string(t.tid) +
                    " --user " + c.user + (c.outgoing ? " --outgoing" : ""));
            }
        }
        return true;
    }

    void stop() {
        if (pid_ <= 0) return;
        adm("--op update --mode sys --name State -v offline");
        for (const auto& t : targets_)
            adm("--lld iscsi --op delete --mode target --tid " + std::to_string(t.tid) +
                " --force");
        adm("--op delete --mode system");
        for (int i = 0; i < 50 && waitpid(pid_, nullptr, WNOHANG) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (waitpid(pid_, nullptr, WNOHANG) == 0) {
            ::kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        pid_ = -1;
        cleanup_socket();
    }

    std::string log() const {
        int rc = 0;
        return run_command("tail -50 " + dir_ + "/tgtd.log 2>&1", &rc);
    }

  private:
    struct Chap {
        std::string user, secret;
        bool outgoing;
    };
    struct Target {
        int tid;
        std::string iqn, file, params;
        std::vector<Chap> chap = {};
        std::vector<std::pair<std::string, std::string>> params_set = {};
    };

    bool start() {
        const std::string log = dir_ + "/tgtd.log";
        pid_ = fork();
        if (pid_ == 0) {
            int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            const std::string ctl = std::to_string(ctl_);
            const std::string portal = "portal=127.0.0.1:" + std::to_string(port_);
            execlp("tgtd", "tgtd", "-f", "-C", ctl.c_str(), "--iscsi", portal.c_str(),
                   static_cast<char*>(nullptr));
            _exit(127);
        }
        for (int i = 0; i < 100; ++i) {
            if (waitpid(pid_, nullptr, WNOHANG) != 0) break;
            if (adm("--op show --mode sys")) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        why_ = "tgtd did not come up: " + log;
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        pid_ = -1;
        return false;
    }

    bool configure(const Target& t) {
        const std::string tid = std::to_string(t.tid);
        bool ok =
            adm("--lld iscsi --op new --mode target --tid " + tid + " -T " + t.iqn) &&
            adm("--lld iscsi --op new --mode logicalunit --tid " + tid + " --lun 1 -b " + t.file);
        if (ok && !t.params.empty())
            ok = adm("--lld iscsi --op update --mode logicalunit --tid " + tid +
                     " --lun 1 --params " + t.params);
        return ok && adm("--lld iscsi --op bind --mode target --tid " + tid + " -I ALL");
    }

    bool adm(const std::string& args) const {
        int rc = 0;
        run_command("tgtadm -C " + std::to_string(ctl_) + " " + args + " >/dev/null 2>&1", &rc);
        return rc == 0;
    }

    void cleanup_socket() {
        const std::string s = "/var/run/tgtd/socket." + std::to_string(ctl_);
        unlink(s.c_str());
        unlink((s + ".lock").c_str());
    }

    std::string dir_;
    std::string why_;
    uint16_t port_ = 0;
    int ctl_ = 0;
    pid_t pid_ = -1;
    std::vector<Target> targets_;
};

}  // namespace nocstor::testing
