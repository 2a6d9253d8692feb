// nocstor-bdevperf's measurement for RAID arrays: the same jobs (one per data thread, -q I/Os in
// flight for -t seconds, IOPS and latency percentiles) on a bdev built from an SPDK-style JSON
// config whose bdev section may also hold bdev_raid_create, bdev_raid_remove_base_bdev,
// bdev_raid_add_base_bdev and bdev_raid_set_options (and, for logical volumes,
// bdev_lvol_create_lvstore, bdev_lvol_create, bdev_lvol_snapshot and bdev_lvol_clone; for the
// cache, bdev_ocf_create; for iSCSI LUNs, bdev_iscsi_create). Two things
// nocstor-bdevperf cannot do yet:
//  - its config loader (modules/bdev_config) knows no bdev_raid_* or bdev_lvol_* method, and
//  - a new raid1/5/6 array starts an initial resync; measuring during it measures the resync.
//    This driver waits until no array has a background process (--no-wait to measure anyway).
// Also:
//  - -b a,b,c: one job per (data thread, bdev), all on the same cores, summed in "total" (the
//    members of an array driven directly, without the array);
//  - --during FILE: a second config whose bdev entries are applied once the jobs have started
//    (bdev_raid_remove_base_bdev + bdev_raid_add_base_bdev: a rebuild under the load), and
//    --until-idle: the jobs stop as soon as the process that started ends (-t is then a limit);
//    -q 0 runs no I/O (times the process alone).
// Used by bench/raid_bench.sh.
//
//   raid_io_bench -c raid.json -b r0 -q 32 -o 4096 -w randwrite -t 3 --cores 1 [--span 256M]
//   raid_io_bench -c raid.json -b r0 -q 32 -w randread -t 60 --during rebuild.json --until-idle
#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "modules/bdev_config.h"
#include "modules/builtin.h"
#include "modules/cache/cache.h"
#include "modules/iscsi/iscsi_bdev.h"
#include "modules/lvol/lvol.h"
#include "modules/raid/raid.h"
#include "runtime/runtime.h"
#include "runtime/topology.h"
#include "util/histogram.h"
#include "util/lat_clock.h"
#include "util/log.h"
#include "util/tick.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace nocstor;
using nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_stop_jobs{false};  // --until-idle: the process ended (or --during failed)
void on_signal(int) {
    g_interrupted.store(true);
}

uint64_t parse_size(const std::string& s) {
    char* end = nullptr;
    unsigned long long v = strtoull(s.c_str(), &end, 10);
    if (end == s.c_str()) return 0;
    std::string suf(end);
    if (suf.empty() || suf == "b" || suf == "B") return v;
    if (suf == "k" || suf == "K") return v << 10;
    if (suf == "m" || suf == "M") return v << 20;
    if (suf == "g" || suf == "G") return v << 30;
    return 0;
}

struct Config {
    uint32_t qd = 32;
    std::string io_size = "4096";
    std::string workload = "randread";
    int read_pct = -1;
    double seconds = 3;
    std::string cores = "1";
    std::vector<std::string> bdevs;
    std::string config_file;
    std::string during_file;  // entries applied once the jobs run
    bool until_idle = false;
    std::string flush_cache;  // after the jobs: write this cache's dirty lines back, timed
    bool json = false;
    bool no_wait = false;
    double wait_limit = 120;  // seconds for background processes to finish
    std::string span;         // I/O only below this offset (default: the whole bdev)
    uint64_t seed = 0;
    uint64_t io_bytes = 0;
    uint64_t span_bytes = 0;
    bool random = true;
    bool prefill = false;  // write the span once before the timed run
    uint64_t max_ios = 0;  // per job; 0: until the time is up
};

class Job;
struct Slot {
    Job* job;
    unsigned char* buf;
    iovec iov;
    uint64_t offset = 0;
    uint64_t submit_tick = 0;  // LatClock: the TSC where it is invariant, not a vDSO call
    BdevIoWaitEntry wait;
};

// nocstor-bdevperf's Job without verify.
class Job {
  public:
    Job(const Config& c, Thread* t, std::string bdev, uint64_t num_blocks, uint32_t index)
        : cfg_(c),
          thread_(t),
          bdev_(std::move(bdev)),
          range_blocks_(num_blocks),
          rng_((c.seed + index * 7919) | 1) {}
    ~Job() { free(mem_); }

