// Decodes a method's parameters or answers the call with "invalid params" (the one step every
// method handler starts with).
#pragma once

#include <string>

#include "control/json_params.h"
#include "control/rpc_registry.h"

namespace nocstor::control {

inline bool decode_or_reply(const ParamsDecoder& d, const nlohmann::json& params,
                            const RpcReply& reply) {
    std::string err;
    if (!d.decode(params, &err)) {
        reply.invalid(err);
        return false;
    }
    return true;
}

}  // namespace nocstor::control
