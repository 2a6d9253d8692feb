// The server side of a remote bdev: a base bdev of cluster Y, opened and claimed on Y's behalf
// and published under an id that request descriptors name (remote_proto.h). In one process the
// remote bdev creates its export itself; when Y runs in another process (--cluster-processes),
// that process makes the export on request (nocstor_remote_export) and hands back an
// ExportInfo, which is all the client side needs.
#pragma once

#include "bdev/bdev.h"

#include <cstdint>
#include <functional>
#include <string>

namespace nocstor::remote {

// Created and destroyed on the control thread; `ch` lives on Y's NoC thread.
struct RemoteExport {
    uint32_t id = 0;  // table slot | a per-export tag: a stale id never reaches another export
    int cluster = 0;  // Y, the owner of the base bdev
    BdevDesc* desc = nullptr;
    IoChannel* ch = nullptr;
    int client = -1;  // X, for an export made for another process: told when the base resizes
};

// What a client learns of an export: where to send, and the geometry of its bdev.
struct ExportInfo {
    uint32_t id = 0;
    int cluster = 0;
    std::string base_name;
    uint32_t block_size = 0;
    uint64_t num_blocks = 0;
    bool write_cache = false;
    uint32_t required_alignment = 0;
    uint32_t optimal_io_boundary = 0;
    uint32_t max_transfer_blocks = 0;
    uint32_t io_types = 0;  // bit (1 << IoType) for each type the base supports
};

// Control thread. Opens and claims `base_name`, starts the owner cluster's port and publishes
// the export. `event` gets the base's hot-remove and resize events. 0, or -errno with *err.
int export_open(const std::string& base_name, BdevEventCb event, RemoteExport** out,
                std::string* err);
// Control thread: Y's NoC thread puts the export's channel, then the base is released and
// closed, the export freed, and done() called on the control thread.
void export_close(RemoteExport* e, std::function<void()> done);
ExportInfo export_info(const RemoteExport& e);

// NoC threads: the export a request names, or null (unknown, closed, or a stale id).
RemoteExport* export_lookup(uint32_t id);

// Exports made for a client in another process, by id (control thread).
int peer_export_create(const std::string& base_name, int client_cluster, ExportInfo* out,
                       std::string* err);
int peer_export_delete(uint32_t id, std::function<void()> done);
// Shutdown: closes every export made for another process, then done().
void peer_exports_close_all(std::function<void()> done);

}  // namespace nocstor::remote
