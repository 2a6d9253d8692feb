// The nvme bdev module's public entry points, its namespace bdevs and the controller registry.
#include "nvme_host/bdev_nvme.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <map>

#include "bdev/bdev_module.h"
#include "nvme_host/bdev_nvme_ctrlr.h"
#include "runtime/thread.h"
#include "security/dhchap_names.h"
#include "util/log.h"

namespace nocstor::nvme_host {

NvmeAuthLists& bdev_nvme_auth_lists() {
    static NvmeAuthLists lists;
    return lists;
}

namespace {

class NvmeModule : public BdevModule {
  public:
    NvmeModule() : BdevModule("nvme") {}
    void write_config_json(nlohmann::json& calls) const override {
        const NvmeAuthLists& l = bdev_nvme_auth_lists();
        const NvmeAuthLists defaults;
        if (l.digests != defaults.digests || l.dhgroups != defaults.dhgroups)
            calls.push_back({{"method", "bdev_nvme_set_options"},
                             {"params",
                              {{"dhchap_digests", security::digest_names(l.digests)},
                               {"dhchap_dhgroups", security::dhgroup_names(l.dhgroups)}}}});
        for (auto& c : bdev_nvme_config_json()) calls.push_back(c);
    }
    // After the bdev layer unregistered every bdev: close the remaining controllers.
    void fini(std::function<void()> done) override;
};

NvmeModule g_module;
std::map<uint64_t, std::unique_ptr<NvmeBdevCtrlr>> g_ctrlrs;  // control thread only
uint64_t g_next_id = 1;

// The namespace bdev's channel only points at the controller's channel of the same thread.
struct NvmeNsChannel : IoChannel {
    NvmeCtrlrChannel* ctrlr_ch;
    explicit NvmeNsChannel(NvmeBdevCtrlr* c) : ctrlr_ch(c->get_channel_as<NvmeCtrlrChannel>()) {}
    ~NvmeNsChannel() override { IoDevice::put_channel(ctrlr_ch); }
};

void NvmeModule::fini(std::function<void()> done) {
    if (g_ctrlrs.empty()) return done();
    auto left = std::make_shared<size_t>(g_ctrlrs.size());
    std::vector<uint64_t> ids;
    for (auto& [id, c] : g_ctrlrs) ids.push_back(id);
    for (uint64_t id : ids) {
        find_ctrlr(id)->remove("shutdown", [id, left, done] {
            erase_ctrlr(id);
            if (--*left == 0) done();
        });
    }
}

Uuid ns_uuid(const NamespaceData& ns) {
    Uuid u{};
    if (ns.has_uuid)
        std::memcpy(u.data(), ns.uuid, 16);
    else if (ns.has_nguid)
        std::memcpy(u.data(), ns.nguid, 16);
    return u;  // zero: the bdev layer makes one up
}

std::string field(const char* p, size_t n) {
    std::string s(p, strnlen(p, n));
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

}  // namespace

BdevModule* bdev_nvme_module() {
    return &g_module;
}

NvmeBdevCtrlr* find_ctrlr(uint64_t id) {
    auto it = g_ctrlrs.find(id);
    return it == g_ctrlrs.end() ? nullptr : it->second.get();
}

NvmeBdevCtrlr* find_ctrlr(const std::string& name) {
    for (auto& [id, c] : g_ctrlrs)
        if (c->options().name == name) return c.get();
    return nullptr;
}

void erase_ctrlr(uint64_t id) {
    Thread::current()->send([id] { g_ctrlrs.erase(id); });
}

// ---------------------------------------------------------------------------------------------
// Namespace bdev
// ---------------------------------------------------------------------------------------------
NvmeNsBdev::NvmeNsBdev(std::string n, NvmeBdevCtrlr* c, const NamespaceData& ns, uint16_t oncs_,
                       bool vwc)
    : Bdev(std::move(n), &g_module), ctrlr(c), nsid(ns.nsid), oncs(oncs_) {
    product_name = "NVMe disk";
    block_size = ns.block_size;
    num_blocks = ns.num_blocks;
    uuid = ns_uuid(ns);
    write_cache = vwc;
}

bool NvmeNsBdev::io_type_supported(IoType t) const {
    switch (t) {
        case IoType::Read:
        case IoType::Write:
        case IoType::Flush:
        case IoType::Reset:
            return true;
        case IoType::Unmap:
            return oncs & nvme::kOncsDatasetManagement;
        case IoType::WriteZeroes:
            return oncs & nvme::kOncsWriteZeroes;
        default:
            return false;
    }
}

std::unique_ptr<IoChannel> NvmeNsBdev::create_channel() {
    return std::make_unique<NvmeNsChannel>(ctrlr);
}

void NvmeNsBdev::submit_request(IoChannel* ch, BdevIo* io) {
    static_cast<NvmeNsChannel*>(ch)->ctrlr_ch->submit(io);
}

void NvmeNsBdev::destruct(std::function<void()> done) {
    auto& names = ctrlr->bdev_names();
    names.erase(std::remove(names.begin(), names.end(), name), names.end());
    done();
}

void NvmeNsBdev::dump_info_json(nlohmann::json& out) const {
    nlohmann::json ctrlr_data = nlohmann::json::object();
    if (const NvmeCtrlr* a = ctrlr->admin()) {
        const auto& cd = a->cdata();
        ctrlr_data = {{"cntlid", cd.cntlid},
                      {"vendor_id", fmt::format("{:#06x}", cd.vid)},
                      {"model_number", field(cd.mn, sizeof cd.mn)},
                      {"serial_number", field(cd.sn, sizeof cd.sn)},
                      {"firmware_revision", field(cd.fr, sizeof cd.fr)},
                      {"subnqn", field(cd.subnqn, sizeof cd.subnqn)},
                      {"oncs",
                       {{"dsm", bool(cd.oncs & nvme::kOncsDatasetManagement)},
                        {"write_zeroes", bool(cd.oncs & nvme::kOncsWriteZeroes)}}}};
    }
    out["nvme"] = nlohmann::json::array(
        {{{"trid", ctrlr->trid_json()}, {"ctrlr_data", ctrlr_data}, {"ns_data", {{"id", nsid}}}}});
}

void NvmeNsBdev::write_config_json(nlohmann::json& out) const {
    out = nullptr;  // the controller's bdev_nvme_attach_controller recreates it
}

// ---------------------------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------------------------
bool bdev_nvme_check_resiliency_params(int32_t loss, uint32_t delay, uint32_t fast,
                                       std::string* err) {
    if (loss < -1) {
        *err = "ctrlr_loss_timeout_sec can't be less than -1";
        return false;
    }
    if (loss == 0) {
        if (delay != 0 || fast != 0) {
            *err =
                "reconnect_delay_sec and fast_io_fail_timeout_sec must be 0 if "
                "ctrlr_loss_timeout_sec is 0";
            return false;
        }
        return true;
    }
    if (delay == 0) {
        *err = "reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0";
        return false;
    }
    if (loss > 0 && delay > uint32_t(loss)) {
        *err = "reconnect_delay_sec can't be more than ctrlr_loss_timeout_sec";
        return false;
    }
    if (fast != 0) {
        if (fast < delay) {
            *err = "reconnect_delay_sec can't be more than fast_io_fail_timeout_sec";
            return false;
        }
        if (loss > 0 && fast > uint32_t(loss)) {
            *err = "fast_io_fail_timeout_sec can't be more than ctrlr_loss_timeout_sec";
            return false;
        }
    }
    return true;
}

void bdev_nvme_attach(const NvmeAttachOptions& opts, NvmeAttachDone done) {
    std::string err;
    if (opts.name.empty()) return done(-EINVAL, {}, "name is required");
    if (find_ctrlr(opts.name))
        return done(-EEXIST, {}, fmt::format("controller '{}' already exists", opts.name));
    if (opts.trid.trtype != "TCP")
        return done(-EINVAL, {}, fmt::format("trtype '{}' is not supported", opts.trid.trtype));
    if (opts.trid.subnqn.empty()) return done(-EINVAL, {}, "subnqn is required");
    if (!valid_nqn(opts.trid.subnqn, &err)) return done(-EINVAL, {}, err);
    if (!opts.trid.hostnqn.empty() && !valid_nqn(opts.trid.hostnqn, &err))
        return done(-EINVAL, {}, err);
    if (!bdev_nvme_check_resiliency_params(opts.ctrlr_loss_timeout_sec, opts.reconnect_delay_sec,
                                           opts.fast_io_fail_timeout_sec, &err))
        return done(-EINVAL, {}, err);
    bdev_module_register(&g_module);
    const uint64_t id = g_next_id++;
    NvmeAttachOptions o = opts;
    o.cluster = bdev_default_cluster();  // the caller's {"cluster"} or the least used
    const int cluster = o.cluster;
    auto c = std::make_unique<NvmeBdevCtrlr>(id, o);
    NvmeBdevCtrlr* raw = c.get();
    g_ctrlrs[id] = std::move(c);
    raw->attach([id, done, cluster](int rc, std::string e) {
        NvmeBdevCtrlr* ctrlr = find_ctrlr(id);
        if (!ctrlr) return done(-ENODEV, {}, "controller removed during attach");
        const std::string name = ctrlr->options().name;
        if (rc != 0) {
            erase_ctrlr(id);
            return done(rc, {}, fmt::format("cannot attach {}: {}", name, e));
        }
        const NvmeCtrlr* a = ctrlr->admin();
        const auto& cd = a->cdata();
        const uint32_t max_xfer = a->max_transfer_bytes();
        std::vector<std::string> names;
        for (const auto& ns : a->namespaces()) {
            const std::string bname = fmt::format("{}n{}", name, ns.nsid);
            auto b = std::make_unique<NvmeNsBdev>(bname, ctrlr, ns, cd.oncs, cd.vwc & 1);
            b->max_transfer_blocks = std::max<uint32_t>(1, max_xfer / ns.block_size);
            b->cluster = cluster;
            const int r = bdev_register(std::move(b));
            if (r != 0) {
                NOC_WARN("nvme", "{}: cannot register bdev {}: {}", name, bname, strerror(-r));
                continue;
            }
            names.push_back(bname);
            ctrlr->bdev_names().push_back(bname);
        }
        NOC_INFO("nvme", "attached {} ({}:{} {}), {} namespace(s)", name,
                 ctrlr->options().trid.traddr, ctrlr->options().trid.trsvcid,
                 ctrlr->options().trid.subnqn, names.size());
        done(0, std::move(names), "");
    });
}

void bdev_nvme_detach(const std::string& name, std::function<void(int, std::string)> done) {
    NvmeBdevCtrlr* c = find_ctrlr(name);
    if (!c) return done(-ENODEV, fmt::format("controller '{}' does not exist", name));
    if (c->state() == NvmeBdevCtrlr::State::kAttaching)
        return done(-EBUSY, fmt::format("controller '{}' is still attaching", name));
    const uint64_t id = c->id();
    c->remove("detached", [id, done] {
        erase_ctrlr(id);
        done(0, "");
    });
}

bool bdev_nvme_exists(const std::string& name) {
    return find_ctrlr(name) != nullptr;
}

nlohmann::json bdev_nvme_get_controllers(const std::string& name) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& [id, c] : g_ctrlrs) {
        if (!name.empty() && c->options().name != name) continue;
        if (c->state() == NvmeBdevCtrlr::State::kAttaching) continue;
        out.push_back(c->info_json());
    }
    return out;
}

nlohmann::json bdev_nvme_config_json() {
    nlohmann::json out = nlohmann::json::array();
    for (auto& [id, c] : g_ctrlrs) {
        if (c->state() == NvmeBdevCtrlr::State::kAttaching ||
            c->state() == NvmeBdevCtrlr::State::kDeleting)
            continue;
        out.push_back(c->config_json());
    }
    return out;
}

}  // namespace nocstor::nvme_host
