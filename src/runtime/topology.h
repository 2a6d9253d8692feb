// CPU topology discovery (online CPUs, L3 cache domain, NUMA node, allowed affinity set) and the
// cluster plan built from it: cluster 0 is the control plane, clusters 1..N are data planes, by
// default one per L3 domain. Control path only (reads sysfs, allocates).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nocstor {

struct CpuInfo {
    int cpu;
    int l3;    // L3 cache domain id (sysfs cache "id", else the first cpu sharing it; 0 if unknown)
    int numa;  // NUMA node, 0 if unknown
};

struct Topology {
    std::vector<CpuInfo> cpus;  // online and allowed, sorted by cpu number

    // The running machine, restricted to the process's sched_getaffinity() set.
    static Topology detect();
    // A sysfs tree rooted at `root` (which contains devices/system/...), for tests. `allowed`
    // restricts the cpus as the affinity mask would; nullptr keeps every online cpu.
    static Topology from_sysfs_root(const std::string& root,
                                    const std::vector<int>* allowed = nullptr);

    const CpuInfo* find(int cpu) const;
    std::vector<int> cpu_ids() const;
};

// "0-3,8,10-11" -> {0,1,2,3,8,10,11} (sorted, duplicates removed; surrounding spaces and a
// trailing newline are accepted). False and a message on bad input (empty, "3-1", "a", "1,,2").
bool parse_cpu_list(std::string_view text, std::vector<int>* out, std::string* err);
// The inverse: ranges of consecutive cpus are folded, e.g. {0,1,2,3,8} -> "0-3,8".
std::string format_cpu_list(std::vector<int> cpus);

struct ClusterSpec {
    enum class Role { Control, Data };
    int id;
    Role role;
    std::vector<int> cores;
};

// Cluster 0 = control on the first allowed cpu; the other cpus form one data cluster per L3
// domain. With 1 cpu, control and data cluster 1 share it; with 2, data cluster 1 gets the second.
std::vector<ClusterSpec> default_cluster_plan(const Topology& topo);

// Parses "0:control:0;1:data:1-3;2:data:4-7" and validates it: ids dense from 0 (any order),
// exactly one control cluster, at least one data cluster, every core exists in `topo`. A core may
// serve several clusters (the control core and a data cluster on small machines; several data
// clusters in tests, with a warning: their reactors time-slice it). Sorted by id.
std::optional<std::vector<ClusterSpec>> parse_cluster_plan(const std::string& spec,
                                                           const Topology& topo, std::string* err);
// Same, validated against Topology::detect().
std::optional<std::vector<ClusterSpec>> parse_cluster_plan(const std::string& spec,
                                                           std::string* err);

std::string format_cluster_plan(const std::vector<ClusterSpec>& plan);

}  // namespace nocstor
