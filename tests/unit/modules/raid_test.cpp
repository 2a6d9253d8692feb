// RAID: layout and parity math, data correctness of every level under concurrent random I/O,
// parity on the members checked independently, degraded operation, member failures from I/O
// errors, offline arrays, and bad input.
#include "modules/raid/raid.h"
#include "mod_test_env.h"
#include "modules/error.h"
#include "modules/malloc.h"
#include "modules/passthru.h"
#include "modules/raid/raid_parity.h"
#include "modules/uring.h"
#include "raid_test_util.h"
#include "raid_verify.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <random>
#include <thread>

using namespace nocstor;
using namespace nocstor::raid;
using namespace nocstor::test;

namespace {

int make_raid(ModEnv& env, const std::string& name, Level level, std::vector<std::string> bases,
              uint32_t strip_kb, std::string* err_out = nullptr) {
    int rc = 0;
    env.run(env.ctl(), [&] {
        RaidCreateOptions o;
        o.name = name;
        o.level = level;
        o.base_bdevs = bases;
        o.strip_size_kb = strip_kb;
        std::string err;
        rc = raid_create(o, &err);
        if (err_out) *err_out = err;
        if (!err_out) {
            EXPECT_EQ(rc, 0) << err;
        }
    });
    return rc;
}

std::vector<std::string> names(const std::string& prefix, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) v.push_back(prefix + std::to_string(i));
    return v;
}

// --- layout and parity ---

TEST(RaidLayout, LeftSymmetricParityRotation) {
    Geometry g;
    g.level = Level::Raid6;
    g.members = 5;
    g.strip_blocks = 8;
    g.member_blocks = 80;
    EXPECT_EQ(g.num_blocks(), 240u);
    EXPECT_EQ(g.p_member(0), 4u);
    EXPECT_EQ(g.q_member(0), 0u);
    EXPECT_EQ(g.data_member(0, 0), 1u);
    EXPECT_EQ(g.p_member(1), 3u);
    EXPECT_EQ(g.q_member(1), 4u);
    EXPECT_EQ(g.data_member(1, 2), 2u);
    // Every stripe uses every member exactly once.
    for (uint64_t s = 0; s < 10; ++s) {
        std::vector<int> used(5, 0);
        ++used[g.p_member(s)];
        ++used[g.q_member(s)];
        for (uint32_t d = 0; d < 3; ++d) ++used[g.data_member(s, d)];
        for (int u : used) EXPECT_EQ(u, 1) << "stripe " << s;
    }
    const StripeAddr a = map_stripe(g, 24 * 2 + 8 + 3);
    EXPECT_EQ(a.stripe, 2u);
    EXPECT_EQ(a.d, 1u);
    EXPECT_EQ(a.row, 3u);
}

TEST(RaidLayout, Raid0AndConcatMapping) {
    Geometry g;
    g.level = Level::Raid0;
    g.members = 3;
    g.strip_blocks = 4;
    g.member_blocks = 40;
    Extent e = map_plain(g, 13, 100);  // strip 3: member 0, its second strip
    EXPECT_EQ(e.member, 0u);
    EXPECT_EQ(e.member_block, 4u + 1);
    EXPECT_EQ(e.blocks, 3u);
    // Members and strips powers of two (masks and shifts) or not (divisions): the same mapping.
    for (uint32_t members : {1u, 2u, 3u, 4u, 5u, 8u}) {
        for (uint64_t strip : {4ull, 6ull}) {
            g.members = members;
            g.strip_blocks = strip;
            g.data_offset = 16;
            for (uint64_t lba = 0; lba < 200; ++lba) {
                const uint64_t s = lba / strip;
                e = map_plain(g, lba, 1000);
                EXPECT_EQ(e.member, s % members) << members << " " << strip << " " << lba;
                EXPECT_EQ(e.member_block, 16 + (s / members) * strip + lba % strip);
                EXPECT_EQ(e.blocks, strip - lba % strip);
            }
        }
    }
    g.data_offset = 0;
    g.level = Level::Concat;
    g.concat_blocks = {8, 16, 4};
    e = map_plain(g, 10, 100);
    EXPECT_EQ(e.member, 1u);
    EXPECT_EQ(e.member_block, 2u);
    EXPECT_EQ(e.blocks, 14u);
    EXPECT_EQ(g.num_blocks(), 28u);
}

// k strips of len random bytes; ptr[d] points at strip d.
struct RandomStrips {
    std::vector<std::unique_ptr<AlignedBuf>> data;
    std::vector<uint8_t*> ptr;
    RandomStrips(uint32_t k, size_t len, std::mt19937_64& rng) {
        for (uint32_t d = 0; d < k; ++d) {
            data.push_back(std::make_unique<AlignedBuf>(len));
            for (size_t i = 0; i < len; ++i) data[d]->p[i] = uint8_t(rng());
            ptr.push_back(data[d]->p);
        }
    }
};

