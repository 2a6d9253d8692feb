// The host library against the fake target: bring-up, every I/O type, R2T split by MAXH2CDATA,
// C2H data over several PDUs, the SUCCESS flag, digests, command timeout, connection loss,
// discovery log, graceful shutdown.
#include <cstring>
#include <random>

#include "fake_target.h"
#include "host_test_env.h"
#include "nvme_host/ctrlr.h"
#include "nvme_host/nvme_cmd.h"
#include "nvme_host/qpair.h"

using namespace nocstor;
using namespace nocstor::nvme_host;
using namespace nocstor::test;

namespace {

struct QpairTest : HostRuntimeTest {
    std::unique_ptr<FakeTarget> tgt;
    std::unique_ptr<NvmeCtrlr> ctrlr;
    std::unique_ptr<NvmeTcpQpair> qp;
    int failures = 0;

    void start_target(FakeTargetOptions o = {}) {
        tgt = std::make_unique<FakeTarget>(o);
        ASSERT_TRUE(tgt->start());
    }
    CtrlrOptions opts(bool hd = false, bool dd = false) {
        CtrlrOptions o;
        o.trid.traddr = "127.0.0.1";
        o.trid.trsvcid = std::to_string(tgt->port());
        o.trid.subnqn = tgt->options().subnqn;
        o.hdgst = hd;
        o.ddgst = dd;
        return o;
    }
    // Brings up the admin queue and one I/O queue on the data thread.
    void connect(CtrlrOptions o, uint64_t io_timeout_us = 30'000'000) {
        int rc = -1;
        std::string err;
        ASSERT_TRUE(run_on(data, [&](auto finish) {
            ctrlr = std::make_unique<NvmeCtrlr>(o);
            ctrlr->connect([&, finish](int r, const std::string& e) {
                rc = r;
                err = e;
                if (r != 0) return finish();
                QpairOptions q;
                ASSERT_EQ(ctrlr->io_qpair_options(&q, 16), 0);
                q.command_timeout_us = io_timeout_us;
                qp = std::make_unique<NvmeTcpQpair>(q);
                qp->set_failure_callback([this](int, const std::string&) { ++failures; });
                qp->connect([&, finish](int r2, const std::string& e2) {
                    rc = r2;
                    err = e2;
                    finish();
                });
            });
        }));
        ASSERT_EQ(rc, 0) << err;
    }
    // Read on the data thread: the failure callback runs there right after the completions.
    int failures_seen() {
        int n = -1;
        run_on(data, [&](auto finish) {
            n = failures;
            finish();
        });
        return n;
    }
    void TearDown() override {
        run_on(data, [&](auto finish) {
            qp.reset();
            if (!ctrlr) return finish();
            ctrlr->shutdown([&, finish](int, const std::string&) {
                data->send([&, finish] {
                    ctrlr.reset();
                    finish();
                });
            });
        });
        if (tgt) tgt->stop();
        HostRuntimeTest::TearDown();
    }
    // One command on the I/O queue, waited for.
    NvmeCpl io(nvme::SubmissionQueueEntry sqe, DataDir dir, void* buf, uint32_t len) {
        struct Ctx {
            nvme::SubmissionQueueEntry sqe;
            DataDir dir;
            iovec iov;
            NvmeCpl cpl;
            std::function<void()> finish;
            NvmeTcpQpair* qp;
        } c{sqe, dir, {buf, len}, {}, nullptr, qp.get()};
        bool ok = run_on(data, [&](auto finish) {
            c.finish = finish;
            int rc = c.qp->submit(
                c.sqe, c.dir, &c.iov, buf ? 1 : 0, len,
                [](void* a, const NvmeCpl& cpl) {
                    auto* x = static_cast<Ctx*>(a);
                    x->cpl = cpl;
                    x->finish();
                },
                &c);
            if (rc != 0) {
                c.cpl.transport_rc = rc;
                finish();
            }
        });
        EXPECT_TRUE(ok) << "command did not complete";
        return c.cpl;
    }
};

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937 g(seed);
    for (auto& b : v) b = uint8_t(g());
    return v;
}

