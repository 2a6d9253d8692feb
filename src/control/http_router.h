// Routes (method, path pattern) pairs to handlers. Patterns are '/'-separated segments, each a
// literal or a "{name}" parameter matching one non-empty segment: "/api/v1/bdevs/{name}".
#pragma once

#include "control/http_message.h"

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace nocstor::control {

class HttpResponder;

// Who may call a route on a server that has a management token (HttpServerOptions::token).
enum class HttpAccess {
    kDefault,  // GET and HEAD: anyone; every other method: only with the token
    kToken,    // only with the token, whatever the method (reads that reveal secrets)
};

using HttpHandler = std::function<void(const HttpRequest& request, HttpResponder responder)>;

class HttpRouter {
  public:
    // False if the pattern is malformed or (method, pattern) is already registered.
    bool add(std::string method, std::string_view pattern, HttpHandler handler,
             HttpAccess access = HttpAccess::kDefault);

    struct Match {
        enum class Kind { kFound, kNotFound, kMethodNotAllowed } kind = Kind::kNotFound;
        const HttpHandler* handler = nullptr;       // kFound
        HttpAccess access = HttpAccess::kDefault;   // kFound
        std::map<std::string, std::string> params;  // kFound
        std::vector<std::string> allowed_methods;   // kMethodNotAllowed
    };
    // HEAD falls back to a GET route.
    Match match(std::string_view method, std::string_view path) const;

  private:
    struct Route {
        std::string method;
        std::vector<std::string> segments;  // "{name}" for parameters
        HttpHandler handler;
        HttpAccess access;
    };
    static bool matches(const Route& route, const std::vector<std::string_view>& segments,
                        std::map<std::string, std::string>* params);

    std::vector<Route> routes_;
};

// Splits "/a/b/" into {"a", "b"}; an empty path or "/" gives no segments.
std::vector<std::string_view> split_path(std::string_view path);

}  // namespace nocstor::control
