// Reads what the bdev needs to know about a LUN over a logged-in session: that it is a disk
// (INQUIRY), its geometry (READ CAPACITY(16)), and its limits and provisioning support (VPD
// pages 0x00, 0xB0, 0xB2 when offered). Runs on the session's thread, asynchronously.
#pragma once

#include "modules/iscsi/iscsi_session.h"

#include <functional>
#include <string>

namespace nocstor::iscsi {

struct LunInfo {
    LunGeometry geometry;
    uint32_t max_transfer_blocks = 0;  // 0 = no limit given
    std::string vendor, product, revision;
};

using ProbeDone = std::function<void(bool ok, LunInfo info, std::string err)>;
// ctx stays valid until done ran (the caller's session polls it meanwhile).
void probe_lun(iscsi_context* ctx, int lun, ProbeDone done);

}  // namespace nocstor::iscsi
