// The "nvme" bdev module: remote NVMe-oF/TCP controllers as bdevs, one per namespace, named
// <name>n<nsid>. Each data thread gets its own I/O queue through the controller's IoChannel.
//
// Failures follow SPDK's bdev_nvme: when a queue or the admin connection breaks the controller
// goes to "resetting"; I/O in flight and I/O submitted meanwhile wait on their channel (never
// lost, never acknowledged without the target's success) and are resubmitted after a successful
// reconnect. Reconnects are tried every reconnect_delay_sec; after fast_io_fail_timeout_sec
// (0 = never) queued and new I/O fail; after ctrlr_loss_timeout_sec (-1 = never, 0 = after the
// first failed reconnect) the controller and its bdevs are removed (hot-remove).
//
// Everything here runs on the control thread unless said otherwise.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nvme_host/host_auth.h"
#include "nvme_host/transport_id.h"

namespace nocstor {
class BdevModule;
}

namespace nocstor::nvme_host {

struct NvmeAttachOptions {
    std::string name;  // controller name; bdevs are <name>n<nsid>
    TransportId trid;  // trid.subnqn required; hostnqn empty = generated
    bool hdgst = false;
    bool ddgst = false;
    int32_t ctrlr_loss_timeout_sec = 0;
    uint32_t reconnect_delay_sec = 0;
    uint32_t fast_io_fail_timeout_sec = 0;
    uint16_t io_queue_depth = 128;
    uint32_t kato_ms = 10'000;
    uint64_t io_timeout_us = 30'000'000;  // a command not answered in time breaks the queue
    int cluster = -1;  // owner of the namespaces' bdevs; set by bdev_nvme_attach (scope/default)
    std::shared_ptr<const HostAuthConfig> auth;  // dhchap_key / dhchap_ctrlr_key
    std::shared_ptr<const HostTlsConfig> tls;    // psk
};

// bdev_nvme_set_options {dhchap_digests, dhchap_dhgroups}: what controllers attached from now on
// offer in DH-HMAC-CHAP. Control thread.
struct NvmeAuthLists {
    std::vector<security::HashId> digests = {security::HashId::Sha256, security::HashId::Sha384,
                                             security::HashId::Sha512};
    std::vector<uint8_t> dhgroups = {0, 1, 2, 3, 4, 5};
};
NvmeAuthLists& bdev_nvme_auth_lists();

// SPDK's rules for the three timeouts. False with *err when they contradict each other.
bool bdev_nvme_check_resiliency_params(int32_t ctrlr_loss_timeout_sec, uint32_t reconnect_delay_sec,
                                       uint32_t fast_io_fail_timeout_sec, std::string* err);

using NvmeAttachDone =
    std::function<void(int rc, std::vector<std::string> bdev_names, std::string err)>;
// Connects, creates the bdevs and calls done (rc 0 + names, or -errno + message).
void bdev_nvme_attach(const NvmeAttachOptions& opts, NvmeAttachDone done);
// Removes the bdevs (hot-remove), shuts the controller down and calls done. -ENODEV if unknown.
void bdev_nvme_detach(const std::string& name, std::function<void(int rc, std::string err)> done);
bool bdev_nvme_exists(const std::string& name);
// bdev_nvme_get_controllers' result: all controllers, or the named one.
nlohmann::json bdev_nvme_get_controllers(const std::string& name);
// The bdev_nvme_attach_controller calls that recreate the attached controllers (save_config).
// The module also appends them from BdevModule::write_config_json, so the "bdev" section picks
// them up without further wiring.
nlohmann::json bdev_nvme_config_json();
BdevModule* bdev_nvme_module();

}  // namespace nocstor::nvme_host
