// libFuzzer target: the iSCSI target's receive path, from bytes on the socket to PDUs, login
// (text keys, negotiation, CHAP), discovery and the full feature phase (SCSI commands to a
// target without LUNs, Data-Out, NOP, Text, Logout, task management), with whatever the
// connection answers read back and dropped. A real Conn on one end of a socketpair.
// Input layout: byte 0 = options (bit 0: the target requires CHAP, bit 1: digests required,
// bit 2: a valid login to the full feature phase comes first, so the fuzzer starts there),
// byte 1 = chunking seed, rest = the byte stream from the "initiator".
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "iscsi/conn.h"
#include "iscsi/poll_group.h"

using namespace nocstor;
using namespace nocstor::iscsi_tgt;

namespace {

struct Env {
    std::unique_ptr<std::byte[], void (*)(std::byte*)> mem{nullptr, nullptr};
    BufferPool pool;
    std::unique_ptr<IscsiPollGroup> pg;
    std::shared_ptr<IscsiSnapshot> snaps[4];

    Env() {
        BufferPoolConfig cfg{.small_count = 64, .large_count = 16};
        const size_t bytes = BufferPool::bytes_needed(cfg);
        mem = {static_cast<std::byte*>(std::aligned_alloc(BufferPool::kAlign, bytes)),
               [](std::byte* p) { std::free(p); }};
        pool = BufferPool::create(mem.get(), 0, cfg);
        pg = std::make_unique<IscsiPollGroup>(nullptr, nullptr, 0, &pool);
        pg->start_detached();
        for (int i = 0; i < 4; ++i) {
            auto s = std::make_shared<IscsiSnapshot>();
            s->portal_groups[1] = PortalGroup{1, {Portal{"127.0.0.1", 3260}}, false, std::nullopt};
            s->initiator_groups[1] = InitiatorGroup{1, {"ANY"}, {"ANY"}};
            s->auth_groups[1] =
                AuthGroup{1, {ChapSecret{"user", "secret12345", "tuser", "tsecret1234"}}};
            s->listeners.push_back(ListenerRef{1, 1, Portal{"127.0.0.1", 3260}});
            s->options.discovery_auth.chap_group = 1;
            auto t = std::make_shared<TargetNode>();
            t->name = "iqn.2026-12.io.nocstor:fuzz";
            t->pg_ig_maps = {{1, 1}};
            t->queue_depth = 4;
            t->auth.require_chap = i & 1;
            t->auth.chap_group = 1;
            t->header_digest = t->data_digest = i & 2;
            s->targets.push_back(t);
            snaps[i] = s;
        }
    }
};

// Login Request, T=1 CSG=1 NSG=3: straight to the full feature phase (CmdSN 1).
std::vector<uint8_t> valid_login() {
    const char text[] =
        "InitiatorName=iqn.2026-12.io.nocstor:fuzzer\0SessionType=Normal\0"
        "TargetName=iqn.2026-12.io.nocstor:fuzz\0";
    const uint32_t len = sizeof(text) - 1;
    std::vector<uint8_t> p(48 + ((len + 3) & ~3u), 0);
    p[0] = 0x43;
    p[1] = 0x87;
    p[5] = uint8_t(len >> 16);
    p[6] = uint8_t(len >> 8);
    p[7] = uint8_t(len);
    p[8] = 0x80;
    p[13] = 0x01;
    p[19] = 0x01;  // ITT 1
    p[27] = 0x01;  // CmdSN 1
    std::memcpy(p.data() + 48, text, len);
    return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Env env;
    if (size < 2) return 0;
    const uint8_t opts = data[0];
    uint32_t seed = data[1] | 1u;
    data += 2;
    size -= 2;
    env.pg->apply(env.snaps[opts & 3]);
    std::vector<uint8_t> stream;
    if (opts & 4) stream = valid_login();
    stream.insert(stream.end(), data, data + size);
    data = stream.data();
    size = stream.size();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 0;
    {
        Conn c(env.pg.get(), sv[0], 1, 1);
        size_t off = 0;
        uint8_t sink[65536];
        while (off < size && !c.closed()) {
            seed = seed * 1103515245u + 12345u;
            const size_t chunk = std::min<size_t>(size - off, 1 + (seed >> 16) % 1500);
            const ssize_t w = write(sv[1], data + off, chunk);
            if (w <= 0) break;
            off += size_t(w);
            c.on_readable();
            c.retry_blocked();
            env.pg->flush_dirty();
            while (read(sv[1], sink, sizeof sink) > 0) {
            }
        }
        env.pg->flush_dirty();
        if (!c.closed()) c.close("fuzz input done");
        if (!c.reapable()) abort();  // nothing can still be running without a bdev
    }                                // the Conn closes sv[0]
    close(sv[1]);
    return 0;
}
