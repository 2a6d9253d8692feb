#include "modules/iscsi/iscsi_probe.h"

#include <fmt/format.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <algorithm>
#include <memory>

namespace nocstor::iscsi {

namespace {

// The probe's steps, one command at a time; the object deletes itself when done.
struct Probe {
    iscsi_context* ctx;
    int lun;
    ProbeDone done;
    LunInfo info;
    bool has_b0 = false, has_b2 = false, lbpme = false;

    void fail(std::string err) {
        done(false, {}, std::move(err));
        delete this;
    }
    void succeed() {
        info.geometry.unmap = info.geometry.unmap && lbpme;
        done(true, std::move(info), {});
        delete this;
    }

    // Runs `issue`, then `next(task)` with the GOOD task (freed afterwards), or fails with a
    // message naming `what`. An optional step (VPD pages) skips to `skip` instead of failing.
    template <typename Issue, typename Next>
    void step(const char* what, Issue issue, Next next, void (Probe::*skip)() = nullptr) {
        struct Step {
            Probe* p;
            const char* what;
            Next next;
            void (Probe::*skip)();
        };
        auto* s = new Step{this, what, std::move(next), skip};
        auto cb = [](iscsi_context* c, int status, void* data, void* arg) {
            std::unique_ptr<Step> st(static_cast<Step*>(arg));
            auto* task = static_cast<scsi_task*>(data);
            std::unique_ptr<scsi_task, void (*)(scsi_task*)> guard(task, scsi_free_scsi_task);
            if (status != SCSI_STATUS_GOOD) {
                if (st->skip) return (st->p->*(st->skip))();
                std::string why = status == SCSI_STATUS_CHECK_CONDITION && task
                                      ? scsi_sense_key_str(task->sense.key)
                                      : iscsi_get_error(c);
                return st->p->fail(fmt::format("{} failed: {}", st->what, why));
            }
            st->next(task);
        };
        if (!issue(cb, s)) {
            delete s;
            fail(fmt::format("{}: {}", what, iscsi_get_error(ctx)));
        }
    }

    void start() {
        step(
            "INQUIRY",
            [&](iscsi_command_cb cb, void* arg) {
                return iscsi_inquiry_task(ctx, lun, 0, 0, 255, cb, arg) != nullptr;
            },
            [this](scsi_task* t) {
                auto* inq = static_cast<scsi_inquiry_standard*>(scsi_datain_unmarshall(t));
                if (!inq) return fail("INQUIRY: the answer could not be decoded");
                if (inq->qualifier != SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED)
                    return fail(fmt::format("LUN {} is not connected on the target", lun));
                if (inq->device_type != SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS)
                    return fail(fmt::format(
                        "LUN {} is not a disk (peripheral device type {:#x}; LUN 0 of tgt is "
                        "its controller)",
                        lun, int(inq->device_type)));
                info.vendor = trim(inq->vendor_identification);
                info.product = trim(inq->product_identification);
                info.revision = trim(inq->product_revision_level);
                read_capacity();
            });
    }

    void read_capacity() {
        step(
            "READ CAPACITY(16)",
            [&](iscsi_command_cb cb, void* arg) {
                return iscsi_readcapacity16_task(ctx, lun, cb, arg) != nullptr;
            },
            [this](scsi_task* t) {
                auto* rc = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(t));
                if (!rc) return fail("READ CAPACITY(16): the answer could not be decoded");
                const uint32_t bs = rc->block_length;
                if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
                    return fail(fmt::format("unsupported block size {}", bs));
                info.geometry.block_size = bs;
                info.geometry.num_blocks = rc->returned_lba + 1;
                lbpme = rc->lbpme != 0;
                vpd_pages();
            });
    }

    void vpd_pages() {
        step(
            "INQUIRY VPD 0x00",
            [&](iscsi_command_cb cb, void* arg) {
                return iscsi_inquiry_task(ctx, lun, 1, SCSI_INQUIRY_PAGECODE_SUPPORTED_VPD_PAGES,
                                          255, cb, arg) != nullptr;
            },
            [this](scsi_task* t) {
                auto* sp = static_cast<scsi_inquiry_supported_pages*>(scsi_datain_unmarshall(t));
                for (int i = 0; sp && i < sp->num_pages; ++i) {
                    if (sp->pages[i] == SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS) has_b0 = true;
                    if (sp->pages[i] == SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING)
                        has_b2 = true;
                }
                block_limits();
            },
            &Probe::succeed);
    }

    void block_limits() {
        if (!has_b0) return provisioning();
        step(
            "INQUIRY VPD 0xB0",
            [&](iscsi_command_cb cb, void* arg) {
                return iscsi_inquiry_task(ctx, lun, 1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255, cb,
                                          arg) != nullptr;
            },
            [this](scsi_task* t) {
                if (auto* bl = static_cast<scsi_inquiry_block_limits*>(scsi_datain_unmarshall(t))) {
                    info.max_transfer_blocks = bl->max_xfer_len;
                    info.geometry.max_unmap_blocks = bl->max_unmap;
                    info.geometry.max_unmap_descriptors = bl->max_unmap_bdc;
                    info.geometry.max_write_same_blocks = bl->max_ws_len;
                }
                provisioning();
            },
            &Probe::provisioning);
    }

    void provisioning() {
        if (!has_b2) return succeed();
        step(
            "INQUIRY VPD 0xB2",
            [&](iscsi_command_cb cb, void* arg) {
                return iscsi_inquiry_task(ctx, lun, 1,
                                          SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING, 255, cb,
                                          arg) != nullptr;
            },
            [this](scsi_task* t) {
                if (auto* lbp = static_cast<scsi_inquiry_logical_block_provisioning*>(
                        scsi_datain_unmarshall(t))) {
                    info.geometry.unmap = lbp->lbpu != 0;
                    info.geometry.write_same = lbp->lbpws != 0;
                }
                succeed();
            },
            &Probe::succeed);
    }

    static std::string trim(const char* s) {
        std::string r(s);
        while (!r.empty() && r.back() == ' ') r.pop_back();
        return r;
    }
};

}  // namespace

void probe_lun(iscsi_context* ctx, int lun, ProbeDone done) {
    (new Probe{ctx, lun, std::move(done), {}})->start();
}

}  // namespace nocstor::iscsi
