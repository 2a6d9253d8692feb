// Shared fixture for the initiator tests: a runtime (control + one data reactor, unpinned) and
// helpers that run code on a reactor thread and wait for it with a bound.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>

#include "runtime/runtime.h"

namespace nocstor::test {

struct HostRuntimeTest : ::testing::Test {
    std::unique_ptr<Runtime> rt;
    Thread* data = nullptr;
    Thread* control = nullptr;

    void SetUp() override {
        RuntimeOptions o;
        o.clusters = {{0, ClusterSpec::Role::Control, {0}}, {1, ClusterSpec::Role::Data, {0}}};
        o.reactor.pin = false;
        o.reactor.idle_sleep_us = 100;
        rt = std::make_unique<Runtime>(o);
        rt->start();
        data = rt->data_threads()[0];
        control = rt->control_thread();
    }
    void TearDown() override {
        rt->request_shutdown();
        rt->wait();
        rt.reset();
    }
    // Runs fn on thread t; fn calls finish() when its asynchronous work is over. False on timeout.
    bool run_on(Thread* t, std::function<void(std::function<void()> finish)> fn,
                std::chrono::milliseconds limit = std::chrono::seconds(15)) {
        auto p = std::make_shared<std::promise<void>>();
        auto fut = p->get_future();
        auto shared = std::make_shared<std::function<void(std::function<void()>)>>(std::move(fn));
        t->send([shared, p] { (*shared)([p] { p->set_value(); }); });
        return fut.wait_for(limit) == std::future_status::ready;
    }
};

}  // namespace nocstor::test
