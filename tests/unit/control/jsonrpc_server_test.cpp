#include "control/jsonrpc_server.h"
#include "control/json_params.h"
#include "test_helpers.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <vector>

namespace nocstor::control {
namespace {

using nlohmann::json;
using test::RawSocket;

std::string request(const std::string& method, const json& id, const json& params = nullptr) {
    json r = {{"jsonrpc", "2.0"}, {"method", method}, {"id", id}};
    if (!params.is_null()) r["params"] = params;
    return r.dump();
}

class JsonRpcServerTest : public ::testing::Test {
  protected:
    void SetUp() override { start(); }

    void start(std::size_t max_request = 16 * 1024 * 1024) {
        JsonRpcServerOptions opts;
        opts.socket_path = dir_.file("rpc.sock");
        opts.max_request_size = max_request;
        server_ = std::make_unique<JsonRpcServer>(opts);
        server_->register_method("echo", [](const json& params, Responder r) { r.result(params); });
        server_->register_method(
            "later", [this](const json&, Responder r) { parked_.push_back(std::move(r)); });
        std::string err;
        ASSERT_TRUE(server_->start(&err)) << err;
    }

    RawSocket connect() { return RawSocket::unix_stream(server_->socket_path()); }
    std::function<void()> poller() {
        return [this] { server_->poll(); };
    }
    json read(RawSocket& sock, std::string* buf) { return test::read_json(sock, buf, poller()); }
    json roundtrip(const std::string& text) {
        RawSocket sock = connect();
        sock.send_all(text);
        std::string buf;
        return read(sock, &buf);
    }

    test::TempDir dir_;
    std::unique_ptr<JsonRpcServer> server_;
    std::vector<Responder> parked_;
};

TEST_F(JsonRpcServerTest, ResultEchoesNumberAndStringIds) {
    json r = roundtrip(request("echo", 1, {{"a", 1}}));
    EXPECT_EQ(r, json::parse(R"({"jsonrpc":"2.0","id":1,"result":{"a":1}})"));
    r = roundtrip(request("echo", "abc-1"));
    EXPECT_EQ(r["id"], "abc-1");
    EXPECT_TRUE(r["result"].is_null());
    r = roundtrip(request("echo", 18446744073709551615ull));
    EXPECT_EQ(r["id"], 18446744073709551615ull);
}

TEST_F(JsonRpcServerTest, SeveralRequestsOnOneConnection) {
    RawSocket sock = connect();
    sock.send_all(request("echo", 1, {1}) + "\n" + request("echo", 2, {2}) + request("echo", 3));
    std::string buf;
    for (int id = 1; id <= 3; ++id) EXPECT_EQ(read(sock, &buf)["id"], id);
    sock.send_all(request("echo", 4));  // and more later on the same connection
    EXPECT_EQ(read(sock, &buf)["id"], 4);
}

TEST_F(JsonRpcServerTest, ByteByByteWrites) {
    RawSocket sock = connect();
    const std::string text = request("echo", 9, {{"s", "x}\"{"}});
    for (char c : text) {
        sock.send_all(std::string(1, c));
        server_->poll();
    }
    std::string buf;
    json r = read(sock, &buf);
    EXPECT_EQ(r["id"], 9);
    EXPECT_EQ(r["result"]["s"], "x}\"{");
}

TEST_F(JsonRpcServerTest, BatchWithNotificationInvalidAndUnknown) {
    const std::string batch = "[" + request("echo", 1) + R"(,{"jsonrpc":"2.0","method":"echo"},)" +
                              request("nope", 2) + ",42]";
    json r = roundtrip(batch);
    ASSERT_TRUE(r.is_array()) << r;
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0]["id"], 1);
    EXPECT_EQ(r[1]["error"]["code"], rpc_error::kMethodNotFound);
    EXPECT_EQ(r[1]["id"], 2);
    EXPECT_EQ(r[2]["error"]["code"], rpc_error::kInvalidRequest);
    EXPECT_TRUE(r[2]["id"].is_null());
}

TEST_F(JsonRpcServerTest, NotificationsGetNoResponse) {
    RawSocket sock = connect();
    sock.send_all(R"({"jsonrpc":"2.0","method":"echo"})");
    sock.send_all(R"([{"jsonrpc":"2.0","method":"echo"},{"jsonrpc":"2.0","method":"nope"}])");
    sock.send_all(request("echo", 5));
    std::string buf;
    EXPECT_EQ(read(sock, &buf)["id"], 5);  // the first answer is the request's
    EXPECT_TRUE(buf.empty());
}

TEST_F(JsonRpcServerTest, MalformedJsonParseErrorThenClose) {
    for (const char* bad : {R"({"jsonrpc":"2.0",,})", "hello", R"({"a":1])"}) {
        RawSocket sock = connect();
        sock.send_all(bad);
        std::string buf;
        json r = read(sock, &buf);
        EXPECT_EQ(r["error"]["code"], rpc_error::kParseError) << bad;
        EXPECT_EQ(r["error"]["message"], "Parse error");
        EXPECT_TRUE(r["id"].is_null());
        EXPECT_TRUE(test::wait_closed(sock, poller())) << bad;
    }
}

