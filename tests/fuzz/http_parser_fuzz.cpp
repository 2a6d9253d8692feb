// libFuzzer target for the HTTP request parser, the router and the log escaper (no sockets).
// The input is fed in chunks whose size comes from its first byte, as a socket would deliver
// it; every parsed request is routed, pipelined requests follow, and the text that would reach
// the log is escaped and checked to be one line of printable characters.
#include "control/http_parser.h"
#include "control/http_router.h"
#include "control/http_server.h"
#include "control/mgmt_token.h"
#include "util/log_escape.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace nocstor::control;

namespace {

HttpRouter& router() {
    static HttpRouter* r = [] {
        auto* r = new HttpRouter();
        auto noop = [](const HttpRequest&, HttpResponder) {};
        r->add("GET", "/api/v1/bdevs/{name}", noop);
        r->add("POST", "/api/v1/subsystems/{nqn}/namespaces", noop);
        r->add("DELETE", "/api/v1/subsystems/{nqn}/hosts/{host}", noop);
        return r;
    }();
    return *r;
}

void check_log_text(std::string_view text) {
    const std::string escaped = nocstor::log_escaped(text);
    for (unsigned char c : escaped)
        if (c < 0x20 || c == 0x7f) std::abort();  // a control byte would reach the log
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t chunk = 1 + data[0] % 31;
    std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    HttpLimits limits;
    limits.max_header_bytes = 2048;
    limits.max_body_bytes = 4096;
    HttpRequestParser parser(limits);
    std::string buffered;
    for (std::size_t off = 0; off < input.size();) {
        const std::size_t n = std::min(chunk, input.size() - off);
        buffered.append(input.substr(off, n));
        off += n;
        std::size_t consumed = 0;
        for (;;) {
            const auto status = parser.parse(buffered, &consumed);
            if (status == HttpRequestParser::Status::kNeedMore) break;
            if (status == HttpRequestParser::Status::kError) {
                if (parser.error_status() < 400 || parser.error_status() > 599) std::abort();
                return 0;
            }
            const HttpRequest& r = parser.request();
            if (consumed == 0 || consumed > buffered.size()) std::abort();
            (void)router().match(r.method, r.path);
            check_log_text(r.path);
            check_log_text(r.method);
            if (const std::string* auth = r.header("authorization"))
                (void)bearer_token_matches(*auth, "0123456789abcdef");
            buffered.erase(0, consumed);
            parser.reset();
        }
    }
    check_log_text(input);
    return 0;
}
