// nocstor-perf: an NVMe/TCP load generator in the manner of spdk_nvme_perf. It connects the
// nocstor host library to one controller, opens one I/O queue per namespace per data thread and
// keeps -q commands in flight on each, then prints IOPS, MiB/s and latency (avg/min/max and
// percentiles) per queue and in total.
//
//   nocstor-perf -r 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn...'
//                -q 32 -o 4096 -w randread -t 5
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "nvme_host/ctrlr.h"
#include "nvme_host/nvme_cmd.h"
#include "nvme_host/qpair.h"
#include "runtime/runtime.h"
#include "security/dhchap.h"
#include "security/tls_psk.h"
#include "util/histogram.h"
#include "util/log.h"
#include "util/tick.h"

using namespace nocstor;
using namespace nocstor::nvme_host;

namespace {

std::atomic<bool> g_interrupted{false};
void on_signal(int) {
    g_interrupted.store(true);
}

enum class Pattern { kRead, kWrite, kRandRead, kRandWrite, kRw, kRandRw };

struct Config {
    TransportId trid;
    uint32_t depth = 32;
    uint32_t io_size = 4096;
    Pattern pattern = Pattern::kRandRead;
    int read_pct = 100;
    double seconds = 5;
    double warmup = 0;
    std::vector<int> cores;
    bool pin = true;
    uint32_t qpairs_per_ns = 1;
    bool hdgst = false, ddgst = false;
    std::shared_ptr<const HostAuthConfig> auth;  // --dhchap-secret / --dhchap-ctrl-secret
    std::shared_ptr<const HostTlsConfig> tls;    // --psk
    bool json = false;
    bool verify = false;
    uint64_t seed = 0x6e6f6373746f72;  // "nocstor"
};

struct WorkerResult {
    std::string label;
    int core = 0;
    uint32_t nsid = 0;
    uint64_t ios = 0, bytes = 0, errors = 0, miscompares = 0;
    double seconds = 0;
    Histogram hist;  // ns
};

struct Shared {
    Config cfg;
    std::unique_ptr<NvmeCtrlr> ctrlr;
    std::vector<NamespaceData> namespaces;
    std::vector<std::unique_ptr<WorkerResult>> results;  // one per (thread, ns, qpair)
    std::atomic<int> workers_left{0};
    std::atomic<bool> stop{false};
    int exit_code = 0;
};

uint64_t xorshift(uint64_t& s) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

// The block stamp used by --verify: every 8 bytes of a block are LBA ^ seed ^ word index.
void stamp(uint8_t* buf, uint64_t lba, uint32_t nblocks, uint32_t bs, uint64_t seed) {
    for (uint32_t b = 0; b < nblocks; ++b) {
        auto* w = reinterpret_cast<uint64_t*>(buf + size_t(b) * bs);
        for (uint32_t i = 0; i < bs / 8; ++i) w[i] = (lba + b) ^ seed ^ (uint64_t(i) << 48);
    }
}
bool check_stamp(const uint8_t* buf, uint64_t lba, uint32_t nblocks, uint32_t bs, uint64_t seed) {
    for (uint32_t b = 0; b < nblocks; ++b) {
        auto* w = reinterpret_cast<const uint64_t*>(buf + size_t(b) * bs);
        for (uint32_t i = 0; i < bs / 8; ++i)
            if (w[i] != ((lba + b) ^ seed ^ (uint64_t(i) << 48))) return false;
    }
    return true;
}

class Worker;

struct Task {
    Worker* w = nullptr;
    uint8_t* buf = nullptr;
    iovec iov{};
    uint64_t lba = 0;
    uint64_t start_ns = 0;
    bool is_read = false;
    bool verify_read = false;  // --verify: the read-back half of a write/read pair
    uint64_t stamp_seed = 0;   // --verify: the seed of the last write of this task
    uint32_t index = 0;
};

// One queue pair on one data thread, with its tasks. Runs entirely on that thread.
class Worker {
  public:
    Worker(Shared* s, const NamespaceData& ns, WorkerResult* res, uint32_t worker_index,
           uint32_t workers_total)
        : s_(s), ns_(ns), res_(res), index_(worker_index), total_(workers_total) {
        const Config& c = s->cfg;
        nblocks_ = c.io_size / ns.block_size;
        slots_ = ns.num_blocks / nblocks_;
        rng_ = c.seed * 2654435761u + worker_index + 1;
        seq_next_ = slots_ * worker_index / std::max<uint32_t>(workers_total, 1);
        mem_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, size_t(c.io_size) * c.depth)));
        std::memset(mem_.get(), 0, size_t(c.io_size) * c.depth);
        tasks_.resize(c.depth);
        for (uint32_t i = 0; i < c.depth; ++i) {
            tasks_[i].w = this;
            tasks_[i].buf = mem_.get() + size_t(i) * c.io_size;
            tasks_[i].iov = {tasks_[i].buf, c.io_size};
            tasks_[i].index = i;
        }
    }

    void start(std::function<void()> on_done) {
        on_done_ = std::move(on_done);
        QpairOptions q;
        int rc = s_->ctrlr->io_qpair_options(&q, uint16_t(s_->cfg.depth));
        if (rc != 0) {
            fmt::print(stderr, "no I/O queue left on the controller ({} granted)\n",
                       s_->ctrlr->io_queues_granted());
            return finish(true);
        }
        qid_ = q.qid;
        qp_ = std::make_unique<NvmeTcpQpair>(q);
        qp_->connect([this](int rc2, const std::string& err) {
            if (rc2 != 0) {
                fmt::print(stderr, "I/O queue {} connect failed: {}\n", qid_, err);
                return finish(true);
            }
            begin_ns_ = now_ns();
            measure_ns_ = begin_ns_ + uint64_t(s_->cfg.warmup * 1e9);
            end_ns_ = measure_ns_ + uint64_t(s_->cfg.seconds * 1e9);
            // The controller may grant fewer entries (CAP.MQES, MAXCMD) than -q asked for.
            const size_t n = std::min<size_t>(tasks_.size(), qp_->depth());
            if (n < tasks_.size())
                fmt::print(stderr, "qid {}: queue depth limited to {} by the controller\n", qid_,
                           n);
            for (size_t i = 0; i < n; ++i) submit(&tasks_[i]);
            timer_ = Thread::current()->register_poller(
                "perf_deadline", [this] { return check_deadline(); }, 1000);
        });
    }

  private:
    bool next_is_read() {
        const Config& c = s_->cfg;
        switch (c.pattern) {
            case Pattern::kRead:
            case Pattern::kRandRead:
                return true;
            case Pattern::kWrite:
            case Pattern::kRandWrite:
                return false;
            default:
                return int(xorshift(rng_) % 100) < c.read_pct;
        }
    }
    uint64_t next_slot(const Task* t) {
        const Config& c = s_->cfg;
        if (c.verify) {  // each task owns the slots congruent to its index: no overlap
            const uint64_t lanes = uint64_t(total_) * c.depth;
            const uint64_t lane = uint64_t(index_) * c.depth + t->index;
            const uint64_t per_lane = std::max<uint64_t>(slots_ / lanes, 1);
            return (lane + lanes * (xorshift(rng_) % per_lane)) % slots_;
        }
        const bool random = c.pattern == Pattern::kRandRead || c.pattern == Pattern::kRandWrite ||
                            c.pattern == Pattern::kRandRw;
        if (random) return xorshift(rng_) % slots_;
        uint64_t s = seq_next_++;
        if (seq_next_ >= slots_) seq_next_ = 0;
        return s;
    }

    void submit(Task* t) {
        if (stopping_) return;
        const Config& c = s_->cfg;
        if (c.verify) {
            t->is_read = t->verify_read;
            if (!t->is_read) {
                t->lba = next_slot(t) * nblocks_;
                t->stamp_seed = c.seed ^ ++gen_;
                stamp(t->buf, t->lba, nblocks_, ns_.block_size, t->stamp_seed);
            } else {
                std::memset(t->buf, 0, c.io_size);
            }
        } else {
            t->is_read = next_is_read();
            t->lba = next_slot(t) * nblocks_;
        }
        auto sqe = t->is_read ? cmd::read(ns_.nsid, t->lba, nblocks_)
                              : cmd::write(ns_.nsid, t->lba, nblocks_, false);
        t->start_ns = now_ns();
        int rc = qp_->submit(sqe, t->is_read ? DataDir::kCtrlToHost : DataDir::kHostToCtrl, &t->iov,
                             1, c.io_size, &Worker::on_complete, t);
        if (rc == 0) {
            ++inflight_;
        } else {
            ++res_->errors;
            stopping_ = true;
            maybe_finish();
        }
    }

    static void on_complete(void* arg, const NvmeCpl& cpl) {
        auto* t = static_cast<Task*>(arg);
        t->w->complete(t, cpl);
    }

    void complete(Task* t, const NvmeCpl& cpl) {
        --inflight_;
        const uint64_t now = now_ns();
        if (!cpl.ok()) {
            if (res_->errors++ < 5)
                fmt::print(stderr, "I/O error on qid {} lba {}: {}\n", qid_, t->lba,
                           status_text(cpl));
            if (cpl.transport_rc) stopping_ = true;
        } else if (now >= measure_ns_ && t->start_ns >= measure_ns_ && now <= end_ns_) {
            ++res_->ios;
            res_->bytes += s_->cfg.io_size;
            res_->hist.record(now - t->start_ns);
        }
        if (s_->cfg.verify && cpl.ok()) {
            if (t->is_read) {
                if (!check_stamp(t->buf, t->lba, nblocks_, ns_.block_size, t->stamp_seed)) {
                    if (res_->miscompares++ < 5)
                        fmt::print(stderr, "miscompare at lba {} (qid {})\n", t->lba, qid_);
                }
                t->verify_read = false;
            } else {
                t->verify_read = true;
            }
        }
        if (stopping_ || now > end_ns_ || s_->stop.load(std::memory_order_relaxed)) {
            stopping_ = true;
            maybe_finish();
            return;
        }
        submit(t);
    }

    int check_deadline() {
        if (g_interrupted.load(std::memory_order_relaxed)) s_->stop = true;
        const uint64_t now = now_ns();
        if (!stopping_ && (now > end_ns_ || s_->stop.load(std::memory_order_relaxed)))
            stopping_ = true;
        // Bounded drain: a target that stops answering cannot hold the tool forever.
        if (stopping_ && inflight_ > 0 && now > end_ns_ + 10'000'000'000ull) {
            qp_->disconnect();
            inflight_ = 0;
        }
        maybe_finish();
        return 0;
    }

    void maybe_finish() {
        if (!stopping_ || inflight_ > 0 || finished_) return;
        finish(false);
    }

    void finish(bool failed) {
        if (finished_) return;
        finished_ = true;
        if (failed) ++res_->errors;
        const uint64_t now = now_ns();
        const uint64_t from = std::max(measure_ns_, begin_ns_);
        res_->seconds = measure_ns_ && now > from ? double(std::min(now, end_ns_) - from) / 1e9 : 0;
        if (timer_) Thread::current()->unregister_poller(timer_);
        timer_ = nullptr;
        // The qpair is closed from a message: we may be inside its completion loop now.
        Thread::current()->send([this] {
            if (qp_) qp_->disconnect();
            qp_.reset();
            if (qid_) s_->ctrlr->release_qid(qid_);
            on_done_();
        });
    }

    Shared* s_;
    NamespaceData ns_;
    WorkerResult* res_;
    uint32_t index_, total_;
    uint32_t nblocks_ = 1;
    uint64_t slots_ = 1;
    uint64_t rng_ = 1;
    uint64_t seq_next_ = 0;
    uint64_t gen_ = 0;
    struct Free {
        void operator()(uint8_t* p) const { std::free(p); }
    };
    std::unique_ptr<uint8_t, Free> mem_;
    std::vector<Task> tasks_;
    std::unique_ptr<NvmeTcpQpair> qp_;
    uint16_t qid_ = 0;
    uint32_t inflight_ = 0;
    bool stopping_ = false;
    bool finished_ = false;
    uint64_t begin_ns_ = 0, measure_ns_ = 0, end_ns_ = 0;
    Poller* timer_ = nullptr;
    std::function<void()> on_done_;
};

}  // namespace

