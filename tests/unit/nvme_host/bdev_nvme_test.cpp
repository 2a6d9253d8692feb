// The nvme bdev module against the fake target: I/O through the bdev layer, an outage with
// in-flight and queued I/O completed after reconnect, fast_io_fail, controller loss
// (hot-remove), and the RPC methods.
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstring>

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "control/rpc_registry.h"
#include "fake_target.h"
#include "host_test_env.h"
#include "nvme_host/bdev_nvme.h"

namespace nocstor::control {
void register_bdev_nvme_rpcs();
}

using namespace nocstor;
using namespace nocstor::nvme_host;
using namespace nocstor::test;
using namespace std::chrono_literals;

namespace {

struct IoOp {
    IoOp(IoType t, uint64_t off, uint64_t n, std::vector<uint8_t>* b)
        : type(t), offset(off), blocks(n), buf(b) {}
    IoType type;
    uint64_t offset, blocks;
    std::vector<uint8_t>* buf;
    iovec iov{};
    IoChannel* ch = nullptr;      // held until the completion (never put with I/O outstanding)
    std::atomic<int> result{-1};  // -1 pending, 1 success, 0 failure
};

struct BdevNvmeTest : HostRuntimeTest {
    std::unique_ptr<FakeTarget> tgt;
    BdevDesc* desc = nullptr;
    std::atomic<int> removed{0};

    void SetUp() override {
        HostRuntimeTest::SetUp();
        tgt = std::make_unique<FakeTarget>();
        ASSERT_TRUE(tgt->start());
    }
    void TearDown() override {
        close_desc();
        if (bdev_nvme_exists_sync("Fake")) detach("Fake");
        tgt->stop();
        HostRuntimeTest::TearDown();
    }
    bool bdev_nvme_exists_sync(const std::string& n) {
        bool e = false;
        run_on(control, [&](auto finish) {
            e = bdev_nvme_exists(n);
            finish();
        });
        return e;
    }
    NvmeAttachOptions opts(int32_t loss, uint32_t delay, uint32_t fast) {
        NvmeAttachOptions o;
        o.name = "Fake";
        o.trid.traddr = "127.0.0.1";
        o.trid.trsvcid = std::to_string(tgt->port());
        o.trid.subnqn = tgt->options().subnqn;
        o.ctrlr_loss_timeout_sec = loss;
        o.reconnect_delay_sec = delay;
        o.fast_io_fail_timeout_sec = fast;
        return o;
    }
    std::vector<std::string> attach(const NvmeAttachOptions& o) {
        std::vector<std::string> names;
        int rc = -1;
        std::string err;
        EXPECT_TRUE(run_on(control, [&](auto finish) {
            bdev_nvme_attach(o, [&, finish](int r, std::vector<std::string> n, std::string e) {
                rc = r;
                names = std::move(n);
                err = e;
                finish();
            });
        }));
        EXPECT_EQ(rc, 0) << err;
        return names;
    }
    void detach(const std::string& name) {
        int rc = -1;
        EXPECT_TRUE(run_on(control, [&](auto finish) {
            bdev_nvme_detach(name, [&, finish](int r, std::string) {
                rc = r;
                finish();
            });
        }));
        EXPECT_EQ(rc, 0);
    }
    void open(const std::string& name) {
        int rc = -1;
        ASSERT_TRUE(run_on(control, [&](auto finish) {
            rc = bdev_open(
                name, true,
                [this](BdevEvent ev, Bdev*) {
                    if (ev == BdevEvent::Remove) {
                        ++removed;
                        bdev_close(desc);
                        desc = nullptr;
                    }
                },
                &desc);
            finish();
        }));
        ASSERT_EQ(rc, 0);
    }
    void close_desc() {
        run_on(control, [&](auto finish) {
            if (desc) bdev_close(desc);
            desc = nullptr;
            finish();
        });
    }
    // Submits on the data thread (channel got and put around it); returns at once.
    void submit(IoOp* op) {
        op->result = -1;
        op->iov = {op->buf ? op->buf->data() : nullptr, op->buf ? op->buf->size() : 0};
        BdevDesc* d = desc;
        data->send([op, d] {
            IoChannel* ch = bdev_get_io_channel(d);
            op->ch = ch;
            auto cb = [](BdevIo* io, bool ok, void* arg) {
                auto* o = static_cast<IoOp*>(arg);
                bdev_free_io(io);
                bdev_put_io_channel(o->ch);
                o->result = ok ? 1 : 0;
            };
            int rc = -1;
            switch (op->type) {
                case IoType::Read:
                    rc = bdev_readv(d, ch, &op->iov, 1, op->offset, op->blocks, cb, op);
                    break;
                case IoType::Write:
                    rc = bdev_writev(d, ch, &op->iov, 1, op->offset, op->blocks, cb, op);
                    break;
                case IoType::Flush:
                    rc = bdev_flush(d, ch, op->offset, op->blocks, cb, op);
                    break;
                case IoType::Unmap:
                    rc = bdev_unmap(d, ch, op->offset, op->blocks, cb, op);
                    break;
                case IoType::WriteZeroes:
                    rc = bdev_write_zeroes(d, ch, op->offset, op->blocks, cb, op);
                    break;
                case IoType::Reset:
                    rc = bdev_reset(d, ch, cb, op);
                    break;
                default:
                    break;
            }
            if (rc != 0) {
                bdev_put_io_channel(ch);
                op->result = 0;
            }
        });
    }
    int wait(IoOp* op, std::chrono::milliseconds limit = 10s) {
        auto end = std::chrono::steady_clock::now() + limit;
        while (op->result == -1 && std::chrono::steady_clock::now() < end)
            std::this_thread::sleep_for(5ms);
        return op->result;
    }
    std::string state() {
        std::string s;
        run_on(control, [&](auto finish) {
            auto j = bdev_nvme_get_controllers("Fake");
            s = j.empty() ? "gone" : j[0]["ctrlrs"][0]["state"].get<std::string>();
            finish();
        });
        return s;
    }
};

std::vector<uint8_t> fill(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 7);
    return v;
}

}  // namespace

