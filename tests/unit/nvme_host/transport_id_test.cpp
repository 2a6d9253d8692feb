#include <gtest/gtest.h>

#include "nvme_host/bdev_nvme.h"
#include "nvme_host/qpair.h"
#include "nvme_host/transport_id.h"

using namespace nocstor::nvme_host;

TEST(TransportId, ParsesSpdkSyntax) {
    TransportId t;
    std::string err;
    ASSERT_TRUE(parse_transport_id(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1 "
        "hostnqn:nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555 ns:2 ns:3",
        &t, &err))
        << err;
    EXPECT_EQ(t.traddr, "127.0.0.1");
    EXPECT_EQ(t.trsvcid, "4420");
    EXPECT_EQ(t.subnqn, "nqn.2016-06.io.spdk:cnode1");
    EXPECT_EQ(t.adrfam, AddressFamily::kIpv4);
    EXPECT_EQ(t.nsids, (std::vector<uint32_t>{2, 3}));
    uint8_t id[16];
    hostid_for_nqn(t.hostnqn, id);
    EXPECT_EQ(id[0], 0x11);
    EXPECT_EQ(id[15], 0x55);
}

TEST(TransportId, Ipv6AndEqualsSeparatorAndCase) {
    TransportId t;
    std::string err;
    ASSERT_TRUE(parse_transport_id("TRTYPE=tcp traddr:::1 trsvcid=8009", &t, &err)) << err;
    EXPECT_EQ(t.traddr, "::1");
    EXPECT_EQ(t.adrfam, AddressFamily::kIpv6);
    EXPECT_TRUE(t.subnqn.empty());
}

TEST(TransportId, RejectsBadInput) {
    TransportId t;
    std::string err;
    EXPECT_FALSE(parse_transport_id("trtype:RDMA traddr:1.2.3.4", &t, &err));
    EXPECT_NE(err.find("RDMA"), std::string::npos);
    EXPECT_FALSE(parse_transport_id("trsvcid:4420", &t, &err));
    EXPECT_NE(err.find("traddr"), std::string::npos);
    EXPECT_FALSE(parse_transport_id("traddr:1.2.3.4 trsvcid:99999", &t, &err));
    EXPECT_FALSE(parse_transport_id("traddr:1.2.3.4 subnqn:foo", &t, &err));
    EXPECT_FALSE(parse_transport_id("traddr:1.2.3.4 bogus:1", &t, &err));
    EXPECT_NE(err.find("bogus"), std::string::npos);
    EXPECT_FALSE(parse_transport_id("traddr:1.2.3.4 ns:0", &t, &err));
}

TEST(TransportId, GeneratedHostNqnHasUuidForm) {
    uint8_t id[16];
    std::string nqn = generate_host_nqn(id);
    EXPECT_EQ(nqn.rfind("nqn.2014-08.org.nvmexpress:uuid:", 0), 0u);
    uint8_t back[16];
    hostid_for_nqn(nqn, back);
    EXPECT_EQ(0, memcmp(id, back, 16));
}

TEST(Resiliency, FollowsSpdkRules) {
    std::string err;
    EXPECT_TRUE(bdev_nvme_check_resiliency_params(0, 0, 0, &err));
    EXPECT_TRUE(bdev_nvme_check_resiliency_params(-1, 1, 0, &err));
    EXPECT_TRUE(bdev_nvme_check_resiliency_params(10, 2, 5, &err));
    EXPECT_FALSE(bdev_nvme_check_resiliency_params(-2, 1, 0, &err));
    EXPECT_FALSE(bdev_nvme_check_resiliency_params(0, 1, 0, &err));
    EXPECT_FALSE(bdev_nvme_check_resiliency_params(-1, 0, 0, &err));
    EXPECT_FALSE(bdev_nvme_check_resiliency_params(5, 6, 0, &err));
    EXPECT_FALSE(bdev_nvme_check_resiliency_params(10, 3, 2, &err));
    EXPECT_FALSE(bdev_nvme_check_resiliency_params(10, 3, 11, &err));
    EXPECT_NE(err.find("fast_io_fail_timeout_sec"), std::string::npos);
}

TEST(IovSlice, CutsAcrossEntries) {
    char a[10], b[20], c[5];
    iovec v[3] = {{a, 10}, {b, 20}, {c, 5}};
    iovec out[4];
    ASSERT_EQ(iov_slice(v, 3, 8, 25, out, 4), 3);
    EXPECT_EQ(out[0].iov_base, a + 8);
    EXPECT_EQ(out[0].iov_len, 2u);
    EXPECT_EQ(out[1].iov_len, 20u);
    EXPECT_EQ(out[2].iov_len, 3u);
    EXPECT_EQ(iov_slice(v, 3, 30, 6, out, 4), -1);  // beyond the end
    EXPECT_EQ(iov_slice(v, 3, 0, 35, out, 2), -1);  // too many pieces
}
