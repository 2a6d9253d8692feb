// The bdev layer on real reactors, with a small RAM bdev defined here whose behaviour the tests
// steer (asynchronous completion, NoMemory, holding I/O for reset and hot-remove).
#include "bdev/bdev.h"
#include "bdev/bdev_channel.h"
#include "bdev/bdev_module.h"
#include "runtime/runtime.h"
#include "util/tick.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>
#include <vector>

using namespace nocstor;
using namespace std::chrono_literals;

namespace {

BdevModule g_test_module("test_ram");

struct RamChannel : IoChannel {
    BdevIoQueue held;
};

struct RamBdev : Bdev {
    std::vector<uint8_t> data;
    std::atomic<int> nomem_left{0};
    std::atomic<bool> nvme_error_next{false};  // the next I/O fails with NVMe status 0/0x81
    std::atomic<bool> hold{false};             // keep I/O until release() / reset
    std::atomic<int> submitted{0};
    std::atomic<int> max_blocks_seen{0};
    int max_iovcnt_seen = 0;
    std::atomic<int> crossed_boundary{0};  // I/Os that reached it across optimal_io_boundary
    std::atomic<bool> zeroes_native{true};
    std::atomic<int> destructed{0};

    RamBdev(std::string n, uint32_t bs, uint64_t blocks) : Bdev(std::move(n), &g_test_module) {
        block_size = bs;
        num_blocks = blocks;
        product_name = "test ram";
        data.assign(bs * blocks, 0);
    }
    bool io_type_supported(IoType t) const override {
        if (t == IoType::WriteZeroes) return zeroes_native.load();
        return true;
    }
    std::unique_ptr<IoChannel> create_channel() override { return std::make_unique<RamChannel>(); }
    void destruct(std::function<void()> done) override {
        destructed++;
        done();
    }
    void execute(BdevIo* io) {
        uint8_t* p = data.data() + io->offset_blocks * block_size;
        switch (io->type) {
            case IoType::Read:
                for (int i = 0; i < io->iovcnt; ++i) {
                    memcpy(io->iovs[i].iov_base, p, io->iovs[i].iov_len);
                    p += io->iovs[i].iov_len;
                }
                break;
            case IoType::Write:
                for (int i = 0; i < io->iovcnt; ++i) {
                    memcpy(p, io->iovs[i].iov_base, io->iovs[i].iov_len);
                    p += io->iovs[i].iov_len;
                }
                break;
            case IoType::WriteZeroes:
            case IoType::Unmap:
                memset(p, 0, io->num_blocks * block_size);
                break;
            default:
                break;
        }
        bdev_io_complete(io, IoStatus::Success);
    }
    void submit_request(IoChannel* ch, BdevIo* io) override {
        submitted++;
        if (int(io->num_blocks) > max_blocks_seen) max_blocks_seen = int(io->num_blocks);
        if (io->iovcnt > max_iovcnt_seen) max_iovcnt_seen = io->iovcnt;
        if (optimal_io_boundary && io->num_blocks &&
            io->offset_blocks / optimal_io_boundary !=
                (io->offset_blocks + io->num_blocks - 1) / optimal_io_boundary)
            crossed_boundary++;
        auto* rc = static_cast<RamChannel*>(ch);
        if (io->type == IoType::Reset) {
            // Abort what is held on this channel, then succeed.
            while (BdevIo* h = rc->held.pop()) bdev_io_complete(h, IoStatus::Aborted);
            bdev_io_complete(io, IoStatus::Success);
            return;
        }
        if (nvme_error_next.exchange(false)) {
            bdev_io_complete_nvme(io, 0, 0x81);
            return;
        }
        if (nomem_left.load() > 0) {
            nomem_left--;
            bdev_io_complete(io, IoStatus::NoMemory);
            return;
        }
        if (hold) {
            rc->held.push(io);
            return;
        }
        execute(io);
    }
};

// One data reactor; tests run their body on it and wait for the result.
struct BdevLayerTest : ::testing::Test {
    std::unique_ptr<Runtime> rt;
    Thread* data = nullptr;
    void SetUp() override {
        RuntimeOptions o;
        o.clusters = {{0, ClusterSpec::Role::Control, {0}}, {1, ClusterSpec::Role::Data, {0}}};
        o.reactor.pin = false;
        o.reactor.idle_sleep_us = 100;
        rt = std::make_unique<Runtime>(o);
        rt->start();
        data = rt->data_threads()[0];
    }
    void TearDown() override {
        rt->request_shutdown();
        rt->wait();
        rt.reset();
    }
    // Runs fn on the data thread; fn calls finish() when its asynchronous work is over.
    void run(std::function<void(std::function<void()> finish)> fn) {
        std::promise<void> p;
        auto fut = p.get_future();
        auto shared = std::make_shared<std::function<void(std::function<void()>)>>(std::move(fn));
        data->send([shared, &p] { (*shared)([&p] { p.set_value(); }); });
        ASSERT_EQ(fut.wait_for(10s), std::future_status::ready) << "test body did not finish";
    }
    RamBdev* make_bdev(const std::string& name, uint32_t bs, uint64_t blocks) {
        auto b = std::make_unique<RamBdev>(name, bs, blocks);
        RamBdev* raw = b.get();
        EXPECT_EQ(bdev_register(std::move(b)), 0);
        return raw;
    }
    // The bdev's statistics, fetched on the control thread.
    BdevStats stats_of(Bdev* b) {
        BdevStats out;
        std::promise<void> p;
        rt->control_thread()->send([b, &out, &p] {
            bdev_get_stats(b, [&out, &p](const BdevStats& s) {
                out = s;
                p.set_value();
            });
        });
        EXPECT_EQ(p.get_future().wait_for(10s), std::future_status::ready);
        return out;
    }
    void unregister(Bdev* b) {
        std::promise<int> p;
        auto fut = p.get_future();
        rt->control_thread()->send(
            [b, &p] { bdev_unregister(b, [&p](int rc) { p.set_value(rc); }); });
        ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
        EXPECT_EQ(fut.get(), 0);
    }
};

struct IoResult {
    std::atomic<int> done{0};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    IoStatus last = IoStatus::Pending;
};

void count_cb(BdevIo* io, bool success, void* arg) {
    auto* r = static_cast<IoResult*>(arg);
    r->last = io->status;
    (success ? r->ok : r->failed)++;
    r->done++;
    bdev_free_io(io);
}

// Re-checks pred from successive messages on the current thread, then runs then().
void poll_until(std::function<bool()> pred, std::function<void()> then) {
    if (!pred()) {
        Thread::current()->send([pred = std::make_shared<std::function<bool()>>(std::move(pred)),
                                 then = std::make_shared<std::function<void()>>(std::move(then))] {
            poll_until(*pred, *then);
        });
        return;
    }
    then();
}

}  // namespace

