#include "control/http_router.h"

#include <algorithm>

namespace nocstor::control {

namespace {

bool is_param(std::string_view segment) {
    return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> segments;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        const std::size_t slash = path.find('/');
        segments.push_back(path.substr(0, slash));
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash);
    }
    return segments;
}

bool HttpRouter::add(std::string method, std::string_view pattern, HttpHandler handler,
                     HttpAccess access) {
    if (pattern.empty() || pattern.front() != '/' || method.empty()) return false;
    Route route{std::move(method), {}, std::move(handler), access};
    for (std::string_view segment : split_path(pattern)) {
        const bool brace = segment.find_first_of("{}") != std::string_view::npos;
        if (brace && !is_param(segment)) return false;
        route.segments.emplace_back(segment);
    }
    for (const Route& r : routes_) {
        if (r.method == route.method && r.segments == route.segments) return false;
    }
    routes_.push_back(std::move(route));
    return true;
}

bool HttpRouter::matches(const Route& route, const std::vector<std::string_view>& segments,
                         std::map<std::string, std::string>* params) {
    if (route.segments.size() != segments.size()) return false;
    std::map<std::string, std::string> found;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const std::string& pattern = route.segments[i];
        if (is_param(pattern)) {
            found[pattern.substr(1, pattern.size() - 2)] = percent_decode(segments[i]);
        } else if (pattern != segments[i]) {
            return false;
        }
    }
    if (params) *params = std::move(found);
    return true;
}

HttpRouter::Match HttpRouter::match(std::string_view method, std::string_view path) const {
    Match result;
    const std::vector<std::string_view> segments = split_path(path);
    const Route* fallback = nullptr;  // GET route answering a HEAD request
    for (const Route& route : routes_) {
        if (!matches(route, segments, nullptr)) continue;
        if (route.method == method) {
            result.kind = Match::Kind::kFound;
            result.handler = &route.handler;
            result.access = route.access;
            matches(route, segments, &result.params);
            return result;
        }
        if (method == "HEAD" && route.method == "GET") fallback = &route;
        result.allowed_methods.push_back(route.method);
    }
    if (fallback) {
        result.kind = Match::Kind::kFound;
        result.handler = &fallback->handler;
        result.access = fallback->access;
        matches(*fallback, segments, &result.params);
        result.allowed_methods.clear();
        return result;
    }
    if (!result.allowed_methods.empty()) {
        result.kind = Match::Kind::kMethodNotAllowed;
        std::sort(result.allowed_methods.begin(), result.allowed_methods.end());
    }
    return result;
}

}  // namespace nocstor::control
