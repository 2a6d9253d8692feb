#include "runtime/poll_until.h"

#include "runtime/thread.h"

#include <memory>

namespace nocstor {

void poll_until(std::function<bool()> ready, std::function<void()> then, std::string name,
                uint64_t period_us) {
    if (ready()) return then();
    struct Wait {
        Poller* poller = nullptr;
        std::function<bool()> ready;
        std::function<void()> then;
    };
    auto w = std::make_shared<Wait>();
    w->ready = std::move(ready);
    w->then = std::move(then);
    Thread* t = Thread::current();
    w->poller = t->register_poller(
        std::move(name),
        [w, t] {
            if (!w->ready()) return 0;
            auto then = std::move(w->then);
            t->unregister_poller(w->poller);  // may destroy this lambda: only locals from here
            then();
            return 1;
        },
        period_us);
}

}  // namespace nocstor
