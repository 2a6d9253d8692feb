// The split virtqueue against a fake guest: rings and buffers in one host array described by a
// GuestMemory, so every index and address the "driver" writes is under the test's control.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "vhost/virtqueue.h"

using namespace nocstor::vhost;

namespace {

constexpr uint16_t kQ = 8;
constexpr uint64_t kGpaBase = 0x100000;  // guest-physical address of the array
constexpr uint64_t kUvaBase = 0x7f0000000000;

struct FakeGuest {
    std::vector<uint8_t> ram = std::vector<uint8_t>(1 << 20);
    std::shared_ptr<GuestMemory> mem;
    std::vector<InflightDesc> unused;
    // Ring placement (offsets in ram).
    static constexpr uint64_t kDesc = 0, kAvail = 0x1000, kUsed = 0x2000, kData = 0x10000;

    FakeGuest() {
        mem = GuestMemory::wrap({GuestMemory::Region{
            .gpa = kGpaBase, .size = ram.size(), .uva = kUvaBase, .host = ram.data()}});
    }
    VringLayout layout(bool event_idx = false) const {
        return VringLayout{.size = kQ,
                           .desc_uva = kUvaBase + kDesc,
                           .avail_uva = kUvaBase + kAvail,
                           .used_uva = kUvaBase + kUsed,
                           .last_avail_idx = 0,
                           .event_idx = event_idx};
    }
    VringDesc* desc() { return reinterpret_cast<VringDesc*>(ram.data() + kDesc); }
    VringAvail* avail() { return reinterpret_cast<VringAvail*>(ram.data() + kAvail); }
    VringUsed* used() { return reinterpret_cast<VringUsed*>(ram.data() + kUsed); }
    void set_desc(uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags, uint16_t next = 0) {
        desc()[i] = VringDesc{gpa, len, flags, next};
    }
    void publish(uint16_t head) {
        VringAvail* a = avail();
        a->ring[a->idx % kQ] = head;
        ++a->idx;
    }
};

}  // namespace

TEST(Virtqueue, PopsAChainAndReturnsItOnTheUsedRing) {
    FakeGuest g;
    SplitVirtqueue vq;
    std::string err;
    ASSERT_TRUE(vq.attach(*g.mem, g.layout(), nullptr, &err)) << err;
    EXPECT_EQ(vq.pop(), -1);
    g.set_desc(3, kGpaBase + FakeGuest::kData, 16, kDescNext, 5);
    g.set_desc(5, kGpaBase + FakeGuest::kData + 4096, 4096, kDescNext | kDescWrite, 6);
    g.set_desc(6, kGpaBase + FakeGuest::kData + 8192, 1, kDescWrite);
    g.publish(3);
    EXPECT_FALSE(vq.empty());
    ASSERT_EQ(vq.pop(), 3);
    iovec iov[8];
    DescChain c;
    ASSERT_TRUE(vq.read_chain(*g.mem, 3, iov, 8, &c));
    EXPECT_EQ(c.n_readable, 1);
    EXPECT_EQ(c.n_writable, 2);
    EXPECT_EQ(c.readable_bytes, 16u);
    EXPECT_EQ(c.writable_bytes, 4097u);
    EXPECT_EQ(iov[1].iov_base, g.ram.data() + FakeGuest::kData + 4096);
    vq.push_used(3, 4097);
    EXPECT_EQ(g.used()->idx, 1);
    EXPECT_EQ(g.used()->ring[0].id, 3u);
    EXPECT_EQ(g.used()->ring[0].len, 4097u);
    EXPECT_TRUE(vq.should_signal());  // the driver did not set NO_INTERRUPT
    g.avail()->flags = kAvailNoInterrupt;
    vq.push_used(3, 1);
    EXPECT_FALSE(vq.should_signal());
}

