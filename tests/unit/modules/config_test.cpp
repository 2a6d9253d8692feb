// Bad input, write_config_json / config loader, statistics, uring specifics.
#include "burst.h"
#include "modules/bdev_config.h"
#include "modules/delay.h"
#include "modules/error.h"
#include "modules/malloc.h"
#include "modules/null.h"
#include "modules/passthru.h"
#include "modules/uring.h"

#include <nlohmann/json.hpp>

#include <cstring>

using namespace nocstor;
using namespace nocstor::test;
using json = nlohmann::json;

TEST(ModulesBadInput, ClearErrorsAndNoCrash) {
    ModEnv env;
    env.run(env.ctl(), [] {
        std::string err;
        EXPECT_EQ(malloc_bdev_create({"m0", 0, 512, ""}, &err), -EINVAL);
        EXPECT_NE(err.find("num_blocks"), std::string::npos);
        EXPECT_EQ(malloc_bdev_create({"m0", 8, 1000, ""}, &err), -EINVAL);
        EXPECT_NE(err.find("block_size"), std::string::npos);
        EXPECT_EQ(malloc_bdev_create({"", 8, 512, ""}, &err), -EINVAL);
        EXPECT_EQ(malloc_bdev_create({"m0", 8, 512, "not-a-uuid"}, &err), -EINVAL);
        EXPECT_EQ(null_bdev_create({"n0", 0, 512, "", true}, &err), -EINVAL);
        ASSERT_EQ(malloc_bdev_create({"m0", 64, 512, ""}, &err), 0) << err;
        EXPECT_EQ(malloc_bdev_create({"m0", 64, 512, ""}, &err), -EEXIST);
        EXPECT_EQ(passthru_bdev_create({"nope", "p0", ""}, &err), -ENODEV);
        EXPECT_NE(err.find("nope"), std::string::npos);
        ASSERT_EQ(passthru_bdev_create({"m0", "p0", ""}, &err), 0) << err;
        // A second claim on m0, by any vbdev, is refused.
        EXPECT_EQ(passthru_bdev_create({"m0", "p1", ""}, &err), -EPERM);
        EXPECT_NE(err.find("claimed"), std::string::npos);
        EXPECT_EQ(delay_bdev_create({"m0", "d1", "", 1, 1, 1, 1}, &err), -EPERM);
        EXPECT_EQ(error_bdev_create({"m0", ""}, &err), -EPERM);
        EXPECT_EQ(delay_bdev_create({"p0", "d1", "", 10, 5, 1, 1}, &err), -EINVAL);  // p99 < avg
        EXPECT_EQ(uring_bdev_create({"u0", "/nonexistent/file", 0, ""}, &err), -ENOENT);
        EXPECT_NE(err.find("/nonexistent/file"), std::string::npos);
        EXPECT_EQ(bdev_get_by_name("p1"), nullptr);
        EXPECT_EQ(bdev_get_by_name("d1"), nullptr);
    });
    std::atomic<int> rc{1};
    env.run(env.ctl(), [&] { malloc_bdev_delete("nope", [&](int r) { rc = r; }); });
    EXPECT_EQ(rc.load(), -ENODEV);
    env.run(env.ctl(), [&] { malloc_bdev_delete("p0", [&](int r) { rc = r; }); });
    EXPECT_EQ(rc.load(), -ENODEV);  // p0 is not a malloc bdev
    TestDesc d(env, "p0");
    ASSERT_EQ(d.open_rc(), 0);
    AlignedBuf buf(4096);
    iovec v{buf.p, 512};
    EXPECT_EQ(d.io(IoType::Read, &v, 1, 64, 1).rc, -EINVAL);  // past the end
    EXPECT_EQ(d.io(IoType::Read, &v, 1, 63, 2).rc, -EINVAL);  // crosses the end
    EXPECT_EQ(d.io(IoType::Read, &v, 1, 0, 0).rc, -EINVAL);   // zero length
    iovec short_v{buf.p, 100};
    EXPECT_EQ(d.io(IoType::Read, &short_v, 1, 0, 1).rc, -EINVAL);  // iov != length
    EXPECT_TRUE(d.io(IoType::Read, &v, 1, 63, 1).ok);
}

TEST(ModulesBadInput, UringFileProblems) {
    TempDir dir;
    std::string empty = dir.make_file("empty", 0);
    std::string small = dir.make_file("small", 100);
    ModEnv env;
    env.run(env.ctl(), [&] {
        std::string err;
        EXPECT_EQ(uring_bdev_create({"u0", empty, 0, ""}, &err), -EINVAL);
        EXPECT_NE(err.find("smaller than one block"), std::string::npos) << err;
        EXPECT_EQ(uring_bdev_create({"u0", small, 0, ""}, &err), -EINVAL);
        EXPECT_LT(uring_bdev_create({"u0", dir.path, 0, ""}, &err), 0);  // a directory
        EXPECT_EQ(uring_bdev_create({"u0", empty, 3000, ""}, &err), -EINVAL);
        EXPECT_TRUE(bdev_list().empty());
    });
}

