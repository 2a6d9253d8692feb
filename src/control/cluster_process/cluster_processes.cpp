#include "control/cluster_process/cluster_processes.h"

#include "control/cluster_process/remote_link.h"
#include "control/rpc_client.h"
#include "runtime/runtime.h"
#include "util/log.h"
#include "util/tick.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>

namespace nocstor::control {

namespace {

constexpr uint64_t kWatchPeriodUs = 100'000;
constexpr uint64_t kFirstBackoffNs = 250'000'000;
constexpr uint64_t kMaxBackoffNs = 8'000'000'000;
constexpr uint64_t kStableRunNs = 30'000'000'000;  // a child that ran this long resets back-off
constexpr uint64_t kStopGraceNs = 5'000'000'000;
constexpr auto kForwardTimeout = std::chrono::seconds(30);

struct Child {
    int cluster = 0;
    pid_t pid = 0;
    enum class State { Running, Restarting, Stopping, Stopped } state = State::Restarting;
    uint32_t restarts = 0;
    uint64_t started_ns = 0;
    uint64_t restart_at_ns = 0;
    uint64_t backoff_ns = kFirstBackoffNs;
    std::string socket;
    std::string last_exit;
};

struct Supervisor {
    ClusterProcessOptions opts;
    std::vector<Child> children;
    Thread* control = nullptr;
    Poller* watcher = nullptr;
    uint64_t stop_deadline_ns = 0;
    std::function<void()> stopped;
    // Forwarded calls still waiting for a child (their threads post back to the control
    // thread, so shutdown waits for them).
    std::shared_ptr<std::atomic<int>> in_flight = std::make_shared<std::atomic<int>>(0);
};

Supervisor* g_sup = nullptr;

const char* state_name(Child::State s) {
    switch (s) {
        case Child::State::Running:
            return "running";
        case Child::State::Restarting:
            return "restarting";
        case Child::State::Stopping:
            return "stopping";
        case Child::State::Stopped:
            return "stopped";
    }
    return "?";
}

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
               strsignal(WTERMSIG(status)) + ")";
    }
    return "ended (status " + std::to_string(status) + ")";
}

// fork + exec of the child; only async-signal-safe calls between the two.
void spawn(Child& c) {
    const auto& o = g_sup->opts;
    std::vector<std::string> args = {o.exe,
                                     "--cluster-child",
                                     std::to_string(c.cluster),
                                     "--noc-fds",
                                     format_noc_fds(o.fds),
                                     "-r",
                                     c.socket,
                                     "--no-http"};
    // A child never gets the default configuration (its volume is the front end's): it starts
    // empty until it has saved a configuration of its own.
    const std::string config = o.config_base + ".cluster" + std::to_string(c.cluster) + ".json";
    if (o.config_base.empty() || access(config.c_str(), F_OK) != 0) args.push_back("--empty");
    if (!o.config_base.empty()) {
        args.push_back("-c");
        args.push_back(config);
        args.push_back("--persist");
    }
    args.insert(args.end(), o.common_args.begin(), o.common_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<int> keep = o.fds.doorbells;
    keep.push_back(o.fds.region);
    const pid_t parent = getpid();
    const cpu_set_t affinity = o.affinity;
    const bool has_affinity = o.has_affinity;

    const pid_t pid = fork();
    if (pid == 0) {
        // The child dies with us: it must never serve a NoC nobody supervises.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        for (int fd : keep) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) & ~FD_CLOEXEC);
        if (has_affinity) sched_setaffinity(0, sizeof affinity, &affinity);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);  // run_daemon blocks what it waits for
        execv(argv[0], argv.data());
        _exit(127);
    }
    if (pid < 0) {
        c.last_exit = std::string("fork failed: ") + strerror(errno);
        c.state = Child::State::Restarting;
        c.restart_at_ns = now_ns() + c.backoff_ns;
        NOC_ERROR("cluster", "cluster {}: {}", c.cluster, c.last_exit);
        return;
    }
    c.pid = pid;
    c.state = Child::State::Running;
    c.started_ns = now_ns();
    NOC_INFO("cluster", "cluster {} runs in process {} (JSON-RPC {})", c.cluster, pid, c.socket);
    remote_link_peer_started(c.cluster);
}

