#include "util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <map>
#include <mutex>

namespace nocstor {
namespace {
struct Registry {
    std::mutex mu;
    std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
    spdlog::level::level_enum default_level = spdlog::level::info;
    std::shared_ptr<spdlog::sinks::stderr_color_sink_mt> sink =
        std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
};
Registry& registry() {
    static Registry* r = new Registry();  // never destroyed: loggers outlive static destructors
    return *r;
}
}  // namespace

std::shared_ptr<spdlog::logger> component_logger(std::string_view component) {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    auto it = r.loggers.find(component);
    if (it != r.loggers.end()) return it->second;
    auto logger = std::make_shared<spdlog::logger>(std::string(component), r.sink);
    logger->set_level(r.default_level);
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %v");
    r.loggers.emplace(std::string(component), logger);
    return logger;
}

bool set_log_level(std::string_view component, std::string_view level) {
    auto lvl = spdlog::level::from_str(std::string(level));
    if (lvl == spdlog::level::off && level != "off") return false;
    auto& r = registry();
    std::lock_guard lock(r.mu);
    if (component == "*") {
        r.default_level = lvl;
        for (auto& [_, l] : r.loggers) l->set_level(lvl);
        return true;
    }
    auto it = r.loggers.find(component);
    if (it == r.loggers.end()) {
        auto logger = std::make_shared<spdlog::logger>(std::string(component), r.sink);
        logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %v");
        it = r.loggers.emplace(std::string(component), logger).first;
    }
    it->second->set_level(lvl);
    return true;
}

bool apply_log_spec(std::string_view spec, std::string* error) {
    while (!spec.empty()) {
        auto comma = spec.find(',');
        auto item = spec.substr(0, comma);
        spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
        auto eq = item.find('=');
        std::string_view comp = eq == std::string_view::npos ? "*" : item.substr(0, eq);
        std::string_view lvl = eq == std::string_view::npos ? item : item.substr(eq + 1);
        if (!set_log_level(comp, lvl)) {
            if (error)
                *error = fmt::format(
                    "unknown log level '{}' (use trace, debug, info, warn, error, off)", lvl);
            return false;
        }
    }
    return true;
}

}  // namespace nocstor
