// Fuzzes what a VMM controls: the vhost-user message stream (framing, sizes, fds) and the
// contents of a split virtqueue in guest memory (descriptor tables, indirect tables, indices).
// ASan reports any access outside the fake guest's RAM.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "vhost/message_io.h"
#include "vhost/virtqueue.h"

using namespace nocstor::vhost;

namespace {

void fuzz_messages(const uint8_t* data, size_t size) {
    int fd[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) != 0) return;
    size = std::min<size_t>(size, 64 * 1024);
    if (size) (void)!::write(fd[1], data, size);
    ::close(fd[1]);
    MessageReader r;
    for (int i = 0; i < 1000; ++i) {
        Message m;
        std::string err;
        const auto res = r.read(fd[0], &m, &err);
        m.close_fds();
        if (res != MessageReader::Result::Message) break;
    }
    ::close(fd[0]);
}

void fuzz_ring(const uint8_t* data, size_t size) {
    constexpr uint16_t kQ = 16;
    constexpr uint64_t kGpa = 0x10000, kUva = 0x7f0000000000;
    // 64 KiB of guest RAM: the input fills it from the start (descriptors at 0, the available
    // ring at 0x400, the used ring at 0x800, buffers and indirect tables anywhere).
    std::vector<uint8_t> ram(64 * 1024);
    memcpy(ram.data(), data, std::min(size, ram.size()));
    auto mem = GuestMemory::wrap(
        {GuestMemory::Region{.gpa = kGpa, .size = ram.size(), .uva = kUva, .host = ram.data()}});
    std::vector<uint8_t> region(inflight_queue_bytes(kQ));
    auto* inflight = reinterpret_cast<InflightQueue*>(region.data());
    if (size > ram.size())
        memcpy(region.data(), data + ram.size(), std::min(size - ram.size(), region.size()));
    inflight->desc_num = kQ;
    SplitVirtqueue vq;
    std::string err;
    const bool event_idx = size > 0 && (data[0] & 1);
    const bool with_inflight = size > 0 && (data[0] & 2);
    if (!vq.attach(*mem, VringLayout{kQ, kUva, kUva + 0x400, kUva + 0x800, 0, event_idx},
                   with_inflight ? inflight : nullptr, &err))
        return;
    std::vector<uint16_t> heads = vq.recover_inflight();
    for (int i = 0; i < 64; ++i) {
        const int h = vq.pop();
        if (h < 0) break;
        heads.push_back(uint16_t(h));
    }
    for (uint16_t h : heads) {
        iovec iov[32];
        DescChain c;
        if (vq.read_chain(*mem, h, iov, 32, &c)) {
            for (int i = 0; i < c.n_readable + c.n_writable; ++i) {
                auto* p = static_cast<volatile uint8_t*>(iov[i].iov_base);
                if (iov[i].iov_len) (void)p[iov[i].iov_len - 1];  // must lie inside ram
            }
        }
        vq.push_used(h, 1);
    }
    vq.should_signal();
    vq.enable_notify();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    if (data[0] & 0x80)
        fuzz_ring(data + 1, size - 1);
    else
        fuzz_messages(data + 1, size - 1);
    return 0;
}