TEST_F(BdevLayerTest, RegistryRejectsDuplicatesAndBadGeometry) {
    RamBdev* b = make_bdev("dup0", 512, 64);
    EXPECT_EQ(bdev_register(std::make_unique<RamBdev>("dup0", 512, 64)), -EEXIST);
    EXPECT_EQ(bdev_register(std::make_unique<RamBdev>("zero", 512, 0)), -EINVAL);
    EXPECT_EQ(bdev_get_by_name("dup0"), b);
    BdevDesc* d = nullptr;
    EXPECT_EQ(bdev_open("missing", false, nullptr, &d), -ENODEV);
    EXPECT_EQ(bdev_claim(b, &g_test_module), 0);
    EXPECT_EQ(bdev_claim(b, &g_test_module), -EPERM);
    EXPECT_EQ(bdev_open("dup0", true, nullptr, &d), -EPERM);  // claimed: no other writer
    bdev_release_claim(b);
    unregister(b);
    EXPECT_EQ(bdev_get_by_name("dup0"), nullptr);
}

// Boundaries: a power of two (the layer masks) and not one (it divides).
class SplitTest : public BdevLayerTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(SplitTest, WriteReadVerifyWithRandomIovecShapesAndSplitting) {
    RamBdev* b = make_bdev("split0", 512, 4096);
    b->optimal_io_boundary = GetParam();
    b->max_transfer_blocks = 24;
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("split0", true, nullptr, &d), 0);
    std::atomic<int> mismatches{0}, errors{0};
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        struct State {
            std::mt19937 rng{42};
            std::vector<uint8_t> wbuf, rbuf;
            std::vector<iovec> iov;
            int round = 0;
        };
        auto st = std::make_shared<State>();
        auto step = std::make_shared<std::function<void()>>();
        *step = [=, &mismatches, &errors]() {
            if (st->round++ == 200) {
                bdev_put_io_channel(ch);
                auto done = finish;  // this closure dies with *step
                *step = nullptr;
                done();
                return;
            }
            uint64_t nblocks = 1 + st->rng() % 200;
            uint64_t off = st->rng() % (4096 - nblocks);
            size_t len = nblocks * 512;
            st->wbuf.resize(len);
            for (auto& c : st->wbuf) c = uint8_t(st->rng());
            // Random iovec shape: 1..12 pieces with arbitrary (not block aligned) cuts.
            auto shape = [st](std::vector<uint8_t>& buf) {
                size_t len = buf.size();
                st->iov.clear();
                size_t pos = 0;
                int pieces = 1 + int(st->rng() % 12);
                for (int i = 0; i < pieces && pos < len; ++i) {
                    size_t n = i == pieces - 1 ? len - pos : 1 + st->rng() % (len - pos);
                    st->iov.push_back({buf.data() + pos, n});
                    pos += n;
                }
                if (pos < len) st->iov.push_back({buf.data() + pos, len - pos});
            };
            shape(st->wbuf);
            struct Ctx {
                std::shared_ptr<State> st;
                std::shared_ptr<std::function<void()>> step;
                uint64_t off, nblocks;
                IoChannel* ch;
                BdevDesc* d;
                std::atomic<int>* mismatches;
                std::atomic<int>* errors;
                std::function<void(std::vector<uint8_t>&)> shape;
            };
            auto* c = new Ctx{st, step, off, nblocks, ch, d, &mismatches, &errors, shape};
            int rc = bdev_writev(
                d, ch, st->iov.data(), int(st->iov.size()), off, nblocks,
                [](BdevIo* io, bool ok, void* arg) {
                    auto* c = static_cast<Ctx*>(arg);
                    bdev_free_io(io);
                    if (!ok) (*c->errors)++;
                    c->st->rbuf.assign(c->st->wbuf.size(), 0xEE);
                    c->shape(c->st->rbuf);
                    int rc = bdev_readv(
                        c->d, c->ch, c->st->iov.data(), int(c->st->iov.size()), c->off, c->nblocks,
                        [](BdevIo* io, bool ok, void* arg) {
                            auto* c = static_cast<Ctx*>(arg);
                            bdev_free_io(io);
                            if (!ok) (*c->errors)++;
                            if (c->st->rbuf != c->st->wbuf) (*c->mismatches)++;
                            auto step = c->step;
                            delete c;
                            (*step)();
                        },
                        c);
                    if (rc) {
                        (*c->errors)++;
                        auto step = c->step;
                        delete c;
                        (*step)();
                    }
                },
                c);
            if (rc) {
                errors++;
                delete c;
                (*step)();
            }
        };
        (*step)();
    });
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(mismatches.load(), 0);
    // Every I/O that reached the module respected both limits.
    EXPECT_LE(b->max_blocks_seen.load(), 24);
    EXPECT_EQ(b->crossed_boundary.load(), 0);
    bdev_close(d);
    unregister(b);
}

