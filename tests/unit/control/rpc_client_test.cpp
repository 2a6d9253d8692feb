#include "control/rpc_client.h"
#include "control/jsonrpc_server.h"
#include "test_helpers.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace nocstor::control {
namespace {

using nlohmann::json;

TEST(RpcClient, CallResultErrorAndTimeout) {
    test::TempDir dir;
    JsonRpcServerOptions opts;
    opts.socket_path = dir.file("rpc.sock");
    JsonRpcServer server(opts);
    std::vector<Responder> parked;  // touched only by the poll thread
    server.register_method("add", [](const json& p, Responder r) {
        r.result(p.at("a").get<int>() + p.at("b").get<int>());
    });
    server.register_method("fail", [](const json&, Responder r) { r.error(-17, "it failed"); });
    server.register_method("never",
                           [&](const json&, Responder r) { parked.push_back(std::move(r)); });
    std::string err;
    ASSERT_TRUE(server.start(&err)) << err;
    {
        test::PollThread thread([&] { server.poll(); });
        RpcClient client(opts.socket_path, std::chrono::milliseconds(3000));
        RpcResult r = client.call("add", {{"a", 2}, {"b", 3}});
        ASSERT_TRUE(r.ok()) << r.message;
        EXPECT_EQ(r.result, 5);
        r = client.call("fail");
        EXPECT_EQ(r.kind, RpcResult::Kind::kRpcError);
        EXPECT_EQ(r.code, -17);
        EXPECT_EQ(r.message, "it failed");
        r = client.call("add", {{"a", 1}, {"b", 1}});  // same connection still fine
        EXPECT_EQ(r.result, 2);

        client.set_timeout(std::chrono::milliseconds(200));
        r = client.call("never");
        EXPECT_EQ(r.kind, RpcResult::Kind::kTransport);
        EXPECT_NE(r.message.find("timed out"), std::string::npos) << r.message;
        client.set_timeout(std::chrono::milliseconds(3000));
        r = client.call("add", {{"a", 1}, {"b", 2}});  // reconnects
        EXPECT_EQ(r.result, 3);
    }
    parked.clear();
}

TEST(RpcClient, CannotConnectMessage) {
    test::TempDir dir;
    RpcClient client(dir.file("absent.sock"), std::chrono::milliseconds(200));
    RpcResult r = client.call("spdk_get_version");
    EXPECT_EQ(r.kind, RpcResult::Kind::kTransport);
    EXPECT_EQ(r.message, "cannot connect to " + dir.file("absent.sock") +
                             ": is nocstor running? (No such file or directory)");
}

}  // namespace
}  // namespace nocstor::control