TEST(RaidParity, MatchesAnIndependentGf256AndRecoversAnyTwo) {
    const uint32_t k = 5;
    const size_t len = 4096;
    Parity par(k, 2);
    std::mt19937_64 rng(7);
    RandomStrips strips(k, len, rng);
    std::vector<uint8_t*>& ptr = strips.ptr;
    AlignedBuf P(len), Q(len);
    par.generate(len, ptr.data(), P.p, Q.p);
    for (size_t i = 0; i < len; ++i) {
        uint8_t p = 0, q = 0, g = 1;
        for (uint32_t d = 0; d < k; ++d) {
            p ^= ptr[d][i];
            q ^= gf_mul_ref(g, ptr[d][i]);
            g = gf_mul_ref(g, 2);
        }
        ASSERT_EQ(P.p[i], p) << i;
        ASSERT_EQ(Q.p[i], q) << i;
    }
    EXPECT_TRUE(par.check(len, ptr.data(), P.p, Q.p));
    // Read-modify-write of strip 3 gives the same parity as computing it again.
    AlignedBuf fresh(len), P2(len), Q2(len);
    for (size_t i = 0; i < len; ++i) fresh.p[i] = uint8_t(rng());
    std::memcpy(P2.p, P.p, len);
    std::memcpy(Q2.p, Q.p, len);
    par.update(len, 3, ptr[3], P2.p, Q2.p);
    par.update(len, 3, fresh.p, P2.p, Q2.p);
    std::memcpy(ptr[3], fresh.p, len);
    par.generate(len, ptr.data(), P.p, Q.p);
    EXPECT_EQ(std::memcmp(P.p, P2.p, len), 0);
    EXPECT_EQ(std::memcmp(Q.p, Q2.p, len), 0);
    // Every pair of missing data strips, and one data strip with either parity missing.
    std::vector<std::vector<uint8_t>> saved;
    for (uint32_t d = 0; d < k; ++d) saved.emplace_back(ptr[d], ptr[d] + len);
    for (uint32_t x = 0; x < k; ++x) {
        for (uint32_t y = x; y < k; ++y) {
            for (int lost_parity = 0; lost_parity < 3; ++lost_parity) {
                if (x != y && lost_parity) continue;  // two data + a parity is too many
                std::memset(ptr[x], 0, len);
                std::memset(ptr[y], 0, len);
                uint32_t missing[2] = {x, y};
                const uint32_t n = x == y ? 1 : 2;
                ASSERT_TRUE(par.reconstruct(len, ptr.data(), missing, n,
                                            lost_parity == 1 ? nullptr : P.p,
                                            lost_parity == 2 ? nullptr : Q.p));
                ASSERT_EQ(std::memcmp(ptr[x], saved[x].data(), len), 0) << x << "," << y;
                ASSERT_EQ(std::memcmp(ptr[y], saved[y].data(), len), 0) << x << "," << y;
            }
        }
    }
    Parity p5(4, 1);
    uint32_t one = 2;
    std::memset(ptr[2], 0, len);
    AlignedBuf P5(len);
    std::vector<uint8_t*> four(ptr.begin(), ptr.begin() + 4);
    std::memcpy(ptr[2], saved[2].data(), len);
    p5.generate(len, four.data(), P5.p, nullptr);
    std::memset(ptr[2], 0, len);
    ASSERT_TRUE(p5.reconstruct(len, four.data(), &one, 1, P5.p, nullptr));
    EXPECT_EQ(std::memcmp(ptr[2], saved[2].data(), len), 0);
}

