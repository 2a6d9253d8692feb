// nocstor-lvs-check (the offline lvstore checker) on image files written here with the format
// functions: a consistent store (with journal batches after its checkpoint, at offset 0 and
// inside a larger file), a cluster owned twice, a leaked bitmap bit and an owned cluster marked
// free, a missing parent, a parent loop, a journal operation that does not apply, damaged
// superblocks, truncated files, files that are not lvstores, and the command line itself. The
// tool is the built binary, run beside this test binary; it must never change the file.
#include "common/tool_run.h"
#include "lvol_test_util.h"
#include "modules/lvol/lvs_format.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

using namespace nocstor;
using namespace nocstor::lvol;
using namespace nocstor::lvol::test;
using nlohmann::json;

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kBase = 64 * kMiB;

using nocstor::testing::slurp_file;
using nocstor::testing::ToolRun;

class LvsCheckTool : public ::testing::Test {
  protected:
    void SetUp() override {
        tool_ = nocstor::testing::tool_beside_test("nocstor-lvs-check");
        if (tool_.empty() || access(tool_.c_str(), X_OK) != 0)
            GTEST_SKIP() << "nocstor-lvs-check is not built beside this test (" << tool_
                         << "): build the nocstor-lvs-check target";
        dir_ = std::filesystem::temp_directory_path() /
               ("lvs_check_test_" + std::to_string(getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_);
        std::string why;
        ASSERT_TRUE(layout_new(kBase, 4096, kMiB, &sb_, &why)) << why;
        sb_.uuid = test_uuid(42);
        sb_.name = "lvs0";
    }
    void TearDown() override {
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }

    // A file of `file_bytes` (sparse) with `md` at `offset`.
    std::string write_file(const std::string& name, const std::vector<uint8_t>& md,
                           uint64_t file_bytes = kBase, uint64_t offset = 0) {
        const std::string path = (dir_ / name).string();
        const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(ftruncate(fd, off_t(file_bytes)), 0);
        const size_t n =
            std::min<uint64_t>(md.size(), file_bytes > offset ? file_bytes - offset : 0);
        EXPECT_EQ(pwrite(fd, md.data(), n, off_t(offset)), ssize_t(n));
        close(fd);
        return path;
    }

    ToolRun run(const std::vector<std::string>& args) {
        return nocstor::testing::run_tool(tool_, args, dir_.string());
    }

    // A consistent store: a thick lvol, a snapshot of it and a clone of the snapshot in the
    // checkpoint; a thin lvol, writes and a rename in journal batches after it.
    MetaWriter clean_store() {
        LvsState s(sb_.total_clusters);
        std::string why;
        for (const Op& op :
             {op_create(make_lvol(1, "vol1", 4, false, {0, 1, 2, 3})), op_snapshot(1, 2, "snap1"),
              op_create(make_lvol(3, "clone1", 4, true, {}, 2))})
            EXPECT_TRUE(s.apply(op, &why)) << why;
        MetaWriter w(sb_, s);
        w.superblock(false);
        w.batch({op_create(make_lvol(4, "thin1", 100, true)), op_alloc(4, {{10, 20, 3}})});
        w.batch({op_alloc(1, {{0, 30, 1}}), op_rename(3, "clone-renamed")});
        return w;
    }

    std::string tool_;
    std::filesystem::path dir_;
    Superblock sb_;
};

TEST_F(LvsCheckTool, ConsistentStore) {
    MetaWriter w = clean_store();
    const std::string path = write_file("clean.img", w.image());
    ToolRun r = run({path});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(r.says("lvstore lvs0 (uuid " + uuid_to_string(sb_.uuid) + ")")) << r.out;
    EXPECT_TRUE(r.says("superblock: copy B, seq 1, not clean")) << r.out;
    EXPECT_TRUE(r.says("journal: 2 batches, 4 operations replayed after checkpoint slot 0"))
        << r.out;
    EXPECT_TRUE(r.says("clusters: 57 total, 8 used, 49 free")) << r.out;
    EXPECT_TRUE(r.says("lvols: 4")) << r.out;
    EXPECT_TRUE(r.says("result: consistent")) << r.out;
    EXPECT_FALSE(r.says("snap1: id 2")) << r.out;  // lvols only with --verbose

    r = run({"--verbose", path});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(r.says("snap1: id 2, uuid " + uuid_to_string(test_uuid(102)) +
                       ", size 4 MiB (4 clusters), 4 allocated, thin, read-only, snapshot, parent "
                       "none"))
        << r.out;
    EXPECT_TRUE(r.says("clone-renamed: id 3")) << r.out;
    EXPECT_TRUE(r.says("vol1: id 1")) << r.out;
    EXPECT_TRUE(r.says("1 allocated, thin, parent snap1")) << r.out;
    EXPECT_TRUE(r.says("thin1: id 4, uuid " + uuid_to_string(test_uuid(104)) +
                       ", size 100 MiB (100 clusters), 3 allocated, thin, parent none"))
        << r.out;

    r = run({"--json", path});
    EXPECT_EQ(r.status, 0) << r.err;
    const json j = r.js();
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["consistent"], true);
    EXPECT_EQ(j["superblock"]["name"], "lvs0");
    EXPECT_EQ(j["superblock"]["clean"], false);
    EXPECT_EQ(j["superblock"]["cluster_bytes"], kMiB);
    EXPECT_EQ(j["clusters"]["used"], 8);
    EXPECT_EQ(j["journal"]["batches_replayed"], 2);
    EXPECT_EQ(j["journal"]["ops_replayed"], 4);
    EXPECT_EQ(j["lvols"].size(), 4u);
    EXPECT_EQ(j["lvols"][2]["name"], "clone-renamed");
    EXPECT_EQ(j["lvols"][2]["parent"], "snap1");
    EXPECT_EQ(j["problems"].size(), 0u);
    EXPECT_EQ(j["checkpoint_check"]["leaked_clusters"], 0);