namespace {

// A secret given on the command line, or a file holding it (which keeps it out of the process
// list): *text becomes the secret.
bool secret_text(std::string* text, std::string_view prefix, const char* opt) {
    if (text->rfind(prefix, 0) == 0) return true;
    const std::string path = *text;
    std::ifstream f(path);
    if (!f || !std::getline(f, *text)) {
        fmt::print(stderr, "nocstor-perf: {}: cannot read {}\n", opt, path);
        return false;
    }
    return true;
}

bool parse_pattern(const std::string& w, Pattern* p, int* read_pct) {
    static const std::pair<const char*, Pattern> kNames[] = {{"read", Pattern::kRead},
                                                             {"write", Pattern::kWrite},
                                                             {"randread", Pattern::kRandRead},
                                                             {"randwrite", Pattern::kRandWrite},
                                                             {"rw", Pattern::kRw},
                                                             {"randrw", Pattern::kRandRw}};
    for (auto& [n, v] : kNames) {
        if (w == n) {
            *p = v;
            if (v == Pattern::kRead || v == Pattern::kRandRead) *read_pct = 100;
            if (v == Pattern::kWrite || v == Pattern::kRandWrite) *read_pct = 0;
            return true;
        }
    }
    return false;
}

// "-c 1", "-c 0-1", "-c 0x2" (SPDK's core mask).
bool parse_cores(const std::string& text, std::vector<int>* out, std::string* err) {
    if (text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0) {
        char* end = nullptr;
        unsigned long long m = std::strtoull(text.c_str() + 2, &end, 16);
        if (!end || *end || m == 0) {
            *err = "bad core mask " + text;
            return false;
        }
        out->clear();
        for (int i = 0; i < 64; ++i)
            if (m & (1ull << i)) out->push_back(i);
        return true;
    }
    return parse_cpu_list(text, out, err);
}

void print_report(Shared& s) {
    const Config& c = s.cfg;
    Histogram total;
    uint64_t ios = 0, bytes = 0, errors = 0, mis = 0;
    double secs = 0;
    for (auto& r : s.results) {
        total.merge(r->hist);
        ios += r->ios;
        bytes += r->bytes;
        errors += r->errors;
        mis += r->miscompares;
        secs = std::max(secs, r->seconds);
    }
    auto us = [](double ns) { return ns / 1000.0; };
    if (c.json) {
        nlohmann::json j;
        j["config"] = {{"transport_id", format_transport_id(c.trid)},
                       {"queue_depth", c.depth},
                       {"io_size", c.io_size},
                       {"read_percent", c.read_pct},
                       {"seconds", c.seconds},
                       {"warmup", c.warmup},
                       {"header_digest", c.hdgst},
                       {"data_digest", c.ddgst},
                       {"verify", c.verify}};
        nlohmann::json per = nlohmann::json::array();
        for (auto& r : s.results) {
            const double iops = r->seconds > 0 ? double(r->ios) / r->seconds : 0;
            per.push_back({{"device", r->label},
                           {"core", r->core},
                           {"nsid", r->nsid},
                           {"iops", iops},
                           {"mibps", iops * c.io_size / 1048576.0},
                           {"avg_us", us(r->hist.mean())},
                           {"min_us", us(double(r->hist.min()))},
                           {"max_us", us(double(r->hist.max()))},
                           {"errors", r->errors}});
        }
        const double iops = secs > 0 ? double(ios) / secs : 0;
        j["devices"] = per;
        j["total"] = {{"iops", iops},
                      {"mibps", secs > 0 ? double(bytes) / secs / 1048576.0 : 0},
                      {"avg_us", us(total.mean())},
                      {"min_us", us(double(total.min()))},
                      {"max_us", us(double(total.max()))},
                      {"p50_us", us(double(total.percentile(50)))},
                      {"p99_us", us(double(total.percentile(99)))},
                      {"p99_9_us", us(double(total.percentile(99.9)))},
                      {"ios", ios},
                      {"errors", errors},
                      {"miscompares", mis},
                      {"interrupted", g_interrupted.load()}};
        fmt::print("{}\n", j.dump(2));
        return;
    }
    fmt::print("========================================================\n");
    fmt::print("{:<72}{:>48}\n", "", "Latency(us)");
    fmt::print("{:<72}: {:>10} {:>10} {:>10} {:>10} {:>10}\n", "Device Information", "IOPS",
               "MiB/s", "Average", "min", "max");
    for (auto& r : s.results) {
        const double iops = r->seconds > 0 ? double(r->ios) / r->seconds : 0;
        fmt::print("{:<72}: {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f}\n",
                   fmt::format("{} NSID {} from core {:2}", r->label, r->nsid, r->core), iops,
                   iops * c.io_size / 1048576.0, us(r->hist.mean()), us(double(r->hist.min())),
                   us(double(r->hist.max())));
    }
    fmt::print("========================================================\n");
    const double iops = secs > 0 ? double(ios) / secs : 0;
    fmt::print("{:<72}: {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f}\n", "Total", iops,
               secs > 0 ? double(bytes) / secs / 1048576.0 : 0, us(total.mean()),
               us(double(total.min())), us(double(total.max())));
    fmt::print("\nLatency percentiles (us): p50 {:.2f}  p99 {:.2f}  p99.9 {:.2f}  max {:.2f}\n",
               us(double(total.percentile(50))), us(double(total.percentile(99))),
               us(double(total.percentile(99.9))), us(double(total.max())));
    if (errors || mis) fmt::print("errors: {}  miscompares: {}\n", errors, mis);
    if (g_interrupted) fmt::print("(interrupted)\n");
}

// Control thread: drops the controller (from a message, never inside its own callbacks), then
// stops the runtime.
void finish_run(Shared* s, Runtime* rt) {
    Thread::current()->send([s, rt] {
        s->ctrlr.reset();
        rt->request_shutdown();
    });
}

// Control thread: connect, start a worker per (data thread, namespace, qpair), then report.
void run(Shared* s, Runtime* rt) {
    CtrlrOptions o;
    o.trid = s->cfg.trid;
    o.hdgst = s->cfg.hdgst;
    o.ddgst = s->cfg.ddgst;
    o.auth = s->cfg.auth;
    o.tls = s->cfg.tls;
    o.io_queue_depth = uint16_t(s->cfg.depth);
    const size_t nthreads = rt->data_threads().size();
    s->ctrlr = std::make_unique<NvmeCtrlr>(o);
    if (!s->cfg.json) fmt::print("Initializing NVMe Controllers\n");
    s->ctrlr->connect([s, rt, nthreads](int rc, const std::string& err) {
        if (rc != 0) {
            fmt::print(stderr, "cannot attach to {}: {}\n", format_transport_id(s->cfg.trid), err);
            s->exit_code = 1;
            return finish_run(s, rt);
        }
        const auto& cd = s->ctrlr->cdata();
        if (!s->cfg.json) {
            fmt::print("Attached to NVMe over Fabrics controller at {}:{}: {}\n",
                       s->cfg.trid.traddr, s->cfg.trid.trsvcid, s->cfg.trid.subnqn);
            fmt::print("  model '{}' cntlid {} io queues {} mdts {} ioccsz {}\n",
                       std::string(cd.mn, strnlen(cd.mn, sizeof cd.mn)), s->ctrlr->cntlid(),
                       s->ctrlr->io_queues_granted(), unsigned(cd.mdts), cd.ioccsz);
        }
        for (const auto& ns : s->ctrlr->namespaces()) {
            const auto& want = s->cfg.trid.nsids;
            if (!want.empty() && std::find(want.begin(), want.end(), ns.nsid) == want.end())
                continue;
            if (s->cfg.io_size % ns.block_size != 0) {
                fmt::print(stderr, "IO size {} is not a multiple of NSID {}'s block size {}\n",
                           s->cfg.io_size, ns.nsid, ns.block_size);
                continue;
            }
            s->namespaces.push_back(ns);
        }
        if (s->namespaces.empty()) {
            fmt::print(stderr, "no usable namespace\n");
            s->exit_code = 1;
            return s->ctrlr->shutdown([s, rt](int, const std::string&) { finish_run(s, rt); });
        }
        const uint32_t per_thread = uint32_t(s->namespaces.size()) * s->cfg.qpairs_per_ns;
        const uint32_t total = per_thread * uint32_t(nthreads);
        s->workers_left = int(total);
        Thread* control = Thread::current();
        auto all_done = [s, rt, control] {
            control->send([s, rt] {
                if (--s->workers_left > 0) return;
                print_report(*s);
                for (auto& r : s->results)
                    if (r->errors || r->miscompares) s->exit_code = 1;
                s->ctrlr->shutdown([s, rt](int, const std::string&) { finish_run(s, rt); });
            });
        };
        const std::string label =
            fmt::format("TCP (addr:{} subnqn:{})", s->cfg.trid.traddr, s->cfg.trid.subnqn);
        for (size_t t = 0; t < nthreads; ++t) {
            for (size_t n = 0; n < s->namespaces.size(); ++n) {
                for (uint32_t p = 0; p < s->cfg.qpairs_per_ns; ++p) {
                    auto res = std::make_unique<WorkerResult>();
                    res->label = label;
                    res->core = rt->data_threads()[t]->reactor()->core();
                    res->nsid = s->namespaces[n].nsid;
                    if (!s->cfg.json)
                        fmt::print("Associating {} NSID {} with lcore {}\n", label, res->nsid,
                                   res->core);
                    WorkerResult* rp = res.get();
                    s->results.push_back(std::move(res));
                    const uint32_t idx = uint32_t(s->results.size() - 1);
                    const NamespaceData* ns = &s->namespaces[n];
                    auto done_fn = std::make_shared<std::function<void()>>(all_done);
                    Worker* w = new Worker(s, *ns, rp, idx, total);
                    rt->data_threads()[t]->send([w, done_fn] {
                        auto all_done = *done_fn;
                        w->start([w, all_done] {
                            all_done();
                            Thread::current()->send([w] { delete w; });
                        });
                    });
                }
            }
        }
        if (!s->cfg.json) fmt::print("Initialization complete. Launching workers.\n");
    });
}

}  // namespace