// The syndromes of a row name its single wrong member: a data strip, P or Q; two wrong members
// are Unknown, a right row None.
TEST(RaidParity, LocatesTheSingleWrongMemberOfARow) {
    const uint32_t k = 4;
    const size_t len = 512;
    Parity par(k, 2);
    std::mt19937_64 rng(11);
    RandomStrips strips(k, len, rng);
    std::vector<uint8_t*>& ptr = strips.ptr;
    AlignedBuf P(len), Q(len), P2(len), Q2(len);
    par.generate(len, ptr.data(), P.p, Q.p);
    // Syndromes of the row as it is now against the parity stored in P, Q.
    auto locate = [&] {
        par.generate(len, ptr.data(), P2.p, Q2.p);
        for (size_t i = 0; i < len; ++i) {
            P2.p[i] ^= P.p[i];
            Q2.p[i] ^= Q.p[i];
        }
        return par.locate(len, P2.p, Q2.p);
    };
    EXPECT_EQ(locate().kind, Parity::RowFault::None);
    for (uint32_t d = 0; d < k; ++d) {
        const uint8_t saved = ptr[d][17];
        ptr[d][17] ^= 0x5A;
        ptr[d][300] ^= 0x01;
        const Parity::RowFault f = locate();
        EXPECT_EQ(f.kind, Parity::RowFault::Data) << d;
        EXPECT_EQ(f.data_index, d);
        ptr[d][17] = saved;
        ptr[d][300] ^= 0x01;
    }
    P.p[5] ^= 1;
    EXPECT_EQ(locate().kind, Parity::RowFault::P);
    P.p[5] ^= 1;
    Q.p[5] ^= 1;
    EXPECT_EQ(locate().kind, Parity::RowFault::Q);
    Q.p[5] ^= 1;
    ptr[0][9] ^= 3;  // two data strips wrong
    ptr[2][40] ^= 7;
    EXPECT_EQ(locate().kind, Parity::RowFault::Unknown);
}

// --- data correctness of every level ---

struct LevelCase {
    Level level;
    int members;
    uint32_t strip_kb;
};

class RaidLevels : public ::testing::TestWithParam<LevelCase> {};

TEST_P(RaidLevels, RandomConcurrentIoVerifiesAndParityIsRight) {
    const LevelCase c = GetParam();
    ModEnv env(2);  // two data threads: stripes are owned by both
    const uint64_t member_blocks = 4096;
    auto bases = names("m", c.members);
    for (int i = 0; i < c.members; ++i)
        make_malloc(env, bases[size_t(i)],
                    member_blocks + (c.level == Level::Concat ? i * 512 : 0));
    ASSERT_EQ(make_raid(env, "r", c.level, bases, c.strip_kb), 0);
    Bdev* r = bdev_get_by_name("r");
    ASSERT_NE(r, nullptr);
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    {
        // From both data threads at once, on the same stripes.
        RandomVerify v0(env, env.data(0), "r", &shadow);
        VerifyOptions o;
        o.ops = 1500;
        o.region_blocks = std::min<uint64_t>(r->num_blocks, 2048);
        VerifyResult res = v0.run(o);
        EXPECT_TRUE(res.finished);
        EXPECT_EQ(res.errors, 0u) << io_status_name(res.first_error);
        EXPECT_EQ(res.mismatches, 0u);
        EXPECT_GT(res.writes, 500u);
        EXPECT_EQ(v0.check_all(), 0u);
    }
    {
        RandomVerify v1(env, env.data(1), "r", &shadow);
        VerifyOptions o;
        o.ops = 500;
        o.seed = 2;
        VerifyResult res = v1.run(o);
        EXPECT_EQ(res.errors, 0u) << io_status_name(res.first_error);
        EXPECT_EQ(res.mismatches, 0u);
        EXPECT_EQ(v1.check_all(), 0u);
    }
    if (c.level == Level::Raid5 || c.level == Level::Raid6) {
        const uint64_t strip_blocks = c.strip_kb * 1024 / 512;
        EXPECT_EQ(check_parity_on_members(env, bases, c.level == Level::Raid6 ? 2 : 1, strip_blocks,
                                          0, member_blocks, 512),
                  0u);
    }
}

INSTANTIATE_TEST_SUITE_P(
    All, RaidLevels,
    ::testing::Values(LevelCase{Level::Raid0, 3, 4}, LevelCase{Level::Raid0, 4, 64},
                      LevelCase{Level::Raid1, 3, 0}, LevelCase{Level::Concat, 3, 16},
                      LevelCase{Level::Raid5, 3, 4}, LevelCase{Level::Raid5, 5, 16},
                      LevelCase{Level::Raid6, 4, 4}, LevelCase{Level::Raid6, 6, 32}),
    [](const auto& info) {
        return std::string(level_name(info.param.level)) + "_" +
               std::to_string(info.param.members) + "x" + std::to_string(info.param.strip_kb) + "k";
    });

// --- degraded operation ---

