// The cost of crossing clusters: one job (-q I/Os in flight for -t seconds, random 4 KiB reads
// or writes by default) against a null (or malloc: --base) bdev owned by data cluster 2,
// submitted
//   direct: on cluster 2's own thread, to the null bdev;
//   remote: on cluster 1's thread, to a remote bdev towards it (one NoC round trip per I/O);
//   bounce: the same with heap buffers, which the remote bdev copies through the arena.
// Prints IOPS, p50/p99 latency and the remote/direct ratios in one run (the machines are noisy:
// compare within a run). Cluster 1 and 2 get one core each (--cores "A,B"), the control plane
// shares the first. --process runs cluster 2 in a forked child process on the shared NoC (as
// --cluster-processes does; only the remote and bounce paths then), to compare the two modes
// with a core per cluster.
//
//   remote_io_bench -q 32 -t 3 [-w randread|randwrite] [-o 4096] [--cores 0,1] [--json]
//                   [--process]
#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "modules/builtin.h"
#include "modules/malloc.h"
#include "modules/null.h"
#include "modules/remote/remote_bdev.h"
#include "modules/remote/remote_export.h"
#include "runtime/runtime.h"
#include "util/histogram.h"
#include "util/log.h"
#include "util/tick.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace nocstor;

namespace {

struct Opts {
    uint32_t qd = 32;
    uint32_t io_size = 4096;
    double seconds = 3;
    std::string workload = "randread";
    std::string cores = "0,1";
    bool json_out = false;
    std::string paths = "direct,remote,bounce";
    std::string base = "null";
    bool process = false;
};

struct Result {
    uint64_t ios = 0;
    double seconds = 0;
    Histogram lat;
    uint64_t errors = 0;
    double iops() const { return seconds > 0 ? double(ios) / seconds : 0; }
};

// A closed loop of qd I/Os on the calling reactor thread; done() after `seconds`.
struct Job {
    struct Slot {
        Job* job;
        uint64_t start = 0;
        iovec iov;
        std::vector<unsigned char> heap;
        Buffer arena;
    };
    Opts o;
    BdevDesc* desc = nullptr;
    IoChannel* ch = nullptr;
    std::vector<Slot> slots;
    std::mt19937_64 rng{1};
    uint64_t blocks = 0, nlb = 0, end_ns = 0;
    uint32_t inflight = 0;
    bool write = false;
    Result res;
    std::function<void()> done;