INSTANTIATE_TEST_SUITE_P(Boundaries, SplitTest, ::testing::Values(64u, 48u));

// A bdev that takes at most 4 iovecs per I/O gets a 40-piece write and read as several
// children, each within the limit, and the data is whole.
TEST_F(BdevLayerTest, MaxNumSegmentsSplitsIoWithManyIovecs) {
    RamBdev* b = make_bdev("segs0", 512, 1024);
    b->max_num_segments = 4;
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("segs0", true, nullptr, &d), 0);
    std::vector<uint8_t> wbuf(40 * 1024), rbuf(40 * 1024);
    for (size_t i = 0; i < wbuf.size(); ++i) wbuf[i] = uint8_t(i * 7 + 3);
    // 40 pieces of 1 KiB (two blocks each) and a last odd cut inside a block.
    auto pieces = [](std::vector<uint8_t>& buf) {
        std::vector<iovec> v;
        for (size_t off = 0; off < buf.size(); off += 1024) v.push_back({buf.data() + off, 1024});
        v[38].iov_len = 700;
        v[39].iov_base = static_cast<uint8_t*>(v[39].iov_base) - 324;
        v[39].iov_len = 1024 + 324;
        return v;
    };
    auto wiov = pieces(wbuf), riov = pieces(rbuf);
    std::atomic<int> ok{0};
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        struct Ctx {
            IoChannel* ch;
            BdevDesc* d;
            std::vector<iovec>* riov;
            std::atomic<int>* ok;
            std::function<void()> finish;
        };
        auto* c = new Ctx{ch, d, &riov, &ok, finish};
        ASSERT_EQ(bdev_writev(
                      d, ch, wiov.data(), int(wiov.size()), 8, 80,
                      [](BdevIo* io, bool success, void* arg) {
                          bdev_free_io(io);
                          auto* c = static_cast<Ctx*>(arg);
                          if (success) ++*c->ok;
                          EXPECT_EQ(bdev_readv(
                                        c->d, c->ch, c->riov->data(), int(c->riov->size()), 8, 80,
                                        [](BdevIo* io, bool success, void* arg) {
                                            bdev_free_io(io);
                                            auto* c = static_cast<Ctx*>(arg);
                                            if (success) ++*c->ok;
                                            bdev_put_io_channel(c->ch);
                                            auto f = c->finish;
                                            delete c;
                                            f();
                                        },
                                        c),
                                    0);
                      },
                      c),
                  0);
    });
    EXPECT_EQ(ok.load(), 2);
    EXPECT_EQ(rbuf, wbuf);
    EXPECT_LE(b->max_iovcnt_seen, 4);
    EXPECT_GE(b->submitted.load(), 20);
    bdev_close(d);
    unregister(b);
}

TEST_F(BdevLayerTest, RejectsBadRequestsWithoutCallingBack) {
    RamBdev* b = make_bdev("bad0", 512, 128);
    BdevDesc *ro = nullptr, *rw = nullptr;
    ASSERT_EQ(bdev_open("bad0", false, nullptr, &ro), 0);
    ASSERT_EQ(bdev_open("bad0", true, nullptr, &rw), 0);
    std::vector<int> rcs;
    IoResult res;
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(rw);
        static uint8_t buf[4096];
        iovec iov{buf, 512};
        rcs.push_back(bdev_readv(rw, ch, &iov, 1, 128, 1, count_cb, &res));   // past the end
        rcs.push_back(bdev_readv(rw, ch, &iov, 1, 0, 0, count_cb, &res));     // zero length
        rcs.push_back(bdev_readv(rw, ch, &iov, 1, 0, 2, count_cb, &res));     // iov too short
        rcs.push_back(bdev_writev(ro, ch, &iov, 1, 0, 1, count_cb, &res));    // read-only desc
        rcs.push_back(bdev_readv(rw, ch, nullptr, 0, 0, 1, count_cb, &res));  // no iov
        rcs.push_back(bdev_readv(rw, ch, &iov, 1, UINT64_MAX, 1, count_cb, &res));  // overflow
        bdev_put_io_channel(ch);
        finish();
    });
    std::vector<int> want = {-EINVAL, -EINVAL, -EINVAL, -EBADF, -EINVAL, -EINVAL};
    EXPECT_EQ(rcs, want);
    EXPECT_EQ(res.done.load(), 0);
    EXPECT_EQ(b->submitted.load(), 0);
    bdev_close(ro);
    bdev_close(rw);
    unregister(b);
}

TEST_F(BdevLayerTest, NoMemoryFromModuleIsRetriedUntilSuccess) {
    RamBdev* b = make_bdev("nomem0", 512, 128);
    b->nomem_left = 5;
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("nomem0", true, nullptr, &d), 0);
    IoResult res;
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        static uint8_t buf[512];
        static iovec iov{buf, 512};
        ASSERT_EQ(bdev_writev(d, ch, &iov, 1, 3, 1, count_cb, &res), 0);
        // Poll for completion from this thread's message loop.
        poll_until([&res] { return !(res.done.load() == 0); },
                   [&res, ch, finish] {
                       bdev_put_io_channel(ch);
                       finish();
                   });
    });
    EXPECT_EQ(res.ok.load(), 1);
    EXPECT_EQ(b->nomem_left.load(), 0);
    EXPECT_EQ(b->submitted.load(), 6);  // 5 refusals + the one that went through
    bdev_close(d);
    unregister(b);
}

