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
// SPDK's rpc.py builds save_config from these two.
void get_subsystems(const nlohmann::json& params, RpcReply reply) {
    ParamsDecoder d("framework_get_subsystems");
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    nlohmann::json out = nlohmann::json::array();
    std::vector<std::string> previous;
    for (const auto& name : config_section_names()) {
        out.push_back({{"subsystem", name}, {"depends_on", previous}});
        previous = {name};  // each section builds on the one before (nvmf on bdev)
    }
    reply.result(out);
}

void get_section_config(const nlohmann::json& params, RpcReply reply) {
    std::string name;
    bool with_batches = false;
    ParamsDecoder d("framework_get_config");
    d.required("name", &name).optional("with_batches", &with_batches);
    std::string err;
    if (!d.decode(params, &err)) return reply.invalid(err);
    nlohmann::json out;
    if (!section_config(name, &out))
        return reply.error(-19, "framework_get_config: no subsystem '" + name + "'");
    reply.result(out);
}
}  // namespace

void register_config_rpcs() {
    auto& r = RpcRegistry::instance();
    r.add("save_config", save_config);
    r.add("nocstor_save_config", save_config_to_file);
    r.add("framework_get_subsystems", get_subsystems);
    r.add("framework_get_config", get_section_config);
}

}  // namespace nocstor::control
