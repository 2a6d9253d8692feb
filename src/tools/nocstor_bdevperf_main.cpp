// nocstor-bdevperf: SPDK's bdevperf, in process. One job per (data thread, bdev) keeps -q I/Os in
// flight on the real runtime for -t seconds and reports IOPS, MiB/s and latency percentiles.
//
//   nocstor-bdevperf --null n0:1G -b n0 -q 32 -o 4096 -w randread -t 5 --cores 1
//   nocstor-bdevperf -c bdev.json -b Malloc0 -w verify -o 64k -q 16 -t 10 --json
#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "modules/bdev_config.h"
#include "modules/builtin.h"
#include "modules/malloc.h"
#include "modules/null.h"
#include "modules/uring.h"
#include "runtime/runtime.h"
#include "util/histogram.h"
#include "util/lat_clock.h"
#include "util/log.h"
#include "util/tick.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace nocstor;

namespace {

std::atomic<bool> g_interrupted{false};
void on_signal(int) {
    g_interrupted.store(true);
}

// "4096", "4k", "128K", "1M", "1G" -> bytes; 0 on error.
uint64_t parse_size(const std::string& s) {
    if (s.empty()) return 0;
    char* end = nullptr;
    unsigned long long v = strtoull(s.c_str(), &end, 10);
    if (end == s.c_str()) return 0;
    std::string suf(end);
    uint64_t mult = 1;
    if (suf == "" || suf == "b" || suf == "B")
        mult = 1;
    else if (suf == "k" || suf == "K" || suf == "KiB")
        mult = 1ull << 10;
    else if (suf == "m" || suf == "M" || suf == "MiB")
        mult = 1ull << 20;
    else if (suf == "g" || suf == "G" || suf == "GiB")
        mult = 1ull << 30;
    else if (suf == "t" || suf == "T" || suf == "TiB")
        mult = 1ull << 40;
    else
        return 0;
    return v * mult;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t p = s.find(sep, start);
        out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
        if (p == std::string::npos) break;
        start = p + 1;
    }
    return out;
}

struct Config {
    uint32_t qd = 32;
    std::string io_size = "4096";
    std::string workload = "randread";
    int read_pct = -1;
    double seconds = 5;
    std::string cores = "1";
    std::vector<std::string> mallocs, nulls, urings, bdevs;
    std::string config_file;
    bool json = false;
    uint64_t seed = 0;
    // Derived.
    uint64_t io_bytes = 0;
    bool random = true;
    bool verify = false;
};

// Every block of a verify write: LBA, seed, then words derived from both.
void stamp(unsigned char* buf, uint32_t bs, uint64_t lba, uint64_t nblocks, uint64_t seed) {
    for (uint64_t b = 0; b < nblocks; ++b) {
        auto* w = reinterpret_cast<uint64_t*>(buf + b * bs);
        uint64_t key = (lba + b) * 0x9e3779b97f4a7c15ull ^ seed;
        w[0] = lba + b;
        w[1] = seed;
        for (uint32_t i = 2; i < bs / 8; ++i) w[i] = key + i;
    }
}

bool check_stamp(const unsigned char* buf, uint32_t bs, uint64_t lba, uint64_t nblocks,
                 uint64_t seed) {
    for (uint64_t b = 0; b < nblocks; ++b) {
        auto* w = reinterpret_cast<const uint64_t*>(buf + b * bs);
        uint64_t key = (lba + b) * 0x9e3779b97f4a7c15ull ^ seed;
        if (w[0] != lba + b || w[1] != seed) return false;
        for (uint32_t i = 2; i < bs / 8; ++i)
            if (w[i] != key + i) return false;
    }
    return true;
}

class Job;

struct Slot {
    Job* job;
    unsigned char* buf;
    iovec iov;
    uint64_t offset = 0;
    uint64_t seed = 0;
    uint64_t submit_tick = 0;  // LatClock: the TSC where it is invariant, not a vDSO call
    bool is_read = true;
    bool verify_read = false;  // verify: the read-back of what this slot wrote
    BdevIoWaitEntry wait;
};

