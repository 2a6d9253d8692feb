// The lvstore's on-disk format (lvs_format), its metadata state machine (lvs_state) and recovery
// (lvs_recover): encodings round trip and reject damage; every operation applies as documented
// or is refused leaving the state as it was; and recovery of a metadata image cut after any
// page write (or in the middle of one) yields the state after a prefix of whole batches that
// includes every batch fully written.
#include "lvol_test_util.h"
#include "modules/lvol/lvs_recover.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

using namespace nocstor;
using namespace nocstor::lvol;
using namespace nocstor::lvol::test;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

Superblock layout_or_fail(uint64_t base, uint32_t bs, uint64_t cluster) {
    Superblock sb;
    std::string why;
    EXPECT_TRUE(layout_new(base, bs, cluster, &sb, &why)) << why;
    return sb;
}

// The first two pages of a store: copy A at 0, copy B at `page`.
std::vector<uint8_t> two_copies(const Superblock* a, const Superblock* b, uint64_t page = 4096) {
    std::vector<uint8_t> buf(2 * page, 0);
    if (a) sb_encode(*a, buf.data());
    if (b) sb_encode(*b, buf.data() + page);
    return buf;
}

std::string op_diff(const Op& a, const Op& b) {
    if (a.type != b.type) return "type";
    if (a.id != b.id) return "id";
    if (a.other != b.other) return "other";
    if (a.num != b.num) return "num";
    if (a.name != b.name) return "name";
    if (a.runs.size() != b.runs.size()) return "runs";
    for (size_t i = 0; i < a.runs.size(); ++i)
        if (a.runs[i].lidx != b.runs[i].lidx || a.runs[i].pcl != b.runs[i].pcl ||
            a.runs[i].count != b.runs[i].count)
            return "run " + std::to_string(i);
    return lvol_diff(a.lvol, b.lvol);
}

Op round_trip(const Op& op) {
    std::vector<uint8_t> buf;
    op_encode(op, &buf);
    size_t pos = 0;
    Op out;
    EXPECT_TRUE(op_decode(buf.data(), buf.size(), &pos, &out)) << op_type_name(op.type);
    EXPECT_EQ(pos, buf.size());
    // Every truncation is refused and leaves the position alone.
    for (size_t n = 0; n < buf.size(); ++n) {
        size_t p = 0;
        Op junk;
        EXPECT_FALSE(op_decode(buf.data(), n, &p, &junk))
            << op_type_name(op.type) << " cut at " << n;
        EXPECT_EQ(p, 0u);
    }
    return out;
}

// A state of `total` clusters built by applying ops (each must apply).
LvsState applied(uint64_t total, const std::vector<Op>& ops) {
    LvsState s(total);
    for (const Op& op : ops) {
        std::string why;
        EXPECT_TRUE(s.apply(op, &why)) << op_type_name(op.type) << ": " << why;
    }
    return s;
}

// `op` is refused (with a reason) and leaves `s` exactly as it was.
void expect_refused(LvsState& s, const Op& op, const std::string& reason_part = "") {
    const LvsState before = s;
    std::string why;
    EXPECT_FALSE(s.apply(op, &why)) << op_type_name(op.type);
    EXPECT_FALSE(why.empty());
    if (!reason_part.empty()) {
        EXPECT_NE(why.find(reason_part), std::string::npos) << why;
    }
    EXPECT_EQ(state_diff(s, before), "") << op_type_name(op.type);
}

std::vector<std::string> check_of(uint64_t total, std::vector<LvolMeta> lvols) {
    LvsState s;
    std::string why;
    EXPECT_TRUE(s.load(total, 1, std::move(lvols), &why)) << why;
    return s.check();
}

bool has_message(const std::vector<std::string>& msgs, const std::string& part) {
    return std::any_of(msgs.begin(), msgs.end(),
                       [&](const std::string& m) { return m.find(part) != std::string::npos; });
}

// ---------------------------------------------------------------------------------------------
// Superblock

TEST(LvolFormat, SuperblockRoundTrip) {
    Superblock sb = layout_or_fail(64 * kMiB, 512, kMiB);
    sb.seq = 42;
    sb.clean = true;
    sb.uuid = test_uuid(3);
    sb.name = std::string(kMaxNameBytes, 'n');
    uint8_t buf[kSbBytes];
    sb_encode(sb, buf);
    EXPECT_TRUE(sb_has_magic(buf));
    Superblock out;
    std::string why;
    ASSERT_TRUE(sb_decode(buf, &out, &why)) << why;
    EXPECT_EQ(out.seq, 42u);
    EXPECT_TRUE(out.clean);
    EXPECT_EQ(out.uuid, sb.uuid);
    EXPECT_EQ(out.name, sb.name);
    EXPECT_EQ(out.block_size, sb.block_size);
    EXPECT_EQ(out.page_bytes, sb.page_bytes);
    EXPECT_EQ(out.cluster_bytes, sb.cluster_bytes);
    EXPECT_EQ(out.total_clusters, sb.total_clusters);
    EXPECT_EQ(out.max_clusters, sb.max_clusters);
    EXPECT_EQ(out.data_offset, sb.data_offset);
    EXPECT_EQ(out.ckpt_offset, sb.ckpt_offset);
    EXPECT_EQ(out.ckpt_bytes, sb.ckpt_bytes);
    EXPECT_EQ(out.journal_offset, sb.journal_offset);
    EXPECT_EQ(out.journal_bytes, sb.journal_bytes);
    EXPECT_EQ(out.base_bytes, sb.base_bytes);

    // Not clean; a name longer than the field is cut to 63 bytes.
    sb.clean = false;
    sb.name = std::string(80, 'x');
    sb_encode(sb, buf);
    ASSERT_TRUE(sb_decode(buf, &out, &why)) << why;
    EXPECT_FALSE(out.clean);
    EXPECT_EQ(out.name, std::string(kMaxNameBytes, 'x'));
}

TEST(LvolFormat, SuperblockDamageIsDetected) {
    const Superblock sb = layout_or_fail(64 * kMiB, 4096, kMiB);
    uint8_t good[kSbBytes];
    sb_encode(sb, good);
    Superblock out;
    std::string why;
    // Any flipped bit of the 512 covered bytes (magic, version and size have their own reasons).
    for (size_t off = 0; off < kSbBytes; ++off) {
        uint8_t buf[kSbBytes];
        std::memcpy(buf, good, kSbBytes);
        buf[off] ^= 0x10;
        EXPECT_FALSE(sb_decode(buf, &out, &why)) << "byte " << off;
        if (off >= 20) {
            EXPECT_EQ(why, "superblock checksum mismatch") << off;
        }
    }
    uint8_t buf[kSbBytes];
    std::memcpy(buf, good, kSbBytes);
    buf[0] = 'X';
    EXPECT_FALSE(sb_has_magic(buf));
    EXPECT_FALSE(sb_decode(buf, &out, &why));
    EXPECT_EQ(why, "no lvstore superblock");
    std::memcpy(buf, good, kSbBytes);
    buf[8] = 2;  // version 2
    EXPECT_FALSE(sb_decode(buf, &out, &why));
    EXPECT_NE(why.find("version 2"), std::string::npos) << why;

    // A correctly checksummed superblock with impossible geometry.
    Superblock bad = sb;
    bad.journal_offset += 4096;
    sb_encode(bad, buf);
    EXPECT_FALSE(sb_decode(buf, &out, &why));
    EXPECT_EQ(why, "superblock geometry is inconsistent");
    bad = sb;
    bad.total_clusters = bad.max_clusters + 1;
    sb_encode(bad, buf);
    EXPECT_FALSE(sb_decode(buf, &out, &why));
    bad = sb;
    bad.page_bytes = 2048;
    sb_encode(bad, buf);
    EXPECT_FALSE(sb_decode(buf, &out, &why));
}

