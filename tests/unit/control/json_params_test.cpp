#include "control/json_params.h"

#include <gtest/gtest.h>

#include <optional>

namespace nocstor::control {
namespace {

using nlohmann::json;

struct MallocParams {
    std::string name;
    std::uint64_t num_blocks = 0;
    std::uint32_t block_size = 512;
    std::optional<std::string> uuid;
    bool flag = false;
    std::int32_t offset = 0;
    std::vector<std::string> tags;
};

ParamsDecoder malloc_decoder(MallocParams* p) {
    ParamsDecoder d("bdev_malloc_create");
    d.required("name", &p->name)
        .required("num_blocks", &p->num_blocks)
        .range(1, UINT64_MAX)
        .optional("block_size", &p->block_size)
        .range(512, 65536)
        .optional("uuid", &p->uuid)
        .optional("flag", &p->flag)
        .optional("offset", &p->offset)
        .range(-10, 10)
        .optional("tags", &p->tags);
    return d;
}

TEST(JsonParams, DecodesValidParams) {
    MallocParams p;
    std::string err;
    ASSERT_TRUE(malloc_decoder(&p).decode(
        json::parse(R"({"name":"M0","num_blocks":1024,"block_size":4096,"uuid":"u","flag":true,
                        "offset":-3,"tags":["a","b"]})"),
        &err))
        << err;
    EXPECT_EQ(p.name, "M0");
    EXPECT_EQ(p.num_blocks, 1024u);
    EXPECT_EQ(p.block_size, 4096u);
    EXPECT_EQ(p.uuid, "u");
    EXPECT_TRUE(p.flag);
    EXPECT_EQ(p.offset, -3);
    EXPECT_EQ(p.tags, (std::vector<std::string>{"a", "b"}));
}

TEST(JsonParams, OptionalDefaultsKept) {
    MallocParams p;
    p.uuid = "stale";
    std::string err;
    ASSERT_TRUE(malloc_decoder(&p).decode(json{{"name", "M"}, {"num_blocks", 1}}, &err)) << err;
    EXPECT_EQ(p.block_size, 512u);
    EXPECT_FALSE(p.uuid.has_value());
}

TEST(JsonParams, RejectsBadParams) {
    struct Case {
        const char* params;
        const char* message;
    };
    const Case cases[] = {
        {R"(null)", "bdev_malloc_create: missing required parameter 'name'"},
        {R"([1,2])", "bdev_malloc_create: params must be an object"},
        {R"({"num_blocks":1})", "bdev_malloc_create: missing required parameter 'name'"},
        {R"({"name":1,"num_blocks":1})", "bdev_malloc_create: 'name' must be a string"},
        {R"({"name":"M","num_blocks":"8"})",
         "bdev_malloc_create: 'num_blocks' must be an unsigned integer"},
        {R"({"name":"M","num_blocks":1.5})",
         "bdev_malloc_create: 'num_blocks' must be an unsigned integer"},
        {R"({"name":"M","num_blocks":-1})",
         "bdev_malloc_create: 'num_blocks' must be an unsigned integer between 1 and "
         "18446744073709551615"},
        {R"({"name":"M","num_blocks":0})",
         "bdev_malloc_create: 'num_blocks' must be an unsigned integer between 1 and "
         "18446744073709551615"},
        {R"({"name":"M","num_blocks":1,"block_size":100})",
         "bdev_malloc_create: 'block_size' must be an unsigned integer between 512 and 65536"},
        {R"({"name":"M","num_blocks":1,"block_size":4294967296})",
         "bdev_malloc_create: 'block_size' must be an unsigned integer between 512 and 65536"},
        {R"({"name":"M","num_blocks":1,"flag":1})", "bdev_malloc_create: 'flag' must be a boolean"},
        {R"({"name":"M","num_blocks":1,"offset":11})",
         "bdev_malloc_create: 'offset' must be an integer between -10 and 10"},
        {R"({"name":"M","num_blocks":1,"offset":-11})",
         "bdev_malloc_create: 'offset' must be an integer between -10 and 10"},
        {R"({"name":"M","num_blocks":1,"tags":["a",2]})",
         "bdev_malloc_create: 'tags' must be an array of strings"},
        {R"({"name":"M","num_blocks":1,"bogus":true})",
         "bdev_malloc_create: unknown parameter 'bogus'"},
        {R"({"name":"M","num_blocks":1,"uuid":null})",
         "bdev_malloc_create: 'uuid' must be a string"},
    };
    for (const Case& c : cases) {
        MallocParams p;
        std::string err;
        EXPECT_FALSE(malloc_decoder(&p).decode(json::parse(c.params), &err)) << c.params;
        EXPECT_EQ(err, c.message) << c.params;
    }
}

TEST(JsonParams, IntegerTypeLimits) {
    std::int8_t small = 0;
    std::uint16_t u16 = 0;
    std::int64_t big = 0;
    ParamsDecoder d("m");
    d.optional("small", &small).optional("u16", &u16).optional("big", &big);
    std::string err;
    EXPECT_TRUE(d.decode(json{{"small", -128}, {"u16", 65535}, {"big", INT64_MIN}}, &err)) << err;
    EXPECT_EQ(small, -128);
    EXPECT_EQ(u16, 65535);
    EXPECT_EQ(big, INT64_MIN);
    EXPECT_FALSE(d.decode(json{{"small", 128}}, &err));
    EXPECT_EQ(err, "m: 'small' must be an integer between -128 and 127");
    EXPECT_FALSE(d.decode(json{{"big", UINT64_MAX}}, &err));
    EXPECT_EQ(err,
              "m: 'big' must be an integer between -9223372036854775808 and "
              "9223372036854775807");
}

TEST(JsonParams, NestedObjects) {
    std::string nqn, bdev;
    std::optional<std::uint32_t> nsid;
    ParamsDecoder ns("");
    ns.required("bdev_name", &bdev).optional("nsid", &nsid).range(1, 0xfffffffe);
    ParamsDecoder d("nvmf_subsystem_add_ns");
    d.required("nqn", &nqn).required("namespace", ns);

    std::string err;
    ASSERT_TRUE(
        d.decode(json::parse(R"({"nqn":"q","namespace":{"bdev_name":"M0","nsid":3}})"), &err))
        << err;
    EXPECT_EQ(bdev, "M0");
    EXPECT_EQ(nsid, 3u);

    EXPECT_FALSE(d.decode(json::parse(R"({"nqn":"q","namespace":{"nsid":3}})"), &err));
    EXPECT_EQ(err, "nvmf_subsystem_add_ns: missing required parameter 'namespace.bdev_name'");
    EXPECT_FALSE(d.decode(json::parse(R"({"nqn":"q","namespace":{"bdev_name":"M","x":1}})"), &err));
    EXPECT_EQ(err, "nvmf_subsystem_add_ns: unknown parameter 'namespace.x'");
    EXPECT_FALSE(
        d.decode(json::parse(R"({"nqn":"q","namespace":{"bdev_name":"M","nsid":0}})"), &err));
    EXPECT_EQ(err,
              "nvmf_subsystem_add_ns: 'namespace.nsid' must be an unsigned integer between 1 "
              "and 4294967294");
    EXPECT_FALSE(d.decode(json::parse(R"({"nqn":"q","namespace":"M0"})"), &err));
    EXPECT_EQ(err, "nvmf_subsystem_add_ns: 'namespace' must be an object");
}

TEST(JsonParams, RawObjectsArraysAndUnknownAllowed) {
    json obj, arr;
    ParamsDecoder d("m");
    d.optional_object("o", &obj).optional_array("a", &arr).allow_unknown();
    std::string err;
    EXPECT_TRUE(d.decode(json::parse(R"({"o":{"k":1},"a":[1],"extra":0})"), &err)) << err;
    EXPECT_EQ(obj["k"], 1);
    EXPECT_EQ(arr.size(), 1u);
    EXPECT_FALSE(d.decode(json::parse(R"({"o":[]})"), &err));
    EXPECT_EQ(err, "m: 'o' must be an object");
    EXPECT_FALSE(d.decode(json::parse(R"({"a":{}})"), &err));
    EXPECT_EQ(err, "m: 'a' must be an array");
}

}  // namespace
}  // namespace nocstor::control