    // After a clean stop (checkpoint, clean superblock): nothing to replay.
    w.checkpoint();
    w.superblock(true);
    r = run({write_file("stopped.img", w.image())});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(r.says("superblock: copy A, seq 2, clean")) << r.out;
    EXPECT_TRUE(r.says("journal: 0 batches, 0 operations replayed after checkpoint slot 1"))
        << r.out;
    EXPECT_FALSE(r.says("warning")) << r.out;
}

TEST_F(LvsCheckTool, StoreAtAnOffset) {
    const std::vector<uint8_t> img = clean_store().image();
    const std::string path = write_file("inner.img", img, kBase + 3 * kMiB, 3 * kMiB);
    ToolRun r = run({"--offset", std::to_string(3 * kMiB), path});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(r.says("at byte 3145728")) << r.out;
    r = run({path});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_TRUE(r.says("not an lvstore")) << r.err;
}

TEST_F(LvsCheckTool, ClusterOwnedTwice) {
    const std::string path =
        write_file("double.img", make_image(sb_, {make_lvol(1, "a", 2, false, {0, 1}),
                                                  make_lvol(2, "b", 2, false, {1, 2})}));
    ToolRun r = run({path});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("checkpoint 1 (slot 0): base cluster 1 is owned by a and b")) << r.out;
    EXPECT_TRUE(r.says("the metadata does not load")) << r.out;
    EXPECT_TRUE(r.says("lvols: 2 (as of the newest valid checkpoint)")) << r.out;
    EXPECT_TRUE(r.says("result: INCONSISTENT")) << r.out;
    r = run({"--json", path});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.js()["checkpoint_check"]["double_owned_clusters"], 1);
    EXPECT_EQ(r.js()["recovered"], false);
    EXPECT_EQ(r.js()["consistent"], false);
}

TEST_F(LvsCheckTool, BitmapDisagreesWithTheLvols) {
    std::vector<bool> used(sb_.total_clusters, false);
    used[0] = used[1] = used[5] = true;
    ToolRun r =
        run({write_file("leak.img", make_image(sb_, {make_lvol(1, "a", 2, false, {0, 1})}, used))});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(
        r.says("checkpoint 1 (slot 0): base cluster 5 is marked used in the allocation "
               "bitmap but no lvol owns it (leaked)"))
        << r.out;
    EXPECT_FALSE(r.says("does not load")) << r.out;  // the bitmap is only for the checker

    used[5] = false;
    used[1] = false;
    r = run({"--json", write_file("unmarked.img",
                                  make_image(sb_, {make_lvol(1, "a", 2, false, {0, 1})}, used))});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    const json j = r.js();
    EXPECT_EQ(j["checkpoint_check"]["owned_but_free_clusters"], 1);
    EXPECT_EQ(j["checkpoint_check"]["leaked_clusters"], 0);
    ASSERT_EQ(j["problems"].size(), 1u);
    EXPECT_NE(j["problems"][0].get<std::string>().find(
                  "base cluster 1 is owned by a but free in the allocation bitmap"),
              std::string::npos)
        << j["problems"];

    // Many: the first ten are listed, all are counted.
    used.assign(sb_.total_clusters, false);
    for (int c = 0; c < 22; ++c) used[10 + c] = true;
    r = run({"--json", write_file("many.img", make_image(sb_, {}, used))});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.js()["checkpoint_check"]["leaked_clusters"], 22);
    EXPECT_EQ(r.js()["problems"].size(), 11u);
    EXPECT_EQ(r.js()["problems"][10], "... and 12 more leaked clusters");

    // Journal batches after the checkpoint change what is owned: not a disagreement.
    r = run({write_file("journal.img", make_image(sb_, {make_lvol(1, "a", 2, false, {0, 1})}, {},
                                                  {{op_alloc(1, {}), op_resize(1, 3, {{2, 9, 1}})},
                                                   {op_delete(1)}}))});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(r.says("clusters: 57 total, 0 used")) << r.out;
}

TEST_F(LvsCheckTool, MissingParent) {
    ToolRun r =
        run({write_file("orphan.img", make_image(sb_, {make_lvol(1, "a", 2, false, {0, 1}),
                                                       make_lvol(2, "clone", 2, true, {}, 9)}))});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("lvol clone: its parent (lvol id 9) does not exist")) << r.out;
}

