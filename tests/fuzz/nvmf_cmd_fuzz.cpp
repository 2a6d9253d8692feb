// libFuzzer target for the target's command path: one in-process target (Runtime + malloc bdev +
// NvmfTarget on 127.0.0.1), and per input a fresh TCP connection that does the IC exchange, an
// admin Connect and CC.EN, then sends the input as the rest of the stream: arbitrary PDUs
// (capsules with any SQE, H2CData, TermReqs, garbage). The target must neither crash nor hang;
// the connection is dropped after a short idle time. Byte 0 of the input picks digests.
#include <poll.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "../integration/nvmf_host.h"
#include "../integration/nvmf_test_env.h"

using namespace nocstor;
using namespace nocstor::nvmf;
using namespace nocstor::nvmf::testing;

namespace {

TargetEnv* env() {
    static TargetEnv* e = [] {
        TargetEnvOptions o;
        o.bdev_bytes = 4ull << 20;
        return new TargetEnv(o);  // lives for the whole fuzzing run
    }();
    return e;
}

void admin_connect(TestHost& h) {
    nvme::ConnectCommand c{};
    c.opcode = nvme::admin_opc::kFabrics;
    c.flags = nvme::kSqeFlagsPsdtSgl;
    c.cid = 1;
    c.fctype = nvme::fctype::kConnect;
    c.sqsize = 31;
    nvme::ConnectData d{};
    d.cntlid = nvme::kCntlidDynamic;
    std::memcpy(d.subnqn, kTestNqn, sizeof kTestNqn);
    std::memcpy(d.hostnqn, kTestHostNqn, sizeof kTestHostNqn);
    nvme::SubmissionQueueEntry s;
    std::memcpy(&s, &c, sizeof s);
    set_incapsule(s, sizeof d);
    h.send_cmd(s, &d, sizeof d);
    h.wait_resp(1);
    nvme::PropertySetCommand p{};
    p.opcode = nvme::admin_opc::kFabrics;
    p.flags = nvme::kSqeFlagsPsdtSgl;
    p.cid = 2;
    p.fctype = nvme::fctype::kPropertySet;
    p.offset = nvme::prop::kCc;
    p.value = 1 | (6u << 16) | (4u << 20);
    std::memcpy(&s, &p, sizeof s);
    h.send_cmd(s);
    h.wait_resp(2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 || size > 64 * 1024) return 0;
    TestHost h(env()->port());
    if (!h.ok()) return 0;
    const bool digests = data[0] & 1;
    if (!h.ic(digests, digests)) return 0;
    if (data[0] & 2) admin_connect(h);
    h.send_raw(data + 1, size - 1);
    // Drain whatever comes back until the target goes quiet (bounded).
    for (int i = 0; i < 64; ++i) {
        if (!h.recv(20)) break;
    }
    return 0;
}