// Members fail mid-run (as an administrator or an I/O error would take them out): the data keeps
// verifying, and the parity of the survivors stays right.
TEST(RaidDegraded, Raid6SurvivesTwoFailuresRaid5One) {
    for (Level level : {Level::Raid5, Level::Raid6}) {
        ModEnv env(2);
        const int n = level == Level::Raid6 ? 6 : 4;
        auto bases = names("d", n);
        for (auto& b : bases) make_malloc(env, b, 2048);
        ASSERT_EQ(make_raid(env, "r", level, bases, 8), 0);
        Bdev* r = bdev_get_by_name("r");
        std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
        RandomVerify v(env, env.data(0), "r", &shadow);
        VerifyOptions o;
        o.ops = 600;
        EXPECT_EQ(v.run(o).mismatches, 0u);
        std::vector<bool> gone(size_t(n), false);
        const int failures = level == Level::Raid6 ? 2 : 1;
        for (int f = 0; f < failures; ++f) {
            env.run(env.ctl(), [&] {
                std::string err;
                EXPECT_EQ(raid_fail_member("r", bases[size_t(f * 2 + 1)], &err), 0) << err;
            });
            gone[size_t(f * 2 + 1)] = true;
            o.seed = 10 + uint64_t(f);
            VerifyResult res = v.run(o);
            EXPECT_EQ(res.errors, 0u)
                << level_name(level) << " " << io_status_name(res.first_error);
            EXPECT_EQ(res.mismatches, 0u) << level_name(level) << " after " << f + 1;
            EXPECT_EQ(v.check_all(), 0u);
        }
        EXPECT_EQ(check_parity_on_members(env, bases, failures, 16, 0, 2048, 512, gone), 0u);
        // One more failure: the array goes offline and fails I/O, never returns wrong data.
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_fail_member("r", bases[0], &err), 0);
        });
        o.seed = 99;
        o.ops = 50;
        VerifyResult res = v.run(o);
        EXPECT_EQ(res.errors, 50u);
        EXPECT_EQ(res.mismatches, 0u);
    }
}

// A member whose writes fail (error bdev underneath) is failed out; the array keeps working.
TEST(RaidDegraded, IoErrorsFailAMemberOut) {
    ModEnv env(1);
    std::vector<std::string> bases;
    for (int i = 0; i < 5; ++i) {
        make_malloc(env, "b" + std::to_string(i), 2048);
        env.run(env.ctl(), [&] {
            std::string err;
            ASSERT_EQ(error_bdev_create({"b" + std::to_string(i), ""}, &err), 0) << err;
        });
        bases.push_back("EE_b" + std::to_string(i));
    }
    ASSERT_EQ(make_raid(env, "r", Level::Raid6, bases, 4), 0);
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    RandomVerify v(env, env.data(0), "r", &shadow);
    VerifyOptions o;
    o.ops = 300;
    EXPECT_EQ(v.run(o).mismatches, 0u);
    env.run(env.ctl(), [&] {
        ErrorInjectOptions e;
        e.name = "EE_b2";
        e.io_type = "all";
        e.error_type = "failure";
        e.num = 1000000;
        std::string err;
        ASSERT_EQ(error_bdev_inject(e, &err), 0) << err;
    });
    o.seed = 5;
    VerifyResult res = v.run(o);
    EXPECT_EQ(res.errors, 0u) << io_status_name(res.first_error);
    EXPECT_EQ(res.mismatches, 0u);
    EXPECT_EQ(v.check_all(), 0u);
    const auto list = raid_list("all");
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0]["state"], "degraded");
    EXPECT_EQ(list[0]["base_bdevs_list"][2]["state"], "failed");
}

// raid1: reads fail over to the next mirror.
TEST(RaidDegraded, MirrorReadsFailOver) {
    ModEnv env(1);
    std::vector<std::string> bases;
    for (int i = 0; i < 2; ++i) {
        make_malloc(env, "b" + std::to_string(i), 1024);
        env.run(env.ctl(), [&] {
            std::string err;
            ASSERT_EQ(error_bdev_create({"b" + std::to_string(i), ""}, &err), 0) << err;
        });
        bases.push_back("EE_b" + std::to_string(i));
    }
    ASSERT_EQ(make_raid(env, "r", Level::Raid1, bases, 0), 0);
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    RandomVerify v(env, env.data(0), "r", &shadow);
    VerifyOptions o;
    o.ops = 200;
    EXPECT_EQ(v.run(o).mismatches, 0u);
    env.run(env.ctl(), [&] {
        ErrorInjectOptions e;
        e.name = "EE_b0";
        e.io_type = "read";
        e.error_type = "failure";
        e.num = 1000000;
        std::string err;
        ASSERT_EQ(error_bdev_inject(e, &err), 0) << err;
    });
    o.seed = 3;
    o.write_percent = 0;
    VerifyResult res = v.run(o);
    EXPECT_EQ(res.errors, 0u);
    EXPECT_EQ(res.mismatches, 0u);
}

