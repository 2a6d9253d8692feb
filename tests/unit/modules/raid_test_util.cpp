#include "raid_test_util.h"

#include "modules/malloc.h"
#include "modules/passthru.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace nocstor::test {

using namespace nocstor::raid;

void make_malloc(ModEnv& env, const std::string& name, uint64_t blocks, uint32_t bs) {
    env.run(env.ctl(), [&] {
        MallocBdevOptions o;
        o.name = name;
        o.num_blocks = blocks;
        o.block_size = bs;
        std::string err;
        ASSERT_EQ(malloc_bdev_create(o, &err), 0) << err;
    });
}

nlohmann::json wait_idle(ModEnv& env, const std::string& name, int timeout_ms) {
    nlohmann::json entry;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
        env.run(env.ctl(), [&] {
            for (const auto& e : raid_list("all"))
                if (e["name"] == name) entry = e;
        });
        bool arriving = false;
        for (const auto& m : entry.value("base_bdevs_list", nlohmann::json::array()))
            arriving = arriving || (m["is_configured"] == true && m["state"] == "missing");
        if (!entry.contains("process") && !arriving) return entry;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "process still running: " << entry.dump();
    return entry;
}

std::vector<uint8_t> read_all(ModEnv& env, const std::string& name) {
    Bdev* b = bdev_get_by_name(name);
    std::vector<uint8_t> out(b->num_blocks * b->block_size);
    TestDesc d(env, name, false);
    for (uint64_t off = 0; off < b->num_blocks; off += 256) {
        const uint64_t n = std::min<uint64_t>(256, b->num_blocks - off);
        EXPECT_TRUE(d.read(out.data() + off * b->block_size, off, n).ok);
    }
    return out;
}

bool read_newest_sb(ModEnv& env, const std::string& disk, Superblock* sb) {
    constexpr uint64_t kCopyBlocks = kSbBytes / 512;
    TestDesc d(env, disk, false);
    AlignedBuf b(2 * kSbBytes);
    if (!d.read(b.p, 0, 2 * kCopyBlocks).ok) return false;
    bool found = false;
    for (int c = 0; c < 2; ++c) {
        Superblock s;
        std::string why;
        if (!sb_decode(b.p + c * kSbBytes, &s, &why)) continue;
        if (!found || s.seq > sb->seq) *sb = s;
        found = true;
    }
    return found;
}

void write_only_sb_copy(ModEnv& env, const std::string& disk, const Superblock& sb) {
    constexpr uint64_t kCopyBlocks = kSbBytes / 512;
    TestDesc d(env, disk, true);
    AlignedBuf b(2 * kSbBytes);
    memset(b.p, 0, b.size);
    sb_encode(sb, b.p + (sb.seq % 2) * kSbBytes);
    ASSERT_TRUE(d.write(b.p, 0, 2 * kCopyBlocks).ok);
}

SbArray::SbArray(ModEnv& e, int n, uint64_t member_blocks) : env(e), blocks(member_blocks) {
    for (int i = 0; i < n; ++i) {
        make_malloc(env, "disk" + std::to_string(i), member_blocks);
        members.push_back("p" + std::to_string(i));
        plug(i);
    }
}

void SbArray::plug(int i) {
    env.run(env.ctl(), [&] {
        std::string err;
        ASSERT_EQ(passthru_bdev_create({"disk" + std::to_string(i), members[size_t(i)], ""}, &err),
                  0)
            << err;
    });
}

void SbArray::unplug(int i) {
    env.run_async(env.ctl(), [&](auto done) {
        passthru_bdev_delete(members[size_t(i)], [done](int) { done(); });
    });
}

int SbArray::create(Level level, uint32_t strip_kb, uint32_t bitmap_region_kb) {
    int rc = -1;
    env.run_async(env.ctl(), [&](auto done) {
        RaidCreateOptions o;
        o.name = "r";
        o.level = level;
        o.base_bdevs = members;
        o.strip_size_kb = strip_kb;
        o.superblock = true;
        o.bitmap_region_kb = bitmap_region_kb;
        raid_create_async(o, [&, done](int r, std::string err) {
            rc = r;
            if (r) ADD_FAILURE() << err;
            done();
        });
    });
    return rc;
}

void SbArray::remove(bool clear_sb) {
    env.run_async(env.ctl(), [&](auto done) {
        raid_delete("r", clear_sb, [done](int rc) {
            EXPECT_EQ(rc, 0);
            done();
        });
    });
}

void SbArray::settle() {
    env.run_async(env.ctl(), [](auto done) { bdev_wait_for_examine(done); });
}

}  // namespace nocstor::test
