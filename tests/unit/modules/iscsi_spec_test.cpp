// The iSCSI bdev's URL and name handling (no target needed): SPDK's URL form through libiscsi's
// parser, iSCSI name rules, and passwords kept out of what bdev_get_bdevs shows.
#include "modules/iscsi/iscsi_target_spec.h"

#include <gtest/gtest.h>

using namespace nocstor::iscsi;

TEST(IscsiSpec, ParsesSpdkUrlsWithChapAndMutualChap) {
    IscsiTargetSpec s;
    std::string err;
    ASSERT_TRUE(parse_target_spec("iscsi://10.0.0.5:3261/iqn.2016-06.io.spdk:disk1/0",
                                  "iqn.2026-11.io.nocstor:host", &s, &err))
        << err;
    EXPECT_EQ(s.portal, "10.0.0.5:3261");
    EXPECT_EQ(s.target_iqn, "iqn.2016-06.io.spdk:disk1");
    EXPECT_EQ(s.lun, 0);
    EXPECT_TRUE(s.user.empty());
    ASSERT_TRUE(parse_target_spec(
        "iscsi://bob%s3cretpass@127.0.0.1/iqn.2016-06.io.spdk:d/3?target_user=t&target_password=tp",
        "iqn.2026-11.io.nocstor:host", &s, &err))
        << err;
    EXPECT_EQ(s.user, "bob");
    EXPECT_EQ(s.password, "s3cretpass");
    EXPECT_EQ(s.target_user, "t");
    EXPECT_EQ(s.target_password, "tp");
    EXPECT_EQ(s.lun, 3);
    EXPECT_NE(s.portal.find("127.0.0.1"), std::string::npos);
}

TEST(IscsiSpec, RefusesBadUrlsAndNames) {
    IscsiTargetSpec s;
    std::string err;
    const std::string host = "iqn.2026-11.io.nocstor:host";
    EXPECT_FALSE(parse_target_spec("http://127.0.0.1/iqn.2016-06.io.spdk:d/0", host, &s, &err));
    EXPECT_NE(err.find("iscsi://"), std::string::npos) << err;
    EXPECT_FALSE(parse_target_spec("iscsi://127.0.0.1/iqn.2016-06.io.spdk:d", host, &s, &err));
    EXPECT_FALSE(parse_target_spec("iscsi://127.0.0.1/iqn.2016-06.io.spdk:d/x", host, &s, &err));
    EXPECT_FALSE(parse_target_spec("iscsi://", host, &s, &err));
    EXPECT_FALSE(parse_target_spec("iscsi://127.0.0.1/iqn.2016-06.io.spdk:d/0", "host", &s, &err));
    EXPECT_NE(err.find("initiator_iqn"), std::string::npos) << err;

    EXPECT_TRUE(valid_iscsi_name("iqn.2026-11.io.nocstor:host-1"));
    EXPECT_TRUE(valid_iscsi_name("eui.02004567A425678D"));
    EXPECT_TRUE(valid_iscsi_name("naa.52004567BA64678D"));
    EXPECT_FALSE(valid_iscsi_name("iqn.26-11.io.nocstor"));
    EXPECT_FALSE(valid_iscsi_name("iqn.2026-11.io nocstor"));
    EXPECT_FALSE(valid_iscsi_name("eui.123"));
    EXPECT_FALSE(valid_iscsi_name(""));
    EXPECT_FALSE(valid_iscsi_name("iqn.2026-11." + std::string(300, 'a')));
}

// (Only localhost: /etc/hosts answers it; tests send nothing to a resolver.)
TEST(IscsiSpec, AHostNameIsResolvedOnceWhenParsed) {
    IscsiTargetSpec s;
    std::string err;
    ASSERT_TRUE(parse_target_spec("iscsi://localhost:3261/iqn.2016-06.io.spdk:d/0",
                                  "iqn.2026-11.io.nocstor:host", &s, &err))
        << err;
    EXPECT_TRUE(s.portal == "127.0.0.1:3261" || s.portal == "[::1]:3261") << s.portal;
}

TEST(IscsiSpec, RedactsPasswords) {
    EXPECT_EQ(redact_url("iscsi://bob%hunter22@h:3260/iqn.x/0"), "iscsi://bob%***@h:3260/iqn.x/0");
    EXPECT_EQ(
        redact_url("iscsi://h/iqn.x/0?target_user=t&target_password=abc&header_digest=crc32c"),
        "iscsi://h/iqn.x/0?target_user=t&target_password=***&header_digest=crc32c");
    EXPECT_EQ(redact_url("iscsi://h/iqn.x/0"), "iscsi://h/iqn.x/0");
}
