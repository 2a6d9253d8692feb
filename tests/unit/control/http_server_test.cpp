#include "control/http_server.h"
#include "test_helpers.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <vector>

namespace nocstor::control {
namespace {

using nlohmann::json;
using test::RawSocket;

struct ParsedResponse {
    int status = 0;
    std::string head;  // status line and headers
    std::string body;
    std::string header(const std::string& name) const {
        const std::string key = "\r\n" + name + ": ";
        auto p = head.find(key);
        if (p == std::string::npos) return {};
        p += key.size();
        return head.substr(p, head.find("\r\n", p) - p);
    }
};

class HttpServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        HttpServerOptions opts;
        opts.port = 0;
        opts.limits.max_body_bytes = 1024;
        opts.limits.max_header_bytes = 16 * 1024;
        server_ = std::make_unique<HttpServer>(opts);
        server_->route("GET", "/api/v1/bdevs/{name}", [](const HttpRequest& req, HttpResponder r) {
            r.json(200, {{"name", req.path_params.at("name")}});
        });
        server_->route("POST", "/api/v1/echo",
                       [](const HttpRequest& req, HttpResponder r) { r.text(201, req.body); });
        server_->route("GET", "/metrics", [](const HttpRequest&, HttpResponder r) {
            r.text(200, "nocstor_up 1\n", kPrometheusContentType);
        });
        server_->route("GET", "/slow", [this](const HttpRequest&, HttpResponder r) {
            parked_.push_back(std::move(r));
        });
        std::string err;
        ASSERT_TRUE(server_->start(&err)) << err;
        ASSERT_NE(server_->port(), 0);
    }

    std::function<void()> poller() {
        return [this] { server_->poll(); };
    }
    RawSocket connect() { return RawSocket::tcp("127.0.0.1", server_->port()); }

    // Reads one response (Content-Length framed) from sock.
    std::optional<ParsedResponse> read_response(RawSocket& sock, std::string* buf) {
        std::optional<ParsedResponse> out;
        bool open = true;
        test::pump_until(poller(), [&] {
            if (open) open = sock.read_available(buf);
            const auto end = buf->find("\r\n\r\n");
            if (end == std::string::npos) return !open;
            ParsedResponse r;
            r.head = buf->substr(0, end + 2);
            const std::size_t length = std::stoul("0" + r.header("Content-Length"));
            if (buf->size() < end + 4 + length) return !open;
            r.status = std::stoi(buf->substr(9, 3));
            r.body = buf->substr(end + 4, length);
            buf->erase(0, end + 4 + length);
            out = r;
            return true;
        });
        return out;
    }
    std::optional<ParsedResponse> exchange(const std::string& text) {
        RawSocket sock = connect();
        sock.send_all(text);
        std::string buf;
        return read_response(sock, &buf);
    }

    std::unique_ptr<HttpServer> server_;
    std::vector<HttpResponder> parked_;
};