TEST_F(JsonRpcServerTest, OversizedRequestRejectedThenClose) {
    server_.reset();
    start(1024);
    RawSocket sock = connect();
    sock.send_all(request("echo", 1, {{"pad", std::string(4096, 'x')}}), poller());
    std::string buf;
    json r = read(sock, &buf);
    EXPECT_EQ(r["error"]["code"], rpc_error::kInvalidRequest);
    EXPECT_TRUE(test::wait_closed(sock, poller()));
}

TEST_F(JsonRpcServerTest, UnknownMethod) {
    json r = roundtrip(request("no_such_method", 3));
    EXPECT_EQ(r["error"]["code"], rpc_error::kMethodNotFound);
    EXPECT_EQ(r["error"]["message"], "Method not found");
    EXPECT_EQ(r["id"], 3);
}

TEST_F(JsonRpcServerTest, InvalidParamsMessageNamesParameter) {
    server_->register_method("bdev_malloc_create", [](const json& params, Responder r) {
        std::string name;
        std::uint64_t num_blocks = 0;
        ParamsDecoder d("bdev_malloc_create");
        d.required("name", &name).required("num_blocks", &num_blocks);
        std::string err;
        if (!d.decode(params, &err)) return r.error(rpc_error::kInvalidParams, err);
        r.result(true);
    });
    json r = roundtrip(request("bdev_malloc_create", 1, {{"name", "M"}, {"num_blocks", "x"}}));
    EXPECT_EQ(r["error"]["code"], rpc_error::kInvalidParams);
    EXPECT_EQ(r["error"]["message"],
              "bdev_malloc_create: 'num_blocks' must be an unsigned integer");
}

TEST_F(JsonRpcServerTest, AsyncResponderCompletedLater) {
    RawSocket sock = connect();
    sock.send_all(request("later", 1) + request("echo", 2));
    std::string buf;
    EXPECT_EQ(read(sock, &buf)["id"], 2);  // the later call does not block the next one
    ASSERT_EQ(parked_.size(), 1u);
    EXPECT_TRUE(parked_[0].pending());
    for (int i = 0; i < 20; ++i) server_->poll();
    sock.read_available(&buf);
    EXPECT_TRUE(buf.empty());
    parked_[0].result("done");  // outside poll(), as after a message from another cluster
    parked_[0].result("twice is a no-op");
    json r = read(sock, &buf);
    EXPECT_EQ(r["id"], 1);
    EXPECT_EQ(r["result"], "done");
    EXPECT_FALSE(parked_[0].pending());
}

TEST_F(JsonRpcServerTest, AsyncBatchAnsweredWhenAllComplete) {
    RawSocket sock = connect();
    sock.send_all("[" + request("later", 1) + "," + request("echo", 2) + "," + request("later", 3) +
                  "]");
    test::pump_until(poller(), [&] { return parked_.size() == 2; });
    ASSERT_EQ(parked_.size(), 2u);
    parked_[1].error(-5, "boom");
    std::string buf;
    sock.read_available(&buf);
    EXPECT_TRUE(buf.empty());
    parked_[0].result(1);
    json r = read(sock, &buf);
    ASSERT_TRUE(r.is_array());
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0]["result"], 1);
    EXPECT_EQ(r[1]["id"], 2);
    EXPECT_EQ(r[2]["error"]["code"], -5);
}

TEST_F(JsonRpcServerTest, AsyncResponderAfterClientDisconnect) {
    {
        RawSocket sock = connect();
        sock.send_all(request("later", 1));
        test::pump_until(poller(), [&] { return !parked_.empty(); });
    }
    ASSERT_EQ(parked_.size(), 1u);
    ASSERT_TRUE(test::pump_until(poller(), [&] { return server_->connection_count() == 0; }));
    EXPECT_FALSE(parked_[0].pending());
    parked_[0].result("nobody listens");  // must not crash
    server_->poll();
    // The server is still fine for others.
    EXPECT_EQ(roundtrip(request("echo", 2))["id"], 2);
}

TEST_F(JsonRpcServerTest, ResponderOutlivesServer) {
    RawSocket sock = connect();
    sock.send_all(request("later", 1));
    test::pump_until(poller(), [&] { return !parked_.empty(); });
    ASSERT_EQ(parked_.size(), 1u);
    server_.reset();
    parked_[0].result(1);  // no crash
    parked_.clear();
}