TEST(ModulesUring, MisalignedBuffersAndNonNativeOps) {
    TempDir dir;
    std::string f = dir.make_file("disk", 1 << 20);
    ModEnv env;
    env.run(env.ctl(), [&] {
        std::string err;
        ASSERT_EQ(uring_bdev_create({"u0", f, 4096, ""}, &err), 0) << err;
        // passthru over uring: write-zeroes emulated a level up.
        ASSERT_EQ(passthru_bdev_create({"u0", "pu", ""}, &err), 0) << err;
    });
    ASSERT_TRUE(uring_bdev_is_direct("u0"));
    TestDesc d(env, "pu");
    ASSERT_EQ(d.open_rc(), 0);
    EXPECT_FALSE(d.bdev()->io_type_supported(IoType::WriteZeroes));
    AlignedBuf buf(8 * 4096 + 512), r(8 * 4096);
    iovec mis{buf.p + 512, 4096};
    EXPECT_EQ(d.io(IoType::Write, &mis, 1, 0, 1).rc, -EINVAL);  // O_DIRECT: misaligned buffer
    fill_pattern(buf.p, 8 * 4096, 3);
    ASSERT_TRUE(d.write(buf.p, 0, 8).ok);
    ASSERT_TRUE(d.io(IoType::WriteZeroes, nullptr, 0, 2, 2).ok);
    ASSERT_TRUE(d.io(IoType::Unmap, nullptr, 0, 5, 1).ok);
    ASSERT_TRUE(d.io(IoType::Flush, nullptr, 0, 0, 8).ok);
    ASSERT_TRUE(d.read(r.p, 0, 8).ok);
    AlignedBuf z(4096);
    for (int b = 0; b < 8; ++b) {
        bool zero = b == 2 || b == 3 || b == 5;
        const unsigned char* want = zero ? z.p : buf.p + b * 4096;
        EXPECT_EQ(std::memcmp(r.p + b * 4096, want, 4096), 0) << "block " << b;
    }
    // Many I/Os in flight on the ring at once.
    Burst w(d.desc(), d.ch(), IoType::Write, 64, 2, 16);
    env.run(env.data(), [&] { w.start(); });
    ASSERT_TRUE(wait_until([&] { return w.all_done(); }));
    EXPECT_EQ(w.ok(), 64);
    Burst rd(d.desc(), d.ch(), IoType::Read, 64, 2, 16);
    env.run(env.data(), [&] { rd.start(); });
    ASSERT_TRUE(wait_until([&] { return rd.all_done(); }));
    EXPECT_EQ(rd.ok(), 64);
    EXPECT_EQ(std::memcmp(rd.data(), w.data(), 64 * 2 * 4096), 0);
}

TEST(ModulesStats, CountOpsAndBytes) {
    ModEnv env;
    env.run(env.ctl(), [] {
        std::string err;
        ASSERT_EQ(malloc_bdev_create({"m0", 1024, 512, ""}, &err), 0) << err;
    });
    TestDesc d(env, "m0");
    // Start from zero: examine (RAID superblock lookup) read the bdev when it appeared.
    env.run_async(env.ctl(), [&](auto done) {
        bdev_wait_for_examine([&, done] { bdev_reset_stats(d.bdev(), StatsReset::All, done); });
    });
    AlignedBuf buf(8 * 512);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(d.write(buf.p, uint64_t(i) * 8, 8).ok);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(d.read(buf.p, uint64_t(i) * 8, 4).ok);
    ASSERT_TRUE(d.io(IoType::Unmap, nullptr, 0, 0, 16).ok);
    ASSERT_TRUE(d.io(IoType::WriteZeroes, nullptr, 0, 0, 16).ok);
    BdevStats s = get_stats(env, d.bdev());
    EXPECT_EQ(s.by_type[size_t(IoType::Write)].ops, 10u);
    EXPECT_EQ(s.by_type[size_t(IoType::Write)].bytes, 10u * 8 * 512);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].ops, 5u);
    EXPECT_EQ(s.by_type[size_t(IoType::Read)].bytes, 5u * 4 * 512);
    EXPECT_EQ(s.by_type[size_t(IoType::Unmap)].ops, 1u);
    EXPECT_EQ(s.by_type[size_t(IoType::WriteZeroes)].ops, 1u);
    EXPECT_EQ(s.latency.count(), 17u);
    // Retired channels keep counting after the descriptor is closed.
    d.close();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    BdevStats after = get_stats(env, bdev_get_by_name("m0"));
    EXPECT_EQ(after.by_type[size_t(IoType::Write)].ops, 10u);
}

