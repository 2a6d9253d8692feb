#include "control/rpc_registry.h"

#include "bdev/bdev.h"

#include <optional>

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

bool rpc_method_creates_bdevs(const std::string& method) {
    if (method.rfind("bdev_", 0) != 0) return false;
    for (const char* verb : {"create", "attach", "clone", "snapshot"})
        if (method.find(verb) != std::string::npos) return true;
    return false;
}

void RpcRegistry::call(const std::string& name, const nlohmann::json& params,
                       RpcReply reply) const {
    if (forwarder_ && find(name) && forwarder_(name, params, reply)) return;
    call_local(name, params, std::move(reply));
}

void RpcRegistry::call_local(const std::string& name, const nlohmann::json& params,
                             RpcReply reply) const {
    const RpcMethodInfo* m = find(name);
    if (!m) {
        reply.error(rpc_error::kMethodNotFound, "Method not found: " + name);
        return;
    }
    // {"cluster": N} on a method that creates bdevs: they are owned by data cluster N. The
    // parameter is taken out here, so each module's own parameter checks never see it.
    std::optional<BdevClusterScope> scope;
    nlohmann::json stripped;
    const nlohmann::json* p = &params;
    if (params.is_object() && params.contains("cluster") && rpc_method_creates_bdevs(name)) {
        const auto& c = params["cluster"];
        std::string err;
        if (!c.is_number_integer() || c.get<int64_t>() < 0 || c.get<int64_t>() > 1024)
            return reply.invalid(name + ": cluster must be a data cluster id (an integer)");
        if (!bdev_check_cluster(c.get<int>(), &err)) return reply.invalid(name + ": " + err);
        scope.emplace(c.get<int>());
        stripped = params;
        stripped.erase("cluster");
        p = &stripped;
    }
    try {
        m->fn(*p, reply);  // a copy: the same call can still be answered below
    } catch (const std::exception& e) {
        // A handler bug must not take the daemon down; the caller gets an internal error.
        reply.error(rpc_error::kInternalError, std::string("internal error: ") + e.what());
    }
}

}  // namespace nocstor::control