TEST_F(JsonRpcServerTest, ClientDisconnectMidRequestAndMidResponse) {
    {
        RawSocket sock = connect();
        sock.send_all(R"({"jsonrpc":"2.0","method":"echo","id":1,"params":{"a")");
        test::pump_until(poller(), [&] { return server_->connection_count() == 1; });
    }
    EXPECT_TRUE(test::pump_until(poller(), [&] { return server_->connection_count() == 0; }));
    {
        // A response bigger than the socket buffers, and the client leaves without reading.
        RawSocket sock = connect();
        sock.send_all(request("echo", 1, {{"big", std::string(8 << 20, 'x')}}), poller());
        test::pump_until(
            poller(), [] { return false; }, std::chrono::milliseconds(300));
    }
    EXPECT_TRUE(test::pump_until(poller(), [&] { return server_->connection_count() == 0; }));
}

TEST_F(JsonRpcServerTest, LargeResponseWithPartialWrites) {
    RawSocket sock = connect();
    // Far more than a Unix socket buffer holds, so the server must resume partial writes;
    // small enough to stay quick under ASan.
    const std::string big(2 << 20, 'y');
    sock.send_all(request("echo", 1, {{"big", big}}), poller());
    std::string buf;
    json r = read(sock, &buf);
    EXPECT_EQ(r["result"]["big"], big);
}

TEST_F(JsonRpcServerTest, HalfClosedClientStillAnswered) {
    RawSocket sock = connect();
    sock.send_all(request("echo", 1) + request("later", 2));
    sock.shutdown_write();
    std::string buf;
    EXPECT_EQ(read(sock, &buf)["id"], 1);
    test::pump_until(poller(), [&] { return !parked_.empty(); });
    ASSERT_EQ(parked_.size(), 1u);
    parked_[0].result(2);
    EXPECT_EQ(read(sock, &buf)["id"], 2);
    EXPECT_TRUE(test::wait_closed(sock, poller()));
}

TEST_F(JsonRpcServerTest, DroppedOrThrowingHandlerGivesInternalError) {
    server_->register_method("drop", [](const json&, Responder) {});
    server_->register_method(
        "throw", [](const json&, Responder) -> void { throw std::runtime_error("bad"); });
    EXPECT_EQ(roundtrip(request("drop", 1))["error"]["code"], rpc_error::kInternalError);
    EXPECT_EQ(roundtrip(request("throw", 1))["error"]["code"], rpc_error::kInternalError);
}

TEST_F(JsonRpcServerTest, RpcGetMethodsAndStates) {
    server_->register_method(
        "framework_start_init", [](const json&, Responder r) { r.result(true); }, kRpcStartup);
    EXPECT_FALSE(server_->register_method("echo", [](const json&, Responder) {}));
    json r = roundtrip(request("rpc_get_methods", 1));
    EXPECT_EQ(r["result"], json({"echo", "framework_start_init", "later", "rpc_get_methods"}));
    r = roundtrip(request("rpc_get_methods", 1, {{"current", true}}));
    EXPECT_EQ(r["result"], json({"echo", "later", "rpc_get_methods"}));
    r = roundtrip(request("rpc_get_methods", 1, {{"bogus", true}}));
    EXPECT_EQ(r["error"]["code"], rpc_error::kInvalidParams);

    r = roundtrip(request("framework_start_init", 2));
    EXPECT_EQ(r["error"]["code"], rpc_error::kInvalidState);
    server_->set_state(kRpcStartup);
    EXPECT_EQ(roundtrip(request("framework_start_init", 3))["result"], true);
    EXPECT_EQ(roundtrip(request("echo", 4))["error"]["code"], rpc_error::kInvalidState);
}

TEST_F(JsonRpcServerTest, ManyClientsAtOnce) {
    std::vector<RawSocket> clients;
    for (int i = 0; i < 40; ++i) {
        clients.push_back(connect());
        ASSERT_TRUE(clients.back().connected());
    }
    for (int i = 0; i < 40; ++i) clients[i].send_all(request("echo", i, {i}));
    for (int i = 0; i < 40; ++i) {
        std::string buf;
        json r = read(clients[i], &buf);
        EXPECT_EQ(r["id"], i);
        EXPECT_EQ(r["result"], json({i}));
    }
}

TEST_F(JsonRpcServerTest, RefusesSecondLiveServerAndReplacesStaleSocket) {
    JsonRpcServerOptions opts;
    opts.socket_path = server_->socket_path();
    JsonRpcServer second(opts);
    std::string err;
    EXPECT_FALSE(second.start(&err));
    EXPECT_NE(err.find("already listening"), std::string::npos) << err;

    // A stale socket file: bound, then its listener closed without unlinking.
    const std::string stale = dir_.file("stale.sock");
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
    opts.socket_path = stale;
    JsonRpcServer third(opts);
    EXPECT_TRUE(third.start(&err)) << err;

    // A regular file is never replaced.
    const std::string regular = dir_.file("regular");
    std::ofstream(regular) << "data";
    opts.socket_path = regular;
    JsonRpcServer fourth(opts);
    EXPECT_FALSE(fourth.start(&err));
    EXPECT_NE(err.find("not a socket"), std::string::npos) << err;
}

TEST_F(JsonRpcServerTest, StopRemovesSocketFile) {
    const std::string path = server_->socket_path();
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
    server_.reset();
    EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace nocstor::control