// raid6 on files through io_uring (O_DIRECT where the file system allows it).
TEST(RaidFiles, Raid6OnUringFiles) {
    TempDir dir;
    ModEnv env(1);
    std::vector<std::string> bases;
    for (int i = 0; i < 4; ++i) {
        const std::string f = dir.make_file("m" + std::to_string(i), 4 << 20);
        env.run(env.ctl(), [&] {
            UringBdevOptions u;
            u.name = "u" + std::to_string(i);
            u.filename = f;
            u.block_size = 4096;
            std::string err;
            ASSERT_EQ(uring_bdev_create(u, &err), 0) << err;
        });
        bases.push_back("u" + std::to_string(i));
    }
    ASSERT_EQ(make_raid(env, "r", Level::Raid6, bases, 16), 0);
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    RandomVerify v(env, env.data(0), "r", &shadow);
    VerifyOptions o;
    o.ops = 400;
    o.max_blocks = 16;
    o.scattered_iovecs = false;  // O_DIRECT members need aligned buffers
    VerifyResult res = v.run(o);
    EXPECT_EQ(res.errors, 0u) << io_status_name(res.first_error);
    EXPECT_EQ(res.mismatches, 0u);
    EXPECT_EQ(v.check_all(), 0u);
    EXPECT_EQ(check_parity_on_members(env, bases, 2, 4, 0, r->num_blocks / 2, 4096), 0u);
}

// --- bad input ---

// An array whose members appear later is built when the last one is there.
TEST(RaidConfiguring, AssemblesWhenTheLastMemberAppears) {
    ModEnv env(1);
    make_malloc(env, "x0", 1024);
    ASSERT_EQ(make_raid(env, "r", Level::Raid5, {"x0", "x1", "x2"}, 4), 0);
    EXPECT_EQ(bdev_get_by_name("r"), nullptr);
    make_malloc(env, "x1", 1024);
    EXPECT_EQ(bdev_get_by_name("r"), nullptr);
    make_malloc(env, "x2", 1024);
    Bdev* r = bdev_get_by_name("r");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->num_blocks, 2048u);
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    RandomVerify v(env, env.data(0), "r", &shadow);
    VerifyOptions o;
    o.ops = 200;
    EXPECT_EQ(v.run(o).mismatches, 0u);
}

TEST(RaidBadInput, ClearErrorsAndNothingCreated) {
    ModEnv env(1);
    make_malloc(env, "a", 1024);
    make_malloc(env, "b", 1024);
    make_malloc(env, "c", 1024);
    make_malloc(env, "big", 1024, 4096);
    std::string err;
    EXPECT_EQ(make_raid(env, "r", Level::Raid5, {"a", "b"}, 4, &err), -EINVAL);
    EXPECT_NE(err.find("at least 3"), std::string::npos) << err;
    EXPECT_EQ(make_raid(env, "r", Level::Raid0, {"a", "b"}, 12, &err), -EINVAL);
    EXPECT_NE(err.find("power of two"), std::string::npos) << err;
    EXPECT_EQ(make_raid(env, "r", Level::Raid0, {"a", "big"}, 4, &err), -EINVAL);
    EXPECT_NE(err.find("same block size"), std::string::npos) << err;
    EXPECT_EQ(make_raid(env, "r", Level::Raid0, {"a", "a"}, 4, &err), -EINVAL);
    // A member that does not exist yet: the array waits for it ("configuring", as SPDK), holding
    // the members that are there; deleting it lets them go.
    EXPECT_EQ(make_raid(env, "r", Level::Raid0, {"a", "nope"}, 4, &err), 0) << err;
    EXPECT_EQ(bdev_get_by_name("r"), nullptr);
    env.run(env.ctl(), [] {
        auto l = raid_list("configuring");
        ASSERT_EQ(l.size(), 1u);
        EXPECT_EQ(l[0]["num_base_bdevs_discovered"], 1);
    });
    EXPECT_NE(bdev_get_by_name("a")->claimed_by(), nullptr);
    env.run_async(env.ctl(), [](auto done) { raid_delete("r", false, [done](int) { done(); }); });
    EXPECT_EQ(bdev_get_by_name("a")->claimed_by(), nullptr);
    EXPECT_EQ(make_raid(env, "r", Level::Raid1, {"a", "b"}, 4, &err), -EINVAL);
    EXPECT_EQ(make_raid(env, "r0", Level::Raid0, {"a", "b"}, 4, &err), 0) << err;
    EXPECT_EQ(make_raid(env, "r1", Level::Raid1, {"b", "c"}, 0, &err), -EPERM);
    EXPECT_NE(err.find("claimed"), std::string::npos) << err;
    EXPECT_EQ(bdev_get_by_name("r1"), nullptr);
    EXPECT_EQ(bdev_get_by_name("r"), nullptr);
    // c is still free: nothing half-created kept a claim on it.
    EXPECT_EQ(make_raid(env, "r2", Level::Raid1, {"c", "big"}, 0, &err), -EINVAL);
    EXPECT_EQ(bdev_get_by_name("c")->claimed_by(), nullptr);
}

}  // namespace