class Job {
  public:
    Job(const Config& c, Thread* t, std::string bdev, uint64_t range_start, uint64_t range_blocks,
        uint32_t index)
        : cfg_(c),
          thread_(t),
          bdev_name_(std::move(bdev)),
          range_start_(range_start),
          range_blocks_(range_blocks),
          rng_((c.seed + index * 7919) | 1),
          index_(index) {}
    ~Job() { free(mem_); }

    // Control thread, before start: preallocates the buffers (4 KiB aligned).
    bool prepare(std::string* err) {
        size_t n = size_t(cfg_.qd) * cfg_.io_bytes;
        if (posix_memalign(&mem_, 4096, n) != 0) {
            *err = "cannot allocate " + std::to_string(n) + " bytes of buffers";
            return false;
        }
        memset(mem_, 0, n);
        slots_.resize(cfg_.qd);
        for (uint32_t i = 0; i < cfg_.qd; ++i) {
            slots_[i].job = this;
            slots_[i].buf = static_cast<unsigned char*>(mem_) + size_t(i) * cfg_.io_bytes;
        }
        return true;
    }

    // Job thread.
    void start(std::function<void()> on_done) {
        on_done_ = std::move(on_done);
        int rc = bdev_open(
            bdev_name_, !(cfg_.read_pct == 100 && !cfg_.verify),
            [this](BdevEvent ev, Bdev*) {
                if (ev == BdevEvent::Remove) stopping_ = true;
            },
            &desc_);
        if (rc) {
            error_ = "cannot open " + bdev_name_ + ": " + strerror(-rc);
            on_done_();
            return;
        }
        ch_ = bdev_get_io_channel(desc_);
        if (!ch_) {
            error_ = "cannot get an I/O channel for " + bdev_name_;
            bdev_close(desc_);
            on_done_();
            return;
        }
        bs_ = desc_->bdev()->block_size;
        io_blocks_ = cfg_.io_bytes / bs_;
        seq_next_ = range_start_;
        start_ns_ = now_ns();
        end_ns_ = start_ns_ + uint64_t(cfg_.seconds * 1e9);
        timer_ = Thread::current()->register_poller(
            "bdevperf", [this] { return check_time(); }, 10'000);
        for (auto& s : slots_) {
            s.offset = next_offset();
            s.seed = 0;
            issue(s);
        }
    }

    nlohmann::json result() const {
        double secs = double(stop_ns_ - start_ns_) / 1e9;
        if (secs <= 0) secs = 1e-9;
        double iops = double(ios_) / secs;
        auto us = [&](uint64_t ns) { return double(ns) / 1000.0; };
        return {{"bdev", bdev_name_},
                {"core", thread_->reactor() ? thread_->reactor()->core() : -1},
                {"seconds", secs},
                {"ios", ios_},
                {"iops", iops},
                {"mib_per_s", double(bytes_) / secs / (1 << 20)},
                {"errors", errors_},
                {"verify_failures", verify_failures_},
                {"latency_us",
                 {{"avg", hist_.mean() / 1000.0},
                  {"p50", us(hist_.percentile(50))},
                  {"p99", us(hist_.percentile(99))},
                  {"p99_9", us(hist_.percentile(99.9))},
                  {"max", us(hist_.max())}}}};
    }
    const Histogram& histogram() const { return hist_; }
    const std::string& error() const { return error_; }
    Thread* thread() const { return thread_; }

  private:
    uint64_t rand64() {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return rng_;
    }

    uint64_t next_offset() {
        uint64_t slots = range_blocks_ / io_blocks_;
        if (cfg_.random && !cfg_.verify) return range_start_ + (rand64() % slots) * io_blocks_;
        uint64_t off = seq_next_;
        seq_next_ += io_blocks_;
        if (seq_next_ + io_blocks_ > range_start_ + slots * io_blocks_) seq_next_ = range_start_;
        return off;
    }

    void issue(Slot& s) {
        if (cfg_.verify) {
            s.is_read = s.verify_read;
            if (!s.is_read) {
                s.seed = (uint64_t(index_) << 48) ^ ++seed_counter_;
                stamp(s.buf, bs_, s.offset, io_blocks_, s.seed);
            }
        } else {
            s.is_read =
                cfg_.read_pct >= 100 || (cfg_.read_pct > 0 && int(rand64() % 100) < cfg_.read_pct);
        }
        s.iov = {s.buf, cfg_.io_bytes};
        s.submit_tick = LatClock::now();
        int rc = s.is_read ? bdev_readv(desc_, ch_, &s.iov, 1, s.offset, io_blocks_, done, &s)
                           : bdev_writev(desc_, ch_, &s.iov, 1, s.offset, io_blocks_, done, &s);
        if (rc == 0) {
            ++outstanding_;
        } else if (rc == -ENOMEM) {
            s.wait.cb = [](void* a) {
                auto* sl = static_cast<Slot*>(a);
                sl->job->issue(*sl);
            };
            s.wait.arg = &s;
            bdev_queue_io_wait(ch_, &s.wait);
            ++waiting_;
        } else {
            ++errors_;
            stopping_ = true;
            if (error_.empty()) error_ = std::string("submission failed: ") + strerror(-rc);
            maybe_finish();
        }
    }

    static void done(BdevIo* io, bool ok, void* arg) {
        auto* s = static_cast<Slot*>(arg);
        bdev_free_io(io);
        s->job->complete(*s, ok);
    }

    void complete(Slot& s, bool ok) {
        --outstanding_;
        hist_.record(LatClock::to_ns(s.submit_tick, LatClock::now()));
        ++ios_;
        bytes_ += cfg_.io_bytes;
        if (!ok) ++errors_;
        if (cfg_.verify) {
            if (s.is_read && ok && !check_stamp(s.buf, bs_, s.offset, io_blocks_, s.seed)) {
                if (verify_failures_++ == 0)
                    NOC_ERROR("bdevperf", "{}: verify failed at LBA {}", bdev_name_, s.offset);
            }
            s.verify_read = !s.is_read && ok;  // write done: read it back; read done: new write
            if (!s.verify_read) s.offset = next_offset();
        } else {
            s.offset = next_offset();
        }
        if (stopping_) {  // the end of the run: check_time, every 10 ms
            stopping_ = true;
            maybe_finish();
            return;
        }
        issue(s);
    }

    int check_time() {
        if (g_interrupted.load(std::memory_order_relaxed) || now_ns() >= end_ns_) stopping_ = true;
        if (stopping_) maybe_finish();
        return 0;
    }

    void maybe_finish() {
        if (finished_ || outstanding_ > 0) return;
        if (waiting_ > 0 && !all_waits_idle()) return;
        finished_ = true;
        stop_ns_ = now_ns();
        Thread::current()->unregister_poller(timer_);
        bdev_put_io_channel(ch_);
        bdev_close(desc_);
        on_done_();
    }
    // Slots parked in bdev_queue_io_wait resubmit when a bdev_io frees up, which cannot happen
    // once nothing of ours is outstanding; with nothing in flight we may stop.
    bool all_waits_idle() const { return outstanding_ == 0; }

    const Config& cfg_;
    Thread* thread_;
    std::string bdev_name_;
    uint64_t range_start_, range_blocks_;
    uint64_t rng_;
    uint32_t index_;
    void* mem_ = nullptr;
    std::vector<Slot> slots_;
    BdevDesc* desc_ = nullptr;
    IoChannel* ch_ = nullptr;
    Poller* timer_ = nullptr;
    uint32_t bs_ = 512;
    uint64_t io_blocks_ = 1;
    uint64_t seq_next_ = 0;
    uint64_t seed_counter_ = 0;
    uint64_t start_ns_ = 0, end_ns_ = 0, stop_ns_ = 0;
    uint64_t outstanding_ = 0, waiting_ = 0;
    uint64_t ios_ = 0, bytes_ = 0, errors_ = 0, verify_failures_ = 0;
    bool stopping_ = false, finished_ = false;
    Histogram hist_;
    std::string error_;
    std::function<void()> on_done_;
};

struct App {
    Config cfg;
    std::vector<std::unique_ptr<Job>> jobs;
    std::atomic<size_t> jobs_left{0};
    std::string error;
    int exit_code = 0;
};

// Control thread: creates the bdevs given on the command line / in the config file.
int create_bdevs(const Config& c, std::vector<std::string>* created, std::string* err) {
    if (!c.config_file.empty()) {
        int rc = load_bdev_config_file(c.config_file, err);
        if (rc) return rc;
    }
    auto parse3 = [&](const std::string& spec, const char* what, std::vector<std::string>* p) {
        *p = split(spec, ':');
        if (p->size() < 2 || p->size() > 3 || (*p)[0].empty() || (*p)[1].empty()) {
            *err = std::string("--") + what +
                   " expects NAME:" + (std::string(what) == "uring" ? "FILE" : "SIZE") +
                   "[:BLOCK_SIZE], got " + spec;
            return false;
        }
        return true;
    };
    std::vector<std::string> p;
    for (const auto& spec : c.mallocs) {
        if (!parse3(spec, "malloc", &p)) return -EINVAL;
        MallocBdevOptions o;
        o.name = p[0];
        o.block_size = p.size() == 3 ? uint32_t(parse_size(p[2])) : 512;
        uint64_t size = parse_size(p[1]);
        o.num_blocks = o.block_size ? size / o.block_size : 0;
        if (int rc = malloc_bdev_create(o, err)) return rc;
        created->push_back(o.name);
    }
    for (const auto& spec : c.nulls) {
        if (!parse3(spec, "null", &p)) return -EINVAL;
        NullBdevOptions o;
        o.name = p[0];
        o.block_size = p.size() == 3 ? uint32_t(parse_size(p[2])) : 512;
        uint64_t size = parse_size(p[1]);
        o.num_blocks = o.block_size ? size / o.block_size : 0;
        if (int rc = null_bdev_create(o, err)) return rc;
        created->push_back(o.name);
    }
    for (const auto& spec : c.urings) {
        if (!parse3(spec, "uring", &p)) return -EINVAL;
        UringBdevOptions o;
        o.name = p[0];
        o.filename = p[1];
        o.block_size = p.size() == 3 ? uint32_t(parse_size(p[2])) : 0;
        if (int rc = uring_bdev_create(o, err)) return rc;
        created->push_back(o.name);
    }
    return 0;
}

void print_text(const nlohmann::json& r, const char* label) {
    const auto& l = r["latency_us"];
    printf(
        "%-28s %12.2f IOPS %10.2f MiB/s  lat us: avg %8.2f p50 %8.2f p99 %8.2f p99.9 %8.2f "
        "max %9.2f",
        label, r["iops"].get<double>(), r["mib_per_s"].get<double>(), l["avg"].get<double>(),
        l["p50"].get<double>(), l["p99"].get<double>(), l["p99_9"].get<double>(),
        l["max"].get<double>());
    if (r["errors"].get<uint64_t>())
        printf("  errors %llu", (unsigned long long)r["errors"].get<uint64_t>());
    if (r["verify_failures"].get<uint64_t>())
        printf("  VERIFY FAILURES %llu", (unsigned long long)r["verify_failures"].get<uint64_t>());
    printf("\n");
}

void report(App& app) {
    nlohmann::json out;
    out["config"] = {{"queue_depth", app.cfg.qd},    {"io_size", app.cfg.io_bytes},
                     {"workload", app.cfg.workload}, {"read_percent", app.cfg.read_pct},
                     {"seconds", app.cfg.seconds},   {"jobs", app.jobs.size()}};
    Histogram total_hist;
    double iops = 0, mibs = 0;
    uint64_t ios = 0, errors = 0, vfail = 0;
    for (auto& j : app.jobs) {
        auto r = j->result();
        out["jobs"].push_back(r);
        total_hist.merge(j->histogram());
        iops += r["iops"].get<double>();
        mibs += r["mib_per_s"].get<double>();
        ios += r["ios"].get<uint64_t>();
        errors += r["errors"].get<uint64_t>();
        vfail += r["verify_failures"].get<uint64_t>();
    }
    auto us = [](uint64_t ns) { return double(ns) / 1000.0; };
    out["total"] = {{"ios", ios},
                    {"iops", iops},
                    {"mib_per_s", mibs},
                    {"errors", errors},
                    {"verify_failures", vfail},
                    {"latency_us",
                     {{"avg", total_hist.mean() / 1000.0},
                      {"p50", us(total_hist.percentile(50))},
                      {"p99", us(total_hist.percentile(99))},
                      {"p99_9", us(total_hist.percentile(99.9))},
                      {"max", us(total_hist.max())}}}};
    if (errors || vfail) app.exit_code = 1;
    if (app.cfg.json) {
        printf("%s\n", out.dump(2).c_str());
        return;
    }
    printf("workload %s, %llu B I/O, queue depth %u, %.1f s, %zu job(s)\n",
           app.cfg.workload.c_str(), (unsigned long long)app.cfg.io_bytes, app.cfg.qd,
           app.cfg.seconds, app.jobs.size());
    for (auto& r : out["jobs"]) {
        std::string label =
            "job " + r["bdev"].get<std::string>() + " core " + std::to_string(r["core"].get<int>());
        print_text(r, label.c_str());
    }
    print_text(out["total"], "total");
}

bool validate(Config& c, std::string* err) {
    c.io_bytes = parse_size(c.io_size);
    if (c.io_bytes == 0) {
        *err = "bad I/O size " + c.io_size;
        return false;
    }
    const std::string& w = c.workload;
    if (w == "read" || w == "randread")
        c.read_pct = 100;
    else if (w == "write" || w == "randwrite")
        c.read_pct = 0;
    else if (w == "rw" || w == "randrw")
        c.read_pct = c.read_pct < 0 ? 50 : c.read_pct;
    else if (w == "verify")
        c.verify = true;
    else {
        *err = "unknown workload " + w;
        return false;
    }
    if (c.read_pct > 100) {
        *err = "-M must be 0..100";
        return false;
    }
    c.random = w.rfind("rand", 0) == 0;
    if (c.qd == 0 || c.seconds <= 0) {
        *err = "-q and -t must be positive";
        return false;
    }
    if (c.seed == 0) c.seed = now_ns();
    return true;
}

// --cores N (count: the last N cpus) or a list "1,3", "2-5", "[1]".
bool plan_clusters(const std::string& spec, std::vector<ClusterSpec>* plan, std::string* err) {
    Topology topo = Topology::detect();
    std::vector<int> cpus = topo.cpu_ids();
    if (cpus.empty()) {
        *err = "no usable cpu";
        return false;
    }
    std::vector<int> data;
    std::string s = spec;
    bool is_list = s.find_first_of(",-[") != std::string::npos;
    if (!s.empty() && s.front() == '[') s = s.substr(1, s.size() - (s.back() == ']' ? 2 : 1));
    if (is_list) {
        if (!parse_cpu_list(s, &data, err)) return false;
        for (int d : data)
            if (!topo.find(d)) {
                *err = "cpu " + std::to_string(d) + " is not available";
                return false;
            }
    } else {
        int n = atoi(s.c_str());
        if (n <= 0) {
            *err = "--cores: expected a count or a cpu list, got " + spec;
            return false;
        }
        if (size_t(n) > cpus.size()) n = int(cpus.size());
        data.assign(cpus.end() - n, cpus.end());
    }
    int control = cpus.front();
    for (int c : cpus)
        if (std::find(data.begin(), data.end(), c) == data.end()) {
            control = c;
            break;
        }
    *plan = {{0, ClusterSpec::Role::Control, {control}}, {1, ClusterSpec::Role::Data, data}};
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    App app;
    Config& c = app.cfg;
    CLI::App cli{"nocstor-bdevperf: in-process block device benchmark"};
    cli.add_option("-q,--queue-depth", c.qd, "I/Os in flight per job")->capture_default_str();
    cli.add_option("-o,--io-size", c.io_size, "I/O size (4096, 4k, 128K)")->capture_default_str();
    cli.add_option("-w,--workload", c.workload, "read|write|randread|randwrite|rw|randrw|verify")
        ->capture_default_str();
    cli.add_option("-M,--rwmixread", c.read_pct, "read percentage for rw/randrw (default 50)");
    cli.add_option("-t,--time", c.seconds, "run time in seconds")->capture_default_str();
    cli.add_option("--cores", c.cores, "data cores: a count, or a list (1,3 / 2-5 / [1])")
        ->capture_default_str();
    cli.add_option("--malloc", c.mallocs, "create a malloc bdev NAME:SIZE[:BS]");
    cli.add_option("--null", c.nulls, "create a null bdev NAME:SIZE[:BS]");
    cli.add_option("--uring", c.urings, "create a uring bdev NAME:FILE[:BS]");
    cli.add_option("-b,--bdev", c.bdevs, "bdev(s) to run on (default: every unclaimed bdev)")
        ->delimiter(',');
    cli.add_option("-c,--config", c.config_file, "SPDK-style JSON config (bdev subsystem)");
    cli.add_flag("--json", c.json, "print the results as JSON");
    cli.add_option("--seed", c.seed, "random seed (default: time)");
    std::string log_level = "warn";
    cli.add_option("--log-level", log_level, "log level, e.g. info or bdev=debug")
        ->capture_default_str();
    CLI11_PARSE(cli, argc, argv);

    std::string err;
    if (!apply_log_spec(log_level, &err) || !validate(c, &err)) {
        fprintf(stderr, "nocstor-bdevperf: %s\n", err.c_str());
        return 2;
    }
    RuntimeOptions ro;
    if (!plan_clusters(c.cores, &ro.clusters, &err)) {
        fprintf(stderr, "nocstor-bdevperf: %s\n", err.c_str());
        return 2;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    Runtime rt(ro);
    rt.add_shutdown_step("bdev", [](std::function<void()> done) { bdev_layer_fini(done); });
    auto fatal = [&app](std::string msg) {
        app.error = std::move(msg);
        app.exit_code = 1;
        Runtime::instance()->request_shutdown();
    };
    rt.start([&] {
        register_builtin_bdev_modules();
        std::string e;
        if (!bdev_modules_init(&e)) return fatal(e);
        std::vector<std::string> created;
        if (create_bdevs(c, &created, &e)) return fatal(e);
        std::vector<std::string> targets = c.bdevs;
        if (targets.empty())
            for (Bdev* b : bdev_list())
                if (!b->claimed_by()) targets.push_back(b->name);
        if (targets.empty()) return fatal("no bdev to run on (use --malloc/--null/--uring/-c)");
        const auto& threads = Runtime::instance()->data_threads();
        uint32_t index = 0;
        for (const auto& name : targets) {
            Bdev* b = bdev_get_by_name(name);
            if (!b) return fatal("no bdev named " + name);
            if (c.io_bytes % b->block_size)
                return fatal("I/O size " + std::to_string(c.io_bytes) +
                             " is not a multiple of the block size of " + name);
            uint64_t io_blocks = c.io_bytes / b->block_size;
            // Verify jobs on one bdev get disjoint ranges, so they never overwrite each other.
            uint64_t slice = c.verify ? b->num_blocks / threads.size() : b->num_blocks;
            if (slice < io_blocks * (c.verify ? c.qd : 1))
                return fatal("bdev " + name + " is too small for this I/O size" +
                             (c.verify ? " and queue depth" : ""));
            for (size_t t = 0; t < threads.size(); ++t) {
                uint64_t start = c.verify ? slice * t : 0;
                auto job = std::make_unique<Job>(c, threads[t], name, start, slice, index++);
                if (!job->prepare(&e)) return fatal(e);
                app.jobs.push_back(std::move(job));
            }
        }
        app.jobs_left = app.jobs.size();
        Thread* ctl = Thread::current();
        for (auto& j : app.jobs) {
            Job* job = j.get();
            job->thread()->send([job, ctl, &app] {
                job->start([ctl, &app] {
                    ctl->send([&app] {
                        if (--app.jobs_left == 0) Runtime::instance()->request_shutdown();
                    });
                });
            });
        }
    });
    rt.wait();
    if (!app.error.empty()) {
        fprintf(stderr, "nocstor-bdevperf: %s\n", app.error.c_str());
        return app.exit_code;
    }
    for (auto& j : app.jobs)
        if (!j->error().empty()) {
            fprintf(stderr, "nocstor-bdevperf: job on %s: %s\n", "bdev", j->error().c_str());
            app.exit_code = 1;
        }
    report(app);
    return app.exit_code;
}
