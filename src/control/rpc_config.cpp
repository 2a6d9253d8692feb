// save_config (SPDK: returns the live configuration) and nocstor_save_config (writes it to a file
// atomically on the daemon's side).
#include "control/config.h"
#include "control/json_params.h"
#include "control/rpc_registry.h"

namespace nocstor::control {

namespace {
void save_config(const nlohmann::json& params, RpcReply reply) {
    int indent = 0;
    ParamsDecoder d("save_config");
    d.optional("indent", &indent);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    reply.result(build_config());
}

void save_config_to_file(const nlohmann::json& params, RpcReply reply) {
    std::string filename;
    ParamsDecoder d("nocstor_save_config");
    d.required("filename", &filename);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    if (!write_file_atomically(filename, build_config().dump(2) + "\n", &err))
        return reply.error(-5 /* EIO */, err);
    reply.result(true);
}
}  // namespace

void register_config_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("save_config", save_config);
    r.add("nocstor_save_config", save_config_to_file);
}

}  // namespace nocstor::control
