#include "modules/remote/remote_export.h"

#include "bdev/bdev_module.h"
#include "modules/module_util.h"
#include "modules/remote/remote_bdev.h"
#include "modules/remote/remote_port.h"
#include "util/log.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>

namespace nocstor::remote {

namespace {

constexpr uint32_t kSlotBits = 12;
constexpr uint32_t kMaxExports = 1u << kSlotBits;
std::array<std::atomic<RemoteExport*>, kMaxExports> g_exports{};

// The tag half of an id differs between exports and between processes, so that a request sent
// to a previous process of the cluster (or to a closed export) is refused, not served by
// whatever export took its slot since.
uint32_t next_tag() {
    static uint32_t counter = uint32_t(getpid()) * 2654435761u;
    counter = counter * 1664525u + 1013904223u;
    const uint32_t tag = counter >> kSlotBits;
    return tag ? tag : 1;
}

uint32_t publish(RemoteExport* e) {
    for (uint32_t i = 1; i < kMaxExports; ++i) {
        if (!g_exports[i].load(std::memory_order_relaxed)) {
            e->id = next_tag() << kSlotBits | i;
            g_exports[i].store(e, std::memory_order_release);
            return e->id;
        }
    }
    return 0;
}

void unpublish(uint32_t id) {
    g_exports[id & (kMaxExports - 1)].store(nullptr, std::memory_order_release);
}

// Control thread: exports held for clients in other processes.
std::map<uint32_t, RemoteExport*> g_peer_exports;

}  // namespace

RemoteExport* export_lookup(uint32_t id) {
    RemoteExport* e = g_exports[id & (kMaxExports - 1)].load(std::memory_order_acquire);
    return e && e->id == id ? e : nullptr;
}

int export_open(const std::string& base_name, BdevEventCb event, RemoteExport** out,
                std::string* err) {
    Bdev* base = bdev_get_by_name(base_name);
    if (!base) return fail(err, -ENODEV, "remote: no bdev named " + base_name);
    if (!ports_start(base->cluster))
        return fail(err, -ENODEV,
                    "remote: no runtime to reach cluster " + std::to_string(base->cluster));
    BdevDesc* desc = nullptr;
    int rc = bdev_open(base_name, true, std::move(event), &desc);
    if (rc == -EPERM) return fail(err, -EPERM, "remote: bdev " + base_name + " is claimed");
    if (rc) return fail(err, rc, "remote: cannot open " + base_name + ": " + strerror(-rc));
    if (bdev_claim(base, remote_bdev_module())) {
        bdev_close(desc);
        return fail(err, -EPERM, "remote: bdev " + base_name + " is already claimed");
    }
    auto e = std::make_unique<RemoteExport>();
    e->cluster = base->cluster;
    e->desc = desc;
    if (!publish(e.get())) {
        bdev_release_claim(base);
        bdev_close(desc);
        return fail(err, -ENOSPC, "remote: too many remote bdevs");
    }
    *out = e.release();
    return 0;
}

void export_close(RemoteExport* e, std::function<void()> done) {
    unpublish(e->id);  // requests that arrive from now on are refused
    Thread* ctl = Thread::current();
    auto release = std::make_shared<std::function<void()>>([e, done = std::move(done)] {
        bdev_release_claim(e->desc->bdev());
        bdev_close(e->desc);
        delete e;
        done();
    });
    RemotePort* owner = port_of(e->cluster);
    if (!owner) return (*release)();
    owner->thread()->send([e, ctl, release] {
        if (e->ch) bdev_put_io_channel(e->ch);
        e->ch = nullptr;
        ctl->send([release] { (*release)(); });
    });
}

ExportInfo export_info(const RemoteExport& e) {
    const Bdev* b = e.desc->bdev();
    ExportInfo i;
    i.id = e.id;
    i.cluster = e.cluster;
    i.base_name = b->name;
    i.block_size = b->block_size;
    i.num_blocks = b->num_blocks;
    i.write_cache = b->write_cache;
    i.required_alignment = b->required_alignment;
    i.optimal_io_boundary = b->optimal_io_boundary;
    i.max_transfer_blocks = b->max_transfer_blocks;
    for (int t = 0; t < int(IoType::Count); ++t)
        if (b->io_type_supported(IoType(t))) i.io_types |= 1u << t;
    return i;
}

int peer_export_create(const std::string& base_name, int client_cluster, ExportInfo* out,
                       std::string* err) {
    RemoteExport* e = nullptr;
    const int rc = export_open(
        base_name,
        [base_name](BdevEvent ev, Bdev* base) {
            for (auto& [id, e] : g_peer_exports) {
                if (e->desc->bdev()->name != base_name) continue;
                if (ev == BdevEvent::Resize) {
                    RemotePort* port = port_of(e->cluster);
                    if (port && e->client >= 0)
                        port->thread()->send(
                            [port, client = e->client, id = id, blocks = base->num_blocks] {
                                port->announce_resize(client, id, blocks);
                            });
                    return;
                }
                NOC_WARN("remote",
                         "{}: removed while exported to another process; its remote "
                         "bdev's I/O now fails",
                         base_name);
                peer_export_delete(id, [] {});
                return;
            }
        },
        &e, err);
    if (rc) return rc;
    e->client = client_cluster;
    g_peer_exports[e->id] = e;
    *out = export_info(*e);
    NOC_INFO("remote", "{} on cluster {} exported to another process (export {:#x})", base_name,
             e->cluster, e->id);
    return 0;
}

int peer_export_delete(uint32_t id, std::function<void()> done) {
    auto it = g_peer_exports.find(id);
    if (it == g_peer_exports.end()) return -ENOENT;
    RemoteExport* e = it->second;
    g_peer_exports.erase(it);
    export_close(e, std::move(done));
    return 0;
}

void peer_exports_close_all(std::function<void()> done) {
    if (g_peer_exports.empty()) return done();
    const uint32_t id = g_peer_exports.begin()->first;
    peer_export_delete(
        id, [done = std::move(done)]() mutable { peer_exports_close_all(std::move(done)); });
}

}  // namespace nocstor::remote