// Release what a holding RamBdev keeps on the calling thread's channel.
static void release_held(IoChannel* bdev_ch, RamBdev* b) {
    auto* rc = static_cast<RamChannel*>(static_cast<BdevChannel*>(bdev_ch)->module_ch);
    b->hold = false;
    while (BdevIo* io = rc->held.pop()) b->execute(io);
}

struct TinyPoolTest : BdevLayerTest {
    uint32_t saved = 0;
    void SetUp() override {
        saved = bdev_io_pool_size();
        bdev_set_io_pool_size(4);
        BdevLayerTest::SetUp();
    }
    void TearDown() override {
        BdevLayerTest::TearDown();
        bdev_set_io_pool_size(saved);
    }
};

TEST_F(TinyPoolTest, ExhaustedPoolReturnsEnomemAndWaitEntryFiresAfterFree) {
    RamBdev* b = make_bdev("tiny0", 512, 128);
    b->hold = true;
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("tiny0", true, nullptr, &d), 0);
    IoResult res;
    std::atomic<int> enomem{0}, waited{0};
    static BdevIoWaitEntry entry;
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        static uint8_t buf[512];
        static iovec iov{buf, 512};
        for (int i = 0; i < 6; ++i)
            if (bdev_readv(d, ch, &iov, 1, 0, 1, count_cb, &res) == -ENOMEM) enomem++;
        entry.cb = [](void* arg) { static_cast<std::atomic<int>*>(arg)->fetch_add(1); };
        entry.arg = &waited;
        bdev_queue_io_wait(ch, &entry);
        EXPECT_EQ(waited.load(), 0);
        release_held(ch, b);  // completions free bdev_io objects: the waiter must fire once
        poll_until([&res] { return !(res.done.load() < 4); },
                   [&res, ch, finish] {
                       bdev_put_io_channel(ch);
                       finish();
                   });
    });
    EXPECT_EQ(enomem.load(), 2);
    EXPECT_EQ(res.ok.load(), 4);
    EXPECT_EQ(waited.load(), 1);
    bdev_close(d);
    unregister(b);
}

TEST_F(TinyPoolTest, SplitIoLargerThanThePoolStillCompletes) {
    RamBdev* b = make_bdev("tinysplit", 512, 1024);
    b->max_transfer_blocks = 1;  // 64 children through a pool of 4 bdev_io
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("tinysplit", true, nullptr, &d), 0);
    IoResult res;
    static std::vector<uint8_t> buf(64 * 512, 0x5A);
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        static iovec iov{buf.data(), buf.size()};
        ASSERT_EQ(bdev_writev(d, ch, &iov, 1, 100, 64, count_cb, &res), 0);
        poll_until([&res] { return !(res.done.load() < 1); },
                   [&res, ch, finish] {
                       bdev_put_io_channel(ch);
                       finish();
                   });
    });
    EXPECT_EQ(res.ok.load(), 1);
    EXPECT_EQ(b->data[100 * 512], 0x5A);
    EXPECT_EQ(b->data[164 * 512 - 1], 0x5A);
    EXPECT_EQ(b->data[164 * 512], 0);
    bdev_close(d);
    unregister(b);
}

TEST_F(BdevLayerTest, ResetAbortsHeldIoAndCompletes) {
    RamBdev* b = make_bdev("reset0", 512, 128);
    b->hold = true;
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("reset0", true, nullptr, &d), 0);
    IoResult res, reset_res;
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        static uint8_t buf[8][512];
        static iovec iov[8];
        for (int i = 0; i < 8; ++i) {
            iov[i] = {buf[i], 512};
            ASSERT_EQ(bdev_readv(d, ch, &iov[i], 1, i, 1, count_cb, &res), 0);
        }
        ASSERT_EQ(bdev_reset(d, ch, count_cb, &reset_res), 0);
        poll_until([&] { return !(reset_res.done.load() < 1 || res.done.load() < 8); },
                   [&, ch, finish] {
                       bdev_put_io_channel(ch);
                       finish();
                   });
    });
    EXPECT_EQ(res.failed.load(), 8);
    EXPECT_EQ(res.last, IoStatus::Aborted);
    EXPECT_EQ(reset_res.ok.load(), 1);
    bdev_close(d);
    unregister(b);
}

TEST_F(BdevLayerTest, HotRemoveWithIoInFlightNotifiesHolderAndDestructsAfterClose) {
    RamBdev* b = make_bdev("hot0", 512, 128);
    b->hold = true;
    IoResult res;
    std::atomic<bool> removed_seen{false};
    struct Holder {
        BdevDesc* desc = nullptr;
        IoChannel* ch = nullptr;
    };
    static Holder h;
    h = {};
    static uint8_t buf[4][512];
    static iovec iov[4];
    // The holder lives on the data thread: open, submit, and close on the Remove event after
    // its I/O drained.
    run([&](std::function<void()> finish) {
        ASSERT_EQ(bdev_open(
                      "hot0", true,
                      [&](BdevEvent ev, Bdev* bd) {
                          if (ev != BdevEvent::Remove) return;
                          removed_seen = true;
                          release_held(h.ch, static_cast<RamBdev*>(bd));
                          // Close once the released I/O completed (next messages).
                          auto close = std::make_shared<std::function<void()>>();
                          *close = [&, close] {
                              if (res.done.load() < 4) {
                                  Thread::current()->send([close] { (*close)(); });
                                  return;
                              }
                              bdev_put_io_channel(h.ch);
                              bdev_close(h.desc);
                              *close = nullptr;
                          };
                          (*close)();
                      },
                      &h.desc),
                  0);
        h.ch = bdev_get_io_channel(h.desc);
        for (int i = 0; i < 4; ++i) {
            iov[i] = {buf[i], 512};
            ASSERT_EQ(bdev_readv(h.desc, h.ch, &iov[i], 1, i, 1, count_cb, &res), 0);
        }
        finish();
    });
    std::atomic<int> destructed_before = b->destructed.load();
    EXPECT_EQ(destructed_before.load(), 0);
    unregister(b);  // returns once the holder closed and the bdev was destructed
    EXPECT_TRUE(removed_seen.load());
    EXPECT_EQ(res.ok.load(), 4);
    EXPECT_EQ(bdev_get_by_name("hot0"), nullptr);
}

