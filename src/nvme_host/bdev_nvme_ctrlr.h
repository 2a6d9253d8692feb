// Internals of the nvme bdev module: the attached controller (an IoDevice whose per-thread
// channel owns that thread's I/O queue) and the namespace bdevs. See bdev_nvme.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "nvme_host/bdev_nvme.h"
#include "nvme_host/ctrlr.h"
#include "nvme_host/qpair.h"

namespace nocstor::nvme_host {

class NvmeBdevCtrlr;

// One data thread's view of a controller: its I/O queue and the I/O waiting for it.
class NvmeCtrlrChannel : public IoChannel {
  public:
    explicit NvmeCtrlrChannel(NvmeBdevCtrlr* c);
    ~NvmeCtrlrChannel() override;

    void submit(BdevIo* io);
    // Connects a fresh queue; done(rc) on this thread.
    void connect_qpair(std::function<void(int)> done);
    void disconnect_qpair();  // in-flight I/O goes back to `pending`
    void resubmit_pending();
    void fail_pending(IoStatus st);
    // Connects a queue unless one is up or on its way.
    void ensure_connected() {
        if (!connecting_ && (!qp_ || !qp_->ready())) connect_qpair(nullptr);
    }

    NvmeBdevCtrlr* ctrlr;
    bool fail_fast = false;
    bool deleting = false;
    uint64_t requeued = 0;  // I/O retried after a transport failure (statistics)

  private:
    static void on_done(void* arg, const NvmeCpl& cpl);
    void complete(BdevIo* io, const NvmeCpl& cpl);
    int issue(BdevIo* io);
    void on_qpair_failure();

    std::unique_ptr<NvmeTcpQpair> qp_;
    uint16_t qid_ = 0;
    uint32_t gen_ = 0;
    bool connecting_ = false;
    bool destroying_ = false;
    BdevIoQueue pending_;
};

class NvmeBdevCtrlr : public IoDevice {
  public:
    enum class State : uint8_t { kAttaching, kEnabled, kResetting, kDeleting };

    NvmeBdevCtrlr(uint64_t id, NvmeAttachOptions opts);
    ~NvmeBdevCtrlr() override;

    std::unique_ptr<IoChannel> create_channel() override;

    void attach(std::function<void(int rc, std::string err)> done);
    void request_reset(const std::string& why);
    void add_reset_waiter(Thread* t, BdevIo* io);
    // Removes the bdevs, closes the queues and the admin connection, then done.
    void remove(const std::string& why, std::function<void()> done);

    // Any thread: options for a new I/O queue (false while not connected) / give it back.
    bool qpair_options(QpairOptions* out, uint32_t* gen);
    void release_qid(uint16_t qid, uint32_t gen);
    // Any thread: asks the control thread to start a reset.
    void notify_failure(const std::string& why);

    uint64_t id() const { return id_; }
    const NvmeAttachOptions& options() const { return opts_; }
    State state() const { return state_.load(std::memory_order_acquire); }
    bool fail_fast() const { return fail_fast_.load(std::memory_order_acquire); }
    std::vector<std::string>& bdev_names() { return bdev_names_; }
    nlohmann::json info_json() const;
    nlohmann::json config_json() const;
    nlohmann::json trid_json() const;
    // The connected admin controller (namespaces, identify data), or nullptr while resetting.
    const NvmeCtrlr* admin() const;

  private:
    CtrlrOptions ctrlr_options() const;
    void unregister_bdevs();
    void wait_channels_gone();
    void set_state(State s) { state_.store(s, std::memory_order_release); }
    void install_admin(std::unique_ptr<NvmeCtrlr> a);
    void drop_admin();
    void reset_tick();  // the reset poller: deadlines and the next reconnect attempt
    void attempt_reconnect();
    void reconnect_failed(const std::string& why);
    void reconnect_done();
    void set_fail_fast();
    void finish_reset_waiters(bool ok);
    void stop_reset_poller();

    uint64_t id_;
    NvmeAttachOptions opts_;
    std::atomic<State> state_{State::kAttaching};
    std::atomic<bool> fail_fast_{false};
    mutable std::mutex mu_;  // admin_ and gen_ (read by data threads creating queues)
    std::unique_ptr<NvmeCtrlr> admin_;
    uint32_t gen_ = 0;
    std::unique_ptr<NvmeCtrlr> connecting_admin_;  // an attach / reconnect in progress
    uint8_t hostid_[16] = {};
    std::vector<std::function<void()>> remove_waiters_;
    std::vector<std::string> bdev_names_;
    Thread* control_ = nullptr;
    Poller* reset_poller_ = nullptr;
    bool attempt_running_ = false;
    uint32_t attempts_ = 0;
    uint64_t loss_start_ns_ = 0;
    uint64_t next_attempt_ns_ = 0;
    uint64_t resets_ = 0;
    std::string last_error_;
    std::vector<std::pair<Thread*, BdevIo*>> reset_waiters_;
    // Copies for get_controllers while admin_ may be absent.
    uint16_t cntlid_ = 0;
};

// A namespace of an attached controller.
class NvmeNsBdev : public Bdev {
  public:
    NvmeNsBdev(std::string name, NvmeBdevCtrlr* c, const NamespaceData& ns, uint16_t oncs,
               bool vwc);
    bool io_type_supported(IoType t) const override;
    void submit_request(IoChannel* ch, BdevIo* io) override;
    std::unique_ptr<IoChannel> create_channel() override;
    void destruct(std::function<void()> done) override;
    void dump_info_json(nlohmann::json& out) const override;
    void write_config_json(nlohmann::json& out) const override;

    NvmeBdevCtrlr* ctrlr;
    uint32_t nsid;
    uint16_t oncs;
};

// Control-thread registry of attached controllers.
NvmeBdevCtrlr* find_ctrlr(uint64_t id);
NvmeBdevCtrlr* find_ctrlr(const std::string& name);
// Deletes a removed controller (from a message: callers may be inside its callbacks).
void erase_ctrlr(uint64_t id);

}  // namespace nocstor::nvme_host
