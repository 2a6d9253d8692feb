// Per-component logging on top of spdlog. Components are named loggers ("runtime", "bdev",
// "nvmf", "rpc", ...); each has its own level, set with set_log_level("nvmf", "debug") or
// --log-level nvmf=debug. Logging is for the control path and for errors: never log per I/O.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace nocstor {

// The formatter every component logger uses: time, component, level, and the message with
// non-printable bytes escaped (util/log_escape.h), so one call is always one line.
std::unique_ptr<spdlog::formatter> make_log_formatter();

// Returns the logger of a component, creating it on first use (thread-safe, control path).
std::shared_ptr<spdlog::logger> component_logger(std::string_view component);

// "info", "debug", ... for one component, or for all with component "*". False on a bad level.
bool set_log_level(std::string_view component, std::string_view level);
// A tag in front of every line of this process ("cluster 2" in a cluster process, whose lines
// share the daemon's log). Call before the reactors start.
void set_log_process_tag(std::string tag);

// The level of a component ("*": the default for all), as spdlog names it ("info", "debug", ...).
std::string get_log_level(std::string_view component);

// Parses "debug" or "nvmf=debug,bdev=trace" (comma separated). False and a message on error.
bool apply_log_spec(std::string_view spec, std::string* error);

}  // namespace nocstor

#define NOC_LOG_(comp, lvl, ...)                                              \
    do {                                                                      \
        static auto noc_logger_ = ::nocstor::component_logger(comp);          \
        if (noc_logger_->should_log(lvl)) noc_logger_->log(lvl, __VA_ARGS__); \
    } while (0)
#define NOC_TRACE(comp, ...) NOC_LOG_(comp, spdlog::level::trace, __VA_ARGS__)
#define NOC_DEBUG(comp, ...) NOC_LOG_(comp, spdlog::level::debug, __VA_ARGS__)
#define NOC_INFO(comp, ...) NOC_LOG_(comp, spdlog::level::info, __VA_ARGS__)
#define NOC_WARN(comp, ...) NOC_LOG_(comp, spdlog::level::warn, __VA_ARGS__)
#define NOC_ERROR(comp, ...) NOC_LOG_(comp, spdlog::level::err, __VA_ARGS__)
