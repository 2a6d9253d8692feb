// Connection life cycle of one session: connect and log in, poll the socket, notice a broken
// connection, back off and reconnect. The SCSI commands themselves are in iscsi_io.cpp.
#include "modules/iscsi/iscsi_session.h"

#include "modules/iscsi/iscsi_bdev.h"

#include "runtime/reactor.h"
#include "runtime/thread.h"
#include "util/log.h"
#include "util/tick.h"

#include <iscsi/iscsi.h>
#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>

namespace nocstor::iscsi {

namespace {
constexpr uint64_t kConnectTimeoutMs = 10'000;  // TCP connect + login
constexpr uint64_t kFirstBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 5'000;
constexpr uint64_t kTimerPeriodUs = 50'000;

// libiscsi replaces the cause of a failure (a refused connect, a login rejected by the target)
// with a generic message by the time iscsi_service returns; it logs every error as it is set,
// though. The session that is calling into libiscsi on this thread keeps the first one.
thread_local IscsiSession* t_calling = nullptr;

struct CallScope {
    explicit CallScope(IscsiSession* s) : prev(t_calling) { t_calling = s; }
    ~CallScope() { t_calling = prev; }
    IscsiSession* prev;
};

std::string clean(std::string m) {
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ' || m.back() == '.')) m.pop_back();
    return m;
}
}  // namespace

void IscsiSession::log_from_libiscsi(int level, const char* message) {
    if (level > 1 || !t_calling || !message) return;
    std::string m = clean(message);
    if (m.find("reconnect") != std::string::npos) return;  // libiscsi's generic follow-ups
    if (t_calling->cause_.empty()) t_calling->cause_ = std::move(m);
}

std::string IscsiSession::take_cause() {
    std::string c = cause_.empty() && ctx_ ? clean(iscsi_get_error(ctx_)) : cause_;
    cause_.clear();
    return c.empty() ? "unknown error" : c;
}

const char* IscsiSession::state_name(State s) {
    switch (s) {
        case State::Idle:
            return "idle";
        case State::Connecting:
            return "connecting";
        case State::Ready:
            return "ready";
        case State::Backoff:
            return "reconnecting";
        case State::Closed:
            return "closed";
    }
    return "?";
}

IscsiSession::IscsiSession(const IscsiTargetSpec& spec, const LunGeometry* geometry, uint32_t index,
                           Thread* owner)
    : spec_(spec), geometry_(geometry), index_(index), owner_(owner) {}

IscsiSession::~IscsiSession() {
    // shutdown() ran on the owner thread; nothing is left but in case of an aborted start.
    if (ctx_) iscsi_destroy_context(ctx_);
}

void IscsiSession::start(LoginCb on_first_login) {
    on_first_login_ = std::move(on_first_login);
    poller_ = owner_->register_poller(fmt::format("iscsi_s{}", index_), [this] { return poll(); });
    timer_ = owner_->register_poller(
        fmt::format("iscsi_s{}_timer", index_), [this] { return tick(); }, kTimerPeriodUs);
    connect();
}

void IscsiSession::connect() {
    state_ = State::Connecting;
    broken_ = false;
    connect_deadline_ns_ = now_ns() + kConnectTimeoutMs * 1'000'000;
    cause_.clear();
    ctx_ = iscsi_create_context(spec_.initiator_iqn.c_str());
    if (!ctx_) return fail_connection("libiscsi could not create a context");
    CallScope scope(this);
    iscsi_set_log_level(ctx_, 1);
    iscsi_set_log_fn(ctx_, &IscsiSession::log_from_libiscsi);
    // The URL's query arguments (header_digest, target CHAP) apply to the context.
    if (iscsi_url* u = iscsi_parse_full_url(ctx_, spec_.url.c_str())) iscsi_destroy_url(u);
    iscsi_set_targetname(ctx_, spec_.target_iqn.c_str());
    iscsi_set_session_type(ctx_, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(
        ctx_, spec_.header_digest ? ISCSI_HEADER_DIGEST_CRC32C : ISCSI_HEADER_DIGEST_NONE_CRC32C);
    if (!spec_.user.empty())
        iscsi_set_initiator_username_pwd(ctx_, spec_.user.c_str(), spec_.password.c_str());
    if (!spec_.target_user.empty())
        iscsi_set_target_username_pwd(ctx_, spec_.target_user.c_str(),
                                      spec_.target_password.c_str());
    // We reconnect ourselves: libiscsi's own reconnect swaps the socket under our epoll
    // registration and paces itself with time(NULL) and sleeps.
    iscsi_set_noautoreconnect(ctx_, 1);
    // Every command (the LUN probe's too) times out; issue() follows later option changes.
    ctx_timeout_sec_ = iscsi_get_options().timeout_sec;
    iscsi_set_timeout(ctx_, int(std::min<uint64_t>(ctx_timeout_sec_, INT32_MAX)));
    iscsi_set_cache_allocations(ctx_, 1);  // reuse small allocations (PDUs, tasks)
    auto cb = [](iscsi_context*, int status, void*, void* self) {
        static_cast<IscsiSession*>(self)->on_login(status);
    };
    if (iscsi_full_connect_async(ctx_, spec_.portal.c_str(), spec_.lun, cb, this) != 0)
        return fail_connection("connect: " + take_cause());
    update_interrupt_fd();
}

void IscsiSession::on_login(int status) {
    if (state_ != State::Connecting) {
        // The callback runs a second time when an established connection fails.
        if (status != SCSI_STATUS_GOOD && state_ == State::Ready) broken_ = true;
        return;
    }
    if (status != SCSI_STATUS_GOOD) {
        broken_ = true;
        return;
    }
    state_ = State::Ready;
    backoff_ms_ = 0;
    cause_.clear();  // what the login consumed (the target's unit attentions) is no failure
    ++counters_.logins;
    if (logged_in_once_) {
        NOC_INFO("bdev", "iscsi {} session {}: logged in again at {} ({} I/O waiting)",
                 spec_.target_iqn, index_, spec_.portal, waiting_.size);
    }
    if (!logged_in_once_) {
        logged_in_once_ = true;
        if (on_first_login_) {
            auto cb = std::move(on_first_login_);
            on_first_login_ = nullptr;
            cb(ctx_, {});
        }
    }
}

void IscsiSession::release_fd() {
    if (fd_ >= 0 && owner_->reactor()) owner_->reactor()->remove_interrupt_fd(fd_);
    fd_ = -1;
    fd_events_ = 0;
}

void IscsiSession::update_interrupt_fd() {
    if (!ctx_) return;
    const int fd = iscsi_get_fd(ctx_);
    const int want = iscsi_which_events(ctx_);
    const uint32_t events = uint32_t(EPOLLIN) | ((want & POLLOUT) ? uint32_t(EPOLLOUT) : 0u);
    if (fd != fd_) {
        release_fd();
        if (fd < 0 || !owner_->reactor()) return;
        if (owner_->reactor()->add_interrupt_fd(fd, events)) {
            fd_ = fd;
            fd_events_ = events;
        }
        return;
    }
    if (fd_ >= 0 && events != fd_events_) {
        owner_->reactor()->modify_interrupt_fd(fd_, events);
        fd_events_ = events;
    }
}

void IscsiSession::fail_connection(const std::string& why) {
    broken_ = false;
    last_error_ = why;
    const bool first = !logged_in_once_;
    release_fd();
    if (ctx_) {
        // Destroying the context hands every command in flight back, cancelled: they wait in
        // waiting_ for the next connection (or fail once they are too old).
        iscsi_context* dying = ctx_;
        ctx_ = nullptr;
        state_ = State::Backoff;
        iscsi_destroy_context(dying);
    }
    if (state_ == State::Closed) return;
    if (first && on_first_login_) {
        // A bdev is only created over a LUN that answered: the first failure is the answer.
        state_ = State::Backoff;
        next_attempt_ns_ = UINT64_MAX;
        if (on_first_login_) {
            auto cb = std::move(on_first_login_);
            on_first_login_ = nullptr;
            cb(nullptr, why);
        }
        return;
    }
    ++counters_.connection_losses;
    backoff_ms_ = backoff_ms_ ? std::min(backoff_ms_ * 2, kMaxBackoffMs) : kFirstBackoffMs;
    next_attempt_ns_ = now_ns() + backoff_ms_ * 1'000'000;
    state_ = State::Backoff;
    NOC_WARN("bdev", "iscsi {} session {}: {}; reconnecting in {} ms ({} I/O waiting)",
             spec_.target_iqn, index_, why, backoff_ms_, waiting_.size);
}

int IscsiSession::poll() {
    if (!ctx_) return 0;
    completions_in_pass_ = 0;
    int revents;
    if (state_ == State::Ready) {
        // Logged in: read (and write what libiscsi queued) without asking poll() first; an
        // empty socket costs one recv returning EAGAIN, like the NVMe/TCP queues.
        revents = POLLIN | (iscsi_which_events(ctx_) & POLLOUT);
    } else {
        // While connecting libiscsi takes POLLOUT as "the connect finished": ask the kernel.
        pollfd p{iscsi_get_fd(ctx_), short(iscsi_which_events(ctx_)), 0};
        if (p.fd < 0 || ::poll(&p, 1, 0) <= 0) return 0;
        revents = p.revents;
    }
    int rc;
    {
        CallScope scope(this);
        rc = iscsi_service(ctx_, revents);
    }
    if (rc < 0 || broken_) {
        const std::string cause = take_cause();
        fail_connection(
            state_ == State::Connecting
                ? fmt::format("login to {} at {} failed: {}", spec_.target_iqn, spec_.portal, cause)
                : fmt::format("connection to {} lost: {}", spec_.portal, cause));
        return 1;
    }
    if (state_ == State::Ready && !waiting_.empty()) dispatch_waiting();
    update_interrupt_fd();
    return completions_in_pass_ > 0 ? int(completions_in_pass_) : 0;
}

int IscsiSession::tick() {
    const uint64_t now = now_ns();
    int work = 0;
    if (state_ == State::Connecting && now > connect_deadline_ns_) {
        fail_connection(fmt::format("login to {} at {} timed out after {} ms", spec_.target_iqn,
                                    spec_.portal, kConnectTimeoutMs));
        work = 1;
    }
    if (state_ == State::Backoff && now >= next_attempt_ns_) {
        connect();
        work = 1;
    }
    // I/O waiting for a connection fails once it is older than the timeout.
    if (state_ != State::Ready && !waiting_.empty()) {
        BdevIoQueue keep;
        while (BdevIo* io = waiting_.pop()) {
            if (expired(io, now)) {
                ++counters_.timed_out_ios;
                finish(io, IoStatus::Timeout);
                work = 1;
            } else {
                keep.push(io);
            }
        }
        waiting_ = keep;
    }
    counters_.queued = uint32_t(waiting_.size);
    return work;
}

void IscsiSession::shutdown(std::function<void()> done) {
    state_ = State::Closed;
    release_fd();
    if (ctx_) {
        // No logout: libiscsi only has a blocking one, and the target drops the session with
        // the connection anyway.
        iscsi_context* dying = ctx_;
        ctx_ = nullptr;
        iscsi_destroy_context(dying);  // in-flight commands come back cancelled -> Aborted
    }
    while (BdevIo* io = waiting_.pop()) finish(io, IoStatus::Aborted);
    if (poller_) owner_->unregister_poller(poller_);
    if (timer_) owner_->unregister_poller(timer_);
    poller_ = timer_ = nullptr;
    done();
}

}  // namespace nocstor::iscsi
