#include "runtime/topology.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "util/log.h"

namespace nocstor {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> read_file(const fs::path& p) {
    std::ifstream in(p);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

bool parse_int(std::string_view s, int* out) {
    s = trim(s);
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size() && *out >= 0;
}

// L3 domain of one cpu: cache/indexK with level 3 -> "id", else the first cpu of shared_cpu_list.
int read_l3(const fs::path& cpu_dir) {
    std::error_code ec;
    fs::directory_iterator it(cpu_dir / "cache", ec);
    if (ec) return 0;
    for (const auto& entry : it) {
        if (entry.path().filename().string().rfind("index", 0) != 0) continue;
        auto level = read_file(entry.path() / "level");
        int lv = 0;
        if (!level || !parse_int(*level, &lv) || lv != 3) continue;
        int id = 0;
        if (auto s = read_file(entry.path() / "id"); s && parse_int(*s, &id)) return id;
        std::vector<int> shared;
        if (auto s = read_file(entry.path() / "shared_cpu_list");
            s && parse_cpu_list(*s, &shared, nullptr)) {
            return shared.front();
        }
    }
    return 0;
}

}  // namespace

bool parse_cpu_list(std::string_view text, std::vector<int>* out, std::string* err) {
    auto fail = [&](std::string msg) {
        if (err) *err = fmt::format("bad cpu list '{}': {}", text, msg);
        return false;
    };
    std::string_view s = trim(text);
    if (s.empty()) return fail("empty");
    std::set<int> cpus;
    while (true) {
        auto comma = s.find(',');
        std::string_view item = s.substr(0, comma);
        auto dash = item.find('-');
        int lo = 0, hi = 0;
        if (dash == std::string_view::npos) {
            if (!parse_int(item, &lo)) return fail(fmt::format("'{}' is not a cpu number", item));
            hi = lo;
        } else {
            if (!parse_int(item.substr(0, dash), &lo) || !parse_int(item.substr(dash + 1), &hi)) {
                return fail(fmt::format("'{}' is not a range", item));
            }
            if (hi < lo) return fail(fmt::format("range '{}' is reversed", item));
        }
        if (hi >= 65536) return fail(fmt::format("cpu {} is too large", hi));
        for (int c = lo; c <= hi; ++c) cpus.insert(c);
        if (comma == std::string_view::npos) break;
        s = s.substr(comma + 1);
    }
    out->assign(cpus.begin(), cpus.end());
    return true;
}

std::string format_cpu_list(std::vector<int> cpus) {
    std::sort(cpus.begin(), cpus.end());
    cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
    std::string out;
    for (size_t i = 0; i < cpus.size();) {
        size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
        i = j + 1;
    }
    return out;
}

Topology Topology::from_sysfs_root(const std::string& root, const std::vector<int>* allowed) {
    fs::path sys = fs::path(root) / "devices/system";
    std::vector<int> online;
    std::string err;
    auto text = read_file(sys / "cpu/online");
    if (!text || !parse_cpu_list(*text, &online, &err)) {
        NOC_WARN("runtime", "cannot read {}/cpu/online ({}), assuming cpu 0 only", sys.string(),
                 err);
        online = {0};
    }
    std::map<int, int> numa_of;
    std::error_code ec;
    for (fs::directory_iterator it(sys / "node", ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        int node = 0;
        if (name.rfind("node", 0) != 0 || !parse_int(std::string_view(name).substr(4), &node))
            continue;
        std::vector<int> cpus;
        if (auto s = read_file(it->path() / "cpulist"); s && parse_cpu_list(*s, &cpus, nullptr)) {
            for (int c : cpus) numa_of[c] = node;
        }
    }
    Topology topo;
    for (int cpu : online) {
        if (allowed && !std::binary_search(allowed->begin(), allowed->end(), cpu)) continue;
        int l3 = read_l3(sys / fmt::format("cpu/cpu{}", cpu));
        auto n = numa_of.find(cpu);
        topo.cpus.push_back({cpu, l3, n == numa_of.end() ? 0 : n->second});
    }
    return topo;
}

Topology Topology::detect() {
    std::vector<int> allowed;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; ++c) {
            if (CPU_ISSET(c, &set)) allowed.push_back(c);
        }
    }
    Topology topo = from_sysfs_root("/sys", allowed.empty() ? nullptr : &allowed);
    if (topo.cpus.empty()) topo.cpus.push_back({allowed.empty() ? 0 : allowed[0], 0, 0});
    return topo;
}

const CpuInfo* Topology::find(int cpu) const {
    for (const auto& c : cpus) {
        if (c.cpu == cpu) return &c;
    }
    return nullptr;
}

std::vector<int> Topology::cpu_ids() const {
    std::vector<int> ids;
    for (const auto& c : cpus) ids.push_back(c.cpu);
    return ids;
}