TEST(LvolFormat, ReadSuperblockTakesTheNewestValidCopy) {
    Superblock a = layout_or_fail(64 * kMiB, 512, kMiB), b = a;
    a.uuid = b.uuid = test_uuid(9);
    a.seq = 4;
    b.seq = 5;
    Superblock sb;
    bool damaged = true;
    std::string why;
    auto buf = two_copies(&a, &b);
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 5u);
    EXPECT_FALSE(damaged);
    a.seq = 6;
    buf = two_copies(&a, &b);
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 6u);
    // A tie goes to A.
    a.seq = 5;
    a.clean = true;
    buf = two_copies(&a, &b);
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_TRUE(sb.clean);

    // A damaged newer copy: the other one counts.
    a.seq = 7;
    buf = two_copies(&a, &b);
    buf[100] ^= 1;
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 5u);
    buf = two_copies(&b, &a);
    buf[4096 + 100] ^= 1;
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 5u);
    // Only copy B.
    buf = two_copies(nullptr, &b);
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 5u);

    // A copy of another store is ignored.
    b.uuid = test_uuid(10);
    b.seq = 9;
    a.seq = 3;
    buf = two_copies(&a, &b);
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 3u);

    // Both damaged: refused, and said to be damaged (not overwritten as if empty).
    buf = two_copies(&a, &b);
    buf[100] ^= 1;
    buf[4096 + 100] ^= 1;
    EXPECT_FALSE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why));
    EXPECT_TRUE(damaged);
    EXPECT_NE(why.find("damaged"), std::string::npos) << why;
    // Nothing there.
    buf.assign(8192, 0);
    EXPECT_FALSE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why));
    EXPECT_FALSE(damaged);
    EXPECT_EQ(why, "no lvstore superblock");
    // Too short for copy B: A alone.
    buf = two_copies(&a, &b);
    ASSERT_TRUE(read_superblock(buf.data(), 4096, &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 3u);
}

TEST(LvolFormat, ReadSuperblockWithLargeBlocksFindsCopyBAfterCopyAsPage) {
    Superblock a = layout_or_fail(64 * kMiB, 8192, kMiB), b = a;
    ASSERT_EQ(a.page_bytes, 8192u);
    a.seq = 2;
    b.seq = 3;
    auto buf = two_copies(&a, &b, 8192);
    Superblock sb;
    bool damaged;
    std::string why;
    ASSERT_TRUE(read_superblock(buf.data(), buf.size(), &sb, &damaged, &why)) << why;
    EXPECT_EQ(sb.seq, 3u);
}

// The CRC is CRC-32C (Castagnoli) as iSCSI uses it: its check value, and it is what the
// superblock carries (over the 512 bytes with the CRC field zero).
TEST(LvolFormat, Crc32cIsTheStandardCastagnoliCrc) {
    const char* check = "123456789";
    EXPECT_EQ(crc32c(reinterpret_cast<const uint8_t*>(check), 9), 0xE3069283u);
    Superblock sb = layout_or_fail(64 * kMiB, 512, kMiB);
    uint8_t buf[kSbBytes];
    sb_encode(sb, buf);
    uint32_t stored;
    std::memcpy(&stored, buf + 16, 4);
    std::memset(buf + 16, 0, 4);
    EXPECT_EQ(crc32c(buf, kSbBytes), stored);
}

// ---------------------------------------------------------------------------------------------
// Layout

void expect_sane_layout(const Superblock& sb, uint64_t base, uint32_t bs, uint64_t cluster) {
    EXPECT_EQ(sb.block_size, bs);
    EXPECT_EQ(sb.page_bytes, std::max<uint64_t>(4096, bs));
    EXPECT_EQ(sb.cluster_bytes, cluster);
    EXPECT_EQ(sb.base_bytes, base);
    EXPECT_GE(sb.ckpt_offset, 2 * sb.page_bytes);  // after both superblock copies
    EXPECT_EQ(sb.journal_offset, sb.ckpt_offset + 2 * sb.ckpt_bytes);
    EXPECT_GE(sb.data_offset, sb.journal_offset + sb.journal_bytes);
    EXPECT_EQ(sb.data_offset % std::min<uint64_t>(cluster, 4 * kMiB), 0u);
    EXPECT_EQ(sb.total_clusters, (base - sb.data_offset) / cluster);
    EXPECT_EQ(sb.total_clusters, clusters_for(sb, base));
    EXPECT_LE(sb.data_offset + sb.total_clusters * cluster, base);
    EXPECT_GE(sb.max_clusters, sb.total_clusters);
    // What layout_new makes, sb_decode takes.
    uint8_t buf[kSbBytes];
    sb_encode(sb, buf);
    Superblock out;
    std::string why;
    EXPECT_TRUE(sb_decode(buf, &out, &why)) << why;
    // A single operation on every cluster of the store, each a run of its own, fits the journal.
    EXPECT_LE(batch_bytes(1 + 200 + 4 + sb.total_clusters * 16, sb.page_bytes), sb.journal_bytes);
}

TEST(LvolFormat, LayoutOfSmallBases) {
    for (uint32_t bs : {512u, 4096u}) {
        SCOPED_TRACE(bs);
        const Superblock sb = layout_or_fail(64 * kMiB, bs, kMiB);
        expect_sane_layout(sb, 64 * kMiB, bs, kMiB);
        EXPECT_EQ(sb.ckpt_offset, kMiB);
        EXPECT_EQ(sb.ckpt_bytes, kMiB);
        EXPECT_EQ(sb.journal_offset, 3 * kMiB);
        EXPECT_EQ(sb.journal_bytes, 4 * kMiB);
        EXPECT_EQ(sb.data_offset, 7 * kMiB);
        EXPECT_EQ(sb.total_clusters, 57u);
        EXPECT_EQ(sb.max_clusters, 256u);
    }
    // Clusters as small as a page.
    const Superblock sb = layout_or_fail(64 * kMiB, 4096, 4096);
    expect_sane_layout(sb, 64 * kMiB, 4096, 4096);
}

TEST(LvolFormat, LayoutOfLargeBases) {
    constexpr uint64_t kTiB = 1ull << 40;
    for (uint32_t bs : {512u, 4096u}) {
        SCOPED_TRACE(bs);
        const Superblock sb = layout_or_fail(kTiB, bs, 4 * kMiB);
        expect_sane_layout(sb, kTiB, bs, 4 * kMiB);
        EXPECT_EQ(sb.max_clusters, 4 * (kTiB / (4 * kMiB)));
        EXPECT_GT(sb.total_clusters, 260000u);
    }
}