namespace {

void fill_garbage(ModEnv& env, const std::string& bdev, uint64_t blocks, uint64_t seed) {
    TestDesc d(env, bdev);
    AlignedBuf b(blocks * 512);
    fill_pattern(b.p, b.size, seed);
    ASSERT_TRUE(d.write(b.p, 0, blocks).ok);
}

// Members full of old data: the initial resync makes the parity match, user I/O meanwhile
// stays correct (parity computed from scratch where not resynced yet).
TEST(RaidProcesses, InitialResyncMakesOldDataConsistent) {
    for (Level level : {Level::Raid5, Level::Raid6, Level::Raid1}) {
        ModEnv env(2);
        const int n = level == Level::Raid6 ? 5 : level == Level::Raid5 ? 4 : 3;
        auto bases = names("g", n);
        for (int i = 0; i < n; ++i) {
            make_malloc(env, bases[size_t(i)], 4096);
            fill_garbage(env, bases[size_t(i)], 4096, uint64_t(i + 1));
        }
        ASSERT_EQ(make_raid(env, "r", level, bases, level == Level::Raid1 ? 0 : 8), 0);
        Bdev* r = bdev_get_by_name("r");
        // The shadow: what the array reads now (its data members' old contents).
        std::vector<uint8_t> shadow(r->num_blocks * r->block_size);
        {
            TestDesc d(env, "r");
            for (uint64_t off = 0; off < r->num_blocks; off += 256) {
                const uint64_t cnt = std::min<uint64_t>(256, r->num_blocks - off);
                ASSERT_TRUE(d.read(shadow.data() + off * 512, off, cnt).ok);
            }
        }
        RandomVerify v(env, env.data(0), "r", &shadow);
        VerifyOptions o;
        o.ops = 400;
        VerifyResult res = v.run(o);
        EXPECT_EQ(res.errors, 0u) << level_name(level);
        EXPECT_EQ(res.mismatches, 0u) << level_name(level);
        wait_idle(env, "r");
        if (level != Level::Raid1) {
            EXPECT_EQ(check_parity_on_members(env, bases, level == Level::Raid6 ? 2 : 1, 16, 0,
                                              4096, 512),
                      0u)
                << level_name(level);
        }
        // Degraded after the resync: what the missing member held comes back from parity.
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_fail_member("r", bases[0], &err), 0);
        });
        EXPECT_EQ(v.check_all(), 0u) << level_name(level);
    }
}

// A member fails, a new bdev replaces it: the rebuild runs under user I/O and the new member
// then holds exactly what the array needs (checked by failing the others).
TEST(RaidProcesses, RebuildOntoANewMemberUnderIo) {
    for (Level level : {Level::Raid6, Level::Raid5, Level::Raid1}) {
        ModEnv env(2);
        const int n = level == Level::Raid6 ? 5 : 3;
        auto bases = names("b", n);
        for (auto& b : bases) make_malloc(env, b, 4096);
        make_malloc(env, "spare", 4096 + 64);
        ASSERT_EQ(make_raid(env, "r", level, bases, level == Level::Raid1 ? 0 : 8), 0);
        wait_idle(env, "r");
        Bdev* r = bdev_get_by_name("r");
        std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
        RandomVerify v(env, env.data(0), "r", &shadow);
        VerifyOptions o;
        o.ops = 500;
        EXPECT_EQ(v.run(o).mismatches, 0u);
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_fail_member("r", bases[1], &err), 0);
        });
        o.seed = 2;
        EXPECT_EQ(v.run(o).mismatches, 0u);
        raid_set_process_options(64, 0, 5000);  // small windows: many of them, under I/O
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_add_member("r", "spare", &err), 0) << err;
        });
        o.seed = 3;
        o.ops = 800;
        VerifyResult res = v.run(o);
        EXPECT_EQ(res.errors, 0u) << level_name(level) << " " << io_status_name(res.first_error);
        EXPECT_EQ(res.mismatches, 0u) << level_name(level);
        nlohmann::json e = wait_idle(env, "r");
        raid_set_process_options(1024, 0, 5000);
        EXPECT_EQ(e["state"], "online") << e.dump();
        EXPECT_EQ(e["base_bdevs_list"][1]["name"], "spare");
        EXPECT_EQ(bdev_get_by_name(bases[1])->claimed_by(), nullptr) << "the failed member left";
        bases[1] = "spare";
        if (level != Level::Raid1) {
            EXPECT_EQ(check_parity_on_members(env, bases, level == Level::Raid6 ? 2 : 1, 16, 0,
                                              4096, 512),
                      0u)
                << level_name(level);
        }
        // Only the rebuilt member and the minimum of others left: the data is all there.
        const int others = level == Level::Raid6 ? 2 : 1;
        for (int f = 0; f < others; ++f) {
            env.run(env.ctl(), [&] {
                std::string err;
                EXPECT_EQ(raid_fail_member("r", bases[size_t(f == 0 ? 0 : 2)], &err), 0);
            });
        }
        EXPECT_EQ(v.check_all(), 0u) << level_name(level);
    }
}

