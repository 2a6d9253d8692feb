#include "nvme_host/ctrlr.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nvme_host/nvme_cmd.h"
#include "runtime/thread.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::nvme_host {

namespace {

constexpr uint32_t kAdminIncapsule = 8192;
constexpr uint32_t kMaxTransferCap = 1u << 20;  // never more than this per command

struct AdminCtx {
    NvmeCtrlr::AdminCb cb;
    iovec iov;
};

void admin_cpl(void* arg, const NvmeCpl& cpl) {
    std::unique_ptr<AdminCtx> ctx(static_cast<AdminCtx*>(arg));
    if (ctx->cb) ctx->cb(cpl);
}

std::string trim_field(const char* p, size_t n) {
    std::string s(p, strnlen(p, n));
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
}

bool all_zero(const uint8_t* p, size_t n) {
    return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

}  // namespace

std::string status_text(const NvmeCpl& cpl) {
    if (cpl.transport_rc != 0)
        return fmt::format("transport error: {}", strerror(-cpl.transport_rc));
    return fmt::format("NVMe status sct {:#x} sc {:#x}{}", cpl.cqe.status.sct(),
                       cpl.cqe.status.sc(), cpl.cqe.status.dnr() ? " (DNR)" : "");
}

NvmeCtrlr::NvmeCtrlr(CtrlrOptions opts)
    : opts_(std::move(opts)),
      cdata_(std::make_unique<nvme::IdentifyController>()),
      scratch_(std::make_unique<uint8_t[]>(4096)) {
    if (opts_.trid.hostnqn.empty()) {
        opts_.trid.hostnqn = generate_host_nqn(opts_.hostid);
    } else if (all_zero(opts_.hostid, 16)) {
        hostid_for_nqn(opts_.trid.hostnqn, opts_.hostid);
    }
    discovery_ = opts_.trid.subnqn.empty() || opts_.trid.subnqn == nvme::kDiscoveryNqn;
    std::memset(cdata_.get(), 0, sizeof(nvme::IdentifyController));
}

NvmeCtrlr::~NvmeCtrlr() {
    destroying_ = true;
    if (thread_) {
        for (Poller* p : timers_) thread_->unregister_poller(p);
        if (ka_poller_) thread_->unregister_poller(ka_poller_);
    }
    admin_.reset();  // outstanding admin callbacks see destroying_ and stop
}

// A one-shot timer on this thread; it unregisters itself before running fn.
void NvmeCtrlr::after_us(uint64_t us, std::function<void()> fn) {
    auto self = std::make_shared<Poller*>(nullptr);
    *self = thread_->register_poller(
        "nvme_ctrlr_timer",
        [this, self, fn = std::move(fn)]() mutable {
            Poller* p = *self;
            if (!p) return 0;
            *self = nullptr;
            auto f = std::move(fn);
            NvmeCtrlr* c = this;
            c->timers_.erase(std::remove(c->timers_.begin(), c->timers_.end(), p),
                             c->timers_.end());
            c->thread_->unregister_poller(p);
            f();
            return 1;
        },
        us);
    timers_.push_back(*self);
}

int NvmeCtrlr::admin_command(const nvme::SubmissionQueueEntry& sqe, DataDir dir, void* buf,
                             uint32_t len, AdminCb cb) {
    if (!admin_) return -ENOTCONN;
    auto* ctx = new AdminCtx{std::move(cb), {buf, len}};
    int rc = admin_->submit(sqe, dir, &ctx->iov, buf ? 1 : 0, len, admin_cpl, ctx);
    if (rc != 0) delete ctx;
    return rc;
}

int NvmeCtrlr::get_log_page(uint8_t lid, uint64_t offset, void* buf, uint32_t len, AdminCb cb) {
    return admin_command(cmd::get_log_page(lid, 0, offset, len), DataDir::kCtrlToHost, buf, len,
                         std::move(cb));
}

// ---------------------------------------------------------------------------------------------
// Bring-up
// ---------------------------------------------------------------------------------------------
void NvmeCtrlr::connect(CtrlrDone done) {
    thread_ = Thread::current();
    connect_done_ = std::move(done);
    QpairOptions q;
    q.trid = opts_.trid;
    std::memcpy(q.hostid, opts_.hostid, 16);
    q.qid = 0;
    q.depth = opts_.admin_depth;
    q.kato_ms = discovery_ ? 0 : opts_.kato_ms;
    q.hdgst = opts_.hdgst;
    q.ddgst = opts_.ddgst;
    q.incapsule_max = kAdminIncapsule;
    q.auth = opts_.auth;
    q.tls = opts_.tls;
    q.command_timeout_us = opts_.admin_timeout_us;
    q.connect_timeout_us = opts_.connect_timeout_us;
    admin_ = std::make_unique<NvmeTcpQpair>(q);
    admin_->set_failure_callback(
        [this](int rc, const std::string& why) { on_admin_failure(rc, why); });
    admin_->connect([this](int rc, const std::string& err) {
        if (!alive()) return;
        if (rc != 0) return finish_connect(rc, err);
        cntlid_ = admin_->cntlid();
        step_property_get_cap();
    });
}

void NvmeCtrlr::finish_connect(int rc, const std::string& err) {
    if (rc == 0) {
        ready_ = true;
        start_keep_alive();
    } else if (admin_) {
        admin_->disconnect();
    }
    if (connect_done_) {
        auto done = std::move(connect_done_);
        connect_done_ = nullptr;
        done(rc, err);
    }
}

#define NVME_STEP_CHECK(cpl, what)                                                       \
    do {                                                                                 \
        if (!alive()) return;                                                            \
        if (!(cpl).ok()) {                                                               \
            return finish_connect((cpl).transport_rc ? (cpl).transport_rc : -EIO,        \
                                  fmt::format("{} failed: {}", what, status_text(cpl))); \
        }                                                                                \
    } while (0)

void NvmeCtrlr::step_property_get_cap() {
    int rc = admin_command(cmd::property_get(nvme::prop::kCap, true), DataDir::kNone, nullptr, 0,
                           [this](const NvmeCpl& c) {
                               NVME_STEP_CHECK(c, "Property Get CAP");
                               cap_ = uint64_t(c.cqe.dw0) | (uint64_t(c.cqe.dw1) << 32);
                               admin_command(cmd::property_get(nvme::prop::kVs, false),
                                             DataDir::kNone, nullptr, 0, [this](const NvmeCpl& v) {
                                                 NVME_STEP_CHECK(v, "Property Get VS");
                                                 vs_ = v.cqe.dw0;
                                                 step_enable();
                                             });
                           });
    if (rc != 0) finish_connect(rc, "cannot submit Property Get");
}

void NvmeCtrlr::step_enable() {
    // EN=1, CSS NVM, MPS 4 KiB, IOSQES 64 B (2^6), IOCQES 16 B (2^4).
    const uint32_t cc = nvme::cc::kEn | (6u << 16) | (4u << 20);
    admin_command(cmd::property_set(nvme::prop::kCc, cc, false), DataDir::kNone, nullptr, 0,
                  [this](const NvmeCpl& c) {
                      NVME_STEP_CHECK(c, "Property Set CC.EN");
                      // CAP.TO is in 500 ms units; 0 would be a broken controller, allow 500 ms.
                      const uint64_t to_ms = std::max<uint64_t>(1, nvme::cap::timeout(cap_)) * 500;
                      wait_ready(now_ns() + to_ms * 1'000'000);
                  });
}

void NvmeCtrlr::wait_ready(uint64_t deadline_ns) {
    admin_command(cmd::property_get(nvme::prop::kCsts, false), DataDir::kNone, nullptr, 0,
                  [this, deadline_ns](const NvmeCpl& c) {
                      NVME_STEP_CHECK(c, "Property Get CSTS");
                      if (c.cqe.dw0 & nvme::csts::kCfs)
                          return finish_connect(-EIO, "controller fatal status (CSTS.CFS)");
                      if (c.cqe.dw0 & nvme::csts::kRdy) return step_identify();
                      if (now_ns() > deadline_ns)
                          return finish_connect(-ETIMEDOUT, "CSTS.RDY not set within CAP.TO");
                      after_us(2000, [this, deadline_ns] { wait_ready(deadline_ns); });
                  });
}

void NvmeCtrlr::step_identify() {
    admin_command(
        cmd::identify(nvme::cns::kController, 0), DataDir::kCtrlToHost, cdata_.get(), 4096,
        [this](const NvmeCpl& c) {
            NVME_STEP_CHECK(c, "Identify Controller");
            const auto& cd = *cdata_;
            if (cd.cntlid != cntlid_) {
                NOC_WARN("nvme", "Identify CNTLID {} differs from Connect's {}", cd.cntlid,
                         cntlid_);
            }
            if ((cd.sgls & 0x3) == 0)
                return finish_connect(-ENOTSUP, "controller does not support SGLs (SGLS)");
            if (cd.icdoff != 0)
                return finish_connect(-ENOTSUP, "in-capsule data offset (ICDOFF) is not 0");
            const uint32_t mdts_bytes = cd.mdts ? (4096u << std::min<uint8_t>(cd.mdts, 20)) : 0;
            max_xfer_ = mdts_bytes ? std::min(mdts_bytes, kMaxTransferCap) : kMaxTransferCap;
            if (discovery_ || cd.cntrltype == nvme::kCntrlTypeDiscovery) {
                discovery_ = true;
                return finish_connect(0, "");
            }
            if (cd.ioccsz < 4) return finish_connect(-EPROTO, "IOCCSZ below 4 (64 bytes)");
            io_incapsule_ = cd.ioccsz * 16u - 64u;
            step_num_queues();
        });
}

void NvmeCtrlr::step_num_queues() {
    const uint32_t n = std::max<uint16_t>(1, opts_.num_io_queues) - 1u;
    admin_command(cmd::set_features(nvme::feature::kNumberOfQueues, n | (n << 16)), DataDir::kNone,
                  nullptr, 0, [this](const NvmeCpl& c) {
                      NVME_STEP_CHECK(c, "Set Features Number of Queues");
                      const uint32_t nsq = (c.cqe.dw0 & 0xFFFF) + 1;
                      const uint32_t ncq = (c.cqe.dw0 >> 16) + 1;
                      io_queues_ = uint16_t(std::min({nsq, ncq, uint32_t(opts_.num_io_queues)}));
                      {
                          std::lock_guard<std::mutex> g(qid_mu_);
                          qid_used_.assign(io_queues_ + 1u, false);
                          qid_used_[0] = true;
                      }
                      nsids_.clear();
                      namespaces_.clear();
                      step_ns_list(0);
                  });
}

void NvmeCtrlr::step_ns_list(uint32_t after) {
    admin_command(cmd::identify(nvme::cns::kActiveNamespaceList, after), DataDir::kCtrlToHost,
                  scratch_.get(), 4096, [this](const NvmeCpl& c) {
                      NVME_STEP_CHECK(c, "Identify Active Namespace List");
                      const auto* ids = reinterpret_cast<const uint32_t*>(scratch_.get());
                      size_t n = 0;
                      while (n < 1024 && ids[n] != 0) nsids_.push_back(ids[n++]);
                      if (n == 1024 && ids[1023] < 0xFFFFFFFE) return step_ns_list(ids[1023]);
                      step_identify_ns(0);
                  });
}

void NvmeCtrlr::step_identify_ns(size_t i) {
    if (i == nsids_.size()) return finish_connect(0, "");
    admin_command(
        cmd::identify(nvme::cns::kNamespace, nsids_[i]), DataDir::kCtrlToHost, scratch_.get(), 4096,
        [this, i](const NvmeCpl& c) {
            NVME_STEP_CHECK(c, "Identify Namespace");
            const auto* id = reinterpret_cast<const nvme::IdentifyNamespace*>(scratch_.get());
            NamespaceData ns;
            ns.nsid = nsids_[i];
            ns.num_blocks = id->nsze;
            const uint8_t fmt_idx = uint8_t((id->flbas & 0xF) | ((id->flbas >> 1) & 0x30));
            const uint8_t lbads = id->lbaf[std::min<uint8_t>(fmt_idx, 63)].lbads;
            ns.block_size = lbads >= 9 && lbads < 24 ? (1u << lbads) : 0;
            std::memcpy(ns.nguid, id->nguid, 16);
            std::memcpy(ns.eui64, id->eui64, 8);
            ns.has_nguid = !all_zero(ns.nguid, 16);
            if (ns.num_blocks == 0 || ns.block_size == 0) {  // inactive or unusable: skip
                NOC_WARN("nvme", "namespace {} has no usable size/format; skipped", ns.nsid);
                return step_identify_ns(i + 1);
            }
            namespaces_.push_back(ns);
            step_ns_descriptors(i);
        });
}

void NvmeCtrlr::step_ns_descriptors(size_t i) {
    // Namespace identification descriptors (NVMe 1.3+): the UUID, if any. Errors are ignored.
    if (vs_ < nvme::make_version(1, 3)) return step_identify_ns(i + 1);
    std::memset(scratch_.get(), 0, 4096);
    admin_command(cmd::identify(nvme::cns::kNamespaceIdDescriptorList, nsids_[i]),
                  DataDir::kCtrlToHost, scratch_.get(), 4096, [this, i](const NvmeCpl& c) {
                      if (!alive()) return;
                      if (c.transport_rc)
                          return finish_connect(c.transport_rc,
                                                "Identify NS descriptors: transport error");
                      if (c.cqe.status.ok()) {
                          size_t off = 0;
                          const uint8_t* p = scratch_.get();
                          while (off + 4 <= 4096) {
                              const uint8_t type = p[off], len = p[off + 1];
                              if (type == 0 || off + 4 + len > 4096) break;
                              if (type == nvme::nidt::kUuid && len == 16) {
                                  std::memcpy(namespaces_.back().uuid, p + off + 4, 16);
                                  namespaces_.back().has_uuid = true;
                              }
                              off += 4 + len;
                          }
                      }
                      step_identify_ns(i + 1);
                  });
}

// ---------------------------------------------------------------------------------------------
// Keep-alive, failure, shutdown
// ---------------------------------------------------------------------------------------------
void NvmeCtrlr::start_keep_alive() {
    if (discovery_ || opts_.kato_ms == 0 || !thread_) return;
    ka_poller_ = thread_->register_poller(
        "nvme_keep_alive",
        [this] {
            if (!admin_ || !admin_->ready() || ka_outstanding_) return 0;
            ka_outstanding_ = true;
            int rc = admin_command(
                cmd::keep_alive(), DataDir::kNone, nullptr, 0, [this](const NvmeCpl& c) {
                    if (!alive()) return;
                    ka_outstanding_ = false;
                    if (c.transport_rc == 0 && !c.cqe.status.ok()) {
                        on_admin_failure(-EIO, "Keep Alive rejected: " + status_text(c));
                    }
                });
            if (rc != 0) ka_outstanding_ = false;
            return 1;
        },
        uint64_t(opts_.kato_ms) * 1000 / 2);
}

void NvmeCtrlr::on_admin_failure(int rc, const std::string& why) {
    if (!alive() || !ready_) return;
    ready_ = false;
    if (ka_poller_ && thread_) {
        thread_->unregister_poller(ka_poller_);
        ka_poller_ = nullptr;
    }
    NOC_WARN("nvme", "controller {}:{} {} lost: {}", opts_.trid.traddr, opts_.trid.trsvcid,
             opts_.trid.subnqn, why);
    if (on_failure_) on_failure_(rc, why);
}

void NvmeCtrlr::shutdown(CtrlrDone done) {
    if (ka_poller_ && thread_) {
        thread_->unregister_poller(ka_poller_);
        ka_poller_ = nullptr;
    }
    ready_ = false;
    if (!admin_ || !admin_->ready()) {
        if (admin_) admin_->disconnect();
        return done(0, "");
    }
    auto finish = [this, done](int rc, const std::string& err) {
        if (admin_) admin_->disconnect();
        done(rc, err);
    };
    if (discovery_) return finish(0, "");
    const uint32_t cc =
        nvme::cc::kEn | (6u << 16) | (4u << 20) | (uint32_t(nvme::cc::kShnNormal) << 14);
    auto poll_shst = std::make_shared<std::function<void(uint64_t)>>();
    // Weak self-reference: the pending callbacks own the loop, so it is freed once it ends.
    std::weak_ptr<std::function<void(uint64_t)>> weak_poll = poll_shst;
    *poll_shst = [this, finish, weak_poll](uint64_t deadline) {
        auto poll_shst = weak_poll.lock();
        if (!poll_shst) return;
        int rc =
            admin_command(cmd::property_get(nvme::prop::kCsts, false), DataDir::kNone, nullptr, 0,
                          [this, finish, poll_shst, deadline](const NvmeCpl& c) {
                              if (!alive()) return;
                              if (!c.ok()) return finish(-EIO, "shutdown: " + status_text(c));
                              if (nvme::csts::shst(c.cqe.dw0) == nvme::csts::kShstComplete)
                                  return finish(0, "");
                              if (now_ns() > deadline)
                                  return finish(-ETIMEDOUT, "shutdown did not complete");
                              after_us(2000, [poll_shst, deadline] { (*poll_shst)(deadline); });
                          });
        if (rc != 0) finish(rc, "shutdown: cannot submit");
    };
    int rc = admin_command(cmd::property_set(nvme::prop::kCc, cc, false), DataDir::kNone, nullptr,
                           0, [this, finish, poll_shst](const NvmeCpl& c) {
                               if (!alive()) return;
                               if (!c.ok()) return finish(-EIO, "CC.SHN: " + status_text(c));
                               (*poll_shst)(now_ns() + 5'000'000'000ull);
                           });
    if (rc != 0) finish(rc, "shutdown: cannot submit");
}

// ---------------------------------------------------------------------------------------------
// I/O queues
// ---------------------------------------------------------------------------------------------
int NvmeCtrlr::io_qpair_options(QpairOptions* out, uint16_t depth) {
    uint16_t qid = 0;
    {
        std::lock_guard<std::mutex> g(qid_mu_);
        for (size_t i = 1; i < qid_used_.size(); ++i) {
            if (!qid_used_[i]) {
                qid_used_[i] = true;
                qid = uint16_t(i);
                break;
            }
        }
    }
    if (qid == 0) return -ENOSPC;
    QpairOptions q;
    q.trid = opts_.trid;
    std::memcpy(q.hostid, opts_.hostid, 16);
    q.qid = qid;
    // Entries the controller allows: CAP.MQES (0-based) + 1 and MAXCMD; keep one spare.
    uint32_t d = depth ? depth : opts_.io_queue_depth;
    d = std::min<uint32_t>(d, nvme::cap::mqes(cap_));  // SQSIZE = d must be <= MQES
    if (cdata_->maxcmd) d = std::min<uint32_t>(d, cdata_->maxcmd);
    q.depth = uint16_t(std::max<uint32_t>(d, 1));
    q.cntlid = cntlid_;
    q.hdgst = opts_.hdgst;
    q.ddgst = opts_.ddgst;
    q.incapsule_max = io_incapsule_;
    q.auth = opts_.auth;
    q.tls = opts_.tls;
    q.command_timeout_us = opts_.io_timeout_us;
    q.connect_timeout_us = opts_.connect_timeout_us;
    q.max_c2h_pdu = std::max<uint32_t>(max_xfer_, 128 * 1024) + 4096;
    *out = std::move(q);
    return 0;
}

void NvmeCtrlr::release_qid(uint16_t qid) {
    std::lock_guard<std::mutex> g(qid_mu_);
    if (qid < qid_used_.size()) qid_used_[qid] = false;
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------
void NvmeCtrlr::get_discovery_log(
    std::function<void(int, const std::string&, std::vector<DiscoveryEntry>)> done) {
    struct State {
        std::vector<uint8_t> buf;
        uint64_t genctr = 0;
        uint64_t numrec = 0;
        int attempts = 0;
    };
    auto st = std::make_shared<State>();
    auto fetch = std::make_shared<std::function<void()>>();
    auto fail = [done, fetch](int rc, const std::string& e) {
        auto d = done;  // this lambda may live in *fetch, which the next line destroys
        std::string msg = e;
        *fetch = nullptr;
        d(rc, msg, {});
    };
    *fetch = [this, st, fetch, done, fail] {
        st->buf.assign(sizeof(nvme::DiscoveryLogHeader), 0);
        int rc = get_log_page(
            nvme::log_page::kDiscovery, 0, st->buf.data(), uint32_t(st->buf.size()),
            [this, st, fetch, done, fail](const NvmeCpl& c) {
                if (!alive()) return;
                if (!c.ok()) return fail(-EIO, "discovery log header: " + status_text(c));
                nvme::DiscoveryLogHeader h;
                std::memcpy(&h, st->buf.data(), sizeof h);
                st->genctr = h.genctr;
                st->numrec = std::min<uint64_t>(h.numrec, 1024);
                const uint32_t bytes = uint32_t(st->numrec * sizeof(nvme::DiscoveryLogEntry));
                st->buf.assign(bytes + sizeof(nvme::DiscoveryLogHeader), 0);
                // Entries by offset, a page (four entries) at a time, then the header again.
                auto read_from = std::make_shared<std::function<void(uint32_t)>>();
                *read_from = [this, st, fetch, done, fail, read_from, bytes](uint32_t off) {
                    if (off >= bytes) {
                        const uint32_t hlen = sizeof(nvme::DiscoveryLogHeader);
                        int rc2 = get_log_page(
                            nvme::log_page::kDiscovery, 0, st->buf.data() + bytes, hlen,
                            [this, st, fetch, done, fail, read_from, bytes](const NvmeCpl& c2) {
                                *read_from = nullptr;
                                if (!alive()) return;
                                if (!c2.ok())
                                    return fail(-EIO, "discovery log: " + status_text(c2));
                                nvme::DiscoveryLogHeader h2;
                                std::memcpy(&h2, st->buf.data() + bytes, sizeof h2);
                                if (h2.genctr != st->genctr) {
                                    if (++st->attempts < 5) return (*fetch)();
                                    return fail(-EAGAIN, "discovery log kept changing");
                                }
                                std::vector<DiscoveryEntry> out;
                                for (uint64_t i = 0; i < st->numrec; ++i) {
                                    nvme::DiscoveryLogEntry e;
                                    std::memcpy(&e, st->buf.data() + i * sizeof e, sizeof e);
                                    DiscoveryEntry d;
                                    d.trtype = e.trtype;
                                    d.adrfam = e.adrfam;
                                    d.subtype = e.subtype;
                                    d.portid = e.portid;
                                    d.cntlid = e.cntlid;
                                    d.trsvcid = trim_field(e.trsvcid, sizeof e.trsvcid);
                                    d.traddr = trim_field(e.traddr, sizeof e.traddr);
                                    d.subnqn = trim_field(e.subnqn, sizeof e.subnqn);
                                    out.push_back(std::move(d));
                                }
                                *fetch = nullptr;
                                done(0, "", std::move(out));
                            });
                        if (rc2 != 0) fail(rc2, "cannot submit Get Log Page");
                        return;
                    }
                    const uint32_t chunk = std::min<uint32_t>(bytes - off, 4096);
                    int rc3 = get_log_page(
                        nvme::log_page::kDiscovery, sizeof(nvme::DiscoveryLogHeader) + off,
                        st->buf.data() + off, chunk,
                        [this, fail, read_from, off, chunk](const NvmeCpl& c3) {
                            if (!alive()) return;
                            if (!c3.ok()) {
                                *read_from = nullptr;
                                return fail(-EIO, "discovery log entries: " + status_text(c3));
                            }
                            (*read_from)(off + chunk);
                        });
                    if (rc3 != 0) fail(rc3, "cannot submit Get Log Page");
                };
                (*read_from)(0);
            });
        if (rc != 0) fail(rc, "cannot submit Get Log Page");
    };
    (*fetch)();
}

void discover(const CtrlrOptions& opts,
              std::function<void(int, const std::string&, std::vector<DiscoveryEntry>)> done) {
    CtrlrOptions o = opts;
    o.trid.subnqn.clear();
    o.kato_ms = 0;
    auto ctrlr = std::make_shared<NvmeCtrlr>(o);
    ctrlr->connect([ctrlr, done](int rc, const std::string& err) {
        if (rc != 0) {
            Thread::current()->send([ctrlr] {});  // destroy outside its own callback
            return done(rc, err, {});
        }
        ctrlr->get_discovery_log([ctrlr, done](int rc2, const std::string& err2,
                                               std::vector<DiscoveryEntry> v) {
            ctrlr->shutdown([ctrlr, done, rc2, err2, v = std::move(v)](int, const std::string&) {
                Thread::current()->send([ctrlr] {});
                done(rc2, err2, v);
            });
        });
    });
}

}  // namespace nocstor::nvme_host
