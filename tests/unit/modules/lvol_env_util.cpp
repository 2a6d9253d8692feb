#include "lvol_env_util.h"

#include "bdev/bdev.h"
#include "modules/passthru.h"

#include <gtest/gtest.h>

#include <cstring>

namespace nocstor::test {

using namespace nocstor::lvol;

Answer call(ModEnv& env, std::function<void(Result)> fn) {
    Answer a;
    EXPECT_TRUE(env.run_async(env.ctl(), [&](std::function<void()> done) {
        fn([&a, done](int rc, std::string msg) {
            a.rc = rc;
            a.msg = std::move(msg);
            done();
        });
    })) << "timed out";
    return a;
}

Answer make_store(ModEnv& env, const std::string& bdev, const std::string& name, uint64_t cluster) {
    return call(env, [&](Result r) {
        LvsCreateOptions o;
        o.bdev_name = bdev;
        o.lvs_name = name;
        o.cluster_bytes = cluster;
        lvs_create(o, std::move(r));
    });
}

Answer make_lvol(ModEnv& env, const std::string& lvs, const std::string& name, uint64_t bytes,
                 bool thin) {
    return call(env, [&](Result r) {
        LvolCreateOptions o;
        o.lvs_name = lvs;
        o.name = name;
        o.size_bytes = bytes;
        o.thin = thin;
        lvol_create(o, std::move(r));
    });
}

nlohmann::json lvols(ModEnv& env) {
    nlohmann::json out;
    env.run(env.ctl(), [&] { lvol_list("", "", &out); });
    return out;
}

nlohmann::json lvol_entry(ModEnv& env, const std::string& name) {
    for (const auto& l : lvols(env))
        if (l["name"] == name) return l;
    return {};
}

nlohmann::json stores(ModEnv& env) {
    nlohmann::json out;
    env.run(env.ctl(), [&] { lvs_list("", "", &out); });
    return out;
}

void write_pattern(ModEnv& env, const std::string& name, uint64_t at, uint64_t blocks,
                   uint64_t seed) {
    TestDesc d(env, name);
    ASSERT_EQ(d.open_rc(), 0) << name;
    AlignedBuf b(blocks * 4096);
    fill_pattern(b.p, b.size, seed);
    IoResult r = d.write(b.p, at, blocks);
    ASSERT_TRUE(r.ok) << name << " write at " << at << " status " << int(r.status);
}

std::vector<uint8_t> expected(uint64_t at, uint64_t blocks, uint64_t seed, uint64_t from) {
    std::vector<uint8_t> want((at - from + blocks) * 4096, 0);
    if (seed) fill_pattern(want.data(), want.size(), seed);
    return {want.begin() + long((at - from) * 4096), want.end()};
}

bool holds(TestDesc& d, uint64_t at, uint64_t blocks, uint64_t seed, uint64_t from) {
    if (from == UINT64_MAX) from = at;
    AlignedBuf b(blocks * 4096);
    std::memset(b.p, 0xA5, b.size);
    IoResult r = d.read(b.p, at, blocks);
    EXPECT_TRUE(r.ok) << "read at " << at;
    return r.ok && std::memcmp(b.p, expected(at, blocks, seed, from).data(), b.size) == 0;
}

bool holds(ModEnv& env, const std::string& name, uint64_t at, uint64_t blocks, uint64_t seed,
           uint64_t from) {
    TestDesc d(env, name, false);
    EXPECT_EQ(d.open_rc(), 0) << name;
    return holds(d, at, blocks, seed, from);
}

void wait_examine(ModEnv& env) {
    ASSERT_TRUE(env.run_async(
        env.ctl(), [](std::function<void()> done) { bdev_wait_for_examine([done] { done(); }); }));
}

void passthru(ModEnv& env, const std::string& base, const std::string& name,
              const std::string& uuid) {
    env.run(env.ctl(), [&] {
        PassthruBdevOptions o;
        o.base_bdev_name = base;
        o.name = name;
        o.uuid = uuid;
        std::string err;
        ASSERT_EQ(passthru_bdev_create(o, &err), 0) << err;
    });
}

void passthru_delete(ModEnv& env, const std::string& name) {
    ASSERT_TRUE(env.run_async(env.ctl(), [&](std::function<void()> done) {
        passthru_bdev_delete(name, [done](int) { done(); });
    }));
}

}  // namespace nocstor::test
