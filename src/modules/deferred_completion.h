// A per-thread queue of finished I/O that a poller completes, for modules whose work is done
// synchronously inside submit_request (malloc, null). Completing inline would also be correct
// (the layer defers such completions through a thread message), but an intrusive queue drained
// by a poller costs no atomic operations and completes the whole batch in one pass.
#pragma once

#include "bdev/bdev.h"
#include "runtime/thread.h"

namespace nocstor {

class DeferredCompletionChannel : public IoChannel {
  public:
    explicit DeferredCompletionChannel(const char* poller_name) {
        poller_ = Thread::current()->register_poller(poller_name, [this] { return drain(); });
    }
    ~DeferredCompletionChannel() override { Thread::current()->unregister_poller(poller_); }

    void complete_later(BdevIo* io, IoStatus status) {
        *io->ctx<IoStatus>() = status;
        done_.push(io);
    }

  private:
    int drain() {
        if (done_.empty()) return 0;
        int n = 0;
        // Completions may submit new I/O that lands in done_ again: take only this batch.
        BdevIoQueue batch = done_;
        done_ = BdevIoQueue{};
        while (BdevIo* io = batch.pop()) {
            bdev_io_complete(io, *io->ctx<IoStatus>());
            ++n;
        }
        return n;
    }

    BdevIoQueue done_;
    Poller* poller_ = nullptr;
};

}  // namespace nocstor