int main(int argc, char** argv) {
    Config c;
    std::string trid, workload = "randread", cores, log_spec = "warn";
    int read_pct = -1;
    bool no_pin = false;
    CLI::App app{"nocstor-perf: NVMe/TCP load generator (spdk_nvme_perf style)", "nocstor-perf"};
    app.add_option("-r,--transport", trid,
                   "transport ID, e.g. 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 "
                   "subnqn:nqn.2024-01.io.nocstor:vol1' (also hostnqn:, ns:N to pick namespaces)")
        ->required();
    app.add_option("-q,--io-depth", c.depth, "commands in flight per queue")
        ->capture_default_str()
        ->check(CLI::Range(1u, 4096u));
    app.add_option("-o,--io-size", c.io_size, "I/O size in bytes")
        ->capture_default_str()
        ->check(CLI::Range(512u, 1u << 20));
    app.add_option("-w,--io-pattern", workload, "read|write|randread|randwrite|rw|randrw")
        ->capture_default_str();
    app.add_option("-M,--rwmixread", read_pct, "read percentage for rw/randrw")
        ->check(CLI::Range(0, 100));
    app.add_option("-t,--time", c.seconds, "seconds to measure")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 3600.0));
    app.add_option("--warmup", c.warmup, "seconds of load before measuring")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 600.0));
    app.add_option("-c,--cores", cores,
                   "cores running submitter threads: a list '1,2-3' or a mask '0x2' "
                   "(default: the last allowed core)");
    app.add_option("-P,--num-qpairs", c.qpairs_per_ns, "I/O queues per namespace per core")
        ->capture_default_str()
        ->check(CLI::Range(1u, 64u));
    app.add_flag("-H,--enable-tcp-hdgst", c.hdgst, "enable the NVMe/TCP header digest");
    app.add_flag("-I,--enable-tcp-ddgst", c.ddgst, "enable the NVMe/TCP data digest");
    std::string dhchap_secret, dhchap_ctrl_secret;
    app.add_option("--dhchap-secret", dhchap_secret,
                   "DH-HMAC-CHAP host secret (DHHC-1:..., as nvme gen-dhchap-key prints it), or "
                   "a file holding it; the host NQN of -r (hostnqn:) is the one it belongs to");
    app.add_option("--dhchap-ctrl-secret", dhchap_ctrl_secret,
                   "DH-HMAC-CHAP controller secret (or a file): the target must prove it too");
    std::string psk;
    app.add_option("--psk", psk,
                   "TLS PSK (NVMeTLSkey-1:..., as nvme gen-tls-key prints it), or a file holding "
                   "it: connect over a TLS 1.3 secure channel (the host NQN of -r is part of the "
                   "key's identity)");
    app.add_flag("--json", c.json, "print the results as JSON");
    app.add_flag("--verify", c.verify,
                 "each queue slot writes a block pattern stamped with LBA and seed, reads it "
                 "back and compares (ignores -w/-M)");
    app.add_option("--seed", c.seed, "pattern / random seed");
    app.add_flag("--no-pin", no_pin, "do not pin reactors to their cores");
    app.add_option("-L,--log-level", log_spec, "log level spec")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    std::string err;
    if (!parse_transport_id(trid, &c.trid, &err)) {
        fmt::print(stderr, "nocstor-perf: -r: {}\n", err);
        return 2;
    }
    if (c.trid.subnqn.empty()) {
        fmt::print(stderr, "nocstor-perf: -r needs subnqn:\n");
        return 2;
    }
    if (!dhchap_ctrl_secret.empty() && dhchap_secret.empty()) {
        fmt::print(stderr, "nocstor-perf: --dhchap-ctrl-secret needs --dhchap-secret\n");
        return 2;
    }
    if (!dhchap_secret.empty()) {
        auto cfg = std::make_shared<HostAuthConfig>();
        auto load = [&](std::string text, security::DhchapSecret* out, const char* opt) {
            std::string why;
            if (!secret_text(&text, "DHHC-1:", opt)) return false;
            if (!security::parse_dhchap_secret(text, out, &why)) {
                fmt::print(stderr, "nocstor-perf: {}: {}\n", opt, why);
                return false;
            }
            security::wipe(text);
            return true;
        };
        if (!load(dhchap_secret, &cfg->host, "--dhchap-secret")) return 2;
        if (!dhchap_ctrl_secret.empty()) {
            cfg->ctrl.emplace();
            if (!load(dhchap_ctrl_secret, &*cfg->ctrl, "--dhchap-ctrl-secret")) return 2;
        }
        security::wipe(dhchap_secret);
        security::wipe(dhchap_ctrl_secret);
        c.auth = std::move(cfg);
    }
    if (!psk.empty()) {
        auto cfg = std::make_shared<HostTlsConfig>();
        std::string why;
        if (!secret_text(&psk, "NVMeTLSkey-1:", "--psk")) return 2;
        if (!security::parse_tls_psk(psk, &cfg->psk, &why)) {
            fmt::print(stderr, "nocstor-perf: --psk: {}\n", why);
            return 2;
        }
        security::wipe(psk);
        c.tls = std::move(cfg);
    }
    if (!parse_pattern(workload, &c.pattern, &c.read_pct)) {
        fmt::print(stderr, "nocstor-perf: -w: unknown pattern '{}'\n", workload);
        return 2;
    }
    if (c.pattern == Pattern::kRw || c.pattern == Pattern::kRandRw) {
        if (read_pct < 0) {
            fmt::print(stderr, "nocstor-perf: -w {} needs -M\n", workload);
            return 2;
        }
        c.read_pct = read_pct;
    }
    if (c.io_size % 512 != 0) {
        fmt::print(stderr, "nocstor-perf: -o must be a multiple of 512\n");
        return 2;
    }
    if (!apply_log_spec(log_spec, &err)) {
        fmt::print(stderr, "nocstor-perf: -L: {}\n", err);
        return 2;
    }
    Topology topo = Topology::detect();
    if (cores.empty()) {
        c.cores = {topo.cpu_ids().back()};
    } else if (!parse_cores(cores, &c.cores, &err)) {
        fmt::print(stderr, "nocstor-perf: -c: {}\n", err);
        return 2;
    }
    for (int core : c.cores) {
        if (!topo.find(core)) {
            fmt::print(stderr, "nocstor-perf: core {} is not available\n", core);
            return 2;
        }
    }
    c.pin = !no_pin;

    RuntimeOptions ro;
    ro.clusters = {{0, ClusterSpec::Role::Control, {c.cores.front()}},
                   {1, ClusterSpec::Role::Data, c.cores}};
    ro.reactor.pin = c.pin;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    auto shared = std::make_unique<Shared>();
    shared->cfg = c;
    Shared* s = shared.get();
    {
        Runtime rt(ro);
        rt.start([s, &rt] { run(s, &rt); });
        // Ctrl-C before the workers run, or a controller that never answers: bounded wait.
        const uint64_t limit = now_ns() + uint64_t((c.seconds + c.warmup + 60) * 1e9);
        while (!rt.stopped()) {
            struct timespec ts {
                0, 50'000'000
            };
            nanosleep(&ts, nullptr);
            if (g_interrupted) s->stop = true;
            if (now_ns() > limit) {
                fmt::print(stderr, "nocstor-perf: giving up (no completion in time)\n");
                s->exit_code = 1;
                (void)s->ctrlr.release();  // its pollers die with the runtime: never touch it
                rt.request_shutdown();
                break;
            }
        }
        rt.wait();
        // The controller must go before the runtime (its pollers live on the control thread).
    }
    return s->exit_code;
}
