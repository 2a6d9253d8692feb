// Identify data structures (controller, namespace, namespace ID descriptors) for a controller.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nvmf/spec.h"
#include "nvmf/subsystem.h"

namespace nocstor::nvmf {

class Controller;

void build_identify_controller(const Controller& ctrl, nvme::IdentifyController* out);
void build_identify_namespace(const NamespaceInfo& ns, nvme::IdentifyNamespace* out);
// CNS 0x03 into a 4096-byte buffer: EUI64, NGUID, UUID, CSI.
void build_ns_id_descriptors(const NamespaceInfo& ns, uint8_t* out4k);

}  // namespace nocstor::nvmf
