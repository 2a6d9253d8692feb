#include "util/log.h"

#include "util/log_escape.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <map>
#include <mutex>

namespace nocstor {
namespace {

// %* : the message with every non-printable byte escaped (see log_escape.h). Messages carry
// peer-controlled strings; escaping here covers every call site.
class EscapedPayload final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        std::string escaped;
        append_log_escaped(std::string_view(msg.payload.data(), msg.payload.size()), &escaped);
        dest.append(escaped.data(), escaped.data() + escaped.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<EscapedPayload>();
    }
};

constexpr const char* kPattern = "[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %*";
std::string g_process_tag;  // set once at start-up (set_log_process_tag)

std::shared_ptr<spdlog::logger> new_logger(std::string name,
                                           std::shared_ptr<spdlog::sinks::sink> sink) {
    auto logger = std::make_shared<spdlog::logger>(std::move(name), std::move(sink));
    logger->set_formatter(make_log_formatter());
    return logger;
}

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

std::unique_ptr<spdlog::formatter> make_log_formatter() {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<EscapedPayload>('*').set_pattern(
        g_process_tag.empty() ? std::string(kPattern)
                              : "[%Y-%m-%d %H:%M:%S.%e] [" + g_process_tag + "] [%n] [%^%l%$] %*");
    return f;
}

void set_log_process_tag(std::string tag) {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    g_process_tag = std::move(tag);
    for (auto& [_, l] : r.loggers) l->set_formatter(make_log_formatter());
}

std::shared_ptr<spdlog::logger> component_logger(std::string_view component) {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    auto it = r.loggers.find(component);
    if (it != r.loggers.end()) return it->second;
    auto logger = new_logger(std::string(component), r.sink);
    logger->set_level(r.default_level);
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
        auto logger = new_logger(std::string(component), r.sink);
        it = r.loggers.emplace(std::string(component), logger).first;
    }
    it->second->set_level(lvl);
    return true;
}

std::string get_log_level(std::string_view component) {
    auto& r = registry();
    std::lock_guard lock(r.mu);
    spdlog::level::level_enum lvl = r.default_level;
    if (component != "*") {
        auto it = r.loggers.find(component);
        if (it != r.loggers.end()) lvl = it->second->level();
    }
    auto name = spdlog::level::to_string_view(lvl);
    return std::string(name.data(), name.size());
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
