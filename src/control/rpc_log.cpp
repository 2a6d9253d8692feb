// Log methods with SPDK's names: log_set_level/log_get_level, log_set_print_level/
// log_get_print_level, log_set_flag/log_clear_flag/log_get_flags.
//
// SPDK has a stored level and a print level; nocstor logs to one place, so both pairs set and
// read the same level. SPDK's levels map to nocstor's: ERROR -> error, WARNING -> warn, NOTICE
// and INFO -> info, DEBUG -> debug (nocstor's own names trace..off are accepted too). SPDK's log
// flags turn on debug output of one component; here a flag is a component ("nvmf", "bdev", ...),
// and log_set_flag sets it to debug. nocstor extension: log_set_level {"component": "nvmf"}.
#include "control/json_params.h"
#include "control/rpc_registry.h"
#include "util/log.h"

#include <spdlog/spdlog.h>

#include <map>

namespace nocstor::control {

namespace {

using nlohmann::json;

// The components whose loggers exist in every daemon.
const char* const kComponents[] = {"app", "runtime", "bdev",   "nvmf", "nvme",
                                   "rpc", "http",    "config", "net"};

// SPDK name or nocstor name -> spdlog name; "" if unknown.
std::string to_spdlog_level(std::string level) {
    for (auto& c : level) c = char(std::toupper(static_cast<unsigned char>(c)));
    static const std::map<std::string, std::string> kNames = {
        {"ERROR", "err"},   {"WARNING", "warn"}, {"WARN", "warn"},
        {"NOTICE", "info"}, {"INFO", "info"},    {"DEBUG", "debug"},
        {"TRACE", "trace"}, {"OFF", "off"},      {"CRITICAL", "critical"}};
    auto it = kNames.find(level);
    return it == kNames.end() ? "" : it->second;
}

std::string to_spdk_level(const std::string& spdlog_level) {
    if (spdlog_level == "trace" || spdlog_level == "debug") return "DEBUG";
    if (spdlog_level == "info") return "INFO";
    if (spdlog_level == "warning" || spdlog_level == "warn") return "WARNING";
    return "ERROR";  // error, critical, off: only errors (or nothing) are printed
}

void set_level(const char* method, const json& params, RpcReply reply) {
    std::string level;
    std::string component = "*";
    ParamsDecoder d(method);
    d.required("level", &level).optional("component", &component);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    const std::string lvl = to_spdlog_level(level);
    if (lvl.empty())
        return reply.invalid(std::string(method) + ": level '" + level +
                             "' is not one of ERROR, WARNING, NOTICE, INFO, DEBUG (or trace, off)");
    set_log_level(component, lvl);
    reply.result(true);
}

void get_level(const char* method, const json& params, RpcReply reply) {
    std::string component = "*";
    ParamsDecoder d(method);
    d.optional("component", &component);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    reply.result(to_spdk_level(get_log_level(component)));
}

void set_flag(const json& params, RpcReply reply, bool on) {
    const char* method = on ? "log_set_flag" : "log_clear_flag";
    std::string flag;
    ParamsDecoder d(method);
    d.required("flag", &flag);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    const std::string level = on ? "debug" : get_log_level("*");
    if (flag == "all") {
        for (const char* c : kComponents) set_log_level(c, level);
    } else {
        bool known = false;
        for (const char* c : kComponents) known = known || flag == c;
        if (!known)
            return reply.invalid(std::string(method) + ": unknown flag '" + flag +
                                 "' (a component: app, runtime, bdev, nvmf, nvme, rpc, http, "
                                 "config, net, or all)");
        set_log_level(flag, level);
    }
    reply.result(true);
}

void get_flags(const json& params, RpcReply reply) {
    ParamsDecoder d("log_get_flags");
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    json out = json::object();
    for (const char* c : kComponents) {
        const std::string l = get_log_level(c);
        out[c] = l == "debug" || l == "trace";
    }
    reply.result(out);
}

}  // namespace

void register_log_rpcs() {
    auto& r = RpcRegistry::instance();
    for (const char* m : {"log_set_level", "log_set_print_level"})
        r.add(m, [m](const json& p, RpcReply reply) { set_level(m, p, std::move(reply)); });
    for (const char* m : {"log_get_level", "log_get_print_level"})
        r.add(m, [m](const json& p, RpcReply reply) { get_level(m, p, std::move(reply)); });
    r.add("log_set_flag",
          [](const json& p, RpcReply reply) { set_flag(p, std::move(reply), true); });
    r.add("log_clear_flag",
          [](const json& p, RpcReply reply) { set_flag(p, std::move(reply), false); });
    r.add("log_get_flags", get_flags);
}

}  // namespace nocstor::control