void read_write_roundtrip(QpairTest& t) {
    // 64 KiB: beyond the 4 KiB in-capsule size -> R2T, 8 KiB MAXH2CDATA -> 8 H2CData PDUs.
    auto w = pattern(65536, 1);
    auto cpl = t.io(cmd::write(1, 16, 128, false), DataDir::kHostToCtrl, w.data(), 65536);
    ASSERT_TRUE(cpl.ok()) << status_text(cpl);
    EXPECT_EQ(t.tgt->read_blocks(16, 128), w);
    EXPECT_GE(t.tgt->r2ts.load(), 1u);
    EXPECT_GE(t.tgt->h2c_pdus.load(), 8u);
    // Read back through C2HData PDUs of 3000 bytes.
    std::vector<uint8_t> r(65536, 0);
    cpl = t.io(cmd::read(1, 16, 128), DataDir::kCtrlToHost, r.data(), 65536);
    ASSERT_TRUE(cpl.ok()) << status_text(cpl);
    EXPECT_EQ(r, w);
    // Small write: in the capsule.
    auto s = pattern(2048, 2);
    const uint64_t before = t.tgt->incapsule_writes;
    ASSERT_TRUE(t.io(cmd::write(1, 0, 4, true), DataDir::kHostToCtrl, s.data(), 2048).ok());
    EXPECT_EQ(t.tgt->incapsule_writes, before + 1);
    EXPECT_EQ(t.tgt->read_blocks(0, 4), s);
}

}  // namespace

TEST_F(QpairTest, BringUpReadsIdentifyAndNamespaces) {
    start_target();
    connect(opts());
    EXPECT_TRUE(ctrlr->ready());
    EXPECT_EQ(ctrlr->cntlid(), 1);
    EXPECT_EQ(ctrlr->io_queues_granted(), 8);
    EXPECT_EQ(ctrlr->io_incapsule_bytes(), 4096u);
    EXPECT_EQ(ctrlr->max_transfer_bytes(), 128u * 1024);
    ASSERT_EQ(ctrlr->namespaces().size(), 1u);
    const auto& ns = ctrlr->namespaces()[0];
    EXPECT_EQ(ns.nsid, 1u);
    EXPECT_EQ(ns.block_size, 512u);
    EXPECT_EQ(ns.num_blocks, 8192u);
    EXPECT_TRUE(ns.has_uuid);
    EXPECT_EQ(ns.uuid[0], 0x10);
    EXPECT_TRUE(ns.has_nguid);
    EXPECT_EQ(qp->cntlid(), 1);
    EXPECT_EQ(qp->maxh2cdata(), 8192u);
}

TEST_F(QpairTest, ReadWriteWithR2TAndSplitC2H) {
    start_target();
    connect(opts());
    read_write_roundtrip(*this);
}

TEST_F(QpairTest, DigestsAndC2HSuccessFlag) {
    FakeTargetOptions o;
    o.c2h_success = true;
    o.r2t_chunk = 16384;  // several R2Ts per write
    start_target(o);
    connect(opts(true, true));
    EXPECT_TRUE(tgt->saw_hdgst);
    EXPECT_TRUE(tgt->saw_ddgst);
    read_write_roundtrip(*this);
    EXPECT_GE(tgt->r2ts.load(), 4u);
}

TEST_F(QpairTest, OtherCommandsAndNvmeStatus) {
    start_target();
    connect(opts());
    auto w = pattern(4096, 3);
    ASSERT_TRUE(io(cmd::write(1, 100, 8, false), DataDir::kHostToCtrl, w.data(), 4096).ok());
    ASSERT_TRUE(io(cmd::write_zeroes(1, 100, 4), DataDir::kNone, nullptr, 0).ok());
    EXPECT_EQ(tgt->read_blocks(100, 4), std::vector<uint8_t>(2048, 0));
    cmd::DsmRange range{0, 4, 104};
    ASSERT_TRUE(io(cmd::dsm_deallocate(1, 1), DataDir::kHostToCtrl, &range, 16).ok());
    EXPECT_EQ(tgt->read_blocks(104, 4), std::vector<uint8_t>(2048, 0));
    ASSERT_TRUE(io(cmd::flush(1), DataDir::kNone, nullptr, 0).ok());
    // The target's own status comes back unchanged.
    std::vector<uint8_t> r(4096);
    auto cpl = io(cmd::read(1, 8190, 8), DataDir::kCtrlToHost, r.data(), 4096);
    EXPECT_EQ(cpl.transport_rc, 0);
    EXPECT_EQ(cpl.cqe.status.sct(), nvme::sct::kGeneric);
    EXPECT_EQ(cpl.cqe.status.sc(), nvme::sc::kLbaOutOfRange);
}