TEST_F(LvsCheckTool, ParentLoopAndWritableParent) {
    LvolMeta a = make_lvol(1, "a", 2, true, {}, 2), b = make_lvol(2, "b", 2, true, {}, 1);
    a.read_only = b.read_only = true;
    ToolRun r = run({write_file("loop.img", make_image(sb_, {a, b}))});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("lvol a: its parent chain loops")) << r.out;
    EXPECT_FALSE(r.says("does not load")) << r.out;

    LvolMeta p = make_lvol(1, "p", 2, false, {0, 1}), c = make_lvol(2, "c", 2, true, {}, 1);
    r = run({write_file("writable.img", make_image(sb_, {p, c}))});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("lvol c: parent p is writable")) << r.out;
}

TEST_F(LvsCheckTool, JournalOperationThatDoesNotApply) {
    ToolRun r =
        run({write_file("badop.img", make_image(sb_, {make_lvol(1, "a", 2, false, {0, 1})}, {},
                                                {{op_rename(1, "b")},
                                                 {op_create(make_lvol(2, "c", 1, false, {1}))}}))});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("the metadata does not load: journal batch 2: create does not apply"))
        << r.out;
}

TEST_F(LvsCheckTool, DamagedSuperblocks) {
    std::vector<uint8_t> img = clean_store().image();  // A: seq 0, B: seq 1
    img[4096 + 100] ^= 1;
    ToolRun r = run({write_file("one.img", img)});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(
        r.says("warning: superblock copy B (byte 4096) is damaged (superblock checksum "
               "mismatch); copy A (seq 0) is used"))
        << r.out;
    img[100] ^= 1;
    r = run({write_file("both.img", img)});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("lvstore superblock damaged")) << r.err;
    r = run({"--json", write_file("both.img", img)});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.js()["damaged"], true);
}

TEST_F(LvsCheckTool, NoValidCheckpoint) {
    std::vector<uint8_t> img = make_image(sb_, {make_lvol(1, "a", 2, false, {0, 1})});
    img[sb_.ckpt_offset + 130] ^= 1;
    ToolRun r = run({write_file("nockpt.img", img)});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("checkpoint slot 0: checkpoint checksum mismatch")) << r.out;
    EXPECT_TRUE(r.says("checkpoint slot 1: no checkpoint")) << r.out;
    EXPECT_TRUE(r.says("no valid checkpoint")) << r.out;
}

TEST_F(LvsCheckTool, TruncatedFiles) {
    const std::vector<uint8_t> img = clean_store().image();
    // Room for the metadata and 10 clusters of 57.
    ToolRun r = run({write_file("short.img", img, sb_.data_offset + 10 * kMiB)});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(
        r.says("the store's 57 clusters of 1048576 bytes end at byte 67108864 of the store, "
               "past the end of the file"))
        << r.out;
    // Not even the metadata region.
    r = run({write_file("shorter.img", img, 4 * kMiB)});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(r.says("truncated")) << r.out;
}

TEST_F(LvsCheckTool, NotAnLvstore) {
    ToolRun r = run({write_file("zero.img", {}, 8 * kMiB)});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_TRUE(r.says("not an lvstore")) << r.err;
    std::vector<uint8_t> text(5000, 'x');
    r = run({write_file("text.img", text, text.size())});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    r = run({write_file("empty.img", {}, 0)});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    r = run({(dir_ / "missing.img").string()});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_TRUE(r.says("cannot open")) << r.err;
    r = run({dir_.string()});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    r = run({"--json", write_file("zero.img", {}, 8 * kMiB)});
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.js()["damaged"], false);
    EXPECT_NE(r.js()["error"].get<std::string>().find("not an lvstore"), std::string::npos);
}

TEST_F(LvsCheckTool, CommandLine) {
    ToolRun r = run({"--help"});
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(r.says("--offset")) << r.out;
    EXPECT_TRUE(r.says("Exit status")) << r.out;
    r = run({});
    EXPECT_EQ(r.status, 2);
    r = run({"--bogus", "x"});
    EXPECT_EQ(r.status, 2);
    r = run({"--offset", "abc", "x"});
    EXPECT_EQ(r.status, 2);
    r = run({"a", "b"});
    EXPECT_EQ(r.status, 2);
}

TEST_F(LvsCheckTool, NeverWrites) {
    const std::string path = write_file("ro.img", clean_store().image());
    const std::string before = slurp_file(path);
    struct stat st0 {};
    ASSERT_EQ(stat(path.c_str(), &st0), 0);
    ASSERT_EQ(chmod(path.c_str(), 0444), 0);
    for (const auto& args : {std::vector<std::string>{path}, {"--json", "--verbose", path}})
        EXPECT_EQ(run(args).status, 0);
    struct stat st1 {};
    ASSERT_EQ(stat(path.c_str(), &st1), 0);
    EXPECT_EQ(st0.st_mtim.tv_sec, st1.st_mtim.tv_sec);
    EXPECT_EQ(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
    EXPECT_TRUE(slurp_file(path) == before);
}

}  // namespace
