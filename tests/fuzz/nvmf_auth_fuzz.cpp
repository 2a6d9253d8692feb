// Fuzzes what a peer controls in in-band authentication. Target side: any sequence of AUTH_Send
// payloads and AUTH_Receive lengths fed to one queue's DH-HMAC-CHAP state machine. Host side
// (the input's first byte odd): any sequence of controller messages fed to the initiator's
// HostAuth after its Negotiate. The first byte of each chunk picks the command and its length;
// ASan reports any read past a message.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "nvme_host/host_auth.h"
#include "nvmf/auth.h"
#include "security/dhchap.h"

using namespace nocstor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::shared_ptr<const nvmf::HostKeys> keys = [] {
        auto k = std::make_shared<nvmf::HostKeys>();
        std::string err;
        security::parse_dhchap_secret(
            "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", &k->host, &err);
        k->ctrl = k->host;
        return k;
    }();
    if (size >= 1 && (data[0] & 1)) {
        static const auto cfg = [] {
            auto c = std::make_shared<nvme_host::HostAuthConfig>();
            c->host = keys->host;
            c->ctrl = keys->host;
            c->dhgroups = {0, 1};  // keep the fuzzer fast: no 8192-bit exponentiations
            return c;
        }();
        nvme_host::HostAuth h(cfg, "nqn.2014-08.org.nvmexpress:uuid:fuzz",
                              "nqn.2024-01.io.nocstor:fuzz", 1);
        (void)h.negotiate();
        ++data;
        --size;
        std::vector<uint8_t> reply;
        while (size >= 1) {
            const size_t len = std::min<size_t>(size - 1, size_t(data[0]) * 8);
            std::vector<uint8_t> msg(data + 1, data + 1 + len);
            data += 1 + len;
            size -= 1 + len;
            const auto next = h.on_message(msg, &reply);
            if (next == nvme_host::HostAuth::Next::kDone ||
                next == nvme_host::HostAuth::Next::kFailed)
                break;
        }
        return 0;
    }
    nvmf::QueueAuth a(keys, "nqn.2014-08.org.nvmexpress:uuid:fuzz", "nqn.2024-01.io.nocstor:fuzz");
    std::vector<uint8_t> out;
    while (size >= 2) {
        const bool send = data[0] & 1;
        const size_t len = std::min<size_t>(size - 1, size_t(data[1]) * 4);
        data += 2;
        size -= 2;
        if (send) {
            // An exact-size copy, so that reading past the message is an ASan error.
            std::vector<uint8_t> msg(data, data + std::min(len, size));
            a.on_send(msg.data(), msg.size());
            data += msg.size();
            size -= msg.size();
        } else {
            out.assign(len, 0);
            a.on_receive(out.data(), out.size());
        }
    }
    return 0;
}
