// The lvol module's Prometheus families (/metrics, control thread): per lvstore its clusters,
// journal and state; per lvol its size and what it has allocated.
#include "modules/lvol/lvol.h"
#include "modules/lvol/lvstore.h"
#include "util/prometheus.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

namespace nocstor::lvol {

void lvol_metrics(std::string& out) {
    struct Store {
        std::string name;
        uint64_t cluster_bytes, total, free, lvols, batches, checkpoints, journal_used;
        bool failed;
    };
    struct Vol {
        std::string store, name, bdev;
        uint64_t size, allocated;
    };
    std::vector<Store> stores;
    std::vector<Vol> vols;
    for (const Lvstore* s : lvstores()) {
        if (s->unloading) continue;
        const std::string name = escape_prometheus_label(s->sb.name);
        const uint64_t total = s->state.total_clusters();
        // As bdev_lvol_get_lvstores: clusters being filled for an allocation are not free.
        const uint64_t free = s->state.free_clusters() -
                              std::min<uint64_t>(s->reserved.size(), s->state.free_clusters());
        stores.push_back({name, s->sb.cluster_bytes, total, free, s->state.lvols().size(),
                          s->journal->batches_written(), s->journal->checkpoints_written(),
                          s->journal->used_bytes(), s->journal->failed()});
        for (const auto& [id, l] : s->state.lvols())
            vols.push_back({name, escape_prometheus_label(l.name), uuid_to_string(l.uuid),
                            l.num_clusters * s->sb.cluster_bytes,
                            l.allocated() * s->sb.cluster_bytes});
    }
    auto per_store = [&](const char* name, const char* type, const char* help, auto value) {
        prometheus_family(out, name, type, help);
        for (const Store& s : stores)
            out += fmt::format("{}{{lvstore=\"{}\"}} {}\n", name, s.name, value(s));
    };
    per_store("nocstor_lvstore_cluster_size_bytes", "gauge", "Cluster size of the lvstore.",
              [](const Store& s) { return s.cluster_bytes; });
    per_store("nocstor_lvstore_total_clusters", "gauge", "Clusters in the lvstore's data region.",
              [](const Store& s) { return s.total; });
    per_store("nocstor_lvstore_used_clusters", "gauge",
              "Clusters owned by lvols or being allocated.",
              [](const Store& s) { return s.total - s.free; });
    per_store("nocstor_lvstore_free_clusters", "gauge", "Clusters free to allocate.",
              [](const Store& s) { return s.free; });
    per_store("nocstor_lvstore_lvols", "gauge", "Lvols in the lvstore (snapshots included).",
              [](const Store& s) { return s.lvols; });
    per_store("nocstor_lvstore_journal_batches_total", "counter",
              "Metadata journal batches written since the lvstore was opened.",
              [](const Store& s) { return s.batches; });
    per_store("nocstor_lvstore_checkpoints_total", "counter",
              "Metadata checkpoints written since the lvstore was opened.",
              [](const Store& s) { return s.checkpoints; });
    per_store("nocstor_lvstore_journal_used_bytes", "gauge",
              "Bytes of the metadata journal holding batches after the last checkpoint.",
              [](const Store& s) { return s.journal_used; });
    per_store("nocstor_lvstore_failed", "gauge",
              "1 after a metadata write failed: the lvstore takes no more metadata changes.",
              [](const Store& s) { return s.failed ? 1 : 0; });
    auto per_lvol = [&](const char* name, const char* help, auto value) {
        prometheus_family(out, name, "gauge", help);
        for (const Vol& v : vols)
            out += fmt::format("{}{{lvstore=\"{}\",lvol=\"{}\",bdev=\"{}\"}} {}\n", name, v.store,
                               v.name, v.bdev, value(v));
    };
    per_lvol("nocstor_lvol_size_bytes", "Size of the lvol (whole clusters).",
             [](const Vol& v) { return v.size; });
    per_lvol("nocstor_lvol_allocated_bytes",
             "Bytes of the lvol's own allocated clusters (not its parent's).",
             [](const Vol& v) { return v.allocated; });
}

}  // namespace nocstor::lvol
