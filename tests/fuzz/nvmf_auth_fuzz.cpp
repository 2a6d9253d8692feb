// Fuzzes what a host controls in in-band authentication: any sequence of AUTH_Send payloads
// and AUTH_Receive lengths fed to one queue's DH-HMAC-CHAP state machine. The first byte of each
// chunk picks the command and its length; ASan reports any read past a message.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

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
