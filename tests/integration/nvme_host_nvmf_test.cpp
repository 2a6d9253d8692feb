// The initiator against nocstor's own NVMe-oF target, in process on loopback: the nvme bdev
// module attached with and without digests (every I/O type, writes larger than the in-capsule
// size, reads larger than one C2HData), the discovery log, and the NVMe -> NVMe-oF path: the
// nvme bdev re-exported by a second subsystem and attached again, data checked through both hops.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "nvme_host/bdev_nvme.h"
#include "nvme_host/ctrlr.h"
#include "nvmf_test_env.h"

using namespace nocstor;
using namespace nocstor::nvme_host;
using namespace nocstor::nvmf;
using namespace nocstor::nvmf::testing;
using namespace std::chrono_literals;

namespace {

struct Io {
    IoType type;
    uint64_t off, n;
    std::vector<uint8_t>* buf;
    iovec iov{};
    IoChannel* ch = nullptr;
    std::atomic<int> res{-1};
};

// Submits one I/O on the first data thread and waits (bounded).
int do_io(BdevDesc* d, Io* io) {
    Thread* t = Runtime::instance()->data_threads()[0];
    io->iov = {io->buf ? io->buf->data() : nullptr, io->buf ? io->buf->size() : 0};
    t->send([d, io] {
        io->ch = bdev_get_io_channel(d);
        auto cb = [](BdevIo* b, bool ok, void* a) {
            auto* x = static_cast<Io*>(a);
            bdev_free_io(b);
            bdev_put_io_channel(x->ch);
            x->res = ok ? 1 : 0;
        };
        int rc = -1;
        if (io->type == IoType::Read)
            rc = bdev_readv(d, io->ch, &io->iov, 1, io->off, io->n, cb, io);
        if (io->type == IoType::Write)
            rc = bdev_writev(d, io->ch, &io->iov, 1, io->off, io->n, cb, io);
        if (io->type == IoType::WriteZeroes)
            rc = bdev_write_zeroes(d, io->ch, io->off, io->n, cb, io);
        if (io->type == IoType::Unmap) rc = bdev_unmap(d, io->ch, io->off, io->n, cb, io);
        if (io->type == IoType::Flush) rc = bdev_flush(d, io->ch, io->off, io->n, cb, io);
        if (rc != 0) {
            bdev_put_io_channel(io->ch);
            io->res = 0;
        }
    });
    for (int i = 0; i < 2000 && io->res == -1; ++i) std::this_thread::sleep_for(5ms);
    return io->res;
}

std::vector<uint8_t> pattern(size_t n, uint8_t s) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t(s ^ (i * 31) ^ (i >> 9));
    return v;
}

struct NvmeHostNvmfTest : ::testing::Test {
    std::unique_ptr<TargetEnv> env;
    void SetUp() override { env = std::make_unique<TargetEnv>(); }
    void TearDown() override { env.reset(); }

    std::vector<std::string> attach(const std::string& name, const std::string& nqn, bool dg) {
        NvmeAttachOptions o;
        o.name = name;
        o.trid.traddr = "127.0.0.1";
        o.trid.trsvcid = std::to_string(env->port());
        o.trid.subnqn = nqn;
        o.hdgst = o.ddgst = dg;
        std::promise<std::pair<int, std::vector<std::string>>> p;
        env->run([&] {
            bdev_nvme_attach(o, [&](int rc, std::vector<std::string> n, std::string e) {
                if (rc) ADD_FAILURE() << e;
                p.set_value({rc, n});
            });
        });
        auto r = p.get_future().get();
        EXPECT_EQ(r.first, 0);
        return r.second;
    }
    void detach(const std::string& name) {
        std::promise<int> p;
        env->run([&] { bdev_nvme_detach(name, [&](int rc, std::string) { p.set_value(rc); }); });
        EXPECT_EQ(p.get_future().get(), 0);
    }
    BdevDesc* open(const std::string& b) {
        BdevDesc* d = nullptr;
        env->run([&] {
            EXPECT_EQ(bdev_open(
                          b, true, [](BdevEvent, Bdev*) {}, &d),
                      0);
        });
        return d;
    }
    void close(BdevDesc* d) {
        env->run([&] { bdev_close(d); });
    }
    void exercise(BdevDesc* d) {
        auto w = pattern(512 * 1024, 7);  // > in-capsule size: R2T; > one C2HData on reads
        Io wr{IoType::Write, 1000, 1024, &w};
        ASSERT_EQ(do_io(d, &wr), 1);
        std::vector<uint8_t> r(w.size());
        Io rd{IoType::Read, 1000, 1024, &r};
        ASSERT_EQ(do_io(d, &rd), 1);
        EXPECT_TRUE(r == w) << "read-back differs";
        auto small = pattern(4096, 9);
        Io ws{IoType::Write, 10, 8, &small};
        ASSERT_EQ(do_io(d, &ws), 1);
        Io wz{IoType::WriteZeroes, 1000, 64, nullptr};
        EXPECT_EQ(do_io(d, &wz), 1);
        Io um{IoType::Unmap, 1100, 64, nullptr};
        EXPECT_EQ(do_io(d, &um), 1);
        Io fl{IoType::Flush, 0, 1, nullptr};
        EXPECT_EQ(do_io(d, &fl), 1);
        Io rd2{IoType::Read, 1000, 64, &r};
        r.resize(64 * 512);
        ASSERT_EQ(do_io(d, &rd2), 1);
        EXPECT_EQ(r, std::vector<uint8_t>(64 * 512, 0));
        std::vector<uint8_t> s2(4096);
        Io rs{IoType::Read, 10, 8, &s2};
        ASSERT_EQ(do_io(d, &rs), 1);
        EXPECT_EQ(s2, small);
    }
};

}  // namespace

