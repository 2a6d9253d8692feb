// Blocking HTTP/1.1 client for tools and tests (nocstorctl --http): one request per connection,
// Content-Length bodies, IPv4/IPv6 literals or host names, HTTPS (OpenSSL) with the server's
// certificate checked against a CA and the host, and an optional client certificate.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace nocstor::control {

struct HttpEndpoint {
    std::string host;  // "127.0.0.1", "::1", "localhost"
    std::string port = "80";
    bool tls = false;       // https://
    std::string ca_file;    // verifies the server (default: the system's CAs)
    std::string cert_file;  // client certificate and key, when the server asks for one
    std::string key_file;
};

// "http://127.0.0.1:8080", "https://[::1]:8080/", "localhost:8080" (port 80, or 443 for
// https). False with *error otherwise.
bool parse_http_url(const std::string& url, HttpEndpoint* out, std::string* error);

struct HttpClientReply {
    int status = 0;  // 0: no answer (see error)
    std::string error;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
};

HttpClientReply http_call(const HttpEndpoint& endpoint, const std::string& method,
                          const std::string& path, const std::string& body = "",
                          const std::vector<std::pair<std::string, std::string>>& headers = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace nocstor::control