TEST_F(BdevLayerTest, WriteZeroesIsEmulatedWhenTheModuleLacksIt) {
    RamBdev* b = make_bdev("wz0", 512, 8192);
    b->zeroes_native = false;
    memset(b->data.data(), 0xFF, b->data.size());
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("wz0", true, nullptr, &d), 0);
    IoResult res;
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        // 3000 blocks = 1.5 MiB: more than the 1 MiB zero buffer, so several writes.
        ASSERT_EQ(bdev_write_zeroes(d, ch, 10, 3000, count_cb, &res), 0);
        poll_until([&res] { return !(res.done.load() < 1); },
                   [&res, ch, finish] {
                       bdev_put_io_channel(ch);
                       finish();
                   });
    });
    EXPECT_EQ(res.ok.load(), 1);
    EXPECT_EQ(b->data[10 * 512 - 1], 0xFF);
    EXPECT_EQ(b->data[10 * 512], 0);
    EXPECT_EQ(b->data[3010 * 512 - 1], 0);
    EXPECT_EQ(b->data[3010 * 512], 0xFF);
    bdev_close(d);
    unregister(b);
}

TEST_F(BdevLayerTest, StatisticsCountOpsBytesAndLatency) {
    RamBdev* b = make_bdev("stats0", 4096, 64);
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("stats0", true, nullptr, &d), 0);
    IoResult res;
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        static uint8_t buf[8192];
        static iovec iov{buf, 8192};
        for (int i = 0; i < 10; ++i)
            ASSERT_EQ(bdev_writev(d, ch, &iov, 1, 2 * i, 2, count_cb, &res), 0);
        for (int i = 0; i < 5; ++i) ASSERT_EQ(bdev_readv(d, ch, &iov, 1, 0, 2, count_cb, &res), 0);
        poll_until([&res] { return !(res.done.load() < 15); },
                   [&res, ch, finish] {
                       bdev_get_stats(
                           static_cast<BdevChannel*>(ch)->bdev, [ch, finish](const BdevStats& s) {
                               EXPECT_EQ(s.by_type[size_t(IoType::Write)].ops, 10u);
                               EXPECT_EQ(s.by_type[size_t(IoType::Write)].bytes, 10u * 8192);
                               EXPECT_EQ(s.by_type[size_t(IoType::Read)].ops, 5u);
                               EXPECT_EQ(s.latency.count(), 15u);
                               EXPECT_GT(s.by_type[size_t(IoType::Read)].latency_max_ns, 0u);
                               bdev_put_io_channel(ch);
                               finish();
                           });
                   });
    });
    bdev_close(d);
    unregister(b);
}

namespace {
// A minimal vbdev: forwards every I/O to a base bdev through its own descriptor.
struct ForwardChannel : IoChannel {
    IoChannel* base_ch = nullptr;
    ~ForwardChannel() override { bdev_put_io_channel(base_ch); }
};
std::unique_ptr<IoChannel> forward_channel(BdevDesc* base) {
    auto ch = std::make_unique<ForwardChannel>();
    ch->base_ch = bdev_get_io_channel(base);
    return ch;
}
struct ForwardBdev : Bdev {
    BdevDesc* base = nullptr;
    explicit ForwardBdev(BdevDesc* b) : Bdev("fwd0", &g_test_module), base(b) {
        block_size = b->bdev()->block_size;
        num_blocks = b->bdev()->num_blocks;
    }
    std::unique_ptr<IoChannel> create_channel() override { return forward_channel(base); }
    void submit_request(IoChannel* ch, BdevIo* io) override {
        auto* fc = static_cast<ForwardChannel*>(ch);
        int rc = bdev_readv(
            base, fc->base_ch, io->iovs, io->iovcnt, io->offset_blocks, io->num_blocks,
            [](BdevIo* bio, bool ok, void* arg) {
                bdev_free_io(bio);
                bdev_io_complete(static_cast<BdevIo*>(arg),
                                 ok ? IoStatus::Success : IoStatus::Failed);
            },
            io);
        if (rc == -ENOMEM)
            bdev_io_complete(io, IoStatus::NoMemory);
        else if (rc)
            bdev_io_complete(io, IoStatus::Failed);
    }
};

// A vbdev that shifts offsets and passes its reads and writes down with bdev_forward_io, or
// with a child I/O where the base cannot take them as they are.
struct PassBdev : Bdev {
    BdevDesc* base;
    uint64_t shift;
    std::atomic<int> forwarded{0}, back{0}, fallbacks{0};
    PassBdev(std::string n, BdevDesc* b, uint64_t s, uint32_t boundary)
        : Bdev(std::move(n), &g_test_module), base(b), shift(s) {
        block_size = b->bdev()->block_size;
        num_blocks = b->bdev()->num_blocks - s;
        optimal_io_boundary = boundary;
    }
    std::unique_ptr<IoChannel> create_channel() override { return forward_channel(base); }
    void submit_request(IoChannel* ch, BdevIo* io) override {
        auto* fc = static_cast<ForwardChannel*>(ch);
        int rc = bdev_forward_io(
            base, fc->base_ch, io, io->offset_blocks + shift,
            [](BdevIo* io, bool, void* arg) {
                static_cast<PassBdev*>(arg)->back++;
                EXPECT_EQ(io->bdev, static_cast<PassBdev*>(arg)) << "io is this level's again";
                bdev_io_complete(io, io->status);
            },
            this);
        if (rc == 0) {
            forwarded++;
            return;
        }
        EXPECT_EQ(rc, -ENOTSUP);
        fallbacks++;
        auto done = [](BdevIo* child, bool, void* arg) {
            auto* upper = static_cast<BdevIo*>(arg);
            const IoStatus st = child->status;
            upper->nvme_sct = child->nvme_sct;
            upper->nvme_sc = child->nvme_sc;
            bdev_free_io(child);
            bdev_io_complete(upper, st);
        };
        rc = io->type == IoType::Read
                 ? bdev_readv(base, fc->base_ch, io->iovs, io->iovcnt, io->offset_blocks + shift,
                              io->num_blocks, done, io)
                 : bdev_writev(base, fc->base_ch, io->iovs, io->iovcnt, io->offset_blocks + shift,
                               io->num_blocks, done, io);
        if (rc) bdev_io_complete(io, rc == -ENOMEM ? IoStatus::NoMemory : IoStatus::Failed);
    }
};

struct SmallPoolTest : BdevLayerTest {
    uint32_t saved = 0;
    void SetUp() override {
        saved = bdev_io_pool_size();
        bdev_set_io_pool_size(32);
        BdevLayerTest::SetUp();
    }
    void TearDown() override {
        BdevLayerTest::TearDown();
        bdev_set_io_pool_size(saved);
    }
};
}  // namespace

