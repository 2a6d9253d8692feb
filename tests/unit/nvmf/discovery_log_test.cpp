// The discovery log says which ports are TLS secure channels: TREQ "secure channel required"
// and TSAS SECTYPE TLS 1.3 for secure_channel listeners, "not required" / none otherwise.
#include <gtest/gtest.h>

#include <memory>

#include "nvmf/discovery.h"
#include "nvmf/spec.h"
#include "nvmf/subsystem.h"

using namespace nocstor::nvmf;
namespace nvme = nocstor::nvme;

TEST(DiscoveryLog, SecureChannelListenersRequireTls13) {
    TargetSnapshot snap;
    snap.listeners.push_back({1, ListenAddress{"127.0.0.1", 4420}, false});
    snap.listeners.push_back({2, ListenAddress{"127.0.0.1", 4433}, true});
    auto s = std::make_shared<SubsystemInfo>();
    s->nqn = "nqn.2016-06.io.nocstor:tls";
    s->allow_any_host = true;
    s->listener_ids = {1, 2};
    snap.subsystems.push_back(s);
    const std::vector<uint8_t> log = build_discovery_log(snap, "nqn.2014-08.org.nvmexpress:x", 1);
    const auto* hdr = reinterpret_cast<const nvme::DiscoveryLogHeader*>(log.data());
    ASSERT_GE(hdr->numrec, 2u);
    const auto* e = reinterpret_cast<const nvme::DiscoveryLogEntry*>(log.data() + 1024);
    for (uint64_t i = 0; i < hdr->numrec; ++i) {
        if (e[i].subtype != nvme::subtype::kNvm) continue;
        const bool secure = e[i].portid == 2;
        EXPECT_EQ(e[i].treq,
                  secure ? nvme::kTreqSecureChannelRequired : nvme::kTreqSecureChannelNotRequired)
            << "port " << e[i].portid;
        EXPECT_EQ(e[i].tsas[0], secure ? nvme::kTcpSectypeTls13 : nvme::kTcpSectypeNone);
    }
}