    bool prepare(std::string* err) {
        size_t n = size_t(cfg_.qd) * cfg_.io_bytes;
        if (posix_memalign(&mem_, 4096, n) != 0) {
            *err = "cannot allocate " + std::to_string(n) + " bytes of buffers";
            return false;
        }
        // Not zeroes: a malloc member might special-case them one day; parity work is the same.
        for (size_t i = 0; i < n; ++i) static_cast<unsigned char*>(mem_)[i] = uint8_t(i * 131);
        slots_.resize(cfg_.qd);
        for (uint32_t i = 0; i < cfg_.qd; ++i) {
            slots_[i].job = this;
            slots_[i].buf = static_cast<unsigned char*>(mem_) + size_t(i) * cfg_.io_bytes;
        }
        return true;
    }

    void start(std::function<void()> on_done) {
        on_done_ = std::move(on_done);
        int rc = bdev_open(
            bdev_, cfg_.read_pct != 100 || cfg_.prefill,
            [this](BdevEvent ev, Bdev*) {
                if (ev == BdevEvent::Remove) stopping_ = true;
            },
            &desc_);
        if (rc) {
            error_ = "cannot open " + bdev_ + ": " + strerror(-rc);
            on_done_();
            return;
        }
        ch_ = bdev_get_io_channel(desc_);
        if (!ch_) {
            error_ = "cannot get an I/O channel for " + bdev_;
            bdev_close(desc_);
            on_done_();
            return;
        }
        io_blocks_ = cfg_.io_bytes / desc_->bdev()->block_size;
        if (!cfg_.prefill) return start_timed();
        for (auto& s : slots_) fill_issue(s);
    }

    double seconds() const { return double(stop_ns_ - start_ns_) / 1e9; }

