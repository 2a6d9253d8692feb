#include "control/http_message.h"

#include "control/jsonrpc_protocol.h"

#include <fmt/format.h>

namespace nocstor::control {

const std::string* HttpRequest::header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
        if (name == lower_name) return &value;
    }
    return nullptr;
}

bool HttpRequest::query_param(std::string_view name, std::string* value) const {
    std::string_view rest = query;
    while (!rest.empty()) {
        const std::size_t amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        const std::size_t eq = pair.find('=');
        if (percent_decode(pair.substr(0, eq), true) != name) continue;
        *value = eq == std::string_view::npos ? std::string()
                                              : percent_decode(pair.substr(eq + 1), true);
        return true;
    }
    return false;
}

HttpResponse HttpResponse::json(int status, const nlohmann::json& body) {
    HttpResponse r;
    r.status = status;
    r.body = dump_json(body);
    r.body.push_back('\n');
    return r;
}

HttpResponse HttpResponse::text(int status, std::string body, std::string content_type) {
    HttpResponse r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    return r;
}

HttpResponse HttpResponse::error(int status, std::string_view message) {
    return json(status, {{"error", {{"code", status}, {"message", message}}}});
}

const char* http_reason(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 411:
            return "Length Required";
        case 413:
            return "Content Too Large";
        case 415:
            return "Unsupported Media Type";
        case 422:
            return "Unprocessable Content";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

std::string serialize_http_response(const HttpResponse& response, bool keep_alive, bool head_only) {
    std::string out =
        fmt::format("HTTP/1.1 {} {}\r\n", response.status, http_reason(response.status));
    if (!response.content_type.empty() && response.status != 204) {
        out += fmt::format("Content-Type: {}\r\n", response.content_type);
    }
    out += fmt::format("Content-Length: {}\r\n", response.body.size());
    out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    for (const auto& [name, value] : response.headers)
        out += fmt::format("{}: {}\r\n", name, value);
    out += "\r\n";
    if (!head_only) out += response.body;
    return out;
}

std::string percent_decode(std::string_view text, bool form) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
            i += 2;
        } else if (form && c == '+') {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

}  // namespace nocstor::control
