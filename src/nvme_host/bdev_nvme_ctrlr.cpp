// An attached controller of the nvme bdev module: attach, reset/reconnect with SPDK's three
// timeouts, removal. Control thread, except where bdev_nvme_ctrlr.h says "any thread".
#include "nvme_host/bdev_nvme_ctrlr.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

#include "runtime/runtime.h"
#include "util/log.h"
#include "util/tick.h"

namespace nocstor::nvme_host {

namespace {
constexpr uint64_t kResetTickUs = 50'000;
constexpr uint64_t kSec = 1'000'000'000ull;

const char* state_name(NvmeBdevCtrlr::State s) {
    switch (s) {
        case NvmeBdevCtrlr::State::kAttaching:
            return "attaching";
        case NvmeBdevCtrlr::State::kEnabled:
            return "enabled";
        case NvmeBdevCtrlr::State::kResetting:
            return "resetting";
        case NvmeBdevCtrlr::State::kDeleting:
            return "deleting";
    }
    return "unknown";
}

// Deletes an admin controller from a message: callers may be inside one of its callbacks.
void delete_later(std::unique_ptr<NvmeCtrlr> c) {
    if (!c) return;
    NvmeCtrlr* raw = c.release();
    Thread::current()->send([raw] { delete raw; });
}
}  // namespace

NvmeBdevCtrlr::NvmeBdevCtrlr(uint64_t id, NvmeAttachOptions opts)
    : IoDevice("nvme_ctrlr_" + opts.name), id_(id), opts_(std::move(opts)) {
    // One host identity for the controller's whole life, reconnects included.
    if (opts_.trid.hostnqn.empty()) {
        opts_.trid.hostnqn = generate_host_nqn(hostid_);
    } else {
        hostid_for_nqn(opts_.trid.hostnqn, hostid_);
    }
}

NvmeBdevCtrlr::~NvmeBdevCtrlr() {
    stop_reset_poller();
    std::unique_ptr<NvmeCtrlr> a;
    {
        std::lock_guard<std::mutex> g(mu_);
        a = std::move(admin_);
    }
    a.reset();
    connecting_admin_.reset();
}

CtrlrOptions NvmeBdevCtrlr::ctrlr_options() const {
    CtrlrOptions o;
    o.trid = opts_.trid;
    std::memcpy(o.hostid, hostid_, 16);
    o.hdgst = opts_.hdgst;
    o.ddgst = opts_.ddgst;
    o.kato_ms = opts_.kato_ms;
    o.io_queue_depth = opts_.io_queue_depth;
    const size_t threads = Runtime::instance() ? Runtime::instance()->data_threads().size() : 1;
    o.num_io_queues = uint16_t(std::min<size_t>(threads + 4, 1024));
    o.io_timeout_us = opts_.io_timeout_us;
    o.auth = opts_.auth;
    o.tls = opts_.tls;
    return o;
}

std::unique_ptr<IoChannel> NvmeBdevCtrlr::create_channel() {
    return std::make_unique<NvmeCtrlrChannel>(this);
}

bool NvmeBdevCtrlr::qpair_options(QpairOptions* out, uint32_t* gen) {
    std::lock_guard<std::mutex> g(mu_);
    if (!admin_ || state() == State::kDeleting) return false;
    if (admin_->io_qpair_options(out) != 0) return false;
    *gen = gen_;
    return true;
}

void NvmeBdevCtrlr::release_qid(uint16_t qid, uint32_t gen) {
    std::lock_guard<std::mutex> g(mu_);
    if (admin_ && gen == gen_) admin_->release_qid(qid);
}

void NvmeBdevCtrlr::notify_failure(const std::string& why) {
    const uint64_t id = id_;
    auto* msg = new std::string(why);
    Runtime::instance()->control_thread()->send([id, msg] {
        std::unique_ptr<std::string> m(msg);
        if (NvmeBdevCtrlr* c = find_ctrlr(id)) c->request_reset(*m);
    });
}

void NvmeBdevCtrlr::install_admin(std::unique_ptr<NvmeCtrlr> a) {
    const uint64_t id = id_;
    a->set_failure_callback([id](int, const std::string& why) {
        if (NvmeBdevCtrlr* c = find_ctrlr(id)) c->request_reset("admin queue: " + why);
    });
    cntlid_ = a->cntlid();
    std::lock_guard<std::mutex> g(mu_);
    admin_ = std::move(a);
    ++gen_;
}

void NvmeBdevCtrlr::drop_admin() {
    std::unique_ptr<NvmeCtrlr> old;
    {
        std::lock_guard<std::mutex> g(mu_);
        old = std::move(admin_);
        ++gen_;
    }
    delete_later(std::move(old));
}

// ---------------------------------------------------------------------------------------------
// Attach
// ---------------------------------------------------------------------------------------------
void NvmeBdevCtrlr::attach(std::function<void(int, std::string)> done) {
    control_ = Thread::current();
    connecting_admin_ = std::make_unique<NvmeCtrlr>(ctrlr_options());
    connecting_admin_->connect([this, done](int rc, const std::string& err) {
        if (rc != 0) {
            delete_later(std::move(connecting_admin_));
            return done(rc, err);
        }
        if (connecting_admin_->is_discovery()) {
            delete_later(std::move(connecting_admin_));
            return done(-EINVAL, "subnqn names a discovery controller");
        }
        install_admin(std::move(connecting_admin_));
        set_state(State::kEnabled);
        done(0, "");
    });
}

// ---------------------------------------------------------------------------------------------
// Reset / reconnect
// ---------------------------------------------------------------------------------------------
void NvmeBdevCtrlr::request_reset(const std::string& why) {
    if (state() != State::kEnabled) return;
    set_state(State::kResetting);
    ++resets_;
    last_error_ = why;
    if (!loss_start_ns_) loss_start_ns_ = now_ns();
    attempts_ = 0;
    NOC_WARN("nvme", "{}: resetting the controller: {}", opts_.name, why);
    for_each_channel(
        [](IoChannel& c, std::function<void(int)> next) {
            static_cast<NvmeCtrlrChannel&>(c).disconnect_qpair();
            next(0);
        },
        [this](int) {
            if (state() != State::kResetting) return;
            drop_admin();
            next_attempt_ns_ = now_ns();  // the first reconnect is immediate, as in SPDK
            if (!reset_poller_) {
                reset_poller_ = control_->register_poller(
                    "nvme_reset", [this] { return reset_tick(), 0; }, kResetTickUs);
            }
        });
}

void NvmeBdevCtrlr::stop_reset_poller() {
    if (reset_poller_ && control_) control_->unregister_poller(reset_poller_);
    reset_poller_ = nullptr;
}

void NvmeBdevCtrlr::reset_tick() {
    if (state() != State::kResetting) return stop_reset_poller();
    const uint64_t now = now_ns();
    const uint64_t elapsed = now - loss_start_ns_;
    if (opts_.fast_io_fail_timeout_sec && !fail_fast_ &&
        elapsed >= opts_.fast_io_fail_timeout_sec * kSec) {
        set_fail_fast();
    }
    if (attempt_running_) return;
    const bool lost = (opts_.ctrlr_loss_timeout_sec == 0 && attempts_ >= 1) ||
                      (opts_.ctrlr_loss_timeout_sec > 0 &&
                       elapsed >= uint64_t(opts_.ctrlr_loss_timeout_sec) * kSec);
    if (lost) {
        NOC_ERROR("nvme", "{}: controller lost ({}); removing its bdevs", opts_.name, last_error_);
        const uint64_t id = id_;
        return remove("ctrlr_loss_timeout_sec expired", [id] { erase_ctrlr(id); });
    }
    if (now >= next_attempt_ns_) attempt_reconnect();
}

void NvmeBdevCtrlr::attempt_reconnect() {
    attempt_running_ = true;
    ++attempts_;
    connecting_admin_ = std::make_unique<NvmeCtrlr>(ctrlr_options());
    connecting_admin_->connect([this](int rc, const std::string& err) {
        if (state() != State::kResetting) {
            attempt_running_ = false;
            return delete_later(std::move(connecting_admin_));
        }
        if (rc != 0) {
            delete_later(std::move(connecting_admin_));
            return reconnect_failed(err);
        }
        install_admin(std::move(connecting_admin_));
        for_each_channel(
            [](IoChannel& c, std::function<void(int)> next) {
                auto& ch = static_cast<NvmeCtrlrChannel&>(c);
                if (ch.deleting) return next(0);
                ch.connect_qpair([next](int rc2) { next(rc2); });
            },
            [this](int status) {
                if (state() != State::kResetting) {
                    attempt_running_ = false;
                    return;
                }
                if (status == 0) return reconnect_done();
                for_each_channel(
                    [](IoChannel& c, std::function<void(int)> next) {
                        static_cast<NvmeCtrlrChannel&>(c).disconnect_qpair();
                        next(0);
                    },
                    [this](int) {
                        drop_admin();
                        reconnect_failed("an I/O queue did not connect");
                    });
            });
    });
}

void NvmeBdevCtrlr::reconnect_failed(const std::string& why) {
    attempt_running_ = false;
    last_error_ = why;
    next_attempt_ns_ = now_ns() + opts_.reconnect_delay_sec * kSec;
    NOC_INFO("nvme", "{}: reconnect attempt {} failed: {}", opts_.name, attempts_, why);
}

void NvmeBdevCtrlr::reconnect_done() {
    attempt_running_ = false;
    set_state(State::kEnabled);
    fail_fast_ = false;
    loss_start_ns_ = 0;
    attempts_ = 0;
    stop_reset_poller();
    NOC_INFO("nvme", "{}: reconnected (cntlid {})", opts_.name, cntlid_);
    for_each_channel(
        [](IoChannel& c, std::function<void(int)> next) {
            auto& ch = static_cast<NvmeCtrlrChannel&>(c);
            ch.fail_fast = false;
            ch.ensure_connected();
            ch.resubmit_pending();
            next(0);
        },
        [this](int) { finish_reset_waiters(true); });
}

void NvmeBdevCtrlr::set_fail_fast() {
    fail_fast_ = true;
    NOC_WARN("nvme", "{}: fast_io_fail_timeout_sec expired: failing queued I/O", opts_.name);
    for_each_channel(
        [](IoChannel& c, std::function<void(int)> next) {
            auto& ch = static_cast<NvmeCtrlrChannel&>(c);
            ch.fail_fast = true;
            ch.fail_pending(IoStatus::Failed);
            next(0);
        },
        [](int) {});
}

void NvmeBdevCtrlr::add_reset_waiter(Thread* t, BdevIo* io) {
    reset_waiters_.emplace_back(t, io);
    if (state() == State::kEnabled) request_reset("reset requested");
    if (state() == State::kDeleting) finish_reset_waiters(false);
}

void NvmeBdevCtrlr::finish_reset_waiters(bool ok) {
    for (auto [t, io] : reset_waiters_) {
        BdevIo* i = io;
        t->send([i, ok] { bdev_io_complete(i, ok ? IoStatus::Success : IoStatus::Failed); });
    }
    reset_waiters_.clear();
}

// ---------------------------------------------------------------------------------------------
// Removal
// ---------------------------------------------------------------------------------------------
void NvmeBdevCtrlr::remove(const std::string& why, std::function<void()> done) {
    remove_waiters_.push_back(std::move(done));
    if (state() == State::kDeleting) return;
    set_state(State::kDeleting);
    stop_reset_poller();
    fail_fast_ = true;
    last_error_ = why;
    finish_reset_waiters(false);
    for_each_channel(
        [](IoChannel& c, std::function<void(int)> next) {
            auto& ch = static_cast<NvmeCtrlrChannel&>(c);
            ch.deleting = true;
            ch.disconnect_qpair();
            ch.fail_pending(IoStatus::Aborted);
            next(0);
        },
        [this](int) { unregister_bdevs(); });
}

void NvmeBdevCtrlr::unregister_bdevs() {
    std::vector<Bdev*> mine;
    for (const auto& n : bdev_names_) {
        Bdev* b = bdev_get_by_name(n);
        if (b && b->module == bdev_nvme_module()) mine.push_back(b);
    }
    if (mine.empty()) return wait_channels_gone();
    auto left = std::make_shared<size_t>(mine.size());
    for (Bdev* b : mine) {
        bdev_unregister(b, [this, left](int) {
            if (--*left == 0) wait_channels_gone();
        });
    }
}

void NvmeBdevCtrlr::wait_channels_gone() {
    if (live_channels() > 0) {
        const uint64_t id = id_;
        control_->send([id] {
            if (NvmeBdevCtrlr* c = find_ctrlr(id)) c->wait_channels_gone();
        });
        return;
    }
    auto finish = [this] {
        drop_admin();
        auto waiters = std::move(remove_waiters_);
        for (auto& w : waiters)
            if (w) w();
    };
    NvmeCtrlr* a = nullptr;
    {
        std::lock_guard<std::mutex> g(mu_);
        a = admin_.get();
    }
    if (a && a->ready()) {
        a->shutdown([finish](int, const std::string&) { finish(); });
    } else {
        finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------------
nlohmann::json NvmeBdevCtrlr::trid_json() const {
    return {{"trtype", opts_.trid.trtype},
            {"adrfam", adrfam_name(opts_.trid.adrfam)},
            {"traddr", opts_.trid.traddr},
            {"trsvcid", opts_.trid.trsvcid},
            {"subnqn", opts_.trid.subnqn}};
}

nlohmann::json NvmeBdevCtrlr::info_json() const {
    nlohmann::json c = {{"state", state_name(state())},
                        {"trid", trid_json()},
                        {"cntlid", cntlid_},
                        {"host", {{"nqn", opts_.trid.hostnqn}, {"addr", ""}, {"svcid", ""}}},
                        {"hdgst", opts_.hdgst},
                        {"ddgst", opts_.ddgst},
                        {"ctrlr_loss_timeout_sec", opts_.ctrlr_loss_timeout_sec},
                        {"reconnect_delay_sec", opts_.reconnect_delay_sec},
                        {"fast_io_fail_timeout_sec", opts_.fast_io_fail_timeout_sec},
                        {"dhchap", opts_.auth != nullptr},
                        {"tls", opts_.tls != nullptr},
                        {"resets", resets_},
                        {"fail_fast", fail_fast()},
                        {"bdevs", bdev_names_}};
    if (!last_error_.empty()) c["last_error"] = last_error_;
    return {{"name", opts_.name}, {"ctrlrs", nlohmann::json::array({c})}};
}

nlohmann::json NvmeBdevCtrlr::config_json() const {
    nlohmann::json p = {{"name", opts_.name},
                        {"trtype", opts_.trid.trtype},
                        {"adrfam", adrfam_name(opts_.trid.adrfam)},
                        {"traddr", opts_.trid.traddr},
                        {"trsvcid", opts_.trid.trsvcid},
                        {"subnqn", opts_.trid.subnqn},
                        {"hostnqn", opts_.trid.hostnqn},
                        {"hdgst", opts_.hdgst},
                        {"ddgst", opts_.ddgst},
                        {"ctrlr_loss_timeout_sec", opts_.ctrlr_loss_timeout_sec},
                        {"reconnect_delay_sec", opts_.reconnect_delay_sec},
                        {"fast_io_fail_timeout_sec", opts_.fast_io_fail_timeout_sec}};
    if (opts_.tls && !opts_.tls->psk_name.empty()) p["psk"] = opts_.tls->psk_name;
    if (opts_.auth && !opts_.auth->key_name.empty()) {  // key names, never secrets
        p["dhchap_key"] = opts_.auth->key_name;
        if (!opts_.auth->ctrlr_key_name.empty()) p["dhchap_ctrlr_key"] = opts_.auth->ctrlr_key_name;
    }
    // Its namespaces' owner, where there is a choice (as for every other bdev).
    if (opts_.cluster >= 0 && bdev_data_cluster_count() > 1) p["cluster"] = opts_.cluster;
    return {{"method", "bdev_nvme_attach_controller"}, {"params", p}};
}

const NvmeCtrlr* NvmeBdevCtrlr::admin() const {
    std::lock_guard<std::mutex> g(mu_);
    return admin_.get();
}

}  // namespace nocstor::nvme_host
