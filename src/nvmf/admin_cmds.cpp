// Admin commands: Identify, Get Log Page, Get/Set Features, Async Event Request, Keep Alive,
// Abort. Discovery controllers accept only the discovery subset.
#include <algorithm>
#include <cstring>
#include <vector>

#include "nvmf/commands.h"
#include "nvmf/controller.h"
#include "nvmf/discovery.h"
#include "nvmf/identify.h"
#include "nvmf/limits.h"
#include "nvmf/poll_group.h"
#include "nvmf/tcp_conn.h"
#include "util/tick.h"

namespace nocstor::nvmf {

using nvme::Status;
namespace opc = nvme::admin_opc;

namespace {

Status invalid_field() {
    return Status::generic(nvme::sc::kInvalidField, true);
}

// Copies `page` (from `offset`) into the request's buffer and sends it.
void send_page(Request* r, const void* page, size_t page_len, uint64_t offset = 0) {
    const uint32_t len = r->data_len;
    if (offset > page_len || (offset & 3)) {
        r->conn->complete(r, invalid_field());
        return;
    }
    std::memset(r->buf.data, 0, len);
    const size_t n = std::min<size_t>(len, page_len - offset);
    std::memcpy(r->buf.data, static_cast<const uint8_t*>(page) + offset, n);
    r->conn->complete_c2h(r, len);
}

// ---------------------------------------------------------------------------------------------
// Identify
// ---------------------------------------------------------------------------------------------
void identify(Request* r) {
    Controller& ctrl = *r->conn->ctrl();
    const uint8_t cns = r->cmd.cdw10 & 0xFF;
    const uint32_t nsid = r->cmd.nsid;
    alignas(8) uint8_t page[4096];
    if (cns == nvme::cns::kController) {
        build_identify_controller(ctrl, reinterpret_cast<nvme::IdentifyController*>(page));
        send_page(r, page, sizeof page);
        return;
    }
    PgSubsystem* s = ctrl.subsys();
    if (!s) {
        r->conn->complete(r, invalid_field());
        return;
    }
    switch (cns) {
        case nvme::cns::kNamespace:
        case nvme::cns::kNamespaceIdDescriptorList: {
            if (nsid == 0 || nsid > s->info->max_namespaces) {
                r->conn->complete(r, Status::generic(nvme::sc::kInvalidNamespaceOrFormat, true));
                return;
            }
            PgNamespace* ns = s->find_ns(nsid);
            if (!ns) {
                if (cns == nvme::cns::kNamespaceIdDescriptorList) {
                    r->conn->complete(r,
                                      Status::generic(nvme::sc::kInvalidNamespaceOrFormat, true));
                    return;
                }
                std::memset(page, 0, sizeof page);  // inactive namespace: all zeroes
            } else if (cns == nvme::cns::kNamespace) {
                build_identify_namespace(*ns->info,
                                         reinterpret_cast<nvme::IdentifyNamespace*>(page));
            } else {
                build_ns_id_descriptors(*ns->info, page);
            }
            send_page(r, page, sizeof page);
            return;
        }
        case nvme::cns::kActiveNamespaceList: {
            if (nsid >= 0xFFFFFFFE) {
                r->conn->complete(r, Status::generic(nvme::sc::kInvalidNamespaceOrFormat, true));
                return;
            }
            std::memset(page, 0, sizeof page);
            auto* list = reinterpret_cast<uint32_t*>(page);
            size_t n = 0;
            for (const auto& ns : s->info->namespaces) {
                if (ns->nsid > nsid && n < 1024) list[n++] = ns->nsid;
            }
            send_page(r, page, sizeof page);
            return;
        }
        default:
            r->conn->complete(r, invalid_field());
            return;
    }
}

// ---------------------------------------------------------------------------------------------
// Get Log Page
// ---------------------------------------------------------------------------------------------
void put_u128(uint8_t* dst, uint64_t v) {
    std::memset(dst, 0, 16);
    std::memcpy(dst, &v, 8);
}

void get_log_page(Request* r) {
    Controller& ctrl = *r->conn->ctrl();
    const uint8_t lid = nvme::get_log_lid(r->cmd);
    const uint64_t offset = nvme::get_log_offset(r->cmd);
    const bool rae = nvme::get_log_rae(r->cmd);
    alignas(8) uint8_t page[4096] = {};
    if (ctrl.discovery()) {
        if (lid != nvme::log_page::kDiscovery) {
            r->conn->complete(r, Status::command_specific(nvme::sc_cmd::kInvalidLogPage, true));
            return;
        }
        const std::vector<uint8_t> log =
            build_discovery_log(r->conn->pg()->snapshot(), ctrl.hostnqn(), r->conn->listener_id());
        if (!rae) ctrl.log_page_read(lid);
        send_page(r, log.data(), log.size(), offset);
        return;
    }
    switch (lid) {
        case nvme::log_page::kErrorInformation:
            send_page(r, page, sizeof(nvme::ErrorLogEntry), offset);
            return;
        case nvme::log_page::kSmartHealth: {
            auto* smart = reinterpret_cast<nvme::SmartHealthLog*>(page);
            smart->composite_temperature = 298;
            smart->available_spare = 100;
            smart->available_spare_threshold = 10;
            put_u128(smart->power_cycles, 1);
            send_page(r, page, sizeof(nvme::SmartHealthLog), offset);
            return;
        }
        case nvme::log_page::kFirmwareSlot: {
            auto* fw = reinterpret_cast<nvme::FirmwareSlotLog*>(page);
            fw->afi = 1;
            std::memcpy(fw->frs[0], "0.1     ", 8);
            send_page(r, page, sizeof(nvme::FirmwareSlotLog), offset);
            return;
        }
        case nvme::log_page::kChangedNamespaceList: {
            const std::vector<uint32_t> list = ctrl.take_changed_ns();
            std::memcpy(page, list.data(), std::min<size_t>(list.size(), 1024) * 4);
            if (!rae) ctrl.log_page_read(lid);
            send_page(r, page, sizeof(nvme::ChangedNamespaceList), offset);
            return;
        }
        case nvme::log_page::kCommandsSupportedEffects: {
            auto* e = reinterpret_cast<nvme::CommandsSupportedEffectsLog*>(page);
            for (uint8_t op : {opc::kGetLogPage, opc::kIdentify, opc::kAbort, opc::kSetFeatures,
                               opc::kGetFeatures, opc::kAsyncEventRequest, opc::kKeepAlive}) {
                e->admin[op] = nvme::kEffectCommandSupported;
            }
            e->io[nvme::nvm_opc::kFlush] = nvme::kEffectCommandSupported;
            e->io[nvme::nvm_opc::kRead] = nvme::kEffectCommandSupported;
            for (uint8_t op : {nvme::nvm_opc::kWrite, nvme::nvm_opc::kWriteZeroes,
                               nvme::nvm_opc::kDatasetManagement}) {
                e->io[op] = nvme::kEffectCommandSupported | nvme::kEffectLbaContentChange;
            }
            send_page(r, page, sizeof(nvme::CommandsSupportedEffectsLog), offset);
            return;
        }
        default:
            r->conn->complete(r, Status::command_specific(nvme::sc_cmd::kInvalidLogPage, true));
            return;
    }
}

// ---------------------------------------------------------------------------------------------
// Features
// ---------------------------------------------------------------------------------------------
uint32_t queues_dw0(uint16_t n) {
    return static_cast<uint32_t>(n - 1) | (static_cast<uint32_t>(n - 1) << 16);
}

void get_features(Request* r) {
    Controller& ctrl = *r->conn->ctrl();
    const uint8_t fid = nvme::features_fid(r->cmd);
    uint32_t v = 0;
    switch (fid) {
        case nvme::feature::kArbitration:
        case nvme::feature::kPowerManagement:
        case nvme::feature::kErrorRecovery:
        case nvme::feature::kInterruptCoalescing:
        case nvme::feature::kWriteAtomicity:
            if (ctrl.discovery()) {
                r->conn->complete(r, invalid_field());
                return;
            }
            break;
        case nvme::feature::kTemperatureThreshold:
            v = 343;
            break;
        case nvme::feature::kVolatileWriteCache:
            v = ctrl.write_cache() ? 1 : 0;
            break;
        case nvme::feature::kNumberOfQueues:
            v = queues_dw0(ctrl.io_queues_set() ? ctrl.io_queues_granted() : kMaxIoQueues);
            break;
        case nvme::feature::kAsyncEventConfig:
            v = ctrl.aec();
            break;
        case nvme::feature::kKeepAliveTimer:
            v = ctrl.kato_ms();
            break;
        default:
            r->conn->complete(r, invalid_field());
            return;
    }
    r->rsp.dw0 = v;
    r->conn->complete(r, Status::success());
}

void set_features(Request* r) {
    Controller& ctrl = *r->conn->ctrl();
    const uint8_t fid = nvme::features_fid(r->cmd);
    const uint32_t v = r->cmd.cdw11;
    if (r->cmd.cdw10 >> 31) {  // SV: nothing here is saveable
        r->conn->complete(r, Status::command_specific(nvme::sc_cmd::kFeatureIdNotSaveable, true));
        return;
    }
    switch (fid) {
        case nvme::feature::kNumberOfQueues: {
            if (ctrl.discovery()) break;
            if (ctrl.io_queue_count() > 0) {
                r->conn->complete(r, Status::generic(nvme::sc::kCommandSequenceError, true));
                return;
            }
            const uint32_t nsq = v & 0xFFFF, ncq = v >> 16;
            if (nsq == 0xFFFF || ncq == 0xFFFF) {
                r->conn->complete(r, invalid_field());
                return;
            }
            const uint16_t n =
                static_cast<uint16_t>(std::min<uint32_t>(std::max(nsq, ncq) + 1, kMaxIoQueues));
            ctrl.set_io_queues(n);
            r->rsp.dw0 = queues_dw0(n);
            r->conn->complete(r, Status::success());
            return;
        }
        case nvme::feature::kAsyncEventConfig:
            ctrl.set_aec(v & (ctrl.discovery() ? nvme::kOaesDiscoveryLogChangeNotices
                                               : nvme::kOaesNamespaceAttributeNotices));
            r->conn->complete(r, Status::success());
            return;
        case nvme::feature::kKeepAliveTimer:
            ctrl.set_kato_ms(v);
            ctrl.keep_alive(now_ns());
            r->conn->complete(r, Status::success());
            return;
        case nvme::feature::kVolatileWriteCache:
            if (ctrl.discovery()) break;
            ctrl.set_write_cache(v & 1);
            r->conn->complete(r, Status::success());
            return;
        case nvme::feature::kPowerManagement:
            if (ctrl.discovery() || (v & 0x1F) != 0) break;  // power state 0 only
            r->conn->complete(r, Status::success());
            return;
        case nvme::feature::kArbitration:
        case nvme::feature::kTemperatureThreshold:
        case nvme::feature::kErrorRecovery:
        case nvme::feature::kInterruptCoalescing:
            if (ctrl.discovery()) break;
            r->conn->complete(r, Status::success());  // accepted, no effect on a fabric target
            return;
        default:
            break;
    }
    r->conn->complete(r, invalid_field());
}

bool allowed_on_discovery(uint8_t op) {
    return op == opc::kIdentify || op == opc::kGetLogPage || op == opc::kKeepAlive ||
           op == opc::kGetFeatures || op == opc::kSetFeatures || op == opc::kAsyncEventRequest;
}

// Commands that read data: fetch a buffer of the host's length, then run.
void c2h(Request* r, ReqFn fn) {
    const uint32_t len = r->cmd.sgl1.length;
    if (r->cmd.sgl1.id == nvme::kSglIdTransportDataBlock && len == 0) {
        r->conn->complete(r, Status::generic(nvme::sc::kDataSglLengthInvalid, true));
        return;
    }
    r->conn->with_data(r, len, false, fn);
}

}  // namespace

void admin_command(Request* r) {
    TcpConn* c = r->conn;
    Controller* ctrl = c->ctrl();
    if (!ctrl) {
        c->complete(r, Status::generic(nvme::sc::kCommandSequenceError, true));
        return;
    }
    const uint8_t op = r->cmd.opcode;
    if (ctrl->discovery() && !allowed_on_discovery(op)) {
        c->complete(r, Status::generic(nvme::sc::kInvalidOpcode, true));
        return;
    }
    if (!ctrl->ready() && op != opc::kKeepAlive) {
        // Admin commands need CC.EN=1 (fabrics commands are handled before this).
        c->complete(r, Status::generic(nvme::sc::kCommandSequenceError, true));
        return;
    }
    switch (op) {
        case opc::kIdentify:
            c2h(r, identify);
            return;
        case opc::kGetLogPage:
            c2h(r, get_log_page);
            return;
        case opc::kGetFeatures:
            get_features(r);
            return;
        case opc::kSetFeatures:
            set_features(r);
            return;
        case opc::kAsyncEventRequest:
            if (!ctrl->add_aer(r)) {
                c->complete(r, Status::command_specific(
                                   nvme::sc_cmd::kAsyncEventRequestLimitExceeded, true));
            }
            return;
        case opc::kKeepAlive:
            ctrl->keep_alive(now_ns());
            c->complete(r, Status::success());
            return;
        case opc::kAbort:
            r->rsp.dw0 = 1;  // command not aborted
            c->complete(r, Status::success());
            return;
        default:
            c->complete(r, Status::generic(nvme::sc::kInvalidOpcode, true));
            return;
    }
}

}  // namespace nocstor::nvmf