// Scrub finds redundancy that does not match (a member corrupting what it is given), repair
// rewrites it, and a second scrub finds nothing.
TEST(RaidProcesses, ScrubCountsAndRepairs) {
    ModEnv env(1);
    std::vector<std::string> bases;
    for (int i = 0; i < 4; ++i) {
        make_malloc(env, "s" + std::to_string(i), 2048);
        env.run(env.ctl(), [&] {
            std::string err;
            ASSERT_EQ(error_bdev_create({"s" + std::to_string(i), ""}, &err), 0) << err;
        });
        bases.push_back("EE_s" + std::to_string(i));
    }
    ASSERT_EQ(make_raid(env, "r", Level::Raid5, bases, 4), 0);
    wait_idle(env, "r");
    auto scrub = [&](bool repair) {
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_start_scrub("r", repair, &err), 0) << err;
        });
        return wait_idle(env, "r")["last_scrub_mismatches"].get<int64_t>();
    };
    EXPECT_EQ(scrub(false), 0);
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    {
        RandomVerify v(env, env.data(0), "r", &shadow);
        VerifyOptions o;
        o.ops = 200;
        o.write_percent = 100;
        v.run(o);
    }
    EXPECT_EQ(scrub(false), 0) << "writes of every kind keep the parity right";
    env.run(env.ctl(), [&] {
        ErrorInjectOptions e;
        e.name = "EE_s2";
        e.io_type = "write";
        e.error_type = "corrupt_data";
        e.num = 5;
        std::string err;
        ASSERT_EQ(error_bdev_inject(e, &err), 0) << err;
    });
    // Five full-stripe writes (3 strips of 4 KiB): each writes one strip of s2, whose first byte
    // the error bdev flips, so each leaves exactly one row (512-byte block) that does not match.
    // (Writes after these could hide a mismatch: a reconstruct-write recomputes the parity from
    // whatever is on the members.)
    {
        TestDesc d(env, "r");
        AlignedBuf b(24 * 512);
        for (uint64_t stripe : {0, 10, 20, 30, 40}) {
            fill_pattern(b.p, b.size, stripe);
            ASSERT_TRUE(d.write(b.p, stripe * 24, 24).ok);
        }
    }
    const int64_t found = scrub(false);
    EXPECT_EQ(found, 5);
    EXPECT_EQ(scrub(false), found) << "a check changes nothing";
    EXPECT_EQ(scrub(true), found);
    EXPECT_EQ(scrub(false), 0) << "repaired";
    std::string err;
    env.run(env.ctl(), [&] { EXPECT_EQ(raid_start_scrub("missing", false, &err), -ENODEV); });
}

}  // namespace