std::vector<ClusterSpec> default_cluster_plan(const Topology& topo) {
    using Role = ClusterSpec::Role;
    std::vector<ClusterSpec> plan;
    if (topo.cpus.empty()) return plan;
    int control = topo.cpus[0].cpu;
    plan.push_back({0, Role::Control, {control}});
    if (topo.cpus.size() <= 2) {
        plan.push_back({1, Role::Data, {topo.cpus.back().cpu}});
        return plan;
    }
    // One data cluster per L3 domain, in order of the domain's lowest cpu.
    std::vector<std::pair<int, std::vector<int>>> domains;  // (l3, cores)
    for (size_t i = 1; i < topo.cpus.size(); ++i) {
        const auto& c = topo.cpus[i];
        auto it = std::find_if(domains.begin(), domains.end(),
                               [&](const auto& d) { return d.first == c.l3; });
        if (it == domains.end()) {
            domains.push_back({c.l3, {}});
            it = domains.end() - 1;
        }
        it->second.push_back(c.cpu);
    }
    for (auto& [l3, cores] : domains) {
        plan.push_back({int(plan.size()), Role::Data, std::move(cores)});
    }
    return plan;
}

std::optional<std::vector<ClusterSpec>> parse_cluster_plan(const std::string& spec,
                                                           const Topology& topo, std::string* err) {
    auto fail = [&](std::string msg) -> std::optional<std::vector<ClusterSpec>> {
        if (err) *err = fmt::format("bad cluster plan '{}': {}", spec, msg);
        return std::nullopt;
    };
    std::vector<ClusterSpec> plan;
    std::string_view rest = trim(spec);
    if (rest.empty()) return fail("empty");
    while (!rest.empty()) {
        auto semi = rest.find(';');
        std::string_view item = trim(rest.substr(0, semi));
        rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
        if (item.empty()) continue;  // tolerate a trailing ';'
        auto c1 = item.find(':');
        auto c2 = c1 == std::string_view::npos ? c1 : item.find(':', c1 + 1);
        if (c2 == std::string_view::npos) {
            return fail(fmt::format("'{}' is not <id>:<control|data>:<cpu list>", item));
        }
        ClusterSpec c{};
        if (!parse_int(item.substr(0, c1), &c.id)) return fail(fmt::format("bad id in '{}'", item));
        std::string_view role = trim(item.substr(c1 + 1, c2 - c1 - 1));
        if (role == "control") {
            c.role = ClusterSpec::Role::Control;
        } else if (role == "data") {
            c.role = ClusterSpec::Role::Data;
        } else {
            return fail(fmt::format("role '{}' is neither control nor data", role));
        }
        std::string list_err;
        if (!parse_cpu_list(item.substr(c2 + 1), &c.cores, &list_err)) return fail(list_err);
        plan.push_back(std::move(c));
    }
    std::sort(plan.begin(), plan.end(), [](auto& a, auto& b) { return a.id < b.id; });
    int controls = 0, datas = 0;
    std::map<int, int> data_owner;  // core -> data cluster
    for (size_t i = 0; i < plan.size(); ++i) {
        const auto& c = plan[i];
        if (c.id != int(i)) {
            return fail(i > 0 && plan[i - 1].id == c.id
                            ? fmt::format("cluster id {} appears twice", c.id)
                            : fmt::format("cluster ids must be dense from 0; {} is missing", i));
        }
        for (int core : c.cores) {
            if (!topo.find(core))
                return fail(fmt::format("cpu {} is not online or not allowed", core));
        }
        if (c.role == ClusterSpec::Role::Control) {
            ++controls;
            continue;
        }
        ++datas;
        // Data clusters may share a core (tests run several clusters on a 2-core machine):
        // their reactors then time-slice it, which costs throughput, so it is worth a warning.
        for (int core : c.cores) {
            auto [it, fresh] = data_owner.emplace(core, c.id);
            if (!fresh)
                NOC_WARN("runtime", "cpu {} is in data clusters {} and {}: they will share it",
                         core, it->second, c.id);
        }
    }
    if (controls != 1) return fail(fmt::format("{} control clusters, need exactly one", controls));
    if (datas == 0) return fail("no data cluster");
    return plan;
}

std::optional<std::vector<ClusterSpec>> parse_cluster_plan(const std::string& spec,
                                                           std::string* err) {
    return parse_cluster_plan(spec, Topology::detect(), err);
}

std::string format_cluster_plan(const std::vector<ClusterSpec>& plan) {
    std::string out;
    for (const auto& c : plan) {
        if (!out.empty()) out += ';';
        out +=
            fmt::format("{}:{}:{}", c.id, c.role == ClusterSpec::Role::Control ? "control" : "data",
                        format_cpu_list(c.cores));
    }
    return out;
}

}  // namespace nocstor
