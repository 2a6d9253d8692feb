// In-process NVMe/TCP target for tests: a Runtime (control + 2 data reactors, unpinned), a malloc
// bdev, an NvmfTarget with one subsystem listening on 127.0.0.1, and helpers to run control
// operations synchronously from the test thread.
#pragma once

#include <gtest/gtest.h>
#include <cstdlib>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "modules/builtin.h"
#include "modules/malloc.h"
#include "nvmf/spec.h"
#include "nvmf/target.h"
#include "runtime/runtime.h"

namespace nocstor::nvmf::testing {

inline constexpr char kTestNqn[] = "nqn.2024-01.io.nocstor:vol1";
inline constexpr char kTestHostNqn[] =
    "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";

struct TargetEnvOptions {
    uint16_t port = 0;  // 0: any free port
    uint64_t bdev_bytes = 64ull << 20;
    uint32_t block_size = 512;
    bool allow_any_host = true;
    int data_threads = 2;
    // NOCSTOR_TEST_SOCK_IMPL=uring runs the same suites over the io_uring socket driver
    // (ctest's integration_uring does).
    SockImpl sock_impl = sock_impl_from_env();
    uint32_t icreq_timeout_ms = 5'000;
    uint32_t connect_timeout_ms = 10'000;
    uint32_t max_unconnected = 256;

    static SockImpl sock_impl_from_env() {
        SockImpl s = SockImpl::kPosix;
        if (const char* e = std::getenv("NOCSTOR_TEST_SOCK_IMPL")) parse_sock_impl(e, &s);
        return s;
    }
};

class TargetEnv {
  public:
    explicit TargetEnv(TargetEnvOptions o = {}) : opts_(o) {
        RuntimeOptions ro;
        std::vector<int> cores(static_cast<size_t>(o.data_threads), 0);
        ro.clusters = {{0, ClusterSpec::Role::Control, {0}}, {1, ClusterSpec::Role::Data, cores}};
        ro.reactor.pin = false;
        ro.reactor.idle_sleep_us = 200;
        rt_ = std::make_unique<Runtime>(ro);
        std::promise<void> started;
        rt_->start([&] { started.set_value(); });
        started.get_future().wait();
        run([this] {
            register_builtin_bdev_modules();
            std::string err;
            EXPECT_TRUE(bdev_modules_init(&err)) << err;
            MallocBdevOptions m;
            m.name = "Malloc0";
            m.block_size = opts_.block_size;
            m.num_blocks = opts_.bdev_bytes / opts_.block_size;
            EXPECT_EQ(malloc_bdev_create(m, &err), 0) << err;
        });
        target_ = std::make_unique<NvmfTarget>(
            NvmfTargetOptions{.pool_of = {},
                              .buffers = {.small_count = 512, .large_count = 64},
                              .threads = {},
                              .sock_impl = o.sock_impl,
                              .icreq_timeout_ms = o.icreq_timeout_ms,
                              .connect_timeout_ms = o.connect_timeout_ms,
                              .max_unconnected = o.max_unconnected});
        wait_async([this](std::function<void()> d) { target_->start(std::move(d)); });
        SubsystemParams sp;
        sp.nqn = kTestNqn;
        sp.allow_any_host = o.allow_any_host;
        EXPECT_EQ(call([&](DoneFn d) { target_->create_subsystem(sp, d); }), 0);
        EXPECT_EQ(add_ns("Malloc0"), 1u);
        EXPECT_EQ(call([&](DoneFn d) {
                      target_->add_listener(kTestNqn, ListenAddress{"127.0.0.1", o.port}, d);
                  }),
                  0);
        port_ = o.port;
        run([this] { port_ = target_->bound_port(ListenAddress{"127.0.0.1", opts_.port}); });
        // Port 0 binds an ephemeral port: the key is the requested address.
        EXPECT_EQ(call([&](DoneFn d) {
                      target_->add_listener(::nocstor::nvme::kDiscoveryNqn,
                                            ListenAddress{"127.0.0.1", opts_.port}, d);
                  }),
                  0);
    }

    ~TargetEnv() {
        wait_async([this](std::function<void()> d) { target_->shutdown(std::move(d)); });
        wait_async([](std::function<void()> d) { bdev_layer_fini(std::move(d)); });
        run([this] { target_.reset(); });
        rt_->request_shutdown();
        rt_->wait();
    }

    NvmfTarget& target() { return *target_; }
    // The target's statistics, gathered from every poll group.
    TargetStats stats() {
        std::promise<TargetStats> p;
        rt_->control_thread()->send(
            [&] { target_->get_stats([&](TargetStats s) { p.set_value(s); }); });
        return p.get_future().get();
    }
    uint16_t port() const { return port_; }

    // Runs fn on the control thread and waits.
    void run(std::function<void()> fn) {
        std::promise<void> p;
        rt_->control_thread()->send([&] {
            fn();
            p.set_value();
        });
        p.get_future().wait();
    }
    void wait_async(std::function<void(std::function<void()>)> fn) {
        std::promise<void> p;
        rt_->control_thread()->send([&] { fn([&] { p.set_value(); }); });
        p.get_future().wait();
    }
    int call(std::function<void(DoneFn)> fn) {
        std::promise<int> p;
        rt_->control_thread()->send([&] {
            fn([&](int rc, std::string err) {
                if (rc) ADD_FAILURE() << "rc " << rc << ": " << err;
                p.set_value(rc);
            });
        });
        return p.get_future().get();
    }
    int call_quiet(std::function<void(DoneFn)> fn) {
        std::promise<int> p;
        rt_->control_thread()->send([&] { fn([&](int rc, std::string) { p.set_value(rc); }); });
        return p.get_future().get();
    }
    uint32_t add_ns(const std::string& bdev, uint32_t nsid = 0) {
        std::promise<uint32_t> p;
        rt_->control_thread()->send([&] {
            target_->add_namespace(kTestNqn, NamespaceParams{bdev, nsid, {}},
                                   [&](int rc, std::string err, uint32_t id) {
                                       if (rc) ADD_FAILURE() << err;
                                       p.set_value(id);
                                   });
        });
        return p.get_future().get();
    }
    int create_malloc(const std::string& name, uint64_t blocks) {
        int rc = 0;
        run([&] {
            MallocBdevOptions m;
            m.name = name;
            m.block_size = opts_.block_size;
            m.num_blocks = blocks;
            std::string err;
            rc = malloc_bdev_create(m, &err);
        });
        return rc;
    }

  private:
    TargetEnvOptions opts_;
    std::unique_ptr<Runtime> rt_;
    std::unique_ptr<NvmfTarget> target_;
    uint16_t port_ = 0;
};

}  // namespace nocstor::nvmf::testing