TEST(Virtqueue, RefusesMalformedChains) {
    FakeGuest g;
    SplitVirtqueue vq;
    std::string err;
    ASSERT_TRUE(vq.attach(*g.mem, g.layout(), nullptr, &err)) << err;
    iovec iov[8];
    DescChain c;
    // A loop.
    g.set_desc(0, kGpaBase + FakeGuest::kData, 16, kDescNext, 1);
    g.set_desc(1, kGpaBase + FakeGuest::kData, 16, kDescNext, 0);
    EXPECT_FALSE(vq.read_chain(*g.mem, 0, iov, 8, &c));
    // next outside the table.
    g.set_desc(0, kGpaBase + FakeGuest::kData, 16, kDescNext, kQ);
    EXPECT_FALSE(vq.read_chain(*g.mem, 0, iov, 8, &c));
    // A buffer outside guest memory, and one running past its end.
    g.set_desc(0, 0x10, 16, 0);
    EXPECT_FALSE(vq.read_chain(*g.mem, 0, iov, 8, &c));
    g.set_desc(0, kGpaBase + g.ram.size() - 8, 16, 0);
    EXPECT_FALSE(vq.read_chain(*g.mem, 0, iov, 8, &c));
    // Readable after writable.
    g.set_desc(0, kGpaBase + FakeGuest::kData, 16, kDescNext | kDescWrite, 1);
    g.set_desc(1, kGpaBase + FakeGuest::kData, 16, 0);
    EXPECT_FALSE(vq.read_chain(*g.mem, 0, iov, 8, &c));
    // More iovecs than the caller has room for.
    g.set_desc(0, kGpaBase + FakeGuest::kData, 16, kDescNext, 1);
    g.set_desc(1, kGpaBase + FakeGuest::kData, 16, 0);
    EXPECT_FALSE(vq.read_chain(*g.mem, 0, iov, 1, &c));
    EXPECT_TRUE(vq.read_chain(*g.mem, 0, iov, 2, &c));
    // A head outside the ring makes pop report a broken queue.
    g.publish(kQ + 1);
    EXPECT_EQ(vq.pop(), -2);
}

TEST(Virtqueue, FollowsIndirectTablesButNotNestedOnes) {
    FakeGuest g;
    SplitVirtqueue vq;
    std::string err;
    ASSERT_TRUE(vq.attach(*g.mem, g.layout(), nullptr, &err)) << err;
    auto* table = reinterpret_cast<VringDesc*>(g.ram.data() + 0x8000);
    table[0] = VringDesc{kGpaBase + FakeGuest::kData, 16, kDescNext, 1};
    table[1] = VringDesc{kGpaBase + FakeGuest::kData + 512, 512, kDescNext | kDescWrite, 2};
    table[2] = VringDesc{kGpaBase + FakeGuest::kData + 1024, 1, kDescWrite, 0};
    g.set_desc(2, kGpaBase + 0x8000, 3 * sizeof(VringDesc), kDescIndirect);
    iovec iov[8];
    DescChain c;
    ASSERT_TRUE(vq.read_chain(*g.mem, 2, iov, 8, &c));
    EXPECT_EQ(c.n_readable, 1);
    EXPECT_EQ(c.n_writable, 2);
    EXPECT_EQ(c.writable_bytes, 513u);
    table[1].flags = kDescIndirect;  // nested
    EXPECT_FALSE(vq.read_chain(*g.mem, 2, iov, 8, &c));
    g.set_desc(2, kGpaBase + 0x8000, 3 * sizeof(VringDesc) - 1, kDescIndirect);  // odd length
    EXPECT_FALSE(vq.read_chain(*g.mem, 2, iov, 8, &c));
}

TEST(Virtqueue, EventIdxInterruptsOnlyWhenTheDriverAsked) {
    FakeGuest g;
    SplitVirtqueue vq;
    std::string err;
    ASSERT_TRUE(vq.attach(*g.mem, g.layout(true), nullptr, &err)) << err;
    uint16_t* used_event = &g.avail()->ring[kQ];
    *used_event = 0;
    vq.push_used(0, 1);  // used idx 0 -> 1 crosses used_event 0
    EXPECT_TRUE(vq.should_signal());
    *used_event = 5;  // the driver wants an interrupt once entry 5 is used
    vq.push_used(1, 1);
    EXPECT_FALSE(vq.should_signal());
    for (int i = 0; i < 4; ++i) vq.push_used(1, 1);  // idx 2..6 crosses 5
    EXPECT_TRUE(vq.should_signal());
    // Kick suppression: enable_notify publishes avail_event = last_avail.
    auto* avail_event = reinterpret_cast<uint16_t*>(&g.used()->ring[kQ]);
    g.publish(0);
    ASSERT_EQ(vq.pop(), 0);
    vq.enable_notify();
    EXPECT_EQ(*avail_event, 1);
}