TEST_F(BdevNvmeTest, AttachCreatesBdevAndEveryIoTypeWorks) {
    auto names = attach(opts(0, 0, 0));
    ASSERT_EQ(names, std::vector<std::string>{"Faken1"});
    Bdev* b = bdev_get_by_name("Faken1");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->block_size, 512u);
    EXPECT_EQ(b->num_blocks, 8192u);
    EXPECT_EQ(b->uuid[0], 0x10);  // the namespace's UUID descriptor
    EXPECT_EQ(b->module->name(), "nvme");
    EXPECT_TRUE(b->io_type_supported(IoType::Unmap));
    open("Faken1");
    auto w = fill(256 * 1024, 3);  // larger than MDTS (128 KiB): the bdev layer splits it
    IoOp wr{IoType::Write, 64, 512, &w};
    submit(&wr);
    ASSERT_EQ(wait(&wr), 1);
    EXPECT_EQ(tgt->read_blocks(64, 512), w);
    std::vector<uint8_t> r(256 * 1024);
    IoOp rd{IoType::Read, 64, 512, &r};
    submit(&rd);
    ASSERT_EQ(wait(&rd), 1);
    EXPECT_EQ(r, w);
    IoOp wz{IoType::WriteZeroes, 64, 16, nullptr};
    submit(&wz);
    ASSERT_EQ(wait(&wz), 1);
    EXPECT_EQ(tgt->read_blocks(64, 16), std::vector<uint8_t>(16 * 512, 0));
    IoOp um{IoType::Unmap, 80, 16, nullptr};
    submit(&um);
    ASSERT_EQ(wait(&um), 1);
    EXPECT_EQ(tgt->read_blocks(80, 16), std::vector<uint8_t>(16 * 512, 0));
    IoOp fl{IoType::Flush, 0, 8192, nullptr};
    submit(&fl);
    ASSERT_EQ(wait(&fl), 1);
    const uint64_t connects = tgt->connects;
    IoOp rs{IoType::Reset, 0, 0, nullptr};
    submit(&rs);
    ASSERT_EQ(wait(&rs), 1);
    EXPECT_GT(tgt->connects.load(), connects);  // a reset reconnects admin + I/O queue
    IoOp rd2{IoType::Read, 96, 512, &r};
    submit(&rd2);
    ASSERT_EQ(wait(&rd2), 1);
}

TEST_F(BdevNvmeTest, OutageQueuesIoAndCompletesItAfterReconnect) {
    attach(opts(-1, 1, 0));
    open("Faken1");
    // In flight when the target dies: never answered, then retried on the new connection.
    tgt->hold_io = true;
    auto a = fill(4096, 1);
    IoOp inflight{IoType::Write, 0, 8, &a};
    submit(&inflight);
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(inflight.result, -1);
    tgt->stop();
    tgt->hold_io = false;
    // Submitted during the outage: queued.
    auto b = fill(65536, 9);
    IoOp queued{IoType::Write, 200, 128, &b};
    submit(&queued);
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(state(), "resetting");
    EXPECT_EQ(inflight.result, -1) << "in-flight I/O must not fail or succeed during the outage";
    EXPECT_EQ(queued.result, -1) << "queued I/O must wait for the reconnect";
    ASSERT_TRUE(tgt->start());
    EXPECT_EQ(wait(&inflight, 8s), 1);
    EXPECT_EQ(wait(&queued, 8s), 1);
    EXPECT_EQ(tgt->read_blocks(0, 8), a);
    EXPECT_EQ(tgt->read_blocks(200, 128), b);
    EXPECT_EQ(state(), "enabled");
}