TEST(LvolFormat, LayoutRefusesWhatDoesNotFit) {
    Superblock sb;
    std::string why;
    // Too small for the metadata and one cluster.
    EXPECT_FALSE(layout_new(4 * kMiB, 512, kMiB, &sb, &why));
    EXPECT_NE(why.find("cannot hold"), std::string::npos) << why;
    EXPECT_FALSE(layout_new(7 * kMiB, 512, kMiB, &sb, &why));
    EXPECT_TRUE(layout_new(8 * kMiB, 512, kMiB, &sb, &why)) << why;
    EXPECT_EQ(sb.total_clusters, 1u);
    // Cluster sizes: not a power of two, under a page, over 1 GiB.
    for (uint64_t c : {3 * kMiB, uint64_t(2048), uint64_t(0), 2048 * kMiB}) {
        EXPECT_FALSE(layout_new(kMiB << 10, 512, c, &sb, &why)) << c;
        EXPECT_NE(why.find("cluster size"), std::string::npos) << why;
    }
    EXPECT_FALSE(layout_new(kMiB << 10, 8192, 4096, &sb, &why));  // page is 8 KiB
    // Block sizes.
    for (uint32_t bs : {0u, 3u, 1000u, 131072u}) {
        EXPECT_FALSE(layout_new(kMiB << 10, bs, kMiB, &sb, &why)) << bs;
        EXPECT_NE(why.find("block size"), std::string::npos) << why;
    }
    // More clusters than a cluster map entry can name (or than a checkpoint slot should hold).
    EXPECT_FALSE(layout_new((1ull << 32) * 4096 + (1ull << 40), 4096, 4096, &sb, &why));
    EXPECT_NE(why.find("use a larger cluster size"), std::string::npos) << why;
    EXPECT_FALSE(layout_new(1ull << 40, 4096, 4096, &sb, &why)) << "20 GiB checkpoint slots";
    EXPECT_NE(why.find("per checkpoint"), std::string::npos) << why;
}