TEST_F(NvmeHostNvmfTest, EveryIoTypeWithoutAndWithDigests) {
    for (bool dg : {false, true}) {
        auto names = attach("Nvme0", kTestNqn, dg);
        ASSERT_EQ(names, std::vector<std::string>{"Nvme0n1"});
        Bdev* b = bdev_get_by_name("Nvme0n1");
        ASSERT_NE(b, nullptr);
        EXPECT_EQ(b->num_blocks * b->block_size, 64ull << 20);
        BdevDesc* d = open("Nvme0n1");
        exercise(d);
        close(d);
        detach("Nvme0");
        EXPECT_EQ(bdev_get_by_name("Nvme0n1"), nullptr);
    }
}

TEST_F(NvmeHostNvmfTest, DiscoveryLogListsTheSubsystem) {
    std::promise<std::pair<int, std::vector<DiscoveryEntry>>> p;
    env->run([&] {
        CtrlrOptions o;
        o.trid.traddr = "127.0.0.1";
        o.trid.trsvcid = std::to_string(env->port());
        discover(o, [&](int rc, const std::string& e, std::vector<DiscoveryEntry> v) {
            if (rc) ADD_FAILURE() << e;
            p.set_value({rc, v});
        });
    });
    auto fut = p.get_future();
    ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
    auto [rc, entries] = fut.get();
    ASSERT_EQ(rc, 0);
    bool found = false;
    for (auto& e : entries) found = found || e.subnqn == kTestNqn;
    EXPECT_TRUE(found);
}

TEST_F(NvmeHostNvmfTest, NvmeBdevReexportedThroughASecondSubsystem) {
    ASSERT_EQ(attach("Nvme0", kTestNqn, false), std::vector<std::string>{"Nvme0n1"});
    const std::string nqn2 = "nqn.2024-01.io.nocstor:reexport";
    SubsystemParams sp;
    sp.nqn = nqn2;
    sp.allow_any_host = true;
    ASSERT_EQ(env->call([&](DoneFn d) { env->target().create_subsystem(sp, d); }), 0);
    std::promise<int> p;
    env->run([&] {
        env->target().add_namespace(nqn2, NamespaceParams{"Nvme0n1", 0, {}},
                                    [&](int rc, std::string, uint32_t) { p.set_value(rc); });
    });
    ASSERT_EQ(p.get_future().get(), 0);
    ASSERT_EQ(env->call([&](DoneFn d) {
        // The env listens on port 0 (ephemeral): listeners are keyed by the requested address.
        env->target().add_listener(nqn2, ListenAddress{"127.0.0.1", 0}, d);
    }),
              0);
    ASSERT_EQ(attach("Nvme1", nqn2, false), std::vector<std::string>{"Nvme1n1"});
    BdevDesc* outer = open("Nvme1n1");
    exercise(outer);  // host -> target -> nvme bdev -> target -> malloc
    // What went through two hops is what the one-hop path sees.
    BdevDesc* inner = open("Nvme0n1");
    std::vector<uint8_t> r(4096);
    Io rd{IoType::Read, 10, 8, &r};
    ASSERT_EQ(do_io(inner, &rd), 1);
    EXPECT_EQ(r, pattern(4096, 9));
    close(inner);
    close(outer);
    detach("Nvme1");
}
