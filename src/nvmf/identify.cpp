#include "nvmf/identify.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "nvmf/controller.h"
#include "nvmf/limits.h"
#include "nvmf/poll_group.h"

namespace nocstor::nvmf {

namespace {
void copy_padded(char* dst, size_t size, const std::string& s) {
    std::memset(dst, ' ', size);
    std::memcpy(dst, s.data(), std::min(size, s.size()));
}
}  // namespace

void build_identify_controller(const Controller& ctrl, nvme::IdentifyController* id) {
    std::memset(id, 0, sizeof *id);
    const SubsystemInfo* s = ctrl.subsys() ? ctrl.subsys()->info.get() : nullptr;
    copy_padded(id->sn, sizeof id->sn, s ? s->serial : "");
    copy_padded(id->mn, sizeof id->mn, s ? s->model : "nocstor discovery controller");
    copy_padded(id->fr, sizeof id->fr, "0.1");
    id->rab = 6;
    id->cmic = nvme::kCmicMultiController;  // several hosts may each have a controller
    id->mdts = kMdts;
    id->cntlid = ctrl.cntlid();
    id->ver = nvme::make_version(1, 3);
    id->cntrltype = ctrl.discovery() ? nvme::kCntrlTypeDiscovery : nvme::kCntrlTypeIo;
    id->oaes = ctrl.discovery() ? nvme::kOaesDiscoveryLogChangeNotices
                                : nvme::kOaesNamespaceAttributeNotices;
    id->acl = 3;
    id->aerl = kAerl;
    id->frmw = 0x3;  // one slot, slot 1 read-only
    id->lpa = nvme::kLpaCommandsEffects | nvme::kLpaExtendedData;
    id->elpe = 0;
    id->kas = kKeepAliveGranularity100ms;
    id->sqes = 0x66;
    id->cqes = 0x44;
    id->maxcmd = kMaxQueueEntries;
    id->nn = s ? s->max_namespaces : 0;
    if (!ctrl.discovery()) {
        id->oncs = nvme::kOncsDatasetManagement | nvme::kOncsWriteZeroes;
        id->vwc = 1;  // Flush is passed to the bdev
        id->wctemp = 343;
        id->cctemp = 373;
    }
    id->sgls = nvme::kSglsSupportedNoAlign | nvme::kSglsOffset;
    const std::string& nqn = ctrl.subnqn();
    std::memcpy(id->subnqn, nqn.data(), std::min(nqn.size(), sizeof id->subnqn - 1));
    id->ioccsz = (sizeof(nvme::SubmissionQueueEntry) + kInCapsuleDataSize) / 16;
    id->iorcsz = sizeof(nvme::CompletionQueueEntry) / 16;
    id->icdoff = 0;
    id->fcatt = 0;  // dynamic controller model
    id->msdbd = 1;
    id->psd[0].mp = 2500;  // 25 W, centiwatts
    id->psd[0].enlat = 16;
    id->psd[0].exlat = 4;
}

void build_identify_namespace(const NamespaceInfo& ns, nvme::IdentifyNamespace* id) {
    std::memset(id, 0, sizeof *id);
    id->nsze = id->ncap = id->nuse = ns.num_blocks;
    id->nlbaf = 0;
    id->flbas = 0;
    id->nmic = nvme::kNmicShared;
    id->dlfeat = 0;
    uint8_t lbads = 0;
    while ((1u << lbads) < ns.block_size) ++lbads;
    id->lbaf[0].lbads = lbads;
    std::memcpy(id->nguid, ns.uuid.data(), 16);
    std::memcpy(id->eui64, ns.uuid.data(), 8);
}

void build_ns_id_descriptors(const NamespaceInfo& ns, uint8_t* out) {
    std::memset(out, 0, 4096);
    size_t off = 0;
    auto add = [&](uint8_t type, const void* v, uint8_t len) {
        nvme::NamespaceIdDescriptorHeader h{type, len, {0, 0}};
        std::memcpy(out + off, &h, sizeof h);
        std::memcpy(out + off + sizeof h, v, len);
        off += sizeof h + len;
    };
    add(nvme::nidt::kEui64, ns.uuid.data(), 8);
    add(nvme::nidt::kNguid, ns.uuid.data(), 16);
    add(nvme::nidt::kUuid, ns.uuid.data(), 16);
    const uint8_t csi = nvme::kCsiNvm;
    add(nvme::nidt::kCsi, &csi, 1);
}

}  // namespace nocstor::nvmf
