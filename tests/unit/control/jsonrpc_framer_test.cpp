#include "control/jsonrpc_framer.h"
#include "control/jsonrpc_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nocstor::control {
namespace {

using Status = JsonStreamFramer::Status;

std::vector<std::string> frame_all(JsonStreamFramer& framer, Status* last) {
    std::vector<std::string> values;
    std::string text;
    while ((*last = framer.next(&text)) == Status::kValue) values.push_back(text);
    return values;
}

TEST(JsonStreamFramer, SplitsConcatenatedValues) {
    JsonStreamFramer framer;
    framer.append(R"({"a":1}  {"b":[1,2,{"c":"}"}]}
[1,2] )");
    Status last;
    auto values = frame_all(framer, &last);
    ASSERT_EQ(values.size(), 3u);
    EXPECT_EQ(values[0], R"({"a":1})");
    EXPECT_EQ(values[1], R"({"b":[1,2,{"c":"}"}]})");
    EXPECT_EQ(values[2], "[1,2]");
    EXPECT_EQ(last, Status::kNeedMore);
    EXPECT_FALSE(framer.in_value());
}

TEST(JsonStreamFramer, RespectsStringsAndEscapes) {
    const std::string value = R"({"s":"a \"}\" b \\","t":"{[","u":"\\\"}"})";
    JsonStreamFramer framer;
    framer.append(value);
    std::string text;
    ASSERT_EQ(framer.next(&text), Status::kValue);
    EXPECT_EQ(text, value);
    EXPECT_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded());
}

TEST(JsonStreamFramer, ByteByByteAtEverySplit) {
    const std::string stream = R"({"method":"x\"}","id":1}{"id":"2","p":[{}]})";
    JsonStreamFramer framer;
    std::vector<std::string> values;
    std::string text;
    for (char c : stream) {
        framer.append(std::string_view(&c, 1));
        while (framer.next(&text) == Status::kValue) values.push_back(text);
    }
    ASSERT_EQ(values.size(), 2u);
    EXPECT_EQ(values[0] + values[1], stream);
}

TEST(JsonStreamFramer, IncompleteValueReportsInValue) {
    JsonStreamFramer framer;
    framer.append(R"({"a": "b)");
    std::string text;
    EXPECT_EQ(framer.next(&text), Status::kNeedMore);
    EXPECT_TRUE(framer.in_value());
}

TEST(JsonStreamFramer, RejectsTopLevelScalar) {
    for (const char* input : {"123", "\"x\"", "true", "}", "]"}) {
        JsonStreamFramer framer;
        framer.append(input);
        std::string text;
        EXPECT_EQ(framer.next(&text), Status::kError) << input;
        EXPECT_EQ(framer.next(&text), Status::kError) << "sticky";
    }
}

TEST(JsonStreamFramer, TooLarge) {
    JsonStreamFramer framer(16);
    framer.append(R"({"a":"0123456789abcdef"})");
    std::string text;
    EXPECT_EQ(framer.next(&text), Status::kTooLarge);

    JsonStreamFramer incomplete(16);
    incomplete.append(R"({"a":"0123456789abcdef)");
    EXPECT_EQ(incomplete.next(&text), Status::kTooLarge);
}

TEST(JsonStreamFramer, DepthLimit) {
    JsonStreamFramer framer(1 << 20, 8);
    framer.append(std::string(9, '[') + std::string(9, ']'));
    std::string text;
    EXPECT_EQ(framer.next(&text), Status::kError);
}

TEST(JsonRpcProtocol, DecodesRequest) {
    auto m = decode_jsonrpc_message(R"({"jsonrpc":"2.0","method":"m","params":{"a":1},"id":7})");
    ASSERT_EQ(m.kind, JsonRpcMessage::Kind::kSingle);
    ASSERT_TRUE(m.entries[0].valid);
    EXPECT_EQ(m.entries[0].call.method, "m");
    EXPECT_EQ(m.entries[0].call.id, 7);
    EXPECT_FALSE(m.entries[0].call.notification);
    EXPECT_EQ(m.entries[0].call.params["a"], 1);
}

TEST(JsonRpcProtocol, InvalidRequests) {
    struct Case {
        const char* text;
        nlohmann::json expected_id;
    };
    const Case cases[] = {
        {R"({"method":"m","id":1})", 1},                             // no jsonrpc
        {R"({"jsonrpc":"1.0","method":"m","id":1})", 1},             // wrong version
        {R"({"jsonrpc":"2.0","id":"x"})", "x"},                      // no method
        {R"({"jsonrpc":"2.0","method":5,"id":1})", 1},               // method not a string
        {R"({"jsonrpc":"2.0","method":"m","params":3,"id":1})", 1},  // scalar params
        {R"({"jsonrpc":"2.0","method":"m","id":{}})", nullptr},      // bad id type
        {R"([])", nullptr},                                          // empty batch
    };
    for (const Case& c : cases) {
        auto m = decode_jsonrpc_message(c.text);
        ASSERT_EQ(m.entries.size(), 1u) << c.text;
        EXPECT_FALSE(m.entries[0].valid) << c.text;
        EXPECT_EQ(m.entries[0].response["error"]["code"], rpc_error::kInvalidRequest) << c.text;
        EXPECT_EQ(m.entries[0].response["id"], c.expected_id) << c.text;
    }
}

TEST(JsonRpcProtocol, ParseErrorAndBatch) {
    EXPECT_EQ(decode_jsonrpc_message("{\"a\":}").kind, JsonRpcMessage::Kind::kParseError);
    auto m = decode_jsonrpc_message(R"([{"jsonrpc":"2.0","method":"a"}, 1])");
    ASSERT_EQ(m.kind, JsonRpcMessage::Kind::kBatch);
    ASSERT_EQ(m.entries.size(), 2u);
    EXPECT_TRUE(m.entries[0].valid);
    EXPECT_TRUE(m.entries[0].call.notification);
    EXPECT_FALSE(m.entries[1].valid);
}

TEST(JsonRpcProtocol, DumpReplacesInvalidUtf8) {
    nlohmann::json bad = std::string("\xff\xfe");
    EXPECT_NO_THROW(dump_json(bad));
}

}  // namespace
}  // namespace nocstor::control
