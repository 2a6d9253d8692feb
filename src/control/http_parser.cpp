#include "control/http_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace nocstor::control {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s) {
        if (!std::isalnum(c) && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) ==
                                    std::string_view::npos) {
            return false;
        }
    }
    return true;
}

bool has_token(std::string_view list, std::string_view token) {
    // Comma separated, case-insensitive ("keep-alive, Upgrade").
    std::string l = lower(list);
    std::string_view rest = l;
    while (!rest.empty()) {
        std::size_t comma = rest.find(',');
        if (trim(rest.substr(0, comma)) == token) return true;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return false;
}

}  // namespace

void HttpRequestParser::reset() {
    request_ = HttpRequest{};
    scan_from_ = 0;
    head_size_ = 0;
    body_size_ = 0;
    headers_done_ = false;
    expect_continue_ = false;
    error_status_ = 0;
    error_message_.clear();
}

HttpRequestParser::Status HttpRequestParser::fail(int status, std::string message) {
    error_status_ = status;
    error_message_ = std::move(message);
    return Status::kError;
}

namespace {

// Lines end in CRLF or, leniently, in a bare LF (RFC 9112 section 2.2 lets a server accept
// that; clients such as `printf ... | nc` send it). The head ends at the first empty line.
// Returns the offset just past that empty line, or npos if it has not arrived yet.
std::size_t find_head_end(std::string_view data, std::size_t from) {
    for (std::size_t lf = data.find('\n', from); lf != std::string_view::npos;
         lf = data.find('\n', lf + 1)) {
        if (lf + 1 < data.size() && data[lf + 1] == '\n') return lf + 2;
        if (lf + 2 < data.size() && data[lf + 1] == '\r' && data[lf + 2] == '\n') return lf + 3;
    }
    return std::string_view::npos;
}

}  // namespace

HttpRequestParser::Status HttpRequestParser::parse(std::string_view data, std::size_t* consumed) {
    if (error_status_ != 0) return Status::kError;
    if (!headers_done_) {
        // Tolerate blank lines before the request line (RFC 9112 section 2.2).
        std::size_t start = 0;
        while (start < data.size() &&
               (data[start] == '\n' ||
                (data[start] == '\r' && start + 1 < data.size() && data[start + 1] == '\n')))
            start += data[start] == '\n' ? 1 : 2;
        const std::size_t from = std::max(scan_from_, start);
        const std::size_t end = find_head_end(data, from);
        if (end == std::string_view::npos) {
            if (data.size() > limits_.max_header_bytes) {
                return fail(431, "request headers too large");
            }
            // Resume at the last line end seen: the empty line may start there.
            scan_from_ = data.size() >= 2 ? std::max(start, data.size() - 2) : start;
            return Status::kNeedMore;
        }
        if (end > limits_.max_header_bytes) return fail(431, "request headers too large");
        request_ = HttpRequest{};
        // The head without its final empty line; every line still ends in LF.
        std::size_t head_len = end - start;
        head_len -= data[end - 2] == '\r' ? 2 : 1;
        if (parse_head(data.substr(start, head_len), &request_) == Status::kError) {
            return Status::kError;
        }
        head_size_ = end;
        headers_done_ = true;
    }
    if (data.size() < head_size_ + body_size_) return Status::kNeedMore;
    request_.body.assign(data.substr(head_size_, body_size_));
    *consumed = head_size_ + body_size_;
    return Status::kComplete;
}

namespace {

// Splits off the next line (ending in LF, an optional CR before it dropped). False for a bare CR
// inside the line, which RFC 9112 says must be rejected.
bool next_line(std::string_view* head, std::string_view* line) {
    std::size_t eol = head->find('\n');
    *line = head->substr(0, eol);
    head->remove_prefix(eol == std::string_view::npos ? head->size() : eol + 1);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    return line->find('\r') == std::string_view::npos;
}

}  // namespace

// head: request line and header lines, each ending in LF or CRLF.
HttpRequestParser::Status HttpRequestParser::parse_head(std::string_view head,
                                                        HttpRequest* request) {
    std::string_view line;
    if (!next_line(&head, &line)) return fail(400, "bare CR in the request line");

    // Request line: METHOD SP target SP HTTP/1.x
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return fail(400, "malformed request line");
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method) || target.empty() || target.front() != '/') {
        return fail(400, "malformed request line");
    }
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        !std::isdigit(static_cast<unsigned char>(version[5])) ||
        !std::isdigit(static_cast<unsigned char>(version[7]))) {
        return fail(400, "malformed HTTP version");
    }
    if (version[5] != '1') return fail(505, "only HTTP/1.x is supported");
    request->method.assign(method);
    request->target.assign(target);
    const std::size_t q = target.find('?');
    request->path.assign(target.substr(0, q));
    if (q != std::string_view::npos) request->query.assign(target.substr(q + 1));
    request->version_minor = version[7] - '0';

    bool have_length = false;
    std::uint64_t length = 0;
    while (!head.empty()) {
        if (!next_line(&head, &line)) return fail(400, "bare CR in a header line");
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
            return fail(400, "malformed header line");
        }
        std::string name = lower(line.substr(0, colon));
        std::string_view value = trim(line.substr(colon + 1));
        if (name == "transfer-encoding") {
            return fail(501, "Transfer-Encoding (chunked) is not supported; send Content-Length");
        }
        if (name == "content-length") {
            std::uint64_t v = 0;
            auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
            if (ec != std::errc() || ptr != value.data() + value.size() || value.empty() ||
                (have_length && v != length)) {
                return fail(400, "invalid Content-Length");
            }
            have_length = true;
            length = v;
        }
        if (name == "expect" && lower(value) == "100-continue") expect_continue_ = true;
        request->headers.emplace_back(std::move(name), std::string(value));
    }
    if (length > limits_.max_body_bytes) {
        return fail(413, fmt::format("request body larger than {} bytes", limits_.max_body_bytes));
    }
    body_size_ = static_cast<std::size_t>(length);

    const std::string* connection = request->header("connection");
    if (request->version_minor == 0) {
        request->keep_alive = connection && has_token(*connection, "keep-alive");
    } else {
        request->keep_alive = !(connection && has_token(*connection, "close"));
    }
    return Status::kComplete;
}

}  // namespace nocstor::control