TEST_F(HttpServerTest, RoutesWithPathParameter) {
    auto r = exchange("GET /api/v1/bdevs/Malloc0 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("Content-Type"), "application/json");
    EXPECT_EQ(json::parse(r->body), json({{"name", "Malloc0"}}));
}

TEST_F(HttpServerTest, KeepAliveAndPipelining) {
    RawSocket sock = connect();
    std::string buf;
    sock.send_all("GET /api/v1/bdevs/a HTTP/1.1\r\n\r\n");
    auto r1 = read_response(sock, &buf);
    ASSERT_TRUE(r1);
    EXPECT_EQ(r1->header("Connection"), "keep-alive");
    sock.send_all(
        "GET /api/v1/bdevs/b HTTP/1.1\r\n\r\nPOST /api/v1/echo HTTP/1.1\r\n"
        "Content-Length: 5\r\n\r\nhello");
    auto r2 = read_response(sock, &buf);
    auto r3 = read_response(sock, &buf);
    ASSERT_TRUE(r2 && r3);
    EXPECT_EQ(json::parse(r2->body)["name"], "b");
    EXPECT_EQ(r3->status, 201);
    EXPECT_EQ(r3->body, "hello");
    EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(HttpServerTest, ConnectionCloseClosesAfterResponse) {
    RawSocket sock = connect();
    sock.send_all("GET /api/v1/bdevs/a HTTP/1.1\r\nConnection: close\r\n\r\n");
    std::string buf;
    auto r = read_response(sock, &buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_TRUE(test::wait_closed(sock, poller()));
}

TEST_F(HttpServerTest, NotFoundAndMethodNotAllowedAreJson) {
    auto r = exchange("GET /nope HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(r->header("Content-Type"), "application/json");
    EXPECT_EQ(json::parse(r->body)["error"]["code"], 404);
    r = exchange("DELETE /api/v1/echo HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(r->header("Allow"), "POST");
    EXPECT_EQ(json::parse(r->body)["error"]["code"], 405);
}

TEST_F(HttpServerTest, LimitsAndBadRequests) {
    struct Case {
        std::string text;
        int status;
    };
    const Case cases[] = {
        {"POST /api/v1/echo HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", 413},
        {"GET / HTTP/1.1\r\nX-Big: " + std::string(17 * 1024, 'a') + "\r\n\r\n", 431},
        {"POST /api/v1/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"BAD REQUEST\r\n\r\n", 400},
    };
    for (const Case& c : cases) {
        RawSocket sock = connect();
        sock.send_all(c.text, poller());
        std::string buf;
        auto r = read_response(sock, &buf);
        ASSERT_TRUE(r) << c.status;
        EXPECT_EQ(r->status, c.status);
        EXPECT_EQ(json::parse(r->body)["error"]["code"], c.status);
        EXPECT_TRUE(test::wait_closed(sock, poller()));
    }
}

TEST_F(HttpServerTest, MetricsContentType) {
    auto r = exchange("GET /metrics HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(r->body, "nocstor_up 1\n");
    RawSocket sock = connect();
    sock.send_all("HEAD /metrics HTTP/1.1\r\n\r\n");
    std::string buf;
    test::pump_until(poller(), [&] {
        sock.read_available(&buf);
        return buf.find("\r\n\r\n") != std::string::npos;
    });
    EXPECT_EQ(buf.substr(0, 15), "HTTP/1.1 200 OK");
    EXPECT_NE(buf.find("Content-Length: 13\r\n"), std::string::npos);
    EXPECT_EQ(buf.substr(buf.find("\r\n\r\n") + 4), "");  // no body after the headers
}

TEST_F(HttpServerTest, AsyncHandlerAndDisconnect) {
    RawSocket sock = connect();
    sock.send_all("GET /slow HTTP/1.1\r\n\r\n");
    test::pump_until(poller(), [&] { return !parked_.empty(); });
    ASSERT_EQ(parked_.size(), 1u);
    EXPECT_TRUE(parked_[0].pending());
    parked_[0].json(202, {{"ok", true}});
    std::string buf;
    auto r = read_response(sock, &buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 202);

    sock.send_all("GET /slow HTTP/1.1\r\n\r\n");
    test::pump_until(poller(), [&] { return parked_.size() == 2; });
    ASSERT_EQ(parked_.size(), 2u);
    sock.close();
    ASSERT_TRUE(test::pump_until(poller(), [&] { return server_->connection_count() == 0; }));
    EXPECT_FALSE(parked_[1].pending());
    parked_[1].json(200, {});  // no-op, no crash
    server_.reset();
    parked_.clear();
}

TEST_F(HttpServerTest, ExpectContinue) {
    RawSocket sock = connect();
    sock.send_all(
        "POST /api/v1/echo HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    std::string buf;
    test::pump_until(poller(), [&] {
        sock.read_available(&buf);
        return buf.find("\r\n\r\n") != std::string::npos;
    });
    EXPECT_EQ(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    buf.clear();
    sock.send_all("abc");
    auto r = read_response(sock, &buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "abc");
}

TEST(HttpServerBind, Ipv6AndBadAddress) {
    HttpServerOptions opts;
    opts.address = "::1";
    opts.port = 0;
    HttpServer v6(opts);
    v6.route("GET", "/x", [](const HttpRequest&, HttpResponder r) { r.json(200, 1); });
    std::string err;
    if (!v6.start(&err)) GTEST_SKIP() << "no IPv6 loopback: " << err;
    RawSocket sock = RawSocket::tcp("::1", v6.port());
    ASSERT_TRUE(sock.connected());
    sock.send_all("GET /x HTTP/1.1\r\n\r\n");
    std::string buf;
    test::pump_until([&] { v6.poll(); },
                     [&] {
                         sock.read_available(&buf);
                         return buf.find("\r\n\r\n1") != std::string::npos;
                     });
    EXPECT_EQ(buf.substr(0, 15), "HTTP/1.1 200 OK");

    opts.address = "not-an-ip";
    HttpServer bad(opts);
    EXPECT_FALSE(bad.start(&err));
    EXPECT_NE(err.find("invalid HTTP listen address"), std::string::npos);
}

}  // namespace
}  // namespace nocstor::control