// Without a reserve, 32 reads on a vbdev would take the whole pool and each would wait forever
// for the bdev_io of its base read.
TEST_F(SmallPoolTest, AFullPoolOfVbdevIoStillReachesTheBase) {
    RamBdev* base = make_bdev("fbase", 512, 256);
    base->hold = true;  // keep the base I/O in flight until everything is submitted
    BdevDesc* bd = nullptr;
    ASSERT_EQ(bdev_open("fbase", true, nullptr, &bd), 0);
    ASSERT_EQ(bdev_claim(base, &g_test_module), 0);
    auto fwd = std::make_unique<ForwardBdev>(bd);
    ASSERT_EQ(bdev_register(std::move(fwd)), 0);
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("fwd0", false, nullptr, &d), 0);
    IoResult res;
    std::atomic<int> submitted{0};
    static uint8_t buf[64][512];
    static iovec iov[64];
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        for (int i = 0; i < 64; ++i) {
            iov[i] = {buf[i], 512};
            if (bdev_readv(d, ch, &iov[i], 1, i, 1, count_cb, &res) != 0) break;
            submitted++;
        }
        // Every accepted read reached the base (held there), none is stuck for a bdev_io.
        EXPECT_EQ(base->submitted.load(), submitted.load());
        IoChannel* base_ch = static_cast<BdevChannel*>(ch)->module_ch;
        release_held(static_cast<ForwardChannel*>(base_ch)->base_ch, base);
        poll_until([&] { return res.done.load() == submitted.load(); },
                   [ch, finish] {
                       bdev_put_io_channel(ch);
                       finish();
                   });
    });
    EXPECT_GE(submitted.load(), 15);  // each read holds two bdev_io: its own and its base read
    EXPECT_LT(submitted.load(), 32);  // the top level may not take the reserve
    EXPECT_EQ(res.ok.load(), submitted.load());
    bdev_close(d);
    Bdev* f = bdev_get_by_name("fwd0");
    unregister(f);
    bdev_release_claim(base);
    bdev_close(bd);
    unregister(base);
}