// The checkpoint slots hold the most the layout promises: one lvol record per cluster (up to
// 65536) with the longest names, every cluster of the grown store a run of its own.
TEST(LvolFormat, LayoutCheckpointSlotHoldsTheWorstCase) {
    for (auto [base, cluster] : {std::pair<uint64_t, uint64_t>{64 * kMiB, kMiB},
                                 std::pair<uint64_t, uint64_t>{1ull << 40, 4 * kMiB}}) {
        SCOPED_TRACE(base);
        const Superblock sb = layout_or_fail(base, 4096, cluster);
        const uint64_t lvol_count = std::clamp<uint64_t>(sb.max_clusters, 1024, 65536);
        std::vector<LvolMeta> lvols(lvol_count);
        for (uint64_t i = 0; i < lvol_count; ++i) {
            lvols[i].id = uint32_t(i + 1);
            lvols[i].name = std::string(kMaxNameBytes, 'a');
            lvols[i].esnap = std::string(kMaxNameBytes, 'e');
        }
        // Clusters in descending order never coalesce into runs.
        LvolMeta& big = lvols[0];
        big.num_clusters = sb.max_clusters;
        big.map.resize(sb.max_clusters);
        for (uint64_t i = 0; i < sb.max_clusters; ++i)
            big.map[i] = uint32_t(sb.max_clusters - 1 - i);
        ASSERT_EQ(big.runs().size(), sb.max_clusters);
        std::vector<const LvolMeta*> ptrs;
        for (const LvolMeta& l : lvols) ptrs.push_back(&l);
        CheckpointHeader h;
        h.uuid = sb.uuid;
        std::vector<uint8_t> out;
        ckpt_encode(h, ptrs, std::vector<bool>(sb.max_clusters, true), sb.page_bytes, &out);
        EXPECT_LE(out.size(), sb.ckpt_bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Operations

TEST(LvolFormat, EveryOpRoundTrips) {
    LvolMeta l = make_lvol(7, "vol-7", 20, false, {5, 6, 7, 100, 99});
    l.read_only = true;
    l.snapshot = true;
    l.parent = 3;
    l.esnap = "nvme0n1";
    l.clear_method = ClearMethod::WriteZeroes;
    l.map[15] = 1234;
    std::vector<Op> ops = {op_create(l),
                           op_delete(9),
                           op_alloc(4, {{0, 10, 3}, {17, 2, 1}}),
                           op_resize(4, 1ull << 33, {{40, 1, 8}}),
                           op_snapshot(4, 11, "snap"),
                           op_rename(4, std::string(kMaxNameBytes, 'r')),
                           op_read_only(12),
                           op_set_parent(4, kNoLvol, "esnap-bdev"),
                           op_set_parent(4, 6, ""),
                           op_merge(6, 4)};
    ops[4].lvol.num_clusters = 33;  // encoded, ignored by apply
    ops[4].lvol.clear_method = ClearMethod::None;
    ops[4].lvol.thin = true;
    std::vector<bool> seen(10, false);
    for (const Op& op : ops) {
        SCOPED_TRACE(op_type_name(op.type));
        seen[size_t(op.type)] = true;
        EXPECT_EQ(op_diff(round_trip(op), op), "");
    }
    EXPECT_EQ(std::count(seen.begin() + 1, seen.end(), true), 9);

    // Back to back in one buffer.
    std::vector<uint8_t> buf;
    for (const Op& op : ops) op_encode(op, &buf);
    size_t pos = 0;
    for (const Op& op : ops) {
        Op out;
        ASSERT_TRUE(op_decode(buf.data(), buf.size(), &pos, &out));
        EXPECT_EQ(op_diff(out, op), "");
    }
    EXPECT_EQ(pos, buf.size());
}

TEST(LvolFormat, OpDecodeRefusesGarbage) {
    Op out;
    for (uint8_t t : {uint8_t(0), uint8_t(10), uint8_t(255)}) {
        const uint8_t buf[16] = {t};
        size_t pos = 0;
        EXPECT_FALSE(op_decode(buf, sizeof(buf), &pos, &out)) << int(t);
    }
    // A name longer than 63 bytes.
    std::vector<uint8_t> buf;
    op_encode(op_rename(1, "abc"), &buf);
    buf[5] = 64;  // type(1) id(4) len
    buf.resize(buf.size() + 64, 'x');
    size_t pos = 0;
    EXPECT_FALSE(op_decode(buf.data(), buf.size(), &pos, &out));
    // An unknown clear method.
    buf.clear();
    op_encode(op_create(make_lvol(1, "a", 2, true)), &buf);
    const size_t cm_off = 1 + 4 + 16 + 1 + 1 + 8 + 1;  // type id uuid len "a" num flags
    ASSERT_EQ(buf[cm_off], uint8_t(ClearMethod::Unmap));
    buf[cm_off] = 3;
    pos = 0;
    EXPECT_FALSE(op_decode(buf.data(), buf.size(), &pos, &out));
    // A run past the end of the lvol.
    buf.clear();
    op_encode(op_create(make_lvol(1, "a", 2, false, {4, 5})), &buf);
    buf[buf.size() - 16] = 1;  // lidx of the only run: 1, count 2 > 2 - 1
    pos = 0;
    EXPECT_FALSE(op_decode(buf.data(), buf.size(), &pos, &out));
}

// ---------------------------------------------------------------------------------------------
// Checkpoint and journal batches

TEST(LvolFormat, CheckpointRoundTrip) {
    const Uuid store = test_uuid(1);
    LvolMeta a = make_lvol(1, "a", 6, false, {0, 1, 2, 10, 11, 3});
    LvolMeta b = make_lvol(2, "snap", 4, true, {20}, kNoLvol);
    b.read_only = b.snapshot = true;
    b.esnap = "base-bdev";
    LvolMeta c = make_lvol(5, "clone", 4, true, {}, 2);
    c.clear_method = ClearMethod::None;
    std::vector<bool> used(61, false);  // not a multiple of 8
    for (int i : {0, 1, 2, 3, 10, 11, 20, 60}) used[i] = true;
    CheckpointHeader h;
    h.seq = 77;
    h.uuid = store;
    h.journal_seq = 1000;
    h.journal_pos = 8192;
    h.next_id = 9;
    std::vector<uint8_t> enc;
    ckpt_encode(h, {&a, &b, &c}, used, 4096, &enc);
    EXPECT_EQ(enc.size() % 4096, 0u);

    CheckpointHeader oh;
    std::vector<LvolMeta> lvols;
    std::vector<bool> oused;
    std::string why;
    ASSERT_TRUE(ckpt_decode(enc.data(), enc.size(), store, &oh, &lvols, &oused, &why)) << why;
    EXPECT_EQ(oh.seq, 77u);
    EXPECT_EQ(oh.uuid, store);
    EXPECT_EQ(oh.journal_seq, 1000u);
    EXPECT_EQ(oh.journal_pos, 8192u);
    EXPECT_EQ(oh.next_id, 9u);
    EXPECT_EQ(oh.lvols, 3u);
    EXPECT_LE(kCkptHeaderBytes + oh.payload_bytes, enc.size());
    ASSERT_EQ(lvols.size(), 3u);
    EXPECT_EQ(lvol_diff(lvols[0], a), "");
    EXPECT_EQ(lvol_diff(lvols[1], b), "");
    EXPECT_EQ(lvol_diff(lvols[2], c), "");
    EXPECT_EQ(oused, used);
    CheckpointHeader hh;
    ASSERT_TRUE(ckpt_decode_header(enc.data(), store, &hh, &why)) << why;
    EXPECT_EQ(hh.payload_bytes, oh.payload_bytes);

    // An empty store.
    ckpt_encode(h, {}, {}, 4096, &enc);
    ASSERT_TRUE(ckpt_decode(enc.data(), enc.size(), store, &oh, &lvols, &oused, &why)) << why;
    EXPECT_TRUE(lvols.empty());
    EXPECT_TRUE(oused.empty());
}

TEST(LvolFormat, CheckpointDamageIsDetected) {
    const Uuid store = test_uuid(1);
    LvolMeta a = make_lvol(1, "a", 3, false, {0, 1, 2});
    CheckpointHeader h;
    h.seq = 2;
    h.uuid = store;
    std::vector<uint8_t> enc;
    ckpt_encode(h, {&a}, std::vector<bool>(8, true), 4096, &enc);
    CheckpointHeader oh;
    ASSERT_TRUE(ckpt_decode_header(enc.data(), store, &oh, nullptr));
    const size_t covered = kCkptHeaderBytes + oh.payload_bytes;
    std::vector<LvolMeta> lvols;
    std::vector<bool> used;
    std::string why;
    for (size_t off = 12; off < covered; ++off) {  // past magic and version
        std::vector<uint8_t> bad = enc;
        bad[off] ^= 0x01;
        EXPECT_FALSE(ckpt_decode(bad.data(), bad.size(), store, &oh, &lvols, &used, &why)) << off;
        if (off >= 64) {
            EXPECT_EQ(why, "checkpoint checksum mismatch") << off;
        }
    }
    // The padding after the payload is not covered.
    std::vector<uint8_t> padded = enc;
    padded[covered + 1] ^= 0xFF;
    EXPECT_TRUE(ckpt_decode(padded.data(), padded.size(), store, &oh, &lvols, &used, &why)) << why;

    EXPECT_FALSE(ckpt_decode(enc.data(), enc.size(), test_uuid(2), &oh, &lvols, &used, &why));
    EXPECT_EQ(why, "checkpoint of another lvstore");
    EXPECT_FALSE(ckpt_decode(enc.data(), covered - 1, store, &oh, &lvols, &used, &why));
    EXPECT_EQ(why, "checkpoint truncated");
    std::vector<uint8_t> zero(4096, 0);
    EXPECT_FALSE(ckpt_decode(zero.data(), zero.size(), store, &oh, &lvols, &used, &why));
    EXPECT_EQ(why, "no checkpoint");
}

TEST(LvolFormat, BatchRoundTripAndRejections) {
    const Uuid store = test_uuid(4);
    const Op o1 = op_create(make_lvol(3, "x", 10, false, {7, 8, 9}));
    const Op o2 = op_rename(3, "y");
    const Op o3 = op_alloc(3, {{5, 40, 2}});
    std::vector<uint8_t> enc;
    batch_encode(store, 12, {&o1, &o2, &o3}, 4096, &enc);
    ASSERT_EQ(enc.size(), 4096u);
    BatchHeader h;
    std::vector<Op> ops;
    ASSERT_TRUE(batch_decode(enc.data(), enc.size(), store, 12, &h, &ops));
    EXPECT_EQ(h.seq, 12u);
    EXPECT_EQ(h.uuid, store);
    EXPECT_EQ(h.ops, 3u);
    EXPECT_EQ(batch_bytes(h.payload_bytes, 4096), enc.size());
    ASSERT_EQ(ops.size(), 3u);
    EXPECT_EQ(op_diff(ops[0], o1), "");
    EXPECT_EQ(op_diff(ops[1], o2), "");
    EXPECT_EQ(op_diff(ops[2], o3), "");

    EXPECT_FALSE(batch_decode(enc.data(), enc.size(), store, 11, &h, &ops));
    EXPECT_FALSE(batch_decode(enc.data(), enc.size(), store, 13, &h, &ops));
    EXPECT_FALSE(batch_decode(enc.data(), enc.size(), test_uuid(5), 12, &h, &ops));
    const size_t covered = kBatchHeaderBytes + h.payload_bytes;
    for (size_t off = 0; off < covered; ++off) {
        std::vector<uint8_t> bad = enc;
        bad[off] ^= 0x04;
        EXPECT_FALSE(batch_decode(bad.data(), bad.size(), store, 12, &h, &ops)) << off;
    }
    EXPECT_FALSE(batch_decode(enc.data(), covered - 1, store, 12, &h, &ops));
    EXPECT_FALSE(batch_decode(enc.data(), kBatchHeaderBytes - 1, store, 12, &h, &ops));

    // Empty, and a batch of several pages.
    batch_encode(store, 1, {}, 4096, &enc);
    ASSERT_TRUE(batch_decode(enc.data(), enc.size(), store, 1, &h, &ops));
    EXPECT_TRUE(ops.empty());
    Op big = op_alloc(1, {});
    for (uint32_t i = 0; i < 600; ++i) big.runs.push_back({i, 2000 - i, 1});
    batch_encode(store, 2, {&big}, 4096, &enc);
    EXPECT_EQ(enc.size(), 3 * 4096u);
    ASSERT_TRUE(batch_decode(enc.data(), enc.size(), store, 2, &h, &ops));
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(op_diff(ops[0], big), "");
    EXPECT_FALSE(batch_decode(enc.data(), 2 * 4096, store, 2, &h, &ops));
}

// ---------------------------------------------------------------------------------------------
// The state machine

TEST(LvolState, CreateAndItsRefusals) {
    LvsState s(32);
    std::vector<lvol::Run> runs;
    ASSERT_TRUE(s.find_free(4, &runs));
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(s.used_clusters(), 0u);  // find_free does not take them
    std::string why;
    ASSERT_TRUE(s.apply(op_create(make_lvol(1, "thick", 4, false, {0, 1, 2, 3})), &why)) << why;
    ASSERT_TRUE(s.apply(op_create(make_lvol(2, "thin", 100, true)), &why)) << why;
    EXPECT_EQ(s.used_clusters(), 4u);
    EXPECT_EQ(s.free_clusters(), 28u);
    EXPECT_EQ(s.next_id(), 3u);
    EXPECT_EQ(s.find("thin")->id, 2u);
    EXPECT_EQ(s.lvol(1)->allocated(), 4u);
    EXPECT_TRUE(s.cluster_used(3));
    EXPECT_FALSE(s.cluster_used(4));
    EXPECT_TRUE(s.check().empty());

    expect_refused(s, op_create(make_lvol(3, "thick", 1, true)), "exists");
    expect_refused(s, op_create(make_lvol(2, "other", 1, true)), "in use");
    expect_refused(s, op_create(make_lvol(kNoLvol, "other", 1, true)), "in use");
    expect_refused(s, op_create(make_lvol(3, "", 1, true)), "name");
    expect_refused(s, op_create(make_lvol(3, std::string(64, 'x'), 1, true)), "name");
    expect_refused(s, op_create(make_lvol(3, "c", 2, false, {3, 4})), "in use");  // double
    expect_refused(s, op_create(make_lvol(3, "c", 2, false, {31, 32})), "end of the store");
    expect_refused(s, op_create(make_lvol(3, "c", 1, true, {}, 99)), "does not exist");
    // Two entries of one new lvol on one cluster.
    LvolMeta twice = make_lvol(3, "c", 2, false, {9, 9});
    expect_refused(s, op_create(twice), "in use");
    // A thick create of the rest of the store, then nothing is left.
    std::vector<uint32_t> rest;
    for (uint32_t c = 4; c < 32; ++c) rest.push_back(c);
    ASSERT_TRUE(s.apply(op_create(make_lvol(3, "rest", 28, false, rest)), &why)) << why;
    EXPECT_EQ(s.free_clusters(), 0u);
    EXPECT_FALSE(s.find_free(1, &runs));
    s.grow(40);
    EXPECT_EQ(s.free_clusters(), 8u);
    ASSERT_TRUE(s.find_free(8, &runs));
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].pcl, 32u);
    EXPECT_EQ(runs[0].count, 8u);
}

TEST(LvolState, FindFreeReturnsFreeRunsFromARotatingCursor) {
    LvsState s = applied(16, {op_create(make_lvol(1, "a", 4, false, {1, 3, 5, 7}))});
    std::vector<lvol::Run> runs;
    ASSERT_TRUE(s.find_free(5, &runs));
    uint64_t n = 0;
    for (const lvol::Run& r : runs) {
        n += r.count;
        for (uint32_t i = 0; i < r.count; ++i) EXPECT_FALSE(s.cluster_used(r.pcl + i));
    }
    EXPECT_EQ(n, 5u);
    std::vector<lvol::Run> next;
    ASSERT_TRUE(s.find_free(1, &next));
    EXPECT_GT(next[0].pcl, runs.back().pcl);  // the cursor moved on
    EXPECT_FALSE(s.find_free(13, &runs));
    EXPECT_TRUE(s.find_free(12, &runs));
}

TEST(LvolState, AllocResizeRenameReadOnly) {
    LvsState s = applied(32, {op_create(make_lvol(1, "thin", 10, true)),
                              op_create(make_lvol(2, "thick", 2, false, {0, 1}))});
    std::string why;
    ASSERT_TRUE(s.apply(op_alloc(1, {{3, 5, 2}, {9, 20, 1}}), &why)) << why;
    EXPECT_EQ(s.lvol(1)->map[3], 5u);
    EXPECT_EQ(s.lvol(1)->map[4], 6u);
    EXPECT_EQ(s.lvol(1)->map[9], 20u);
    EXPECT_EQ(s.used_clusters(), 5u);
    expect_refused(s, op_alloc(1, {{3, 8, 1}}), "already allocated");
    expect_refused(s, op_alloc(1, {{0, 0, 1}}), "in use");
    expect_refused(s, op_alloc(1, {{0, 10, 1}, {1, 10, 1}}), "in use");
    expect_refused(s, op_alloc(1, {{10, 10, 1}}), "past the end");
    expect_refused(s, op_alloc(1, {{0, 10, 0}}), "empty");
    expect_refused(s, op_alloc(7, {{0, 10, 1}}), "no lvol");

    // Grow a thick lvol with its new clusters; shrink frees what is past the end.
    ASSERT_TRUE(s.apply(op_resize(2, 4, {{2, 10, 2}}), &why)) << why;
    EXPECT_EQ(s.lvol(2)->num_clusters, 4u);
    EXPECT_EQ(s.lvol(2)->allocated(), 4u);
    EXPECT_EQ(s.used_clusters(), 7u);
    ASSERT_TRUE(s.apply(op_resize(1, 4), &why)) << why;  // entries 4 and 9 go
    EXPECT_EQ(s.lvol(1)->map.size(), 4u);
    EXPECT_FALSE(s.cluster_used(20));
    EXPECT_FALSE(s.cluster_used(6));
    EXPECT_TRUE(s.cluster_used(5));
    EXPECT_EQ(s.used_clusters(), 5u);
    // Shrink, then take the freed cluster again.
    ASSERT_TRUE(s.apply(op_resize(2, 3, {}), &why)) << why;
    EXPECT_FALSE(s.cluster_used(11));
    ASSERT_TRUE(s.apply(op_resize(2, 4, {{3, 11, 1}}), &why)) << why;
    expect_refused(s, op_resize(2, 6, {{4, 5, 1}}), "in use");
    expect_refused(s, op_resize(2, 6, {{6, 12, 1}}), "past the end");
    expect_refused(s, op_resize(9, 6), "no lvol");
    EXPECT_TRUE(s.check().empty());

    ASSERT_TRUE(s.apply(op_rename(1, "renamed"), &why)) << why;
    EXPECT_EQ(s.lvol(1)->name, "renamed");
    EXPECT_EQ(s.find("thin"), nullptr);
    ASSERT_TRUE(s.apply(op_rename(1, "renamed"), &why)) << why;  // to its own name: nothing
    expect_refused(s, op_rename(1, "thick"), "exists");
    expect_refused(s, op_rename(1, ""), "name");
    expect_refused(s, op_rename(5, "z"), "no lvol");
    ASSERT_TRUE(s.apply(op_read_only(1), &why)) << why;
    EXPECT_TRUE(s.lvol(1)->read_only);
    expect_refused(s, op_read_only(5), "no lvol");
}

TEST(LvolState, SnapshotMakesTheOriginAThinCloneOfIt) {
    LvsState s = applied(16, {op_create(make_lvol(1, "base", 4, false, {4, 5, 6, 7}))});
    std::string why;
    ASSERT_TRUE(s.apply(op_set_parent(1, kNoLvol, "ext0"), &why)) << why;
    const LvsState before = s;
    ASSERT_TRUE(s.apply(op_snapshot(1, 2, "snap"), &why)) << why;
    const LvolMeta& origin = *s.lvol(1);
    const LvolMeta& snap = *s.lvol(2);
    EXPECT_TRUE(origin.thin);
    EXPECT_FALSE(origin.read_only);
    EXPECT_EQ(origin.parent, 2u);
    EXPECT_EQ(origin.esnap, "");
    EXPECT_EQ(origin.allocated(), 0u);
    EXPECT_EQ(origin.num_clusters, 4u);
    EXPECT_TRUE(snap.snapshot && snap.read_only && snap.thin);
    EXPECT_EQ(snap.map, before.lvol(1)->map);  // the snapshot owns the old clusters
    EXPECT_EQ(snap.parent, kNoLvol);           // and takes the origin's old parent
    EXPECT_EQ(snap.esnap, "ext0");
    EXPECT_EQ(snap.num_clusters, 4u);
    EXPECT_EQ(snap.uuid, test_uuid(102));
    EXPECT_EQ(s.used_clusters(), 4u);
    EXPECT_EQ(s.next_id(), 3u);
    EXPECT_EQ(s.children(2), std::vector<uint32_t>{1});
    EXPECT_TRUE(s.check().empty());

    // Writes to the origin allocate new clusters.
    ASSERT_TRUE(s.apply(op_alloc(1, {{0, 0, 1}}), &why)) << why;
    // A second snapshot chains: origin -> snap2 -> snap.
    ASSERT_TRUE(s.apply(op_snapshot(1, 3, "snap2"), &why)) << why;
    EXPECT_EQ(s.lvol(3)->parent, 2u);
    EXPECT_EQ(s.lvol(1)->parent, 3u);
    EXPECT_EQ(s.lvol(3)->map[0], 0u);
    EXPECT_TRUE(s.check().empty());

    expect_refused(s, op_snapshot(1, 4, "snap"), "exists");
    expect_refused(s, op_snapshot(1, 2, "s4"), "in use");
    expect_refused(s, op_snapshot(1, kNoLvol, "s4"), "in use");
    expect_refused(s, op_snapshot(9, 4, "s4"), "no lvol");
}

TEST(LvolState, DeleteAndSetParent) {
    LvsState s =
        applied(16, {op_create(make_lvol(1, "base", 4, false, {0, 1, 2, 3})),
                     op_snapshot(1, 2, "snap"), op_create(make_lvol(3, "clone", 4, true, {}, 2))});
    std::string why;
    expect_refused(s, op_delete(2), "has clones");
    expect_refused(s, op_delete(8), "no lvol");
    expect_refused(s, op_set_parent(3, 3), "does not exist");
    expect_refused(s, op_set_parent(3, 9), "does not exist");
    ASSERT_TRUE(s.apply(op_delete(3), &why)) << why;
    expect_refused(s, op_delete(2), "has clones");  // base is still its clone
    // Decouple base from the snapshot (its data would have been copied first).
    ASSERT_TRUE(s.apply(op_set_parent(1, kNoLvol, "ext"), &why)) << why;
    EXPECT_EQ(s.lvol(1)->parent, kNoLvol);
    EXPECT_EQ(s.lvol(1)->esnap, "ext");
    ASSERT_TRUE(s.apply(op_delete(2), &why)) << why;
    EXPECT_EQ(s.used_clusters(), 0u);
    EXPECT_EQ(s.lvols().size(), 1u);
    ASSERT_TRUE(s.apply(op_set_parent(1, kNoLvol, ""), &why)) << why;
    EXPECT_EQ(s.lvol(1)->esnap, "");
    EXPECT_TRUE(s.check().empty());
}

TEST(LvolState, MergeSnapshotMovesOwnershipToItsOnlyClone) {
    // base(0..3) -> snapshot "s" owns 0..3; base then writes entry 1 (cluster 8).
    LvsState s = applied(16, {op_create(make_lvol(1, "base", 4, false, {0, 1, 2, 3})),
                              op_snapshot(1, 2, "s"), op_alloc(1, {{1, 8, 1}})});
    ASSERT_EQ(s.used_clusters(), 5u);
    // A clone of a second snapshot: two clones of "s" are refused.
    LvsState two = s;
    std::string why;
    ASSERT_TRUE(two.apply(op_create(make_lvol(3, "c2", 4, true, {}, 2)), &why)) << why;
    expect_refused(two, op_merge(2, 1), "more than one clone");
    expect_refused(s, op_merge(1, 2), "not a clone");
    expect_refused(s, op_merge(2, 9), "no lvol");

    ASSERT_TRUE(s.apply(op_merge(2, 1), &why)) << why;
    EXPECT_EQ(s.lvol(2), nullptr);
    const LvolMeta& base = *s.lvol(1);
    EXPECT_EQ(base.parent, kNoLvol);
    EXPECT_EQ(base.map, (std::vector<uint32_t>{0, 8, 2, 3}));  // its own write wins
    EXPECT_FALSE(s.cluster_used(1));                           // the overwritten cluster is free
    EXPECT_EQ(s.used_clusters(), 4u);
    EXPECT_TRUE(s.check().empty());
}

TEST(LvolState, MergeIntoACloneOfAChain) {
    // snapshot chain: base -> s2 -> s1; merging s2 into base gives base s1 as its parent.
    LvsState s =
        applied(16, {op_create(make_lvol(1, "base", 2, false, {0, 1})), op_snapshot(1, 2, "s1"),
                     op_alloc(1, {{0, 5, 1}}), op_snapshot(1, 3, "s2")});
    std::string why;
    ASSERT_TRUE(s.apply(op_merge(3, 1), &why)) << why;
    EXPECT_EQ(s.lvol(1)->parent, 2u);
    EXPECT_EQ(s.lvol(1)->map, (std::vector<uint32_t>{5, kUnallocated}));
    EXPECT_TRUE(s.check().empty());
}

TEST(LvolState, LoadRefusesContradictions) {
    LvsState s;
    std::string why;
    EXPECT_FALSE(s.load(
        8, 1, {make_lvol(1, "a", 2, false, {0, 1}), make_lvol(2, "b", 1, false, {1})}, &why));
    EXPECT_NE(why.find("owned twice"), std::string::npos) << why;
    EXPECT_FALSE(s.load(8, 1, {make_lvol(1, "a", 1, false, {8})}, &why));
    EXPECT_NE(why.find("past the end"), std::string::npos) << why;
    EXPECT_FALSE(s.load(8, 1, {make_lvol(1, "a", 1, true, {}, 4)}, &why));
    EXPECT_NE(why.find("does not exist"), std::string::npos) << why;
    EXPECT_FALSE(s.load(8, 1, {make_lvol(1, "a", 1, true), make_lvol(1, "b", 1, true)}, &why));
    LvolMeta short_map = make_lvol(1, "a", 3, true);
    short_map.map.resize(2);
    EXPECT_FALSE(s.load(8, 1, {short_map}, &why));
    // A refused load leaves the state alone.
    EXPECT_EQ(s.lvols().size(), 0u);
    ASSERT_TRUE(s.load(8, 1, {make_lvol(4, "a", 2, false, {6, 7})}, &why)) << why;
    EXPECT_EQ(s.next_id(), 5u);
    EXPECT_EQ(s.used_clusters(), 2u);
    EXPECT_TRUE(s.check().empty());
}

TEST(LvolState, CheckFindsBrokenParentChains) {
    LvolMeta a = make_lvol(1, "a", 2, true, {}, 2), b = make_lvol(2, "b", 2, true, {}, 1);
    a.read_only = b.read_only = true;
    auto msgs = check_of(8, {a, b});
    EXPECT_TRUE(has_message(msgs, "lvol a: its parent chain loops"))
        << ::testing::PrintToString(msgs);
    EXPECT_TRUE(has_message(msgs, "lvol b: its parent chain loops"));

    // A clone whose chain runs into a loop that does not include it.
    LvolMeta c = make_lvol(3, "c", 2, true, {}, 1);
    msgs = check_of(8, {a, b, c});
    EXPECT_TRUE(has_message(msgs, "lvol c: its parent chain loops"));

    LvolMeta self = make_lvol(1, "self", 1, true, {}, 1);
    self.read_only = true;
    msgs = check_of(8, {self});
    EXPECT_TRUE(has_message(msgs, "lvol self: its parent chain loops"));

    // A writable parent.
    LvolMeta p = make_lvol(1, "p", 2, false, {0, 1}), k = make_lvol(2, "k", 2, true, {}, 1);
    msgs = check_of(8, {p, k});
    EXPECT_TRUE(has_message(msgs, "lvol k: parent p is writable"));
    p.read_only = true;
    EXPECT_TRUE(check_of(8, {p, k}).empty());

    // A clone of a snapshot that also records an external parent: only a chain's top may.
    LvolMeta both = make_lvol(2, "both", 2, true, {}, 1);
    both.esnap = "ext0";
    msgs = check_of(8, {p, both});
    EXPECT_TRUE(has_message(msgs, "lvol both: has a parent (p) and an external parent (ext0)"))
        << ::testing::PrintToString(msgs);
    LvolMeta top = p;
    top.esnap = "ext0";  // the top of the chain with an external parent is fine
    EXPECT_TRUE(check_of(8, {top, k}).empty());

    // The same name twice.
    msgs = check_of(8, {make_lvol(1, "dup", 1, true), make_lvol(2, "dup", 1, true)});
    EXPECT_TRUE(has_message(msgs, "lvol name dup is used twice"));
}

// ---------------------------------------------------------------------------------------------
// Recovery

TEST(LvolRecover, EmptyStoreAndCheckpointChoice) {
    const Superblock sb = small_sb(64);
    LvsState s0 = applied(64, {op_create(make_lvol(1, "a", 3, false, {0, 1, 2}))});
    MetaWriter w(sb, s0);
    std::vector<uint8_t> img = w.image();
    Recovered r;
    std::string why;
    ASSERT_TRUE(recover(img.data(), img.size(), sb, &r, &why)) << why;
    EXPECT_EQ(state_diff(r.state, s0), "");
    EXPECT_EQ(r.ckpt_slot, 0u);
    EXPECT_EQ(r.ckpt.seq, 1u);
    EXPECT_EQ(r.next_seq, 1u);
    EXPECT_EQ(r.next_pos, 0u);
    EXPECT_EQ(r.batches, 0u);
    EXPECT_EQ(r.ckpt_used, s0.used_bits());

    w.batch({op_create(make_lvol(2, "b", 5, true))});
    w.checkpoint();  // slot 1, seq 2
    w.batch({op_alloc(2, {{0, 9, 2}}), op_rename(1, "a2")});
    img = w.image();
    ASSERT_TRUE(recover(img.data(), img.size(), sb, &r, &why)) << why;
    EXPECT_EQ(r.ckpt_slot, 1u);
    EXPECT_EQ(r.ckpt.seq, 2u);
    EXPECT_EQ(r.ckpt.journal_seq, 2u);
    EXPECT_EQ(r.batches, 1u);
    EXPECT_EQ(r.ops, 2u);
    EXPECT_EQ(r.next_seq, 3u);
    EXPECT_EQ(r.next_pos, 2 * 4096u);
    EXPECT_EQ(r.used_bytes, 4096u);
    EXPECT_EQ(state_diff(r.state, w.state()), "");

    // The newer checkpoint damaged: the older one and the journal from its position.
    img[sb.ckpt_offset + sb.ckpt_bytes + 200] ^= 1;
    ASSERT_TRUE(recover(img.data(), img.size(), sb, &r, &why)) << why;
    EXPECT_EQ(r.ckpt_slot, 0u);
    EXPECT_EQ(r.batches, 2u);
    EXPECT_EQ(state_diff(r.state, w.state()), "");
    // Both damaged.
    img[sb.ckpt_offset + 200] ^= 1;
    EXPECT_FALSE(recover(img.data(), img.size(), sb, &r, &why));
    EXPECT_NE(why.find("no valid checkpoint"), std::string::npos) << why;
    // Truncated region.
    img = w.image();
    EXPECT_FALSE(recover(img.data(), sb.data_offset - 1, sb, &r, &why));
}

TEST(LvolRecover, AnOperationThatDoesNotApplyFailsRecovery) {
    const Superblock sb = small_sb(64);
    const std::vector<uint8_t> img =
        make_image(sb, {make_lvol(1, "a", 2, false, {0, 1})}, {},
                   {{op_rename(1, "b")}, {op_create(make_lvol(2, "c", 1, false, {1}))}});
    Recovered r;
    std::string why;
    EXPECT_FALSE(recover(img.data(), img.size(), sb, &r, &why));
    EXPECT_NE(why.find("journal batch 2: create does not apply"), std::string::npos) << why;
}

// Ops for one batch, valid against `s` in order (applied to a scratch copy as they are made).
std::vector<Op> random_batch(const LvsState& s, std::mt19937& rng, int* names) {
    LvsState t = s;
    std::vector<Op> ops;
    auto pick = [&](auto pred) -> const LvolMeta* {
        std::vector<const LvolMeta*> c;
        for (const LvolMeta* l : t.all())
            if (pred(*l)) c.push_back(l);
        return c.empty() ? nullptr : c[rng() % c.size()];
    };
    const int n = 1 + int(rng() % 3);
    for (int tries = 0; int(ops.size()) < n && tries < 50; ++tries) {
        Op op;
        const int kind = int(rng() % 10);
        if (kind == 0 || t.lvols().size() < 3) {  // thin lvol
            op = op_create(
                make_lvol(t.next_id(), "l" + std::to_string((*names)++), 8 + rng() % 400, true));
        } else if (kind == 1) {  // thick lvol
            const uint64_t n_cl = 1 + rng() % 12;
            std::vector<lvol::Run> runs;
            if (!t.find_free(n_cl, &runs)) continue;
            LvolMeta l = make_lvol(t.next_id(), "l" + std::to_string((*names)++), n_cl, false);
            uint64_t i = 0;
            for (const lvol::Run& r : runs)
                for (uint32_t k = 0; k < r.count; ++k) l.map[i++] = r.pcl + k;
            op = op_create(l);
        } else if (kind <= 3) {  // writes into a thin lvol, scattered clusters
            const LvolMeta* l = pick(
                [](const LvolMeta& m) { return !m.snapshot && m.allocated() < m.num_clusters; });
            if (!l) continue;
            std::vector<uint64_t> holes;
            for (uint64_t i = 0; i < l->map.size(); ++i)
                if (l->map[i] == kUnallocated) holes.push_back(i);
            std::shuffle(holes.begin(), holes.end(), rng);
            uint64_t want = rng() % 4 == 0 ? 60 : 1 + rng() % 8;
            want = std::min<uint64_t>({want, holes.size(), t.free_clusters()});
            std::vector<lvol::Run> free;
            if (want == 0 || !t.find_free(want, &free)) continue;
            std::vector<lvol::Run> runs;
            size_t h = 0;
            for (const lvol::Run& r : free)
                for (uint32_t k = 0; k < r.count; ++k) runs.push_back({holes[h++], r.pcl + k, 1});
            op = op_alloc(l->id, runs);
        } else if (kind == 4) {
            const LvolMeta* l = pick([](const LvolMeta& m) { return !m.snapshot; });
            if (!l) continue;
            op = op_snapshot(l->id, t.next_id(), "s" + std::to_string((*names)++));
        } else if (kind == 5) {
            const LvolMeta* l = pick([&](const LvolMeta& m) { return t.children(m.id).empty(); });
            if (!l) continue;
            op = op_delete(l->id);
        } else if (kind == 6) {
            const LvolMeta* l = pick([](const LvolMeta&) { return true; });
            op = op_rename(l->id, "r" + std::to_string((*names)++));
        } else if (kind == 7) {  // resize: a thick lvol gets its new clusters
            const LvolMeta* l = pick([](const LvolMeta& m) { return !m.snapshot; });
            if (!l) continue;
            const uint64_t num = 1 + rng() % (l->num_clusters + 6);
            std::vector<lvol::Run> runs;
            if (!l->thin && num > l->num_clusters) {
                std::vector<lvol::Run> free;
                if (!t.find_free(num - l->num_clusters, &free)) continue;
                uint64_t i = l->num_clusters;
                for (lvol::Run r : free) {
                    r.lidx = i;
                    i += r.count;
                    runs.push_back(r);
                }
            }
            op = op_resize(l->id, num, runs);
        } else if (kind == 8) {
            const LvolMeta* l =
                pick([&](const LvolMeta& m) { return t.children(m.id).size() == 1; });
            if (!l) continue;
            op = op_merge(l->id, t.children(l->id)[0]);
        } else {
            const LvolMeta* l = pick([](const LvolMeta& m) { return !m.snapshot; });
            if (!l) continue;
            op = rng() % 2 ? op_read_only(l->id) : op_set_parent(l->id, kNoLvol, "ext");
        }
        std::string why;
        if (!t.apply(op, &why)) continue;
        ops.push_back(std::move(op));
    }
    return ops;
}

// A new thin lvol with 300 clusters written, each a run of its own: a batch of two pages.
std::vector<Op> big_batch(const LvsState& s, int* names) {
    const uint32_t id = s.next_id();
    std::vector<Op> ops = {op_create(make_lvol(id, "big" + std::to_string((*names)++), 400, true))};
    std::vector<lvol::Run> free;
    EXPECT_TRUE(s.find_free(300, &free)) << s.free_clusters() << " free";
    Op alloc = op_alloc(id, {});
    uint64_t lidx = 399;
    for (const lvol::Run& r : free)
        for (uint32_t k = 0; k < r.count; ++k) alloc.runs.push_back({lidx--, r.pcl + k, 1});
    ops.push_back(alloc);
    return ops;
}

// The important one: a writer's sequence of page writes (a superblock update, 32 batches of
// one or two pages with a checkpoint in the middle, checkpoints forced by a 12-page journal
// that wraps several times, a clean stop), cut after every write and in the middle of every
// write, or with one page of a record lost and the next one written. Recovery must always succeed
// and give the state after a prefix of whole batches that holds at least every batch written in
// full before the cut.
TEST(LvolRecover, JournalReplayAtEveryCutPoint) {
    const Superblock sb = small_sb(4096, 12, 32);
    MetaWriter w(sb, applied(sb.total_clusters, {op_create(make_lvol(1, "first", 16, false,
                                                                     {0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                                                      10, 11, 12, 13, 14, 15}))}));
    std::mt19937 rng(20240611);
    int names = 0;
    w.superblock(false);  // opened: not clean
    for (int b = 0; b < 32; ++b) {
        if (b == 15) w.checkpoint();
        w.batch(b % 5 == 2 ? big_batch(w.state(), &names) : random_batch(w.state(), rng, &names));
    }
    w.checkpoint();
    w.superblock(true);  // stopped cleanly
    ASSERT_FALSE(::testing::Test::HasFailure());
    // The sequence does what the test is for.
    EXPECT_GE(w.wraps(), 3u);
    EXPECT_GE(w.checkpoints(), 4u);
    EXPECT_GE(
        std::count_if(w.batch_pages.begin(), w.batch_pages.end(), [](uint64_t p) { return p > 1; }),
        3);
    EXPECT_TRUE(w.state().check().empty());
    const size_t n_batches = w.states.size() - 1;
    ASSERT_EQ(n_batches, 32u);

    const std::vector<PageWrite>& writes = w.writes();
    auto durable_before = [&](size_t k) {  // batches whose every write is among the first k
        size_t d = 0;
        while (d < n_batches && w.done_at[d + 1] <= k) ++d;
        return d;
    };
    auto check_image = [&](const std::vector<uint8_t>& img, size_t lo, size_t hi,
                           const std::string& what) {
        Superblock rsb;
        bool damaged;
        std::string why;
        ASSERT_TRUE(read_superblock(img.data(), img.size(), &rsb, &damaged, &why)) << what << why;
        Recovered r;
        ASSERT_TRUE(recover(img.data(), img.size(), rsb, &r, &why)) << what << ": " << why;
        ASSERT_GE(r.next_seq, 1u) << what;
        const size_t p = r.next_seq - 1;
        ASSERT_GE(p, lo) << what;
        ASSERT_LE(p, hi) << what;
        EXPECT_EQ(state_diff(r.state, w.states[p]), "")
            << what << ", prefix " << p << " (checkpoint slot " << r.ckpt_slot << " seq "
            << r.ckpt.seq << " journal_seq " << r.ckpt.journal_seq << ", " << r.batches
            << " batches replayed)";
        EXPECT_EQ(r.next_pos, w.pos_after[p]) << what;
        EXPECT_LE(r.used_bytes, sb.journal_bytes) << what;
        EXPECT_EQ(r.batches, p + 1 - r.ckpt.journal_seq) << what;
        EXPECT_TRUE(r.state.check().empty()) << what;
    };
    for (size_t k = 0; k <= writes.size(); ++k) {
        const size_t d = durable_before(k);
        check_image(w.image_at(k), d, d, "cut after " + std::to_string(k) + " writes");
        if (k < writes.size()) {
            // Write k torn: its first half only (or its first 256 bytes: half a superblock).
            // The batch it belongs to may be complete.
            for (size_t torn : {size_t(sb.page_bytes / 2), size_t(256)})
                check_image(w.image_at(k, torn), d, durable_before(k + 1),
                            "write " + std::to_string(k) + " torn at " + std::to_string(torn));
            // Write k lost while write k + 1 (the next page of the same record) landed.
            if (k + 1 < writes.size() && writes[k + 1].off == writes[k].off + sb.page_bytes) {
                std::vector<uint8_t> img = w.image_at(k);
                const PageWrite& next = writes[k + 1];
                std::memcpy(img.data() + next.off, next.bytes.data(), next.bytes.size());
                check_image(img, d, d, "write " + std::to_string(k) + " lost, next landed");
            }
        }
        if (::testing::Test::HasFatalFailure()) return;
    }
}

}  // namespace