    void submit(Slot& s) {
        const uint64_t lba = (rng() % (blocks / nlb)) * nlb;
        s.start = now_ns();
        auto cb = [](BdevIo* io, bool ok, void* arg) {
            auto* s = static_cast<Slot*>(arg);
            bdev_free_io(io);
            Job* j = s->job;
            const uint64_t now = now_ns();
            j->res.lat.record(now - s->start);
            ++j->res.ios;
            if (!ok) ++j->res.errors;
            if (now < j->end_ns) return j->submit(*s);
            if (--j->inflight == 0) j->done();
        };
        const int rc = write ? bdev_writev(desc, ch, &s.iov, 1, lba, nlb, cb, &s)
                             : bdev_readv(desc, ch, &s.iov, 1, lba, nlb, cb, &s);
        if (rc) {
            ++res.errors;
            if (--inflight == 0) done();
        }
    }
};

Result run_job(Runtime& rt, Thread* t, const std::string& bdev, const Opts& o, bool heap) {
    Job job;
    job.o = o;
    job.write = o.workload == "randwrite";
    std::promise<void> finished;
    BufferPool& pool = rt.noc().buffers(t->cluster_id());
    t->send([&] {
        if (bdev_open(bdev, true, nullptr, &job.desc) != 0) {
            fprintf(stderr, "cannot open %s\n", bdev.c_str());
            return finished.set_value();
        }
        job.ch = bdev_get_io_channel(job.desc);
        job.blocks = job.desc->bdev()->num_blocks;
        job.nlb = o.io_size / job.desc->bdev()->block_size;
        job.slots.resize(o.qd);
        job.inflight = o.qd;
        job.done = [&] { finished.set_value(); };
        const uint64_t start = now_ns();
        job.end_ns = start + uint64_t(o.seconds * 1e9);
        for (auto& s : job.slots) {
            s.job = &job;
            if (heap) {
                s.heap.assign(o.io_size, 0);
                s.iov = {s.heap.data(), o.io_size};
            } else {
                s.arena =
                    pool.get(o.io_size <= pool.buffer_size(BufClass::Small) ? BufClass::Small
                                                                            : BufClass::Large);
                s.iov = {s.arena.data, o.io_size};
            }
        }
        for (auto& s : job.slots) job.submit(s);
    });
    const uint64_t t0 = now_ns();
    finished.get_future().wait();
    job.res.seconds = double(now_ns() - t0) / 1e9;
    std::promise<void> closed;
    t->send([&] {
        for (auto& s : job.slots)
            if (s.arena) pool.put(s.arena);
        if (job.ch) bdev_put_io_channel(job.ch);
        if (job.desc) bdev_close(job.desc);
        closed.set_value();
    });
    closed.get_future().wait();
    return std::move(job.res);
}

// On cluster 2 (control thread): a null or malloc bdev named `name`.
int make_base(const Opts& o, const char* name, std::string* err) {
    BdevClusterScope scope(2);
    if (o.base == "malloc") {
        MallocBdevOptions m;
        m.name = name;
        m.num_blocks = (256ull << 20) / 512;
        m.block_size = 512;
        return malloc_bdev_create(m, err);
    }
    NullBdevOptions n;
    n.name = name;
    n.num_blocks = (1ull << 30) / 512;
    n.block_size = 512;
    n.zero_reads = false;  // SPDK's null: the cost of the path, not of a memset
    return null_bdev_create(n, err);
}

// --process: cluster 2 in this forked child, its base exported to cluster 1; the export's
// description goes back through `out` (a pipe). Never returns.
[[noreturn]] void run_child(const Opts& o, RuntimeOptions ro, const NocFabricFds& fds, int out) {
    ro.local_clusters = {2};
    NocFabricFds mine{dup(fds.region), {}};
    for (int fd : fds.doorbells) mine.doorbells.push_back(dup(fd));
    ro.attach = std::move(mine);
    try {
        Runtime rt(ro);
        rt.start();
        rt.control_thread()->send([&o, out] {
            std::string err;
            remote::ExportInfo info;
            int rc = make_base(o, "null_behind", &err);
            if (rc == 0) rc = remote::peer_export_create("null_behind", 1, &info, &err);
            if (rc) fprintf(stderr, "child setup: %s\n", err.c_str());
            const uint32_t fields[] = {uint32_t(rc ? 0 : info.id), info.block_size,
                                       uint32_t(info.num_blocks), uint32_t(info.num_blocks >> 32),
                                       info.io_types};
            if (write(out, fields, sizeof fields) != ssize_t(sizeof fields)) _exit(3);
        });
        pause();
    } catch (const std::exception& e) {
        fprintf(stderr, "child: %s\n", e.what());
    }
    _exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    Opts o;
    CLI::App cli{"remote bdev vs direct bdev across clusters"};
    cli.add_option("-q", o.qd, "I/Os in flight")->check(CLI::Range(1, 1024));
    cli.add_option("-o", o.io_size, "I/O size in bytes (multiple of 512, <= 128 KiB)");
    cli.add_option("-t", o.seconds, "seconds per run")->check(CLI::Range(0.1, 600.0));
    cli.add_option("-w", o.workload, "randread or randwrite")
        ->check(CLI::IsMember({"randread", "randwrite"}));
    cli.add_option("--cores", o.cores, "cores of cluster 1 and cluster 2, e.g. 0,1");
    cli.add_flag("--json", o.json_out, "one JSON object instead of the table");
    cli.add_option("--paths", o.paths, "which runs, e.g. remote (for a profile of one path)");
    cli.add_option("--base", o.base,
                   "the bdev on cluster 2: null (the path's own cost) or malloc "
                   "(256 MiB, a memcpy per I/O)")
        ->check(CLI::IsMember({"null", "malloc"}));
    cli.add_flag("--process", o.process, "cluster 2 in a child process (remote paths only)");
    CLI11_PARSE(cli, argc, argv);
    if (o.process) o.paths = o.paths == "direct,remote,bounce" ? "remote,bounce" : o.paths;
    if (o.io_size % 512 || o.io_size == 0 || o.io_size > 128 * 1024) {
        fprintf(stderr, "-o must be a multiple of 512 up to 128 KiB\n");
        return 2;
    }
    int a = 0, b = 1;
    if (sscanf(o.cores.c_str(), "%d,%d", &a, &b) != 2) {
        fprintf(stderr, "--cores must be two cores, e.g. 0,1\n");
        return 2;
    }
    set_log_level("*", "warn");
    register_builtin_bdev_modules();
    RuntimeOptions ro;
    ro.clusters = {{0, ClusterSpec::Role::Control, {a}},
                   {1, ClusterSpec::Role::Data, {a}},
                   {2, ClusterSpec::Role::Data, {b}}};
    ro.reactor.pin = true;
    pid_t child = -1;
    remote::ExportInfo target;
    RuntimeOptions parent_ro = ro;
    if (o.process) parent_ro.local_clusters = {0, 1};
    Runtime rt(parent_ro);
    if (o.process) {  // before rt.start(): the child forks a process with no reactor threads
        int p[2];
        if (pipe(p) != 0) return 1;
        child = fork();
        if (child == 0) {
            close(p[0]);
            run_child(o, ro, rt.noc().fds(), p[1]);
        }
        close(p[1]);
        uint32_t f[5] = {};
        const bool got = read(p[0], f, sizeof f) == ssize_t(sizeof f) && f[0] != 0;
        close(p[0]);
        if (!got) {
            fprintf(stderr, "the child process did not export its bdev\n");
            kill(child, SIGKILL);
            return 1;
        }
        target.id = f[0];
        target.cluster = 2;
        target.base_name = "null_behind";
        target.block_size = f[1];
        target.num_blocks = uint64_t(f[3]) << 32 | f[2];
        target.io_types = f[4];
    }
    rt.start();
    std::promise<int> made;
    rt.control_thread()->send([&] {
        std::string err;
        int rc = 0;
        // On cluster 2: one bdev driven directly, one behind the remote bdev (which claims it).
        if (!o.process) rc = make_base(o, "null", &err);
        if (rc == 0 && !o.process) rc = make_base(o, "null_behind", &err);
        if (rc == 0) {
            remote::RemoteCreateOptions r;
            r.name = "remote";
            r.base_bdev_name = "null_behind";
            r.cluster = 1;
            rc = o.process ? remote::remote_bdev_create_linked(r, target, &err)
                           : remote::remote_bdev_create(r, &err);
        }
        if (rc) fprintf(stderr, "setup: %s\n", err.c_str());
        made.set_value(rc);
    });
    if (made.get_future().get() != 0) {
        if (child > 0) kill(child, SIGKILL);
        return 1;
    }
    Thread* x = rt.noc_thread(1);
    Thread* y = rt.noc_thread(2);
    auto want = [&](const char* p) { return o.paths.find(p) != std::string::npos; };
    Result direct = want("direct") ? run_job(rt, y, "null", o, false) : Result{};
    Result remote = want("remote") ? run_job(rt, x, "remote", o, false) : Result{};
    Result bounce = want("bounce") ? run_job(rt, x, "remote", o, true) : Result{};

    auto us = [](uint64_t ns) { return double(ns) / 1000.0; };
    if (o.json_out) {
        nlohmann::json j;
        for (auto [name, r] :
             {std::pair{"direct", &direct}, {"remote", &remote}, {"bounce", &bounce}})
            j[name] = {{"iops", r->iops()},
                       {"p50_us", us(r->lat.percentile(50))},
                       {"p99_us", us(r->lat.percentile(99))},
                       {"errors", r->errors}};
        j["remote_vs_direct"] = remote.iops() / direct.iops();
        j["added_p50_us"] = us(remote.lat.percentile(50)) - us(direct.lat.percentile(50));
        printf("%s\n", j.dump().c_str());
    } else {
        printf("%-8s %12s %10s %10s %8s\n", "path", "IOPS", "p50 us", "p99 us", "errors");
        for (auto [name, r] :
             {std::pair{"direct", &direct}, {"remote", &remote}, {"bounce", &bounce}})
            printf("%-8s %12.0f %10.2f %10.2f %8lu\n", name, r->iops(), us(r->lat.percentile(50)),
                   us(r->lat.percentile(99)), (unsigned long)r->errors);
        printf("remote/direct IOPS %.3f, bounce/direct %.3f, added p50 %.2f us (%s, qd %u, %u B)\n",
               remote.iops() / direct.iops(), bounce.iops() / direct.iops(),
               us(remote.lat.percentile(50)) - us(direct.lat.percentile(50)), o.workload.c_str(),
               o.qd, o.io_size);
    }
    std::promise<void> fin;
    rt.control_thread()->send([&] { bdev_layer_fini([&] { fin.set_value(); }); });
    fin.get_future().wait();
    rt.request_shutdown();
    rt.wait();
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, nullptr, 0);
    }
    const bool failed = direct.errors || remote.errors || bounce.errors;
    return failed ? 1 : 0;
}
