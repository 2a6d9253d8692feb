// vhost-user message framing over a real socketpair: headers, payload size rules, fds.
#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "vhost/guest_memory.h"
#include "vhost/message_io.h"

using namespace nocstor::vhost;

namespace {

struct Pair {
    int fd[2];
    Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0); }
    ~Pair() {
        ::close(fd[0]);
        ::close(fd[1]);
    }
    void send(uint32_t req, uint32_t flags, const void* payload, uint32_t size, int pass_fd = -1) {
        MsgHeader h{req, flags, size};
        std::vector<uint8_t> buf(sizeof(h) + size);
        memcpy(buf.data(), &h, sizeof(h));
        if (size) memcpy(buf.data() + sizeof(h), payload, size);
        ASSERT_EQ(send_with_fd(fd[1], buf.data(), buf.size(), pass_fd), ssize_t(buf.size()));
    }
};

}  // namespace

TEST(VhostMessage, ReadsMessagesWithPayloadAndFds) {
    Pair p;
    MessageReader r;
    Message m;
    std::string err;
    EXPECT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::More);
    p.send(uint32_t(Req::GetFeatures), kVersion, nullptr, 0);
    ASSERT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::Message) << err;
    EXPECT_EQ(m.hdr.request, uint32_t(Req::GetFeatures));
    const int efd = ::eventfd(0, 0);
    const uint64_t kick = 1;  // queue 1
    p.send(uint32_t(Req::SetVringKick), kVersion | kFlagNeedReply, &kick, sizeof(kick), efd);
    ::close(efd);
    Message k;
    ASSERT_EQ(r.read(p.fd[0], &k, &err), MessageReader::Result::Message) << err;
    EXPECT_EQ(k.u64(), 1u);
    ASSERT_EQ(k.nfds, 1u);
    const int got = k.take_fd(0);
    EXPECT_GE(got, 0);
    EXPECT_EQ(k.take_fd(0), -1);
    ::close(got);
}

TEST(VhostMessage, RejectsBadVersionsAndSizes) {
    {
        Pair p;
        MessageReader r;
        Message m;
        std::string err;
        p.send(uint32_t(Req::GetFeatures), 0x2, nullptr, 0);
        EXPECT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::Error);
        EXPECT_NE(err.find("version"), std::string::npos);
    }
    {
        Pair p;
        MessageReader r;
        Message m;
        std::string err;
        const uint32_t v = 3;
        p.send(uint32_t(Req::SetVringNum), kVersion, &v, sizeof(v));  // wants 8 bytes
        EXPECT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::Error);
    }
    {
        Pair p;
        MessageReader r;
        Message m;
        std::string err;
        MsgHeader h{uint32_t(Req::SetMemTable), kVersion, 1u << 20};  // huge payload
        ASSERT_EQ(::write(p.fd[1], &h, sizeof(h)), ssize_t(sizeof(h)));
        EXPECT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::Error);
    }
    {
        Pair p;
        MessageReader r;
        Message m;
        std::string err;
        ::close(p.fd[1]);
        p.fd[1] = ::socket(AF_UNIX, SOCK_STREAM, 0);
        EXPECT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::Closed);
    }
}

TEST(VhostMessage, ReassemblesAMessageThatArrivesInPieces) {
    Pair p;
    MessageReader r;
    Message m;
    std::string err;
    VringState s{2, 256};
    MsgHeader h{uint32_t(Req::SetVringNum), kVersion, sizeof(s)};
    ASSERT_EQ(::write(p.fd[1], &h, 5), 5);
    EXPECT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::More);
    ASSERT_EQ(::write(p.fd[1], reinterpret_cast<uint8_t*>(&h) + 5, sizeof(h) - 5),
              ssize_t(sizeof(h) - 5));
    ASSERT_EQ(::write(p.fd[1], &s, 3), 3);
    EXPECT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::More);
    ASSERT_EQ(::write(p.fd[1], reinterpret_cast<uint8_t*>(&s) + 3, sizeof(s) - 3),
              ssize_t(sizeof(s) - 3));
    ASSERT_EQ(r.read(p.fd[0], &m, &err), MessageReader::Result::Message) << err;
    EXPECT_EQ(m.as<VringState>().index, 2u);
    EXPECT_EQ(m.as<VringState>().num, 256u);
}

TEST(VhostMessage, MemoryTableRejectsOverlapsAndShortFiles) {
    MemTable t{};
    t.nregions = 2;
    t.regions[0] = MemRegion{0, 1 << 20, 0x1000000, 0};
    t.regions[1] = MemRegion{1 << 19, 1 << 20, 0x2000000, 0};  // overlaps region 0
    int fds[2] = {::memfd_create("a", 0), ::memfd_create("b", 0)};
    ASSERT_EQ(::ftruncate(fds[0], 1 << 20), 0);
    ASSERT_EQ(::ftruncate(fds[1], 1 << 20), 0);
    std::string err;
    EXPECT_EQ(GuestMemory::map(t, fds, 2, &err), nullptr);
    EXPECT_NE(err.find("overlaps"), std::string::npos);
    // A region longer than its file.
    t.nregions = 1;
    t.regions[0] = MemRegion{0, 2 << 20, 0x1000000, 0};
    int fd = ::memfd_create("c", 0);
    ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
    EXPECT_EQ(GuestMemory::map(t, &fd, 1, &err), nullptr);
    // A good one: translations are bounded by the region.
    t.regions[0] = MemRegion{0x100000, 1 << 20, 0x7f0000000000, 4096};
    fd = ::memfd_create("d", 0);
    ASSERT_EQ(::ftruncate(fd, (1 << 20) + 4096), 0);
    auto mem = GuestMemory::map(t, &fd, 1, &err);
    ASSERT_NE(mem, nullptr) << err;
    EXPECT_NE(mem->gpa_to_host(0x100000, 1 << 20), nullptr);
    EXPECT_EQ(mem->gpa_to_host(0x100000, (1 << 20) + 1), nullptr);
    EXPECT_EQ(mem->gpa_to_host(0xfffff, 2), nullptr);
    EXPECT_NE(mem->uva_to_host(0x7f0000000000 + 100, 8), nullptr);
    EXPECT_EQ(mem->uva_to_host(0x7f0000000000 + (1 << 20), 1), nullptr);
}
