#include "control/rpc_registry.h"

namespace nocstor::control {

RpcRegistry& RpcRegistry::instance() {
    static RpcRegistry* r = new RpcRegistry();
    return *r;
}

void RpcRegistry::add(std::string name, RpcMethodFn fn, bool changes_state) {
    methods_[std::move(name)] = RpcMethodInfo{std::move(fn), changes_state};
}

const RpcMethodInfo* RpcRegistry::find(const std::string& name) const {
    auto it = methods_.find(name);
    return it == methods_.end() ? nullptr : &it->second;
}

void RpcRegistry::call(const std::string& name, const nlohmann::json& params,
                       RpcReply reply) const {
    const RpcMethodInfo* m = find(name);
    if (!m) {
        reply.error(rpc_error::kMethodNotFound, "Method not found: " + name);
        return;
    }
    try {
        m->fn(params, reply);  // a copy: the same call can still be answered below
    } catch (const std::exception& e) {
        // A handler bug must not take the daemon down; the caller gets an internal error.
        reply.error(rpc_error::kInternalError, std::string("internal error: ") + e.what());
    }
}

}  // namespace nocstor::control
