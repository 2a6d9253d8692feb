#include "control/mgmt_token.h"
#include "test_helpers.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

namespace nocstor::control {
namespace {

TEST(MgmtToken, RandomHexTokens) {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        const std::string t = generate_mgmt_token();
        ASSERT_EQ(t.size(), 64u);
        EXPECT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos);
        EXPECT_TRUE(seen.insert(t).second);
    }
}

TEST(MgmtToken, BearerComparison) {
    const std::string t = generate_mgmt_token();
    EXPECT_TRUE(bearer_token_matches("Bearer " + t, t));
    EXPECT_TRUE(bearer_token_matches("bearer  " + t + " ", t));
    EXPECT_FALSE(bearer_token_matches("Bearer " + t.substr(1), t));
    EXPECT_FALSE(bearer_token_matches("Bearer " + t + "0", t));
    std::string flipped = t;
    flipped[63] = flipped[63] == '0' ? '1' : '0';
    EXPECT_FALSE(bearer_token_matches("Bearer " + flipped, t));
    EXPECT_FALSE(bearer_token_matches("Basic " + t, t));
    EXPECT_FALSE(bearer_token_matches(t, t));
    EXPECT_FALSE(bearer_token_matches("Bearer ", ""));
    EXPECT_FALSE(bearer_token_matches("", t));
}

TEST(MgmtToken, FileIsPrivateAndReplacesAPlantedSymlink) {
    test::TempDir dir;
    const std::string path = dir.file("nocstor.sock.token");
    const std::string victim = dir.file("victim");
    FILE* f = fopen(victim.c_str(), "w");
    fputs("precious\n", f);
    fclose(f);
    ASSERT_EQ(symlink(victim.c_str(), path.c_str()), 0);
    std::string err;
    const std::string t = generate_mgmt_token();
    ASSERT_TRUE(write_token_file(path, t, &err)) << err;
    struct stat st {};
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << "the symlink itself was replaced";
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    std::string read_back;
    ASSERT_TRUE(read_token_file(path, &read_back, &err)) << err;
    EXPECT_EQ(read_back, t);
    ASSERT_TRUE(read_token_file(victim, &read_back, &err));
    EXPECT_EQ(read_back, "precious") << "the symlink's target was not written";
    EXPECT_FALSE(read_token_file(dir.file("missing"), &read_back, &err));
    EXPECT_NE(err.find("cannot read the management token"), std::string::npos);
    EXPECT_EQ(default_token_path("/var/tmp/nocstor.sock"), "/var/tmp/nocstor.sock.token");
}

}  // namespace
}  // namespace nocstor::control