TEST(Virtqueue, InflightRegionLetsANewServerResubmitWhatWasOutstanding) {
    FakeGuest g;
    std::vector<uint8_t> region(inflight_queue_bytes(kQ) + 64);
    auto* inflight = reinterpret_cast<InflightQueue*>(region.data());
    inflight->desc_num = kQ;
    for (uint16_t i = 0; i < 4; ++i) g.set_desc(i, kGpaBase + FakeGuest::kData, 1, kDescWrite);
    {
        SplitVirtqueue vq;
        std::string err;
        ASSERT_TRUE(vq.attach(*g.mem, g.layout(), inflight, &err)) << err;
        EXPECT_TRUE(vq.recover_inflight().empty());  // a fresh region
        for (uint16_t h : {2, 0, 3, 1}) g.publish(h);
        for (int i = 0; i < 4; ++i) ASSERT_GE(vq.pop(), 0);
        vq.push_used(0, 1);  // 0 completes; 2, 3 and 1 are still out when the server "dies"
    }
    SplitVirtqueue vq;
    std::string err;
    VringLayout l = g.layout();
    l.last_avail_idx = 0;  // whatever the front-end says, the region decides
    ASSERT_TRUE(vq.attach(*g.mem, l, inflight, &err)) << err;
    const std::vector<uint16_t> again = vq.recover_inflight();
    EXPECT_EQ(again, (std::vector<uint16_t>{2, 3, 1}));  // in the order they were popped
    EXPECT_EQ(vq.last_avail_idx(), 4);
    EXPECT_EQ(vq.pop(), -1);
}

TEST(Virtqueue, InflightRecoveryRepairsADeathBetweenUsedAndInflightUpdates) {
    FakeGuest g;
    std::vector<uint8_t> region(inflight_queue_bytes(kQ) + 64);
    auto* inflight = reinterpret_cast<InflightQueue*>(region.data());
    inflight->desc_num = kQ;
    g.set_desc(0, kGpaBase + FakeGuest::kData, 1, kDescWrite);
    g.set_desc(1, kGpaBase + FakeGuest::kData, 1, kDescWrite);
    {
        SplitVirtqueue vq;
        std::string err;
        ASSERT_TRUE(vq.attach(*g.mem, g.layout(), inflight, &err)) << err;
        vq.recover_inflight();
        g.publish(0);
        g.publish(1);
        ASSERT_EQ(vq.pop(), 0);
        ASSERT_EQ(vq.pop(), 1);
    }
    // The dead server had published head 1 on the used ring but not cleared its record.
    g.used()->ring[0] = VringUsedElem{1, 1};
    g.used()->idx = 1;
    inflight->last_batch_head = 1;
    SplitVirtqueue vq;
    std::string err;
    ASSERT_TRUE(vq.attach(*g.mem, g.layout(), inflight, &err)) << err;
    EXPECT_EQ(vq.recover_inflight(), (std::vector<uint16_t>{0}));
    EXPECT_EQ(vq.last_avail_idx(), 2);
}

TEST(Virtqueue, RejectsBadLayouts) {
    FakeGuest g;
    SplitVirtqueue vq;
    std::string err;
    VringLayout l = g.layout();
    l.size = 6;
    EXPECT_FALSE(vq.attach(*g.mem, l, nullptr, &err));
    l = g.layout();
    l.used_uva = kUvaBase + g.ram.size() - 8;
    EXPECT_FALSE(vq.attach(*g.mem, l, nullptr, &err));
    EXPECT_NE(err.find("outside"), std::string::npos);
}
