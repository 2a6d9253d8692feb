// nocstor_nvme_host uses the NVMe/TCP codec of nocstor_nvmf, but the component list links
// nocstor_nvmf *before* nocstor_nvme_host, so a binary that does not otherwise use the target
// (nocstor-perf, unit tests) would miss the codec. Calling this from the binary's own code pulls
// it in. Remove once nocstor_nvme_host links nocstor_nvmf in CMakeLists.txt.
#pragma once

#include "nvmf/tcp_pdu.h"

namespace nocstor::nvme_host {

inline void link_nvmf_codec() {
    volatile auto keep = &nvmf::tcp::build_icreq;
    (void)keep;
}

}  // namespace nocstor::nvme_host