  private:
    void start_timed() {
        start_ns_ = now_ns();
        end_ns_ = start_ns_ + uint64_t(cfg_.seconds * 1e9);
        timer_ = Thread::current()->register_poller(
            "raid_io_bench", [this] { return check_time(); }, 10'000);
        for (auto& s : slots_) {
            if (cfg_.max_ios && issued_ + waiting_ >= cfg_.max_ios) break;
            s.offset = next_offset();
            issue(s);
        }
        if (outstanding_ == 0 && waiting_ == 0) {
            stopping_ = true;
            maybe_finish();
        }
    }

    // --prefill: every slot writes the next I/O-sized piece of the range until it is covered;
    // the last one to finish starts the timed run. Pages of a malloc bdev never written read
    // from the kernel's zero page, which would flatter a bare bdev against a stacked one.
    void fill_issue(Slot& s) {
        if (fill_next_ + io_blocks_ > range_blocks_ || !error_.empty()) {
            if (fill_outstanding_ > 0 || fill_done_) return;
            fill_done_ = true;
            if (!error_.empty()) {
                bdev_put_io_channel(ch_);
                bdev_close(desc_);
                return on_done_();
            }
            return start_timed();
        }
        s.iov = {s.buf, cfg_.io_bytes};
        const uint64_t off = fill_next_;
        fill_next_ += io_blocks_;
        int rc = bdev_writev(desc_, ch_, &s.iov, 1, off, io_blocks_, fill_done, &s);
        if (rc == 0) {
            ++fill_outstanding_;
        } else if (rc == -ENOMEM) {
            fill_next_ -= io_blocks_;
            ++fill_outstanding_;  // the wait entry holds the slot
            s.wait.cb = [](void* a) {
                auto* sl = static_cast<Slot*>(a);
                --sl->job->fill_outstanding_;
                sl->job->fill_issue(*sl);
            };
            s.wait.arg = &s;
            bdev_queue_io_wait(ch_, &s.wait);
        } else {
            error_ = std::string("prefill submission failed: ") + strerror(-rc);
            fill_issue(s);
        }
    }

    static void fill_done(BdevIo* io, bool ok, void* arg) {
        auto* s = static_cast<Slot*>(arg);
        bdev_free_io(io);
        Job* j = s->job;
        --j->fill_outstanding_;
        if (!ok && j->error_.empty()) j->error_ = "a prefill write failed";
        j->fill_issue(*s);
    }

  public:
    uint64_t ios() const { return ios_; }
    uint64_t errors() const { return errors_; }
    const Histogram& histogram() const { return hist_; }
    const std::string& error() const { return error_; }
    Thread* thread() const { return thread_; }
    const std::string& bdev() const { return bdev_; }

  private:
    uint64_t rand64() {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return rng_;
    }
    uint64_t next_offset() {
        uint64_t slots = range_blocks_ / io_blocks_;
        if (cfg_.random) return (rand64() % slots) * io_blocks_;
        uint64_t off = seq_next_;
        seq_next_ += io_blocks_;
        if (seq_next_ + io_blocks_ > slots * io_blocks_) seq_next_ = 0;
        return off;
    }

    void issue(Slot& s) {
        bool is_read =
            cfg_.read_pct >= 100 || (cfg_.read_pct > 0 && int(rand64() % 100) < cfg_.read_pct);
        s.iov = {s.buf, cfg_.io_bytes};
        s.submit_tick = LatClock::now();
        int rc = is_read ? bdev_readv(desc_, ch_, &s.iov, 1, s.offset, io_blocks_, done, &s)
                         : bdev_writev(desc_, ch_, &s.iov, 1, s.offset, io_blocks_, done, &s);
        if (rc == 0) {
            ++outstanding_;
            ++issued_;
        } else if (rc == -ENOMEM) {
            s.wait.cb = [](void* a) {
                auto* sl = static_cast<Slot*>(a);
                --sl->job->waiting_;
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
        if (!ok) ++errors_;
        s.offset = next_offset();
        if (stopping_ || (cfg_.max_ios && issued_ >= cfg_.max_ios)) {  // the time: check_time
            stopping_ = true;
            maybe_finish();
            return;
        }
        issue(s);
    }

    int check_time() {
        if (g_interrupted.load(std::memory_order_relaxed) ||
            g_stop_jobs.load(std::memory_order_relaxed) || now_ns() >= end_ns_)
            stopping_ = true;
        if (stopping_) maybe_finish();
        return 0;
    }

    void maybe_finish() {
        if (finished_ || outstanding_ > 0) return;
        finished_ = true;
        stop_ns_ = now_ns();
        Thread::current()->unregister_poller(timer_);
        bdev_put_io_channel(ch_);
        bdev_close(desc_);
        on_done_();
    }

    const Config& cfg_;
    Thread* thread_;
    std::string bdev_;
    uint64_t range_blocks_;
    uint64_t rng_;
    void* mem_ = nullptr;
    std::vector<Slot> slots_;
    BdevDesc* desc_ = nullptr;
    IoChannel* ch_ = nullptr;
    Poller* timer_ = nullptr;
    uint64_t io_blocks_ = 1;
    uint64_t seq_next_ = 0;
    uint64_t fill_next_ = 0, fill_outstanding_ = 0, issued_ = 0;
    bool fill_done_ = false;
    uint64_t start_ns_ = 0, end_ns_ = 0, stop_ns_ = 0;
    uint64_t outstanding_ = 0, waiting_ = 0;
    uint64_t ios_ = 0, errors_ = 0;
    bool stopping_ = false, finished_ = false;
    Histogram hist_;
    std::string error_;
    std::function<void()> on_done_;
};

struct App {
    Config cfg;
    std::vector<json> entries;  // bdev section of the config, then of --during
    size_t during_from = 0;     // entries[during_from...] come from --during
    std::vector<std::unique_ptr<Job>> jobs;
    std::atomic<size_t> jobs_left{0};
    bool jobs_running = false;  // control thread
    Poller* waiter = nullptr;
    Poller* idle_watch = nullptr;
    uint64_t during_start_ns = 0;
    double idle_after_s = -1;  // --until-idle: seconds from --during to the end of its process
    std::string last_before;   // last_process of every array before --during
    uint64_t wait_start_ns = 0;
    double waited_s = 0;
    json raid_before, raid_after;
    json cache_flush;  // --flush-cache: lines written back, seconds, lines per second
    Poller* flush_watch = nullptr;
    std::string error;
    int exit_code = 0;
};

void fatal(App& app, std::string msg) {
    if (app.error.empty()) app.error = std::move(msg);
    app.exit_code = 1;
    if (app.jobs_running)
        g_stop_jobs.store(true);  // the last job to end shuts down
    else
        Runtime::instance()->request_shutdown();
}

// Control thread: applies app.entries[i...end) in order (the raid methods may complete later).
void apply_entries(App& app, size_t i, size_t end, std::function<void()> then) {
    for (; i < end; ++i) {
        const json& e = app.entries[i];
        if (!e.is_object() || !e.contains("method") || !e["method"].is_string())
            return fatal(app, "config: bdev entry " + std::to_string(i) + " has no method");
        const std::string method = e["method"];
        const json params = e.contains("params") ? e["params"] : json::object();
        std::string err;
        int rc = 0;
        if (method == "bdev_raid_create") {
            raid::RaidCreateOptions o;
            o.name = params.value("name", "");
            if (!raid::parse_level(params.value("raid_level", ""), &o.level))
                return fatal(app, "config: bdev_raid_create: bad raid_level");
            o.strip_size_kb = params.value("strip_size_kb", 0u);
            o.superblock = params.value("superblock", false);
            o.uuid = params.value("uuid", "");
            const json& bases = params.contains("base_bdevs") ? params["base_bdevs"] : json();
            if (bases.is_string()) {
                std::istringstream in(bases.get<std::string>());
                for (std::string b; in >> b;) o.base_bdevs.push_back(b);
            } else if (bases.is_array()) {
                for (const auto& b : bases) o.base_bdevs.push_back(b.get<std::string>());
            }
            raid::raid_create_async(o, [&app, i, end, then](int rc, std::string err) {
                if (rc) return fatal(app, "config: bdev_raid_create: " + err);
                apply_entries(app, i + 1, end, then);
            });
            return;
        } else if (method == "bdev_raid_remove_base_bdev") {
            rc = raid::raid_remove_member(
                params.value("name", ""),
                [&app, i, end, then] { apply_entries(app, i + 1, end, then); }, &err);
            if (rc) return fatal(app, "config: bdev_raid_remove_base_bdev: " + err);
            return;
        } else if (method == "bdev_raid_add_base_bdev") {
            rc = raid::raid_add_member(params.value("raid_bdev", ""), params.value("base_bdev", ""),
                                       &err);
        } else if (method == "bdev_raid_set_options") {
            json cur = raid::raid_process_options_json();
            raid::raid_set_process_options(
                params.value("process_window_size_kb",
                             cur["process_window_size_kb"].get<uint32_t>()),
                params.value("process_max_bandwidth_mb_sec",
                             cur["process_max_bandwidth_mb_sec"].get<uint32_t>()));
        } else if (method == "bdev_lvol_create_lvstore" || method == "bdev_lvol_create" ||
                   method == "bdev_lvol_snapshot" || method == "bdev_lvol_clone") {
            // Logical volumes (issue 12): asynchronous, the next entry runs once this one is done.
            auto next = [&app, i, end, then, method](int rc, std::string msg) {
                if (rc) return fatal(app, "config: " + method + ": " + msg);
                apply_entries(app, i + 1, end, then);
            };
            if (method == "bdev_lvol_create_lvstore") {
                lvol::LvsCreateOptions o;
                o.bdev_name = params.value("bdev_name", "");
                o.lvs_name = params.value("lvs_name", "");
                o.cluster_bytes = params.value("cluster_sz", o.cluster_bytes);
                if (params.contains("clear_method") &&
                    !lvol::clear_method_parse(params["clear_method"].get<std::string>(),
                                              &o.clear_method))
                    return fatal(app, "config: bdev_lvol_create_lvstore: bad clear_method");
                lvol::lvs_create(o, next);
            } else if (method == "bdev_lvol_create") {
                lvol::LvolCreateOptions o;
                o.lvs_name = params.value("lvs_name", "");
                o.lvs_uuid = params.value("uuid", "");
                o.name = params.value("lvol_name", "");
                o.size_bytes = params.value("size_in_mib", uint64_t(0)) << 20;
                o.thin = params.value("thin_provision", false);
                lvol::lvol_create(o, next);
            } else if (method == "bdev_lvol_snapshot") {
                lvol::lvol_snapshot(params.value("lvol_name", ""),
                                    params.value("snapshot_name", ""), next);
            } else {
                lvol::lvol_clone(params.value("snapshot_name", ""), params.value("clone_name", ""),
                                 next);
            }
            return;
        } else if (method == "bdev_ocf_create") {
            // The cache vbdev (issue 14).
            cache::CacheCreateOptions o;
            o.name = params.value("name", "");
            o.mode = params.value("mode", "");
            o.cache_line_size = params.value("cache_line_size", 4u);
            o.cache_bdev_name = params.value("cache_bdev_name", "");
            o.core_bdev_name = params.value("core_bdev_name", "");
            o.format = params.value("format", false);
            cache::cache_create(o, [&app, i, end, then](int rc, std::string msg) {
                if (rc) return fatal(app, "config: bdev_ocf_create: " + msg);
                apply_entries(app, i + 1, end, then);
            });
            return;
        } else if (method == "bdev_iscsi_create") {
            // The iSCSI bdev (issue 14): a LUN of a real target.
            iscsi::IscsiCreateOptions o;
            o.name = params.value("name", "");
            o.initiator_iqn = params.value("initiator_iqn", "");
            o.url = params.value("url", "");
            o.sessions = params.value("sessions", 1u);
            iscsi::iscsi_bdev_create(o, [&app, i, end, then](int rc, std::string msg) {
                if (rc) return fatal(app, "config: bdev_iscsi_create: " + msg);
                apply_entries(app, i + 1, end, then);
            });
            return;
        } else if (is_bdev_config_method(method)) {
            rc = apply_bdev_method(method, params, &err);
        } else {
            NOC_WARN("bdev", "config: skipping unsupported method {}", method);
        }
        if (rc) return fatal(app, "config: " + method + ": " + err);
    }
    then();
}

bool any_process(const json& list) {
    for (const auto& r : list)
        if (r.contains("process")) return true;
    return false;
}

// Every array's last finished process, to tell a new one from the one before.
std::string last_processes(const json& list) {
    json l = json::array();
    for (const auto& r : list) l.push_back(r.contains("last_process") ? r["last_process"] : json());
    return l.dump();
}

// Control thread, --until-idle: once no array runs a process and one has finished since
// --during, the jobs stop. A process starts after its RPC returns, so "none running" alone
// proves nothing.
void watch_until_idle(App& app) {
    app.idle_watch = Thread::current()->register_poller(
        "raid_io_bench_idle",
        [&app] {
            json l = raid::raid_list("all");
            if (any_process(l) || last_processes(l) == app.last_before) return 0;
            app.idle_after_s = double(now_ns() - app.during_start_ns) / 1e9;
            g_stop_jobs.store(true);
            Thread::current()->unregister_poller(app.idle_watch);
            app.idle_watch = nullptr;
            return 1;
        },
        1'000);
}

// Control thread, once the jobs have been started: the --during entries.
void apply_during(App& app) {
    if (app.during_from == app.entries.size()) return;
    app.last_before = last_processes(raid::raid_list("all"));
    app.during_start_ns = now_ns();
    apply_entries(app, app.during_from, app.entries.size(), [&app] {
        if (app.cfg.until_idle && app.error.empty()) watch_until_idle(app);
    });
}

// Control thread, after the jobs: the cleaning rate of a write-back cache, as the time its
// flush takes to write back the dirty lines the jobs left.
void flush_cache_then_stop(App& app) {
    const std::string& name = app.cfg.flush_cache;
    json st;
    if (cache::cache_flush_status(name, &st))
        return fatal(app, "--flush-cache: no cache bdev named " + name);
    const uint64_t lines = st.value("dirty_lines", uint64_t{0});
    std::string err;
    if (cache::cache_flush_start(name, &err)) return fatal(app, "--flush-cache: " + err);
    const uint64_t t0 = now_ns();
    app.flush_watch = Thread::current()->register_poller(
        "raid_io_bench_flush",
        [&app, lines, t0] {
            json s;
            if (cache::cache_flush_status(app.cfg.flush_cache, &s) || s["in_progress"] == true)
                return 0;
            const double secs = double(now_ns() - t0) / 1e9;
            app.cache_flush = {{"lines", lines},
                               {"seconds", secs},
                               {"lines_per_s", secs > 0 ? double(lines) / secs : 0.0},
                               {"status", s.value("status", 0)}};
            if (s.value("status", 0) != 0) app.exit_code = 1;
            Thread::current()->unregister_poller(app.flush_watch);
            app.flush_watch = nullptr;
            Runtime::instance()->request_shutdown();
            return 1;
        },
        200);
}

void start_jobs(App& app) {
    const Config& c = app.cfg;
    const auto& threads = Runtime::instance()->data_threads();
    for (const std::string& name : c.bdevs) {
        Bdev* b = bdev_get_by_name(name);
        if (!b) return fatal(app, "no bdev named " + name);
        if (c.io_bytes % b->block_size)
            return fatal(app, "I/O size " + std::to_string(c.io_bytes) +
                                  " is not a multiple of the block size of " + name);
        uint64_t blocks = b->num_blocks;
        if (c.span_bytes) blocks = std::min(blocks, c.span_bytes / b->block_size);
        if (blocks < c.io_bytes / b->block_size)
            return fatal(app, "bdev " + name + " (or --span) is too small for this I/O size");
        for (size_t t = 0; t < threads.size(); ++t) {
            auto job =
                std::make_unique<Job>(c, threads[t], name, blocks, uint32_t(app.jobs.size()));
            std::string e;
            if (!job->prepare(&e)) return fatal(app, e);
            app.jobs.push_back(std::move(job));
        }
    }
    app.raid_before = raid::raid_list("all");
    app.jobs_left = app.jobs.size();
    app.jobs_running = true;
    Thread* ctl = Thread::current();
    for (auto& j : app.jobs) {
        Job* job = j.get();
        job->thread()->send([job, ctl, &app] {
            job->start([ctl, &app] {
                ctl->send([&app] {
                    if (--app.jobs_left == 0) {
                        app.jobs_running = false;
                        app.raid_after = raid::raid_list("all");
                        if (app.idle_watch) {
                            Thread::current()->unregister_poller(app.idle_watch);
                            app.idle_watch = nullptr;
                        }
                        if (!app.cfg.flush_cache.empty() && app.error.empty())
                            return flush_cache_then_stop(app);
                        Runtime::instance()->request_shutdown();
                    }
                });
            });
        });
    }
    apply_during(app);
}

// Control thread: waits for resyncs/rebuilds to end, then starts the jobs.
void wait_then_start(App& app) {
    app.wait_start_ns = now_ns();
    if (app.cfg.no_wait || !any_process(raid::raid_list("all"))) return start_jobs(app);
    app.waiter = Thread::current()->register_poller(
        "raid_io_bench_wait",
        [&app] {
            double waited = double(now_ns() - app.wait_start_ns) / 1e9;
            if (g_interrupted.load()) {
                Thread::current()->unregister_poller(app.waiter);
                fatal(app, "interrupted");
                return 1;
            }
            if (any_process(raid::raid_list("all"))) {
                if (waited > app.cfg.wait_limit) {
                    Thread::current()->unregister_poller(app.waiter);
                    fatal(app, "background process still running after " +
                                   std::to_string(app.cfg.wait_limit) + " s");
                }
                return 0;
            }
            Thread::current()->unregister_poller(app.waiter);
            app.waited_s = waited;
            start_jobs(app);
            return 1;
        },
        20'000);
}

bool plan_clusters(const std::string& spec, std::vector<ClusterSpec>* plan, std::string* err) {
    Topology topo = Topology::detect();
    std::vector<int> cpus = topo.cpu_ids();
    if (cpus.empty()) {
        *err = "no usable cpu";
        return false;
    }
    std::vector<int> data;
    std::string s = spec;
    if (s.find_first_of(",-[") != std::string::npos) {
        if (!s.empty() && s.front() == '[') s = s.substr(1, s.size() - (s.back() == ']' ? 2 : 1));
        if (!parse_cpu_list(s, &data, err)) return false;
    } else {
        int n = atoi(s.c_str());
        if (n <= 0) {
            *err = "--cores: expected a count or a cpu list, got " + spec;
            return false;
        }
        n = std::min(n, int(cpus.size()));
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
    CLI::App cli{
        "raid_io_bench: nocstor-bdevperf's measurement on a RAID array from a JSON config"};
    cli.add_option("-c,--config", c.config_file, "SPDK-style JSON config (bdev subsystem)")
        ->required();
    cli.add_option("-b,--bdev", c.bdevs,
                   "bdev(s) to run on (a,b,c: one job per data core and bdev, summed)")
        ->required()
        ->delimiter(',');
    cli.add_option("-q,--queue-depth", c.qd, "I/Os in flight per job (0: none, see --during)")
        ->capture_default_str();
    cli.add_option("-o,--io-size", c.io_size, "I/O size (4096, 4k, 128K)")->capture_default_str();
    cli.add_option("-w,--workload", c.workload, "read|write|randread|randwrite|rw|randrw")
        ->capture_default_str();
    cli.add_option("-M,--rwmixread", c.read_pct, "read percentage for rw/randrw (default 50)");
    cli.add_option("-t,--time", c.seconds, "run time in seconds")->capture_default_str();
    cli.add_option("--cores", c.cores, "data cores: a count, or a list (1,3 / 2-5 / [1])")
        ->capture_default_str();
    cli.add_option("--span", c.span,
                   "I/O only to the first SIZE bytes (arrays of different sizes touch the same "
                   "amount of memory)");
    cli.add_flag("--no-wait", c.no_wait, "start while a resync/rebuild still runs");
    cli.add_option("--wait-limit", c.wait_limit, "seconds to wait for a resync/rebuild")
        ->capture_default_str();
    cli.add_option("--during", c.during_file,
                   "JSON config whose bdev entries are applied once the jobs run (e.g. "
                   "bdev_raid_remove_base_bdev + bdev_raid_add_base_bdev: a rebuild under load)");
    cli.add_flag("--until-idle", c.until_idle,
                 "with --during: stop the jobs when the process it started ends (-t: the limit)");
    cli.add_flag("--prefill", c.prefill,
                 "write the span (or the whole bdev) once before the timed run: reads then hit "
                 "written memory on every bdev");
    cli.add_option("-n,--ios", c.max_ios,
                   "stop each job after this many I/Os (or at -t, whichever comes first)");
    cli.add_option("--flush-cache", c.flush_cache,
                   "after the run, flush this write-back cache and report its cleaning rate "
                   "(cache_flush in the JSON)");
    cli.add_flag("--json", c.json, "print the results as JSON");
    cli.add_option("--seed", c.seed, "random seed (default: time)");
    std::string log_level = "warn";
    cli.add_option("--log-level", log_level, "log level")->capture_default_str();
    CLI11_PARSE(cli, argc, argv);

    std::string err;
    auto usage_error = [](const std::string& m) {
        fprintf(stderr, "raid_io_bench: %s\n", m.c_str());
        return 2;
    };
    if (!apply_log_spec(log_level, &err)) return usage_error(err);
    c.io_bytes = parse_size(c.io_size);
    if (c.io_bytes == 0) return usage_error("bad I/O size " + c.io_size);
    if (!c.span.empty() && (c.span_bytes = parse_size(c.span)) == 0)
        return usage_error("bad --span " + c.span);
    const std::string& w = c.workload;
    if (w == "read" || w == "randread")
        c.read_pct = 100;
    else if (w == "write" || w == "randwrite")
        c.read_pct = 0;
    else if (w == "rw" || w == "randrw")
        c.read_pct = c.read_pct < 0 ? 50 : c.read_pct;
    else
        return usage_error("unknown workload " + w);
    c.random = w.rfind("rand", 0) == 0;
    if (c.seconds <= 0) return usage_error("-t must be positive");
    if (c.until_idle && c.during_file.empty()) return usage_error("--until-idle needs --during");
    if (c.seed == 0) c.seed = now_ns();
    for (const std::string* f : {&c.config_file, &c.during_file}) {
        if (f == &c.during_file) {
            app.during_from = app.entries.size();
            if (f->empty()) break;
        }
        std::ifstream in(*f);
        if (!in) return usage_error("cannot open " + *f);
        json j = json::parse(in, nullptr, false);
        if (j.is_discarded() || !j.contains("subsystems") || !j["subsystems"].is_array())
            return usage_error(*f + ": expected {\"subsystems\": [...]}");
        for (const auto& sub : j["subsystems"])
            if (sub.is_object() && sub.value("subsystem", "") == "bdev" && sub.contains("config"))
                for (const auto& e : sub["config"]) app.entries.push_back(e);
    }
    RuntimeOptions ro;
    if (!plan_clusters(c.cores, &ro.clusters, &err)) return usage_error(err);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    Runtime rt(ro);
    rt.add_shutdown_step("bdev", [](std::function<void()> done) { bdev_layer_fini(done); });
    rt.start([&] {
        register_builtin_bdev_modules();
        std::string e;
        if (!bdev_modules_init(&e)) return fatal(app, e);
        apply_entries(app, 0, app.during_from, [&app] { wait_then_start(app); });
    });
    rt.wait();
    if (!app.error.empty()) {
        fprintf(stderr, "raid_io_bench: %s\n", app.error.c_str());
        return app.exit_code;
    }
    Histogram total;
    double iops = 0, job_seconds = 0;
    uint64_t ios = 0, errors = 0;
    json per_bdev = json::object();
    for (auto& j : app.jobs) {
        if (!j->error().empty()) {
            fprintf(stderr, "raid_io_bench: %s\n", j->error().c_str());
            app.exit_code = 1;
        }
        total.merge(j->histogram());
        double s = std::max(j->seconds(), 1e-9);
        iops += double(j->ios()) / s;
        job_seconds = std::max(job_seconds, j->seconds());
        per_bdev[j->bdev()] = per_bdev.value(j->bdev(), 0.0) + double(j->ios()) / s;
        ios += j->ios();
        errors += j->errors();
    }
    if (errors) app.exit_code = 1;
    if (c.until_idle && app.idle_after_s < 0) {
        fprintf(stderr, "raid_io_bench: the process --during started did not end within -t\n");
        app.exit_code = 1;
    }
    std::string bdev_list;
    for (const auto& b : c.bdevs) bdev_list += (bdev_list.empty() ? "" : ",") + b;
    auto us = [](uint64_t ns) { return double(ns) / 1000.0; };
    json out;
    out["config"] = {{"bdev", bdev_list},       {"bdevs", c.bdevs},
                     {"queue_depth", c.qd},     {"io_size", c.io_bytes},
                     {"workload", c.workload},  {"seconds", c.seconds},
                     {"jobs", app.jobs.size()}, {"span", c.span_bytes},
                     {"during", c.during_file}, {"until_idle", c.until_idle}};
    out["waited_for_process_s"] = app.waited_s;
    // --until-idle: seconds from the --during entries to the end of the process they started
    if (c.until_idle) out["process_ended_after_s"] = app.idle_after_s;
    out["total"] = {{"ios", ios},
                    {"iops", iops},
                    {"seconds", job_seconds},
                    {"iops_per_bdev", per_bdev},
                    {"mib_per_s", iops * double(c.io_bytes) / 1048576.0},
                    {"errors", errors},
                    {"latency_us",
                     {{"avg", total.mean() / 1000.0},
                      {"p50", us(total.percentile(50))},
                      {"p99", us(total.percentile(99))},
                      {"p99_9", us(total.percentile(99.9))},
                      {"max", us(total.max())}}}};
    if (!app.cache_flush.is_null()) out["cache_flush"] = app.cache_flush;
    out["raid_before"] = app.raid_before;
    out["raid_after"] = app.raid_after;
    if (c.json) {
        printf("%s\n", out.dump(2).c_str());
    } else {
        const json& t = out["total"];
        const json& l = t["latency_us"];
        printf(
            "%s %s %llu B QD%u %.1f s%s: %.0f IOPS %.1f MiB/s, lat us avg %.1f p50 %.1f p99 %.1f "
            "p99.9 %.1f%s\n",
            bdev_list.c_str(), c.workload.c_str(), (unsigned long long)c.io_bytes, c.qd, c.seconds,
            app.waited_s > 0
                ? (" (waited " + std::to_string(app.waited_s) + " s for resync)").c_str()
                : "",
            t["iops"].get<double>(), t["mib_per_s"].get<double>(), l["avg"].get<double>(),
            l["p50"].get<double>(), l["p99"].get<double>(), l["p99_9"].get<double>(),
            errors ? ("  errors " + std::to_string(errors)).c_str() : "");
        if (!app.cache_flush.is_null())
            printf("cache flush: %llu dirty lines written back in %.3f s: %.0f lines/s\n",
                   (unsigned long long)app.cache_flush["lines"].get<uint64_t>(),
                   app.cache_flush["seconds"].get<double>(),
                   app.cache_flush["lines_per_s"].get<double>());
    }
    return app.exit_code;
}
