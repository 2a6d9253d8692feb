#include "nvmf/controller.h"

#include <algorithm>
#include <cstring>

#include "nvmf/limits.h"
#include "nvmf/poll_group.h"
#include "nvmf/target.h"
#include "nvmf/tcp_conn.h"
#include "util/tick.h"

namespace nocstor::nvmf {

namespace {
// Bits of masked_logs_: an event of this kind was delivered and its log page not read yet.
constexpr uint32_t kMaskNsChanged = 1u << 0;
constexpr uint32_t kMaskDiscovery = 1u << 1;
}  // namespace

Controller::Controller(PollGroup* pg, TcpConn* admin, PgSubsystem* subsys, uint16_t cntlid,
                       std::string hostnqn, const uint8_t hostid[16], uint32_t kato_ms)
    : pg_(pg),
      admin_(admin),
      subsys_(subsys),
      cntlid_(cntlid),
      hostnqn_(std::move(hostnqn)),
      kato_ms_(kato_ms),
      last_keep_alive_ns_(now_ns()) {
    std::memcpy(hostid_.data(), hostid, 16);
    if (subsys_) subsys_->ctrlrs.push_back(this);
}

Controller::~Controller() {
    if (subsys_) {
        auto& v = subsys_->ctrlrs;
        v.erase(std::remove(v.begin(), v.end(), this), v.end());
    }
    for (Request* r : aers_) admin_->release(r);
    // The I/O queues may be on other poll groups: close them there.
    const auto& pgs = pg_->target()->poll_groups();
    for (const IoQueueRef& q : ioqs_) {
        if (q.pg_index >= pgs.size()) continue;
        PollGroup* pg = pgs[q.pg_index].get();
        const uint64_t id = q.conn_id;
        pg->thread()->send([pg, id] {
            if (TcpConn* c = pg->find_conn(id)) c->close("controller destroyed");
        });
    }
}

const std::string& Controller::subnqn() const {
    static const std::string kDisc = nvme::kDiscoveryNqn;
    return subsys_ ? subsys_->info->nqn : kDisc;
}

uint64_t Controller::cap() const {
    return nvme::cap::make(kMaxQueueEntries - 1, kCapTimeout500ms);
}

bool Controller::set_cc(uint32_t v) {
    const uint32_t old = cc_;
    if (nvme::cc::en(v) && !nvme::cc::en(old)) {
        const bool ok = nvme::cc::css(v) == 0 && nvme::cc::mps(v) == 0 && nvme::cc::ams(v) == 0 &&
                        nvme::cc::iosqes(v) == 6 && nvme::cc::iocqes(v) == 4;
        csts_ = ok ? (csts_ | nvme::csts::kRdy) : (csts_ | nvme::csts::kCfs);
    } else if (!nvme::cc::en(v) && nvme::cc::en(old)) {
        // Controller reset: ready drops, features and the error state are cleared.
        csts_ &= ~(nvme::csts::kRdy | nvme::csts::kCfs);
    }
    const uint8_t shn = nvme::cc::shn(v);
    csts_ &= ~(3u << 2);
    if (shn != nvme::cc::kShnNone) {
        // Nothing to flush in the target itself: shutdown completes at once.
        csts_ |= static_cast<uint32_t>(nvme::csts::kShstComplete) << 2;
    }
    cc_ = v;
    return true;
}

bool Controller::kato_expired(uint64_t now) const {
    return kato_ms_ != 0 && now > last_keep_alive_ns_ &&
           now - last_keep_alive_ns_ > uint64_t{kato_ms_} * 1'000'000;
}

bool Controller::qid_in_use(uint16_t qid) const {
    return std::any_of(ioqs_.begin(), ioqs_.end(),
                       [qid](const IoQueueRef& q) { return q.qid == qid; });
}

void Controller::remove_io_queue(uint16_t qid, uint64_t conn_id) {
    ioqs_.erase(
        std::remove_if(ioqs_.begin(), ioqs_.end(),
                       [&](const IoQueueRef& q) { return q.qid == qid && q.conn_id == conn_id; }),
        ioqs_.end());
}

bool Controller::add_aer(Request* r) {
    if (aers_.size() > kAerl) return false;
    admin_->hold(r);
    aers_.push_back(r);
    deliver_events();
    return true;
}

void Controller::post_event(uint32_t dw0, uint32_t aec_bit, uint8_t mask_bit) {
    if (!(aec_ & aec_bit) || (masked_logs_ & mask_bit)) return;
    if (std::find(pending_events_.begin(), pending_events_.end(), dw0) != pending_events_.end()) {
        return;
    }
    pending_events_.push_back(dw0);
    deliver_events();
}

void Controller::deliver_events() {
    while (!aers_.empty() && !pending_events_.empty()) {
        Request* r = aers_.front();
        aers_.erase(aers_.begin());
        const uint32_t dw0 = pending_events_.front();
        pending_events_.erase(pending_events_.begin());
        const uint8_t log = static_cast<uint8_t>(dw0 >> 16);
        masked_logs_ |= log == nvme::log_page::kDiscovery ? kMaskDiscovery : kMaskNsChanged;
        r->rsp.dw0 = dw0;
        admin_->complete(r, nvme::Status::success());
    }
}

void Controller::ns_changed(uint32_t nsid) {
    if (!changed_ns_overflow_ &&
        std::find(changed_ns_.begin(), changed_ns_.end(), nsid) == changed_ns_.end()) {
        if (changed_ns_.size() >= 1024) {
            changed_ns_overflow_ = true;
            changed_ns_.clear();
        } else {
            changed_ns_.push_back(nsid);
        }
    }
    post_event(nvme::make_async_event(nvme::aer_type::kNotice,
                                      nvme::aer_notice::kNamespaceAttributeChanged,
                                      nvme::log_page::kChangedNamespaceList),
               nvme::kOaesNamespaceAttributeNotices, kMaskNsChanged);
}

void Controller::discovery_changed() {
    post_event(
        nvme::make_async_event(nvme::aer_type::kNotice, nvme::aer_notice::kDiscoveryLogChange,
                               nvme::log_page::kDiscovery),
        nvme::kOaesDiscoveryLogChangeNotices, kMaskDiscovery);
}

std::vector<uint32_t> Controller::take_changed_ns() {
    std::vector<uint32_t> out;
    if (changed_ns_overflow_) {
        out.push_back(0xFFFFFFFF);
    } else {
        out.swap(changed_ns_);
        std::sort(out.begin(), out.end());
    }
    changed_ns_.clear();
    changed_ns_overflow_ = false;
    return out;
}

void Controller::log_page_read(uint8_t lid) {
    if (lid == nvme::log_page::kChangedNamespaceList) masked_logs_ &= ~kMaskNsChanged;
    if (lid == nvme::log_page::kDiscovery) masked_logs_ &= ~kMaskDiscovery;
}

}  // namespace nocstor::nvmf