namespace {

TEST(RaidSuperblock, ArraysAssembleWhenTheirMembersComeBackInAnyOrder) {
    for (Level level : {Level::Raid6, Level::Raid5, Level::Raid1, Level::Raid0}) {
        ModEnv env(2);
        const int n = level == Level::Raid6 ? 5 : 3;
        SbArray a(env, n, 4096);
        ASSERT_EQ(a.create(level, level == Level::Raid1 ? 0 : 8), 0);
        wait_idle(env, "r");
        Bdev* r = bdev_get_by_name("r");
        ASSERT_NE(r, nullptr);
        EXPECT_EQ(r->num_blocks % 8, 0u);
        std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
        {
            RandomVerify v(env, env.data(0), "r", &shadow);
            VerifyOptions o;
            o.ops = 400;
            EXPECT_EQ(v.run(o).mismatches, 0u);
        }
        shadow = read_all(env, "r");
        a.remove();
        EXPECT_EQ(bdev_get_by_name("r"), nullptr);
        for (int i = 0; i < n; ++i) a.unplug(i);
        for (int i = n - 1; i >= 0; --i) {
            EXPECT_EQ(bdev_get_by_name("r"), nullptr) << "assembled before member " << i;
            a.plug(i);
            a.settle();
        }
        ASSERT_NE(bdev_get_by_name("r"), nullptr) << level_name(level);
        nlohmann::json e = wait_idle(env, "r");
        EXPECT_EQ(e["state"], "online") << e.dump();
        EXPECT_EQ(read_all(env, "r"), shadow) << level_name(level);
    }
}

// A member failed while the others carried on: at the next assembly its superblock is older, so
// it is rebuilt rather than trusted.
TEST(RaidSuperblock, AStaleMemberIsRebuiltNotTrusted) {
    ModEnv env(1);
    SbArray a(env, 4, 4096);
    ASSERT_EQ(a.create(Level::Raid5, 8), 0);
    wait_idle(env, "r");
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    {
        RandomVerify v(env, env.data(0), "r", &shadow);
        VerifyOptions o;
        o.ops = 200;
        EXPECT_EQ(v.run(o).mismatches, 0u);
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_fail_member("r", "p1", &err), 0);
        });
        o.seed = 2;
        o.write_percent = 100;
        EXPECT_EQ(v.run(o).errors, 0u);  // p1 misses these writes
    }
    a.remove();
    for (int i = 0; i < 4; ++i) a.unplug(i);
    for (int i = 0; i < 4; ++i) a.plug(i);
    a.settle();
    ASSERT_NE(bdev_get_by_name("r"), nullptr);
    nlohmann::json e = wait_idle(env, "r");
    EXPECT_EQ(e["state"], "online") << e.dump();
    // Only p1 and two others: p1 must hold the writes it missed.
    env.run(env.ctl(), [&] {
        std::string err;
        EXPECT_EQ(raid_fail_member("r", "p0", &err), 0);
    });
    EXPECT_EQ(read_all(env, "r"), shadow);
}

// A member that goes away and comes back while the array runs is rebuilt into its slot.
TEST(RaidSuperblock, AMemberThatComesBackIsRebuilt) {
    ModEnv env(1);
    SbArray a(env, 5, 4096);
    ASSERT_EQ(a.create(Level::Raid6, 8), 0);
    wait_idle(env, "r");
    Bdev* r = bdev_get_by_name("r");
    std::vector<uint8_t> shadow(r->num_blocks * r->block_size, 0);
    RandomVerify v(env, env.data(0), "r", &shadow);
    VerifyOptions o;
    o.ops = 200;
    EXPECT_EQ(v.run(o).mismatches, 0u);
    a.unplug(2);  // hot-removed: the array goes on degraded
    o.seed = 5;
    VerifyResult res = v.run(o);
    EXPECT_EQ(res.errors, 0u);
    EXPECT_EQ(res.mismatches, 0u);
    a.plug(2);
    a.settle();
    nlohmann::json e = wait_idle(env, "r");
    EXPECT_EQ(e["state"], "online") << e.dump();
    EXPECT_EQ(e["base_bdevs_list"][2]["name"], "p2");
    for (const char* m : {"p0", "p1"}) {
        env.run(env.ctl(), [&] {
            std::string err;
            EXPECT_EQ(raid_fail_member("r", m, &err), 0);
        });
    }
    EXPECT_EQ(v.check_all(), 0u);
}

TEST(RaidSuperblock, MembersOfAnotherArrayAreRefusedUntilCleared) {
    ModEnv env(1);
    SbArray a(env, 3, 4096);
    ASSERT_EQ(a.create(Level::Raid5, 4), 0);
    wait_idle(env, "r");
    a.remove();  // the superblocks stay
    int rc = 0;
    std::string why;
    env.run_async(env.ctl(), [&](auto done) {
        RaidCreateOptions o;
        o.name = "other";
        o.level = Level::Raid1;
        o.base_bdevs = {"p0", "p1"};
        o.superblock = true;
        raid_create_async(o, [&, done](int r, std::string err) {
            rc = r;
            why = err;
            done();
        });
    });
    EXPECT_EQ(rc, -EEXIST);
    EXPECT_NE(why.find("belongs to raid r"), std::string::npos) << why;
    // Assembled again (the members reappear), then deleted with clear_sb: they are free.
    for (int i = 0; i < 3; ++i) a.unplug(i);
    for (int i = 0; i < 3; ++i) a.plug(i);
    a.settle();
    ASSERT_NE(bdev_get_by_name("r"), nullptr);
    wait_idle(env, "r");
    a.remove(/*clear_sb=*/true);
    for (int i = 0; i < 3; ++i) a.unplug(i);
    for (int i = 0; i < 3; ++i) a.plug(i);
    a.settle();
    EXPECT_EQ(bdev_get_by_name("r"), nullptr) << "cleared: nothing assembles";
    EXPECT_EQ(bdev_get_by_name("p0")->claimed_by(), nullptr);
}

}  // namespace
