// Waiting on a reactor thread without blocking it: "once nothing is in flight, do this".
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace nocstor {

// Runs then() on the calling reactor thread once ready() holds: at once if it already does,
// else from a poller that checks it every period_us and unregisters itself before then() runs.
void poll_until(std::function<bool()> ready, std::function<void()> then, std::string name,
                uint64_t period_us = 100);

}  // namespace nocstor
