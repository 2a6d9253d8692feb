#include "modules/vbdev.h"

#include "modules/module_util.h"
#include "util/log.h"

#include <cerrno>
#include <cstring>

namespace nocstor {

IoStatus status_from_submit_rc(int rc) {
    switch (rc) {
        case -ENOMEM:
            return IoStatus::NoMemory;
        case -ENODEV:
            return IoStatus::Aborted;
        case -ENOTSUP:
            return IoStatus::Unsupported;
        case -EINVAL:
            return IoStatus::InvalidRange;
        default:
            return IoStatus::Failed;
    }
}

int Vbdev::attach_base(const std::string& base_name, std::string* err) {
    if (Bdev* b = bdev_get_by_name(base_name)) {
        if (int rc = bdev_check_same_cluster(b, module->name(), err)) return rc;
    }
    BdevDesc* desc = nullptr;
    int rc = bdev_open(
        base_name, true,
        [this](BdevEvent ev, Bdev*) {
            if (ev == BdevEvent::Remove) on_base_removed();
            if (ev == BdevEvent::Resize) on_base_resized();
        },
        &desc);
    if (rc == -EPERM) return fail(err, -EPERM, "bdev " + base_name + " is already claimed");
    if (rc) return fail(err, rc, "cannot open base bdev " + base_name + ": " + std::strerror(-rc));
    rc = bdev_claim(desc->bdev(), module);
    if (rc) {
        bdev_close(desc);
        return fail(err, -EPERM, "bdev " + base_name + " is already claimed");
    }
    base_desc_ = desc;
    base_ = desc->bdev();
    block_size = base_->block_size;
    num_blocks = base_->num_blocks;
    write_cache = base_->write_cache;
    required_alignment = base_->required_alignment;
    optimal_io_boundary = base_->optimal_io_boundary;
    max_transfer_blocks = base_->max_transfer_blocks;
    cluster = base_->cluster;
    return 0;
}

void Vbdev::detach_base() {
    if (!base_desc_) return;
    bdev_release_claim(base_);
    bdev_close(base_desc_);
    base_desc_ = nullptr;
}

std::unique_ptr<IoChannel> Vbdev::create_channel() {
    auto ch = std::make_unique<VbdevChannel>(base_desc_);
    if (!ch->base_ch) return nullptr;
    return ch;
}

void Vbdev::submit_request(IoChannel* ch, BdevIo* io) {
    if (io->type == IoType::Read || io->type == IoType::Write) {
        // Reads and writes go down as they are (no second bdev_io), where the base allows.
        const int rc = bdev_forward_io(base_desc_, static_cast<VbdevChannel*>(ch)->base_ch, io,
                                       io->offset_blocks, &Vbdev::forwarded_done, nullptr);
        if (rc == 0) return;
        if (rc != -ENOTSUP) return bdev_io_complete(io, status_from_submit_rc(rc));
    }
    forward(io, &Vbdev::forward_done);
}

void Vbdev::forwarded_done(BdevIo* io, bool, void*) {
    bdev_io_complete(io, io->status);  // the NVMe status, if any, is in io already
}

void Vbdev::destruct(std::function<void()> done) {
    detach_base();
    done();
}

void Vbdev::on_base_removed() {
    NOC_INFO("bdev", "{}: base bdev {} is being removed", name, base_ ? base_->name : "?");
    if (!removing()) bdev_unregister(this, nullptr);
}

void Vbdev::on_base_resized() {
    if (base_ && !removing()) bdev_notify_blockcnt_change(this, base_->num_blocks);
}

void Vbdev::forward(BdevIo* io, BdevIoCompletion cb) {
    IoChannel* base_ch = static_cast<VbdevChannel*>(io->module_channel)->base_ch;
    int rc;
    switch (io->type) {
        case IoType::Read:
            rc = bdev_readv(base_desc_, base_ch, io->iovs, io->iovcnt, io->offset_blocks,
                            io->num_blocks, cb, io);
            break;
        case IoType::Write:
            rc = bdev_writev(base_desc_, base_ch, io->iovs, io->iovcnt, io->offset_blocks,
                             io->num_blocks, cb, io, io->fua);
            break;
        case IoType::Flush:
            rc = bdev_flush(base_desc_, base_ch, io->offset_blocks, io->num_blocks, cb, io);
            break;
        case IoType::Unmap:
            rc = bdev_unmap(base_desc_, base_ch, io->offset_blocks, io->num_blocks, cb, io);
            break;
        case IoType::WriteZeroes:
            rc = bdev_write_zeroes(base_desc_, base_ch, io->offset_blocks, io->num_blocks, cb, io);
            break;
        case IoType::Reset:
            rc = bdev_reset(base_desc_, base_ch, cb, io);
            break;
        default:
            rc = -ENOTSUP;
            break;
    }
    if (rc) bdev_io_complete(io, status_from_submit_rc(rc));
}

void Vbdev::complete_from_base(BdevIo* upper, BdevIo* base_io) {
    IoStatus st = base_io->status;
    uint8_t sct = base_io->nvme_sct, sc = base_io->nvme_sc;
    bdev_free_io(base_io);
    if (st == IoStatus::NvmeError)
        bdev_io_complete_nvme(upper, sct, sc);
    else
        bdev_io_complete(upper, st);
}

void Vbdev::forward_done(BdevIo* base_io, bool, void* upper) {
    complete_from_base(static_cast<BdevIo*>(upper), base_io);
}

}  // namespace nocstor