TEST_F(QpairTest, CommandTimeoutFailsTheQueue) {
    start_target();
    connect(opts(), 300'000);  // 300 ms
    tgt->hold_io = true;
    std::vector<uint8_t> r(4096);
    auto t0 = std::chrono::steady_clock::now();
    auto cpl = io(cmd::read(1, 0, 8), DataDir::kCtrlToHost, r.data(), 4096);
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_EQ(cpl.transport_rc, -ETIMEDOUT);
    EXPECT_GE(ms, 250);
    EXPECT_LT(ms, 2000);
    EXPECT_EQ(failures_seen(), 1);
    EXPECT_EQ(qp->state(), QpairState::kFailed);
}

TEST_F(QpairTest, ConnectionLossCompletesInFlightWithTransportError) {
    start_target();
    connect(opts());
    tgt->hold_io = true;
    std::vector<uint8_t> r(4096);
    std::thread killer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        tgt->stop();
    });
    auto cpl = io(cmd::read(1, 0, 8), DataDir::kCtrlToHost, r.data(), 4096);
    killer.join();
    EXPECT_LT(cpl.transport_rc, 0);
    EXPECT_EQ(failures_seen(), 1);
}

TEST_F(QpairTest, ConnectErrors) {
    start_target();
    CtrlrOptions o = opts();
    o.trid.subnqn = "nqn.2024-01.io.nocstor:nope";
    int rc = 0;
    std::string err;
    ASSERT_TRUE(run_on(data, [&](auto finish) {
        ctrlr = std::make_unique<NvmeCtrlr>(o);
        ctrlr->connect([&, finish](int r, const std::string& e) {
            rc = r;
            err = e;
            finish();
        });
    }));
    EXPECT_NE(rc, 0);
    EXPECT_NE(err.find("rejected"), std::string::npos) << err;
    tgt->stop();
    o.trid.subnqn = tgt->options().subnqn;
    ASSERT_TRUE(run_on(data, [&](auto finish) {
        ctrlr = std::make_unique<NvmeCtrlr>(o);
        ctrlr->connect([&, finish](int r, const std::string& e) {
            rc = r;
            err = e;
            finish();
        });
    }));
    EXPECT_EQ(rc, -ECONNREFUSED) << err;
}

TEST_F(QpairTest, DiscoveryLog) {
    start_target();
    int rc = -1;
    std::string err;
    std::vector<DiscoveryEntry> entries;
    ASSERT_TRUE(run_on(data, [&](auto finish) {
        discover(opts(), [&, finish](int r, const std::string& e, std::vector<DiscoveryEntry> v) {
            rc = r;
            err = e;
            entries = std::move(v);
            finish();
        });
    }));
    ASSERT_EQ(rc, 0) << err;
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].subnqn, tgt->options().subnqn);
    EXPECT_EQ(entries[0].traddr, "127.0.0.1");
    EXPECT_EQ(entries[0].trsvcid, std::to_string(tgt->port()));
    EXPECT_EQ(entries[0].trtype, 3);
}

TEST_F(QpairTest, GracefulShutdownSetsShn) {
    start_target();
    connect(opts());
    int rc = -1;
    ASSERT_TRUE(run_on(data, [&](auto finish) {
        qp.reset();
        ctrlr->shutdown([&, finish](int r, const std::string&) {
            rc = r;
            finish();
        });
    }));
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(tgt->shutdowns.load(), 1u);
}
