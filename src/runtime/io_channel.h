// I/O channels: a per-(lightweight thread, device) context, as in SPDK. A device hands each
// thread its own channel (its own queue pair, ring, statistics...) so that the data path never
// shares state between threads. Channels are created on first get, reference-counted, and
// destroyed (on their own thread) after the last put.
#pragma once

#include "runtime/thread.h"

#include <functional>
#include <memory>
#include <string>

namespace nocstor {

class IoDevice;

class IoChannel {
  public:
    virtual ~IoChannel() = default;
    IoDevice* device() const { return device_; }
    Thread* thread() const { return thread_; }
    uint32_t refs() const { return refs_; }

  private:
    friend class IoDevice;
    IoDevice* device_ = nullptr;
    Thread* thread_ = nullptr;
    uint32_t refs_ = 0;
    bool destroy_pending = false;
};

class IoDevice {
  public:
    explicit IoDevice(std::string name) : io_device_name_(std::move(name)) {}
    virtual ~IoDevice() = default;
    const std::string& io_device_name() const { return io_device_name_; }

    // Called on the thread that needs a channel (first get on that thread).
    virtual std::unique_ptr<IoChannel> create_channel() = 0;

    // On a reactor thread: the calling thread's channel, created on first use.
    IoChannel* get_channel();
    template <typename C>
    C* get_channel_as() {
        return static_cast<C*>(get_channel());
    }
    // On the channel's thread. The last put destroys the channel from a message, so a caller
    // still inside a callback of the channel is safe.
    static void put_channel(IoChannel* ch);

    // Runs fn(channel, next) on every channel of this device, each on its own thread, one
    // after another; fn calls next(status) when done with that channel (possibly later). A
    // non-zero status stops the walk. done(status) then runs on the calling thread.
    using ChannelFn = std::function<void(IoChannel&, std::function<void(int)> next)>;
    void for_each_channel(ChannelFn fn, std::function<void(int)> done);

    // Number of live channels across all threads (approximate from other threads).
    int live_channels() const { return live_channels_.load(std::memory_order_acquire); }

  private:
    std::string io_device_name_;
    std::atomic<int> live_channels_{0};
};

// All lightweight threads attached to reactors (control path; snapshot under a mutex).
void register_thread(Thread* t);
void unregister_thread(Thread* t);
std::vector<Thread*> all_threads();

}  // namespace nocstor