// Timed poller on the control thread: reaps dead children and restarts them.
int watch() {
    Supervisor* s = g_sup;
    const uint64_t now = now_ns();
    int work = 0;
    for (Child& c : s->children) {
        if (c.pid > 0) {
            int status = 0;
            const pid_t r = waitpid(c.pid, &status, WNOHANG);
            if (r == c.pid) {
                ++work;
                c.last_exit = describe_exit(status);
                c.pid = 0;
                remote_link_peer_down(c.cluster);
                if (c.state == Child::State::Stopping) {
                    c.state = Child::State::Stopped;
                    NOC_INFO("cluster", "cluster {} process stopped ({})", c.cluster, c.last_exit);
                    continue;
                }
                if (now - c.started_ns >= kStableRunNs) c.backoff_ns = kFirstBackoffNs;
                c.state = Child::State::Restarting;
                c.restart_at_ns = now + c.backoff_ns;
                NOC_ERROR("cluster",
                          "cluster {} process {}; the other clusters keep serving; restarting it "
                          "in {} ms",
                          c.cluster, c.last_exit, c.backoff_ns / 1'000'000);
                c.backoff_ns = std::min(c.backoff_ns * 2, kMaxBackoffNs);
            }
        } else if (c.state == Child::State::Restarting && now >= c.restart_at_ns) {
            ++work;
            ++c.restarts;
            spawn(c);
        }
    }
    if (s->stopped) {
        bool all = true;
        for (Child& c : s->children) {
            if (c.pid > 0 && now >= s->stop_deadline_ns) {
                NOC_WARN("cluster", "cluster {} process {} did not stop in time: SIGKILL",
                         c.cluster, c.pid);
                kill(c.pid, SIGKILL);
            }
            all = all && c.pid == 0;
        }
        if (all && s->in_flight->load() == 0) {
            auto done = std::move(s->stopped);
            s->stopped = nullptr;
            Thread::current()->unregister_poller(s->watcher);
            s->watcher = nullptr;
            done();
        }
    }
    return work;
}

Child* child_of(int cluster) {
    if (!g_sup) return nullptr;
    for (Child& c : g_sup->children)
        if (c.cluster == cluster) return &c;
    return nullptr;
}

// Calls `method` on a child's socket from a helper thread (the call blocks) and hands the
// answer to `done` on the control thread.
void call_child(const Child& c, std::string method, nlohmann::json params,
                std::function<void(RpcResult)> done) {
    auto in_flight = g_sup->in_flight;
    Thread* control = g_sup->control;
    in_flight->fetch_add(1);
    std::thread([socket = c.socket, method = std::move(method), params = std::move(params),
                 done = std::move(done), in_flight, control]() mutable {
        RpcClient client(socket, kForwardTimeout);
        auto result = std::make_shared<RpcResult>(client.call(method, params));
        auto fn = std::make_shared<std::function<void(RpcResult)>>(std::move(done));
        control->send([result, fn, in_flight] {
            (*fn)(std::move(*result));
            in_flight->fetch_sub(1);
        });
    }).detach();
}

void answer(const RpcReply& reply, const Child& c, RpcResult r) {
    switch (r.kind) {
        case RpcResult::Kind::kOk:
            return reply.result(std::move(r.result));
        case RpcResult::Kind::kRpcError:
            return reply.error(r.code, r.message);
        case RpcResult::Kind::kTransport:
            return reply.error(-ENOTCONN, "cluster " + std::to_string(c.cluster) + " (process " +
                                              state_name(c.state) + "): " + r.message);
    }
}

// bdev_get_bdevs over every process: by name, the first that knows it; else all of them.
void merged_get_bdevs(const nlohmann::json& params, RpcReply reply) {
    const bool by_name = params.is_object() && params.contains("name");
    struct Merge {
        RpcReply reply;
        nlohmann::json all = nlohmann::json::array();
        bool found = false;
        nlohmann::json local_error;
        size_t pending = 0;
    };
    auto m = std::make_shared<Merge>();
    m->reply = std::move(reply);
    auto finish = [m] {
        if (m->found || !m->local_error.is_object() || m->all.size() > 0)
            return m->reply.result(std::move(m->all));
        m->reply.error(m->local_error.value("code", -ENODEV),
                       m->local_error.value("message", std::string("no such bdev")));
    };
    RpcRegistry::instance().call_local(
        "bdev_get_bdevs", params, RpcReply([m, params, by_name, finish](bool ok, nlohmann::json v) {
            if (ok) {
                for (auto& b : v) m->all.push_back(std::move(b));
                m->found = by_name;
            } else {
                m->local_error = std::move(v);
            }
            if (m->found || !g_sup) return finish();
            for (const Child& c : g_sup->children) {
                if (c.state != Child::State::Running) continue;
                ++m->pending;
                call_child(c, "bdev_get_bdevs", params, [m, finish, by_name](RpcResult r) {
                    if (r.ok() && r.result.is_array() && !(by_name && m->found)) {
                        for (auto& b : r.result) m->all.push_back(std::move(b));
                        if (by_name && !r.result.empty()) m->found = true;
                    }
                    if (--m->pending == 0) finish();
                });
            }
            if (m->pending == 0) finish();
        }));
}