TEST(ModulesConfig, LoaderAndWriteConfigRoundTrip) {
    ModEnv env;
    json cfg = json::parse(R"({"subsystems":[
      {"subsystem":"accel","config":[]},
      {"subsystem":"bdev","config":[
        {"method":"bdev_set_options","params":{"bdev_io_pool_size":65535}},
        {"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":2048,"block_size":4096,
          "uuid":"5a7d1e3c-0000-4000-8000-000000000001","md_size":0}},
        {"method":"bdev_null_create","params":{"name":"Null0","num_blocks":100,"block_size":512}},
        {"method":"bdev_passthru_create","params":{"base_bdev_name":"Malloc0","name":"PT0"}},
        {"method":"bdev_malloc_create","params":{"name":"Malloc1","num_blocks":64}},
        {"method":"bdev_delay_create","params":{"base_bdev_name":"Malloc1","name":"D0",
          "avg_read_latency":10,"p99_read_latency":20,"avg_write_latency":30,"p99_write_latency":40}},
        {"method":"bdev_error_create","params":{"base_name":"Null0"}}
      ]}]})");
    env.run(env.ctl(), [&] {
        std::string err;
        ASSERT_EQ(apply_bdev_subsystem_config(cfg, &err), 0) << err;
        Bdev* m = bdev_get_by_name("Malloc0");
        ASSERT_NE(m, nullptr);
        json out;
        m->write_config_json(out);
        EXPECT_EQ(out["method"], "bdev_malloc_create");
        EXPECT_EQ(out["params"]["name"], "Malloc0");
        EXPECT_EQ(out["params"]["num_blocks"], 2048);
        EXPECT_EQ(out["params"]["block_size"], 4096);
        EXPECT_EQ(out["params"]["uuid"], "5a7d1e3c-0000-4000-8000-000000000001");
        bdev_get_by_name("D0")->write_config_json(out);
        EXPECT_EQ(out["method"], "bdev_delay_create");
        EXPECT_EQ(out["params"]["base_bdev_name"], "Malloc1");
        EXPECT_EQ(out["params"]["p99_write_latency"], 40);
        bdev_get_by_name("PT0")->write_config_json(out);
        EXPECT_EQ(out["params"]["base_bdev_name"], "Malloc0");
        bdev_get_by_name("EE_Null0")->write_config_json(out);
        EXPECT_EQ(out["method"], "bdev_error_create");
        EXPECT_EQ(out["params"]["base_name"], "Null0");
        // Feeding the produced RPC back recreates an identical bdev (after a rename).
        bdev_get_by_name("Malloc0")->write_config_json(out);
        out["params"]["name"] = "Malloc9";
        out["params"].erase("uuid");
        EXPECT_EQ(apply_bdev_method(out["method"], out["params"], &err), 0) << err;
        EXPECT_EQ(bdev_get_by_name("Malloc9")->num_blocks, 2048u);
        // Bad params are reported, not thrown.
        EXPECT_EQ(apply_bdev_method("bdev_malloc_create", json::parse(R"({"name":"x"})"), &err),
                  -EINVAL);
        EXPECT_NE(err.find("num_blocks"), std::string::npos);
        EXPECT_EQ(apply_bdev_method("bdev_malloc_create",
                                    json::parse(R"({"name":"x","num_blocks":-1})"), &err),
                  -EINVAL);
        EXPECT_EQ(apply_bdev_method("bdev_null_create",
                                    json::parse(R"({"name":"x","num_blocks":"10"})"), &err),
                  -EINVAL);
        EXPECT_EQ(apply_bdev_method("bdev_frobnicate", json::object(), &err), -ENOTSUP);
        EXPECT_EQ(apply_bdev_subsystem_config(json::parse("[1,2]"), &err), -EINVAL);
        EXPECT_EQ(load_bdev_config_file("/nonexistent.json", &err), -ENOENT);
        EXPECT_EQ(apply_bdev_method(
                      "bdev_delay_update_latency",
                      json::parse(
                          R"({"delay_bdev_name":"D0","latency_type":"avg_write","latency_us":35})"),
                      &err),
                  0)
            << err;
        EXPECT_EQ(apply_bdev_method(
                      "bdev_error_inject_error",
                      json::parse(
                          R"({"name":"EE_Null0","io_type":"read","error_type":"failure","num":3})"),
                      &err),
                  0)
            << err;
    });
}
