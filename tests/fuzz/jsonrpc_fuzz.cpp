// libFuzzer target for the JSON-RPC stream framer and request decoder (no sockets).
// The input is split into chunks at points chosen by its first byte so that incremental
// framing is exercised; every framed value is decoded as a JSON-RPC message and answered.
#include "control/json_params.h"
#include "control/jsonrpc_framer.h"
#include "control/jsonrpc_protocol.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace nocstor::control;

namespace {

void check_params(const nlohmann::json& params) {
    std::string name, err;
    std::uint64_t num_blocks = 0;
    std::uint32_t block_size = 512;
    std::optional<std::string> uuid;
    std::optional<std::uint32_t> nsid;
    std::string bdev;
    ParamsDecoder ns("");
    ns.required("bdev_name", &bdev).optional("nsid", &nsid).range(1, 0xfffffffe);
    ParamsDecoder d("fuzz");
    d.required("name", &name)
        .required("num_blocks", &num_blocks)
        .optional("block_size", &block_size)
        .range(512, 65536)
        .optional("uuid", &uuid)
        .optional("namespace", ns);
    (void)d.decode(params, &err);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t chunk = 1 + data[0] % 17;
    std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

    JsonStreamFramer framer(4096, 64);
    std::string text;
    for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
        framer.append(input.substr(pos, chunk));
        for (;;) {
            const auto status = framer.next(&text);
            if (status != JsonStreamFramer::Status::kValue) break;
            // A framed value always starts with '{' or '[' and ends with '}' or ']'.
            if (text.empty() || (text.front() != '{' && text.front() != '[') ||
                (text.back() != '}' && text.back() != ']')) {
                __builtin_trap();
            }
            JsonRpcMessage message = decode_jsonrpc_message(text);
            for (const JsonRpcEntry& entry : message.entries) {
                if (entry.valid) {
                    check_params(entry.call.params);
                    (void)dump_json(make_result_response(entry.call.id, entry.call.params));
                } else {
                    (void)dump_json(entry.response);
                }
            }
        }
    }
    return 0;
}
