#include "runtime/io_channel.h"

#include "util/log.h"

#include <algorithm>
#include <cassert>
#include <mutex>

namespace nocstor {

namespace {
std::mutex& registry_mutex() {
    static std::mutex mu;
    return mu;
}
std::vector<Thread*>& registry() {
    static std::vector<Thread*> threads;
    return threads;
}
}  // namespace

void register_thread(Thread* t) {
    std::lock_guard lock(registry_mutex());
    registry().push_back(t);
}

void unregister_thread(Thread* t) {
    std::lock_guard lock(registry_mutex());
    auto& r = registry();
    r.erase(std::remove(r.begin(), r.end(), t), r.end());
}

std::vector<Thread*> all_threads() {
    std::lock_guard lock(registry_mutex());
    return registry();
}

IoChannel* IoDevice::get_channel() {
    Thread* t = Thread::current();
    assert(t && "get_channel() must run on a reactor thread");
    for (IoChannel* ch : t->channels()) {
        if (ch->device_ == this) {
            ++ch->refs_;
            ch->destroy_pending = false;
            return ch;
        }
    }
    std::unique_ptr<IoChannel> ch = create_channel();
    if (!ch) return nullptr;
    ch->device_ = this;
    ch->thread_ = t;
    ch->refs_ = 1;
    t->channels().push_back(ch.get());
    live_channels_.fetch_add(1, std::memory_order_acq_rel);
    return ch.release();
}

void IoDevice::put_channel(IoChannel* ch) {
    assert(ch->refs_ > 0);
    if (--ch->refs_ > 0) return;
    if (ch->destroy_pending) return;
    ch->destroy_pending = true;
    Thread* t = ch->thread_;
    // Deferred: the caller may still be inside a callback that belongs to this channel.
    // A channel put, got again and put again before the first message ran has two messages on
    // their way: the first destroys it, so each one looks it up in the thread's list before
    // touching it (one that finds a new channel at the same address destroys it only if that
    // one waits for destruction too, which its own message would have done).
    t->send([ch, t] {
        auto& v = t->channels();
        auto it = std::find(v.begin(), v.end(), ch);
        if (it == v.end()) return;                          // destroyed by an earlier message
        if (ch->refs_ > 0 || !ch->destroy_pending) return;  // re-acquired meanwhile
        v.erase(it);
        IoDevice* dev = ch->device_;
        delete ch;
        dev->live_channels_.fetch_sub(1, std::memory_order_acq_rel);
    });
}

namespace {
struct ChannelWalk {
    IoDevice* device;
    IoDevice::ChannelFn fn;
    std::function<void(int)> done;
    Thread* origin;
    std::vector<Thread*> threads;
    size_t next = 0;
};

void walk_step(std::shared_ptr<ChannelWalk> w, int status);

void finish_walk(std::shared_ptr<ChannelWalk> w, int status) {
    auto finish = [w, status] { w->done(status); };
    if (w->origin) {
        w->origin->send(std::move(finish));
    } else {
        finish();
    }
}

void walk_step(std::shared_ptr<ChannelWalk> w, int status) {
    if (status != 0 || w->next >= w->threads.size()) {
        finish_walk(std::move(w), status);
        return;
    }
    Thread* t = w->threads[w->next++];
    t->send([w, t]() mutable {
        IoChannel* found = nullptr;
        for (IoChannel* ch : t->channels())
            if (ch->device() == w->device && ch->refs() > 0) found = ch;
        if (!found) {
            walk_step(std::move(w), 0);
            return;
        }
        w->fn(*found, [w](int st) mutable { walk_step(std::move(w), st); });
    });
}
}  // namespace

void IoDevice::for_each_channel(ChannelFn fn, std::function<void(int)> done) {
    auto w = std::make_shared<ChannelWalk>();
    w->device = this;
    w->fn = std::move(fn);
    w->done = std::move(done);
    w->origin = Thread::current();
    w->threads = all_threads();
    walk_step(std::move(w), 0);
}

}  // namespace nocstor
