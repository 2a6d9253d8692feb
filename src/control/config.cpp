#include "control/config.h"

#include "bdev/bdev.h"
#include "control/rpc_registry.h"
#include "util/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace nocstor::control {

using nlohmann::json;

namespace {

struct Section {
    std::string name;
    std::function<json()> writer;
    bool optional = false;
};
std::vector<Section>& sections() {
    static auto* v = new std::vector<Section>();
    return *v;
}

// SPDK methods that tune SPDK internals with no nocstor equivalent: skipped on load.
const std::set<std::string>& ignorable_methods() {
    static const std::set<std::string> s = {
        "bdev_set_options",
        "bdev_nvme_set_hotplug",
        "iobuf_set_options",
        "sock_set_default_impl",
        "sock_impl_set_options",
        "accel_set_options",
        "framework_set_scheduler",
        "nvmf_set_max_subsystems",
        "nvmf_set_crdt",
        "vmd_enable",
        "keyring_set_options",
        "vfu_tgt_set_base_path",
        "scheduler_set_options",
        "bdev_malloc_set_options",
        "accel_crypto_key_create",
    };
    return s;
}

// Loading order of the sections we know; others follow in file order.
int section_rank(const std::string& name) {
    static const std::vector<std::string> order = {"iobuf", "sock", "keyring", "accel", "vmd",
                                                   "bdev",  "nvmf", "scsi",    "iscsi"};
    for (size_t i = 0; i < order.size(); ++i)
        if (order[i] == name) return int(i);
    return int(order.size());
}

struct Call {
    std::string section, method;
    json params;
    bool waited = false;
};

void run_calls(std::shared_ptr<std::vector<Call>> calls, size_t i,
               std::function<void(bool, std::string)> done) {
    if (i == calls->size()) {
        done(true, "");
        return;
    }
    const Call& c = (*calls)[i];
    // A new section may name what the previous one's modules are still assembling (RAID arrays
    // from their superblocks): wait for the bdev layer's examine first.
    if (i > 0 && c.section != (*calls)[i - 1].section && !c.waited) {
        (*calls)[i].waited = true;
        bdev_wait_for_examine(
            [calls, i, done = std::move(done)]() mutable { run_calls(calls, i, std::move(done)); });
        return;
    }
    if (ignorable_methods().count(c.method)) {
        NOC_WARN("config", "{}: skipping SPDK tuning method {} (no nocstor equivalent)", c.section,
                 c.method);
        run_calls(calls, i + 1, std::move(done));
        return;
    }
    if (!RpcRegistry::instance().find(c.method)) {
        done(false, "config: unknown method '" + c.method + "' in subsystem '" + c.section + "'");
        return;
    }
    RpcRegistry::instance().call(
        c.method, c.params, RpcReply([calls, i, done](bool ok, json res) mutable {
            const Call& c = (*calls)[i];
            if (!ok) {
                done(false, "config: " + c.method +
                                " failed: " + res.value("message", std::string("unknown error")));
                return;
            }
            run_calls(calls, i + 1, std::move(done));
        }));
}

}  // namespace

void register_config_section(std::string subsystem, std::function<json()> writer, bool optional) {
    for (auto& s : sections())
        if (s.name == subsystem) {
            s.writer = std::move(writer);
            s.optional = optional;
            return;
        }
    sections().push_back({std::move(subsystem), std::move(writer), optional});
}

namespace {
bool section_shown(const Section& s) {
    return !s.optional || (s.writer && !s.writer().empty());
}
}  // namespace

std::vector<std::string> config_section_names() {
    std::vector<std::string> names;
    for (const auto& s : sections())
        if (section_shown(s)) names.push_back(s.name);
    return names;
}

bool section_config(const std::string& name, json* out) {
    for (const auto& s : sections())
        if (s.name == name) {
            *out = s.writer ? s.writer() : json::array();
            return true;
        }
    return false;
}

json build_config() {
    json subs = json::array();
    for (const auto& s : sections())
        if (section_shown(s))
            subs.push_back(
                {{"subsystem", s.name}, {"config", s.writer ? s.writer() : json::array()}});
    return {{"subsystems", subs}};
}

