// HTTP/1.1 request and response values used by the HTTP server, router and handlers.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nocstor::control {

struct HttpRequest {
    std::string method;     // "GET", "POST", ...
    std::string target;     // as sent: "/api/v1/bdevs/Malloc0?verbose=1"
    std::string path;       // target without the query: "/api/v1/bdevs/Malloc0"
    std::string query;      // raw text after '?', empty if none
    int version_minor = 1;  // HTTP/1.<minor>
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    std::map<std::string, std::string> path_params;  // {name} segments, percent-decoded
    bool keep_alive = true;

    // The first header of that (lower-case) name, or nullptr.
    const std::string* header(std::string_view lower_name) const;
    // Value of a query parameter ("a=1&b=2"), percent-decoded; nullptr-like empty if absent.
    bool query_param(std::string_view name, std::string* value) const;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers

    static HttpResponse json(int status, const nlohmann::json& body);
    static HttpResponse text(int status, std::string body,
                             std::string content_type = "text/plain; charset=utf-8");
    // {"error": {"code": status, "message": message}}
    static HttpResponse error(int status, std::string_view message);
};

// "OK", "Not Found", ...
const char* http_reason(int status);

// Serialises status line, headers and body. head_only omits the body (HEAD requests).
std::string serialize_http_response(const HttpResponse& response, bool keep_alive,
                                    bool head_only = false);

// Decodes %XX escapes (and '+' as space when form is true). Invalid escapes are kept as is.
std::string percent_decode(std::string_view text, bool form = false);

}  // namespace nocstor::control