TEST_F(BdevNvmeTest, FastIoFailThenControllerLossRemovesBdev) {
    attach(opts(4, 1, 2));
    open("Faken1");
    tgt->stop();
    std::vector<uint8_t> r(4096);
    IoOp rd{IoType::Read, 0, 8, &r};
    auto t0 = std::chrono::steady_clock::now();
    submit(&rd);
    EXPECT_EQ(wait(&rd, 6s), 0);  // failed after fast_io_fail_timeout_sec
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_GE(ms, 1700);
    EXPECT_LT(ms, 3500);
    IoOp again{IoType::Read, 0, 8, &r};
    submit(&again);
    EXPECT_EQ(wait(&again, 1s), 0);  // fails at once now
    // After ctrlr_loss_timeout_sec the bdev is hot-removed and the controller deleted.
    auto end = std::chrono::steady_clock::now() + 8s;
    while (removed == 0 && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(20ms);
    EXPECT_EQ(removed.load(), 1);
    end = std::chrono::steady_clock::now() + 5s;
    while (bdev_nvme_exists_sync("Fake") && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(bdev_nvme_exists_sync("Fake"));
    EXPECT_EQ(bdev_get_by_name("Faken1"), nullptr);
}

TEST_F(BdevNvmeTest, NoRetryWhenLossTimeoutIsZero) {
    attach(opts(0, 0, 0));
    open("Faken1");
    tgt->stop();
    std::vector<uint8_t> r(4096);
    IoOp rd{IoType::Read, 0, 8, &r};
    submit(&rd);
    EXPECT_EQ(wait(&rd, 5s), 0);  // aborted when the controller is removed
    auto end = std::chrono::steady_clock::now() + 5s;
    while (bdev_nvme_exists_sync("Fake") && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(bdev_nvme_exists_sync("Fake"));
    EXPECT_EQ(removed.load(), 1);
}

TEST_F(BdevNvmeTest, Rpcs) {
    control::register_bdev_nvme_rpcs();
    auto call = [&](const std::string& m, nlohmann::json p) {
        std::pair<bool, nlohmann::json> out;
        run_on(control, [&](auto finish) {
            control::RpcRegistry::instance().call(
                m, p, control::RpcReply([&, finish](bool ok, nlohmann::json v) {
                    out = {ok, v};
                    finish();
                }));
        });
        return out;
    };
    const std::string port = std::to_string(tgt->port());
    nlohmann::json good = {{"name", "Fake"},
                           {"trtype", "tcp"},
                           {"adrfam", "IPv4"},
                           {"traddr", "127.0.0.1"},
                           {"trsvcid", port},
                           {"subnqn", tgt->options().subnqn},
                           {"hdgst", true},
                           {"ddgst", true},
                           {"reconnect_delay_sec", 1},
                           {"ctrlr_loss_timeout_sec", -1}};
    auto bad = good;
    bad["bogus"] = 1;
    auto r = call("bdev_nvme_attach_controller", bad);
    EXPECT_FALSE(r.first);
    EXPECT_NE(r.second["message"].get<std::string>().find("bogus"), std::string::npos);
    bad = good;
    bad["ctrlr_loss_timeout_sec"] = -2;
    EXPECT_FALSE(call("bdev_nvme_attach_controller", bad).first);
    bad = good;
    bad["reconnect_delay_sec"] = 0;
    r = call("bdev_nvme_attach_controller", bad);
    EXPECT_FALSE(r.first);
    EXPECT_NE(r.second["message"].get<std::string>().find("reconnect_delay_sec"),
              std::string::npos);
    bad = good;
    bad["adrfam"] = "IPv5";
    EXPECT_FALSE(call("bdev_nvme_attach_controller", bad).first);
    bad = good;
    bad.erase("traddr");
    EXPECT_FALSE(call("bdev_nvme_attach_controller", bad).first);

    r = call("bdev_nvme_attach_controller", good);
    ASSERT_TRUE(r.first) << r.second.dump();
    EXPECT_EQ(r.second, nlohmann::json::array({"Faken1"}));
    EXPECT_TRUE(tgt->saw_hdgst);
    EXPECT_FALSE(call("bdev_nvme_attach_controller", good).first);  // duplicate name
    r = call("bdev_nvme_get_controllers", {{"name", "Fake"}});
    ASSERT_TRUE(r.first);
    EXPECT_EQ(r.second[0]["ctrlrs"][0]["state"], "enabled");
    EXPECT_EQ(r.second[0]["ctrlrs"][0]["trid"]["trsvcid"], port);
    EXPECT_FALSE(call("bdev_nvme_get_controllers", {{"name", "Nope"}}).first);
    nlohmann::json cfg;
    run_on(control, [&](auto finish) {
        cfg = bdev_nvme_config_json();
        finish();
    });
    ASSERT_EQ(cfg.size(), 1u);
    EXPECT_EQ(cfg[0]["method"], "bdev_nvme_attach_controller");
    EXPECT_EQ(cfg[0]["params"]["ctrlr_loss_timeout_sec"], -1);
    EXPECT_EQ(cfg[0]["params"]["hdgst"], true);
    r = call("bdev_nvme_detach_controller", {{"name", "Fake"}});
    EXPECT_TRUE(r.first) << r.second.dump();
    EXPECT_EQ(bdev_get_by_name("Faken1"), nullptr);
    EXPECT_FALSE(call("bdev_nvme_detach_controller", {{"name", "Fake"}}).first);
    EXPECT_GE(tgt->shutdowns.load(), 1u);  // detach shuts the controller down (CC.SHN)
}
