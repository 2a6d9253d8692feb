// The keyring methods with SPDK's names (keyring_file_add_key, keyring_file_remove_key,
// keyring_get_keys) and the "keyring" section of save_config (loaded before bdev and nvmf, so
// that what refers to a key finds it). Secrets are never returned.
#include <cerrno>

#include "control/config.h"
#include "control/json_params.h"
#include "control/rpc_decode.h"
#include "control/rpc_registry.h"
#include "security/keyring.h"

namespace nocstor::control {

using nlohmann::json;
using security::Keyring;

namespace {

void fail(const RpcReply& reply, const char* method, int rc, const std::string& err) {
    if (rc == -EINVAL) return reply.invalid(std::string(method) + ": " + err);
    reply.error(rc, std::string(method) + ": " + err);
}

void add_key(const json& params, RpcReply reply) {
    std::string name, path;
    ParamsDecoder d("keyring_file_add_key");
    d.required("name", &name).required("path", &path);
    if (!decode_or_reply(d, params, reply)) return;
    std::string err;
    const int rc = Keyring::instance().add_file_key(name, path, &err);
    if (rc) return fail(reply, "keyring_file_add_key", rc, err);
    reply.result(true);
}

void remove_key(const json& params, RpcReply reply) {
    std::string name;
    ParamsDecoder d("keyring_file_remove_key");
    d.required("name", &name);
    if (!decode_or_reply(d, params, reply)) return;
    std::string err;
    const int rc = Keyring::instance().remove(name, &err);
    if (rc) return fail(reply, "keyring_file_remove_key", rc, err);
    reply.result(true);
}

void get_keys(const json& params, RpcReply reply) {
    ParamsDecoder d("keyring_get_keys");
    if (!decode_or_reply(d, params, reply)) return;
    json out = json::array();
    for (const auto& k : Keyring::instance().list())
        out.push_back({{"name", k.name},
                       {"module", "keyring_file"},
                       {"path", k.path},
                       {"removed", false},
                       {"probed", false},
                       {"refcnt", k.use_count + 1}});
    reply.result(out);
}

json keyring_section() {
    json calls = json::array();
    for (const auto& k : Keyring::instance().list())
        calls.push_back(
            {{"method", "keyring_file_add_key"}, {"params", {{"name", k.name}, {"path", k.path}}}});
    return calls;
}

}  // namespace

void register_keyring_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("keyring_file_add_key", add_key, true);
    r.add("keyring_file_remove_key", remove_key, true);
    r.add("keyring_get_keys", get_keys);
    register_config_section("keyring", keyring_section, true);
}

}  // namespace nocstor::control
