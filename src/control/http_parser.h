// Incremental HTTP/1.x request parser: request line, headers, Content-Length body.
// Chunked transfer coding is not supported (501); limits give 431 and 413.
#pragma once

#include "control/http_message.h"

#include <cstddef>
#include <string_view>

namespace nocstor::control {

struct HttpLimits {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1024 * 1024;
};

class HttpRequestParser {
  public:
    enum class Status { kNeedMore, kComplete, kError };

    explicit HttpRequestParser(HttpLimits limits = {}) : limits_(limits) {}

    // data: everything buffered for the connection, starting at the request. On kComplete,
    // request() is filled and *consumed is its length; call reset() before the next request.
    // On kError, error_status() is the HTTP status to answer with before closing.
    Status parse(std::string_view data, std::size_t* consumed);
    void reset();

    HttpRequest& request() { return request_; }

    int error_status() const { return error_status_; }
    const std::string& error_message() const { return error_message_; }
    // Headers are complete and the client asked "Expect: 100-continue" for the body.
    bool expects_continue() const { return headers_done_ && expect_continue_; }

  private:
    Status fail(int status, std::string message);
    Status parse_head(std::string_view head, HttpRequest* request);

    HttpLimits limits_;
    HttpRequest request_;
    std::size_t scan_from_ = 0;  // where to resume looking for the end of the headers
    std::size_t head_size_ = 0;  // bytes of request line + headers + blank line
    std::size_t body_size_ = 0;
    bool headers_done_ = false;
    bool expect_continue_ = false;
    int error_status_ = 0;
    std::string error_message_;
};

}  // namespace nocstor::control
