// The common part of every virtual bdev (a bdev stacked on a base bdev): it opens the base,
// claims it, forwards I/O on its own descriptor and per-thread base channel, completes the upper
// I/O from the base completion, and unregisters itself when the base goes away.
//
// Writing a new vbdev (see passthru.cpp, the minimal one):
//   1. subclass Vbdev; in the create function: check the name, make_unique, attach_base(),
//      set anything extra, then bdev_register();
//   2. override submit_request() only for the I/O types you change; call Vbdev::submit_request()
//      (reads and writes go down whole with bdev_forward_io) or forward() for the rest;
//      an I/O you hold (delay, pending errors) lives in an intrusive queue of your channel
//      (derive from VbdevChannel, override create_channel());
//   3. in your completion callback read what you need from the base I/O, bdev_free_io() it,
//      then bdev_io_complete() the upper one (complete_from_base() does exactly that);
//   4. per-thread state goes in your channel, per-I/O state in io->ctx<T>(), never the heap.
#pragma once

#include "bdev/bdev.h"

#include <string>

namespace nocstor {

// Per-thread context of a vbdev: at least the base bdev's channel on this thread.
class VbdevChannel : public IoChannel {
  public:
    explicit VbdevChannel(BdevDesc* base_desc) : base_ch(bdev_get_io_channel(base_desc)) {}
    ~VbdevChannel() override { bdev_put_io_channel(base_ch); }
    IoChannel* base_ch;
};

class Vbdev : public Bdev {
  public:
    Vbdev(std::string name, BdevModule* module) : Bdev(std::move(name), module) {}
    ~Vbdev() override { detach_base(); }

    // Control thread, before bdev_register: opens `base_name` writable, claims it for this
    // module and copies its geometry. 0, or -ENODEV (no such bdev), -EPERM (already claimed).
    int attach_base(const std::string& base_name, std::string* err);
    Bdev* base() const { return base_; }
    BdevDesc* base_desc() const { return base_desc_; }

    bool io_type_supported(IoType t) const override { return base_->io_type_supported(t); }
    std::unique_ptr<IoChannel> create_channel() override;
    void submit_request(IoChannel* ch, BdevIo* io) override;
    void destruct(std::function<void()> done) override;

  protected:
    // Submits io's operation (same type, range, iovecs) to the base; cb(base_io, ok, io) runs on
    // completion. If the base refuses it, completes io at once (-ENOMEM -> NoMemory: the bdev
    // layer retries it later).
    void forward(BdevIo* io, BdevIoCompletion cb);
    // Completion callback that completes the upper I/O with the base I/O's status.
    static void forward_done(BdevIo* base_io, bool ok, void* upper);
    // The same for an I/O passed down whole with bdev_forward_io (the default for reads and
    // writes).
    static void forwarded_done(BdevIo* io, bool ok, void* arg);
    // Frees the base I/O and completes the upper one with its status (NVMe status included).
    static void complete_from_base(BdevIo* upper, BdevIo* base_io);
    // Called on the control thread when the base bdev is being removed. Default: unregister.
    virtual void on_base_removed();
    // The base changed size: by default this vbdev takes the base's size too.
    virtual void on_base_resized();

  private:
    void detach_base();
    Bdev* base_ = nullptr;
    BdevDesc* base_desc_ = nullptr;
};

// Maps a bdev_* submission error to the status for the upper I/O.
IoStatus status_from_submit_rc(int rc);

}  // namespace nocstor