void load_config(const json& config, std::function<void(bool, std::string)> done) {
    if (!config.is_object() || !config.contains("subsystems") || !config["subsystems"].is_array()) {
        done(false, "config: expected an object with a \"subsystems\" array");
        return;
    }
    std::vector<std::pair<int, size_t>> order;
    const json& subs = config["subsystems"];
    for (size_t i = 0; i < subs.size(); ++i) {
        const json& s = subs[i];
        if (!s.is_object() || !s.contains("subsystem") || !s["subsystem"].is_string()) {
            done(false, "config: subsystems[" + std::to_string(i) + "] needs a \"subsystem\" name");
            return;
        }
        order.push_back({section_rank(s["subsystem"].get<std::string>()), i});
    }
    std::stable_sort(order.begin(), order.end(),
                     [](auto& a, auto& b) { return a.first < b.first; });
    auto calls = std::make_shared<std::vector<Call>>();
    for (auto [rank, i] : order) {
        const json& s = subs[i];
        std::string name = s["subsystem"];
        if (!s.contains("config") || s["config"].is_null()) continue;
        if (!s["config"].is_array()) {
            done(false, "config: subsystem '" + name + "': \"config\" must be an array");
            return;
        }
        for (size_t k = 0; k < s["config"].size(); ++k) {
            const json& c = s["config"][k];
            if (!c.is_object() || !c.contains("method") || !c["method"].is_string()) {
                done(false, "config: subsystem '" + name + "' entry " + std::to_string(k) +
                                " needs a \"method\" string");
                return;
            }
            json params = c.contains("params") ? c["params"] : json::object();
            calls->push_back({name, c["method"].get<std::string>(), params});
        }
    }
    run_calls(calls, 0, std::move(done));
}

bool read_config_file(const std::string& path, json* out, std::string* err) {
    std::ifstream in(path);
    if (!in) {
        *err = "cannot open config file " + path + ": " + strerror(errno);
        return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        *out = json::parse(ss.str());
    } catch (const json::parse_error& e) {
        *err = "config file " + path + " is not valid JSON: " + e.what();
        return false;
    }
    return true;
}

namespace {

// True if pid is a running nocstor (which may be writing its temporary file right now).
bool nocstor_alive(long pid) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    return comm && std::getline(comm, name) && name == "nocstor";
}

}  // namespace

int remove_stale_temporaries(const std::string& path) {
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    const std::string prefix =
        (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
    DIR* d = opendir(dir.c_str());
    if (!d) return 0;
    int removed = 0;
    while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string pid = name.substr(prefix.size());
        if (pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
        const long p = std::stol(pid);
        if (p == static_cast<long>(getpid()) || nocstor_alive(p)) continue;
        const std::string full = (slash == std::string::npos ? "" : dir) + name;
        if (unlink(full.c_str()) == 0) {
            NOC_INFO("config", "removed {}, left behind by an interrupted save", full);
            ++removed;
        }
    }
    closedir(d);
    return removed;
}

bool write_file_atomically(const std::string& path, const std::string& text, std::string* err) {
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        *err = "cannot create " + tmp + ": " + strerror(errno);
        return false;
    }
    size_t off = 0;
    while (off < text.size()) {
        ssize_t n = write(fd, text.data() + off, text.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            *err = "cannot write " + tmp + ": " + strerror(errno);
            close(fd);
            unlink(tmp.c_str());
            return false;
        }
        off += size_t(n);
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        *err = "cannot sync " + tmp + ": " + strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        *err = "cannot rename " + tmp + " to " + path + ": " + strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    if (dir.empty()) dir = "/";
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return true;
}

json default_config() {
    return json::parse(R"({
  "subsystems": [
    {"subsystem": "bdev", "config": [
      {"method": "bdev_malloc_create",
       "params": {"name": "Malloc0", "num_blocks": 65536, "block_size": 4096}}
    ]},
    {"subsystem": "nvmf", "config": [
      {"method": "nvmf_create_transport", "params": {"trtype": "TCP"}},
      {"method": "nvmf_create_subsystem",
       "params": {"nqn": "nqn.2024-01.io.nocstor:vol1", "allow_any_host": true,
                  "serial_number": "NOCSTOR0001", "model_number": "nocstor malloc volume"}},
      {"method": "nvmf_subsystem_add_ns",
       "params": {"nqn": "nqn.2024-01.io.nocstor:vol1", "namespace": {"bdev_name": "Malloc0"}}},
      {"method": "nvmf_subsystem_add_listener",
       "params": {"nqn": "nqn.2024-01.io.nocstor:vol1",
                  "listen_address": {"trtype": "TCP", "adrfam": "IPv4",
                                     "traddr": "127.0.0.1", "trsvcid": "4420"}}},
      {"method": "nvmf_subsystem_add_listener",
       "params": {"nqn": "nqn.2014-08.org.nvmexpress.discovery",
                  "listen_address": {"trtype": "TCP", "adrfam": "IPv4",
                                     "traddr": "127.0.0.1", "trsvcid": "8009"}}}
    ]}
  ]
})");
}

}  // namespace nocstor::control