// A stacked I/O is counted in the statistics of each bdev it passes, but reads the clock only at
// the top: the base I/O takes the vbdev I/O's submission time, and the vbdev I/O completing from
// the base I/O's callback takes the base's completion time. Latencies are real nanoseconds.
TEST_F(BdevLayerTest, StackedIoCountsOnEachBdevWithSharedTimestamps) {
    RamBdev* base = make_bdev("sbase", 512, 256);
    EXPECT_EQ(base->retired_stats().latency.storage_bytes(), 0u)
        << "registering costs no histogram";
    BdevDesc* bd = nullptr;
    ASSERT_EQ(bdev_open("sbase", true, nullptr, &bd), 0);
    ASSERT_EQ(bdev_claim(base, &g_test_module), 0);
    ASSERT_EQ(bdev_register(std::make_unique<ForwardBdev>(bd)), 0);
    Bdev* fwd = bdev_get_by_name("fwd0");
    BdevDesc* d = nullptr;
    ASSERT_EQ(bdev_open("fwd0", false, nullptr, &d), 0);
    IoResult res;
    static uint8_t buf[8][512];
    static iovec iov[8];
    static constexpr int kReads = 8;
    run([&](std::function<void()> finish) {
        IoChannel* ch = bdev_get_io_channel(d);
        base->hold = true;
        for (int i = 0; i < kReads; ++i) {
            iov[i] = {buf[i], 512};
            ASSERT_EQ(bdev_readv(d, ch, &iov[i], 1, i, 1, count_cb, &res), 0);
        }
        // Held for 2 ms: every latency is at least that.
        const uint64_t release_at = now_ns() + 2'000'000;
        poll_until([release_at] { return now_ns() >= release_at; },
                   [&res, ch, finish, base] {
                       IoChannel* base_ch = static_cast<BdevChannel*>(ch)->module_ch;
                       release_held(static_cast<ForwardChannel*>(base_ch)->base_ch, base);
                       poll_until([&res] { return res.done.load() == kReads; },
                                  [ch, finish] {
                                      bdev_put_io_channel(ch);
                                      finish();
                                  });
                   });
    });
    EXPECT_EQ(res.ok.load(), kReads);
    // The channels are gone (put above): what they counted is in the retired statistics.
    for (int i = 0; i < 100 && fwd->layer_device()->live_channels() > 0; ++i)
        std::this_thread::sleep_for(10ms);
    const BdevStats top = stats_of(fwd), bottom = stats_of(base);
    const auto& tr = top.by_type[size_t(IoType::Read)];
    const auto& br = bottom.by_type[size_t(IoType::Read)];
    EXPECT_EQ(tr.ops, uint64_t(kReads));
    EXPECT_EQ(br.ops, uint64_t(kReads));
    EXPECT_EQ(top.latency.count(), uint64_t(kReads));
    EXPECT_EQ(bottom.latency.count(), uint64_t(kReads));
    EXPECT_GE(br.latency_min_ns, 2'000'000u);
    EXPECT_LT(br.latency_max_ns, 10'000'000'000u);
    // Same submission and completion ticks on both levels.
    EXPECT_EQ(tr.latency_sum_ns, br.latency_sum_ns);
    EXPECT_EQ(tr.latency_min_ns, br.latency_min_ns);
    EXPECT_EQ(tr.latency_max_ns, br.latency_max_ns);
    EXPECT_EQ(top.latency.percentile(50), bottom.latency.percentile(50));
    bdev_close(d);
    unregister(fwd);
    bdev_release_claim(base);
    bdev_close(bd);
    unregister(base);
}

TEST(BdevStatsHistogram, CompactOutsideChannelsWithTheSameAnswers) {
    BdevStats retired, channel;
    channel.latency.make_dense();
    EXPECT_TRUE(channel.latency.dense());
    EXPECT_EQ(retired.latency.storage_bytes(), 0u);
    EXPECT_EQ(retired.latency.count(), 0u);
    EXPECT_EQ(retired.latency.percentile(99), 0u);
    retired.merge(channel);  // nothing counted: still nothing allocated
    EXPECT_EQ(retired.latency.storage_bytes(), 0u);
    // The same values in a dense Histogram and through merges into the compact form.
    Histogram reference;
    std::mt19937_64 rng(7);
    for (int round = 0; round < 3; ++round) {
        BdevStats ch;
        ch.latency.make_dense();
        for (int i = 0; i < 2000; ++i) {
            const uint64_t v = 200 + rng() % (round == 1 ? 50'000'000 : 20'000);
            ch.record(i % 2 ? IoType::Read : IoType::Write, 4096, v, true);
            reference.record(v);
        }
        retired.merge(ch);
    }
    EXPECT_FALSE(retired.latency.dense());
    EXPECT_GT(retired.latency.storage_bytes(), 0u);
    EXPECT_LT(retired.latency.storage_bytes(), sizeof(Histogram));
    EXPECT_EQ(retired.latency.count(), reference.count());
    EXPECT_EQ(retired.latency.sum(), reference.sum());
    EXPECT_EQ(retired.latency.min(), reference.min());
    EXPECT_EQ(retired.latency.max(), reference.max());
    for (double p : {0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0})
        EXPECT_EQ(retired.latency.percentile(p), reference.percentile(p)) << p;
    for (size_t i = 0; i < Histogram::kBuckets; ++i)
        ASSERT_EQ(retired.latency.bucket_count(i), reference.bucket_count(i)) << i;
    // A compact one merged into a dense one, and copies, keep every bucket.
    BdevStats sum;
    sum.latency.make_dense();
    sum.merge(retired);
    EXPECT_EQ(sum.latency.percentile(99), reference.percentile(99));
    BdevStats copy = retired;
    copy.record(IoType::Read, 4096, 9000, true);
    EXPECT_EQ(copy.latency.count(), reference.count() + 1);
    EXPECT_EQ(retired.latency.count(), reference.count()) << "a copy has its own buckets";
    EXPECT_EQ(copy.latency.percentile(50), [&] {
        Histogram h = reference;
        h.record(9000);
        return h.percentile(50);
    }());
    sum.reset(StatsReset::All);
    EXPECT_TRUE(sum.latency.dense()) << "a reset channel keeps its storage";
    EXPECT_EQ(sum.latency.count(), 0u);
    EXPECT_EQ(sum.by_type[size_t(IoType::Read)].ops, 0u);
    retired.reset(StatsReset::All);
    EXPECT_EQ(retired.latency.count(), 0u);
    EXPECT_EQ(retired.latency.storage_bytes(), 0u);
}

namespace {

struct NvmeResult {
    std::atomic<int> done{0};
    IoStatus status = IoStatus::Pending;
    uint8_t sc = 0;
};

void nvme_cb(BdevIo* io, bool, void* arg) {
    auto* r = static_cast<NvmeResult*>(arg);
    r->status = io->status;
    r->sc = io->nvme_sc;
    bdev_free_io(io);
    r->done++;
}

}  // namespace

// Two levels of offset-shifting vbdevs pass their I/O down as it is (bdev_forward_io): the
// upper one splits at its boundary and forwards each child, data lands at the summed offset,
// a NoMemory from the base is retried there, an NVMe status comes back up unchanged, each
// level's statistics count its own I/O, and an I/O the base would have to split goes down as a
// child I/O instead.
TEST_F(BdevLayerTest, ForwardedIoGoesDownAsItIsAndComesBackThroughEachLevel) {
    RamBdev* base = make_bdev("pbase", 512, 256);
    base->optimal_io_boundary = 64;
    BdevDesc* bd = nullptr;
    ASSERT_EQ(bdev_open("pbase", true, nullptr, &bd), 0);
    ASSERT_EQ(bdev_claim(base, &g_test_module), 0);
    ASSERT_EQ(bdev_register(std::make_unique<PassBdev>("pass1", bd, 16, 0)), 0);
    auto* p1 = static_cast<PassBdev*>(bdev_get_by_name("pass1"));
    BdevDesc* d1 = nullptr;
    ASSERT_EQ(bdev_open("pass1", true, nullptr, &d1), 0);
    ASSERT_EQ(bdev_claim(p1, &g_test_module), 0);
    ASSERT_EQ(bdev_register(std::make_unique<PassBdev>("pass2", d1, 8, 8)), 0);
    auto* p2 = static_cast<PassBdev*>(bdev_get_by_name("pass2"));
    BdevDesc* d2 = nullptr;
    ASSERT_EQ(bdev_open("pass2", true, nullptr, &d2), 0);

    static uint8_t wbuf[16 * 512], rbuf[16 * 512];
    for (size_t i = 0; i < sizeof(wbuf); ++i) wbuf[i] = uint8_t(i * 7 + 3);
    static iovec wiov{wbuf, sizeof(wbuf)}, riov{rbuf, sizeof(rbuf)}, eiov{rbuf, 512};
    NvmeResult w, r, e;
    IoResult x;
    static uint8_t xbuf[8 * 512];
    static iovec xiov{xbuf, sizeof(xbuf)};
    run([&](std::function<void()> finish) {
        IoChannel* ch2 = bdev_get_io_channel(d2);
        IoChannel* ch1 = bdev_get_io_channel(d1);
        base->nomem_left = 2;
        // Blocks 4..19 of pass2: children 4..7, 8..15, 16..19 (boundary 8).
        ASSERT_EQ(bdev_writev(d2, ch2, &wiov, 1, 4, 16, nvme_cb, &w), 0);
        poll_until([&] { return w.done.load() == 1; },
                   [&, ch1, ch2, finish] {
                       ASSERT_EQ(bdev_readv(d2, ch2, &riov, 1, 4, 16, nvme_cb, &r), 0);
                       poll_until(
                           [&] { return r.done.load() == 1; },
                           [&, ch1, ch2, finish] {
                               EXPECT_EQ(memcmp(rbuf, wbuf, sizeof(wbuf)), 0);
                               base->nvme_error_next = true;
                               ASSERT_EQ(bdev_readv(d2, ch2, &eiov, 1, 0, 1, nvme_cb, &e), 0);
                               poll_until(
                                   [&] { return e.done.load() == 1; },
                                   [&, ch1, ch2, finish] {
                                       // pass1 blocks 44..51 are base blocks 60..67: across the
                                       // base's boundary.
                                       ASSERT_EQ(bdev_readv(d1, ch1, &xiov, 1, 44, 8, count_cb, &x),
                                                 0);
                                       poll_until([&] { return x.done.load() == 1; },
                                                  [ch1, ch2, finish] {
                                                      bdev_put_io_channel(ch2);
                                                      bdev_put_io_channel(ch1);
                                                      finish();
                                                  });
                                   });
                           });
                   });
    });
    EXPECT_EQ(w.status, IoStatus::Success);
    EXPECT_EQ(r.status, IoStatus::Success);
    EXPECT_EQ(memcmp(base->data.data() + (4 + 8 + 16) * 512, wbuf, sizeof(wbuf)), 0)
        << "the data is at the summed offset";
    EXPECT_EQ(e.status, IoStatus::NvmeError);
    EXPECT_EQ(e.sc, 0x81);
    EXPECT_EQ(x.ok.load(), 1);
    // 3 + 3 + 1 forwarded through pass2 (each child of the split), the same through pass1, and
    // every one of them came back; the read across the base's boundary went down as a child.
    EXPECT_EQ(p2->forwarded.load(), 7);
    EXPECT_EQ(p2->back.load(), 7);
    EXPECT_EQ(p1->forwarded.load(), 7);
    EXPECT_EQ(p1->back.load(), 7);
    EXPECT_EQ(p1->fallbacks.load(), 1);
    EXPECT_EQ(p2->fallbacks.load(), 0);
    EXPECT_EQ(base->nomem_left.load(), 0) << "the base's NoMemory was retried";
    for (int i = 0; i < 100 && p2->layer_device()->live_channels() > 0; ++i)
        std::this_thread::sleep_for(10ms);
    // pass2 counts its callers' I/O (the write, two reads), pass1 and the base each child.
    EXPECT_EQ(stats_of(p2).by_type[size_t(IoType::Write)].ops, 1u);
    EXPECT_EQ(stats_of(p2).by_type[size_t(IoType::Read)].ops, 2u);
    EXPECT_EQ(stats_of(p1).by_type[size_t(IoType::Write)].ops, 3u);
    EXPECT_EQ(stats_of(base).by_type[size_t(IoType::Write)].ops, 3u);
    bdev_close(d2);
    unregister(p2);
    bdev_release_claim(p1);
    bdev_close(d1);
    unregister(p1);
    bdev_release_claim(base);
    bdev_close(bd);
    unregister(base);
}