bool forward(const std::string& method, const nlohmann::json& params, RpcReply& reply) {
    if (!g_sup) return false;
    if (params.is_object() && params.contains("cluster") && params["cluster"].is_number_integer()) {
        Child* c = child_of(params["cluster"].get<int>());
        if (!c) return false;
        nlohmann::json p = params;
        // Methods that create bdevs take {"cluster"} themselves; on the others it only addresses
        // the process.
        if (!rpc_method_creates_bdevs(method)) p.erase("cluster");
        if (c->state != Child::State::Running) {
            reply.error(-ENOTCONN, "cluster " + std::to_string(c->cluster) + " is " +
                                       state_name(c->state) +
                                       (c->last_exit.empty() ? "" : " (" + c->last_exit + ")"));
            return true;
        }
        const Child& ch = *c;
        call_child(ch, method, std::move(p), [reply, cluster = c->cluster](RpcResult r) {
            const Child* now = child_of(cluster);
            if (now) answer(reply, *now, std::move(r));
        });
        return true;
    }
    if (method == "bdev_get_bdevs") {
        merged_get_bdevs(params, reply);
        return true;
    }
    return false;
}

}  // namespace

std::string format_noc_fds(const NocFabricFds& fds) {
    std::string s = std::to_string(fds.region);
    for (int fd : fds.doorbells) s += "," + std::to_string(fd);
    return s;
}

bool parse_noc_fds(const std::string& text, NocFabricFds* out, std::string* err) {
    std::vector<int> v;
    size_t at = 0;
    while (at <= text.size()) {
        const size_t comma = text.find(',', at);
        const std::string part =
            text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        char* end = nullptr;
        const long fd = strtol(part.c_str(), &end, 10);
        if (part.empty() || *end != '\0' || fd < 0 || fd > 1 << 20) {
            *err = "--noc-fds: '" + part + "' is not a file descriptor";
            return false;
        }
        if (fcntl(int(fd), F_GETFD) < 0) {
            *err = "--noc-fds: fd " + part + " is not open";
            return false;
        }
        v.push_back(int(fd));
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    if (v.size() < 2) {
        *err = "--noc-fds needs the region's fd and one doorbell per cluster";
        return false;
    }
    out->region = v.front();
    out->doorbells.assign(v.begin() + 1, v.end());
    for (int fd : v) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);  // not to our children
    return true;
}

void cluster_processes_start(ClusterProcessOptions opts) {
    g_sup = new Supervisor();  // lives until the process exits: detached threads may post to it
    g_sup->opts = std::move(opts);
    g_sup->control = Thread::current();
    for (int cluster : g_sup->opts.clusters) {
        Child c;
        c.cluster = cluster;
        c.socket = g_sup->opts.rpc_socket_base + ".cluster" + std::to_string(cluster);
        g_sup->children.push_back(std::move(c));
    }
    for (Child& c : g_sup->children) spawn(c);
    g_sup->watcher = Thread::current()->register_poller("cluster_processes", watch, kWatchPeriodUs);
    RpcRegistry::instance().set_forwarder(forward);
}

void cluster_processes_stop(std::function<void()> done) {
    if (!g_sup || !g_sup->watcher) return done();
    RpcRegistry::instance().set_forwarder(nullptr);
    for (Child& c : g_sup->children) {
        if (c.pid > 0) {
            c.state = Child::State::Stopping;
            kill(c.pid, SIGTERM);
        } else {
            c.state = Child::State::Stopped;
        }
    }
    g_sup->stop_deadline_ns = now_ns() + kStopGraceNs;
    g_sup->stopped = std::move(done);
}

nlohmann::json cluster_processes_json() {
    nlohmann::json out = nlohmann::json::array();
    if (!g_sup) return out;
    for (const Child& c : g_sup->children) {
        nlohmann::json e = {{"cluster", c.cluster},
                            {"pid", c.pid},
                            {"state", state_name(c.state)},
                            {"restarts", c.restarts},
                            {"rpc_socket", c.socket}};
        if (!c.last_exit.empty()) e["last_exit"] = c.last_exit;
        out.push_back(std::move(e));
    }
    return out;
}

std::string cluster_process_socket(int cluster) {
    const Child* c = child_of(cluster);
    return c ? c->socket : std::string();
}

std::vector<int> cluster_process_clusters() {
    std::vector<int> out;
    if (g_sup)
        for (const Child& c : g_sup->children) out.push_back(c.cluster);
    return out;
}

void cluster_process_call(int cluster, std::string method, nlohmann::json params,
                          std::function<void(RpcResult)> done) {
    const Child* c = child_of(cluster);
    if (!c || c->state != Child::State::Running || g_sup->stopped) {
        RpcResult r;
        r.message = "cluster " + std::to_string(cluster) + " has no running process";
        return done(std::move(r));
    }
    call_child(*c, std::move(method), std::move(params), std::move(done));
}

void register_cluster_process_rpcs() {
    RpcRegistry::instance().add(
        "nocstor_get_cluster_processes", [](const nlohmann::json& params, RpcReply reply) {
            if (!params.is_null() && !params.empty())
                return reply.invalid("nocstor_get_cluster_processes takes no parameters");
            reply.result(cluster_processes_json());
        });
}

}  // namespace nocstor::control
