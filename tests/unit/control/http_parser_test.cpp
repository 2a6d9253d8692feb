#include "control/http_parser.h"
#include "control/http_router.h"
#include "control/http_server.h"

#include <gtest/gtest.h>

namespace nocstor::control {
namespace {

using Status = HttpRequestParser::Status;

TEST(HttpParser, ParsesRequestWithBody) {
    HttpRequestParser parser;
    const std::string text =
        "POST /api/v1/bdevs?x=1&name=a%20b HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
        "X-Test:  v \r\n\r\nbodyGET";
    std::size_t consumed = 0;
    ASSERT_EQ(parser.parse(text, &consumed), Status::kComplete);
    const HttpRequest& r = parser.request();
    EXPECT_EQ(consumed, text.size() - 3);
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/api/v1/bdevs");
    EXPECT_EQ(r.query, "x=1&name=a%20b");
    EXPECT_EQ(r.body, "body");
    ASSERT_NE(r.header("x-test"), nullptr);
    EXPECT_EQ(*r.header("x-test"), "v");
    std::string value;
    EXPECT_TRUE(r.query_param("name", &value));
    EXPECT_EQ(value, "a b");
    EXPECT_TRUE(r.keep_alive);
}

TEST(HttpParser, IncrementalByteByByte) {
    const std::string text = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    HttpRequestParser parser;
    std::size_t consumed = 0;
    for (std::size_t i = 1; i < text.size(); ++i) {
        ASSERT_EQ(parser.parse(std::string_view(text).substr(0, i), &consumed), Status::kNeedMore);
    }
    ASSERT_EQ(parser.parse(text, &consumed), Status::kComplete);
    EXPECT_TRUE(parser.request().keep_alive);
    EXPECT_EQ(parser.request().version_minor, 0);
}

TEST(HttpParser, KeepAliveDefaults) {
    struct Case {
        const char* text;
        bool keep_alive;
    };
    for (const Case& c : {Case{"GET / HTTP/1.1\r\n\r\n", true},
                          Case{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
                          Case{"GET / HTTP/1.0\r\n\r\n", false}}) {
        HttpRequestParser parser;
        std::size_t consumed = 0;
        ASSERT_EQ(parser.parse(c.text, &consumed), Status::kComplete) << c.text;
        EXPECT_EQ(parser.request().keep_alive, c.keep_alive) << c.text;
    }
}

// Bare LF line ends (RFC 9112 section 2.2): accepted, in any mix with CRLF, also byte by byte.
TEST(HttpParser, BareLineFeedsAreAccepted) {
    for (std::string text : {std::string("GET /a HTTP/1.1\nHost: h\nX-A: 1\n\n"),
                             std::string("GET /a HTTP/1.1\r\nHost: h\nX-A: 1\r\n\n"),
                             std::string("GET /a HTTP/1.1\nHost: h\nX-A: 1\n\r\n"),
                             std::string("\nGET /a HTTP/1.1\nHost: h\nX-A: 1\n\n")}) {
        for (std::size_t cut = 1; cut <= text.size(); ++cut) {
            HttpRequestParser parser;
            std::size_t consumed = 0;
            const Status st = parser.parse(std::string_view(text).substr(0, cut), &consumed);
            if (cut < text.size()) {
                ASSERT_EQ(st, Status::kNeedMore) << cut << " of " << text;
                continue;
            }
            ASSERT_EQ(st, Status::kComplete) << text;
            EXPECT_EQ(consumed, text.size());
            EXPECT_EQ(parser.request().path, "/a");
            ASSERT_NE(parser.request().header("x-a"), nullptr);
            EXPECT_EQ(*parser.request().header("x-a"), "1");
            ASSERT_NE(parser.request().header("host"), nullptr);
            EXPECT_EQ(*parser.request().header("host"), "h");
        }
    }
    // Incremental parsing keeps working across calls on the same parser.
    HttpRequestParser parser;
    std::size_t consumed = 0;
    const std::string text = "POST /b HTTP/1.1\nContent-Length: 2\n\nok";
    for (std::size_t i = 1; i < text.size(); ++i)
        ASSERT_EQ(parser.parse(std::string_view(text).substr(0, i), &consumed), Status::kNeedMore);
    ASSERT_EQ(parser.parse(text, &consumed), Status::kComplete);
    EXPECT_EQ(parser.request().body, "ok");
}

TEST(HttpParser, Errors) {
    struct Case {
        std::string text;
        int status;
    };
    HttpLimits limits;
    limits.max_header_bytes = 256;
    limits.max_body_bytes = 10;
    const Case cases[] = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET noslash HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1 extra\r\n\r\n", 400},
        {"GET / FTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 413},
        {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", 431},
        {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a'), 431},  // no end of headers yet
        {"GET / HTTP/1.1\rX: y\r\n\r\n", 400},                   // bare CR
        {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
    };
    for (const Case& c : cases) {
        HttpRequestParser parser(limits);
        std::size_t consumed = 0;
        EXPECT_EQ(parser.parse(c.text, &consumed), Status::kError) << c.text;
        EXPECT_EQ(parser.error_status(), c.status) << c.text;
    }
}

TEST(HttpRouter, MatchesParamsAndMethods) {
    HttpRouter router;
    int hit = 0;
    ASSERT_TRUE(
        router.add("GET", "/api/v1/bdevs", [&](const HttpRequest&, HttpResponder) { hit = 1; }));
    ASSERT_TRUE(
        router.add("GET", "/api/v1/bdevs/{name}", [&](const HttpRequest&, HttpResponder) {}));
    ASSERT_TRUE(
        router.add("DELETE", "/api/v1/bdevs/{name}", [&](const HttpRequest&, HttpResponder) {}));
    EXPECT_FALSE(
        router.add("GET", "/api/v1/bdevs/{name}", [](const HttpRequest&, HttpResponder) {}));
    EXPECT_FALSE(router.add("GET", "/bad/{x", [](const HttpRequest&, HttpResponder) {}));
    EXPECT_FALSE(router.add("GET", "relative", [](const HttpRequest&, HttpResponder) {}));

    auto m = router.match("GET", "/api/v1/bdevs/Malloc%200");
    ASSERT_EQ(m.kind, HttpRouter::Match::Kind::kFound);
    EXPECT_EQ(m.params.at("name"), "Malloc 0");
    EXPECT_EQ(router.match("GET", "/api/v1/bdevs/").kind, HttpRouter::Match::Kind::kFound);
    EXPECT_EQ(router.match("HEAD", "/api/v1/bdevs").kind, HttpRouter::Match::Kind::kFound);
    EXPECT_EQ(router.match("GET", "/api/v1").kind, HttpRouter::Match::Kind::kNotFound);
    EXPECT_EQ(router.match("GET", "/api/v1/bdevs/a/b").kind, HttpRouter::Match::Kind::kNotFound);
    m = router.match("POST", "/api/v1/bdevs/x");
    ASSERT_EQ(m.kind, HttpRouter::Match::Kind::kMethodNotAllowed);
    EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"DELETE", "GET"}));
}

}  // namespace
}  // namespace nocstor::control
