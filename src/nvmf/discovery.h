// The discovery log page (log 0x70) as one host sees it through one listener.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nvmf/subsystem.h"

namespace nocstor::nvmf {

// Header + one entry per (subsystem the host may access) x (listener of that subsystem), then
// the current discovery subsystem's entry for the listener the host came through.
std::vector<uint8_t> build_discovery_log(const TargetSnapshot& snap, const std::string& hostnqn,
                                         uint32_t listener_id);

}  // namespace nocstor::nvmf
