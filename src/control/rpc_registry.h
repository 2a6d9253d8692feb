// The table of management methods, independent of how they are called: the JSON-RPC server,
// the REST API and the config loader all go through it. A method runs on the control thread and
// answers through RpcReply, possibly after messages to the data-plane clusters came back.
#pragma once

#include "control/jsonrpc_protocol.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace nocstor {
class Bdev;
}

namespace nocstor::control {

// Move-only completion of one method call. Answering twice is a no-op.
class RpcReply {
  public:
    using Fn = std::function<void(bool ok, nlohmann::json result_or_error)>;
    RpcReply() = default;
    explicit RpcReply(Fn fn) : fn_(std::make_shared<Fn>(std::move(fn))) {}

    void result(nlohmann::json value) const { finish(true, std::move(value)); }
    void error(int code, std::string message) const {
        finish(false, nlohmann::json{{"code", code}, {"message", std::move(message)}});
    }
    // Invalid params with a readable message (JSON-RPC -32602).
    void invalid(std::string message) const {
        error(rpc_error::kInvalidParams, std::move(message));
    }

  private:
    void finish(bool ok, nlohmann::json v) const {
        if (fn_ && *fn_) {
            auto fn = std::move(*fn_);
            *fn_ = nullptr;
            fn(ok, std::move(v));
        }
    }
    std::shared_ptr<Fn> fn_;
};

using RpcMethodFn = std::function<void(const nlohmann::json& params, RpcReply reply)>;

struct RpcMethodInfo {
    RpcMethodFn fn;
    bool changes_state = false;  // counts for --persist auto-save
};

class RpcRegistry {
  public:
    static RpcRegistry& instance();
    void add(std::string name, RpcMethodFn fn, bool changes_state = false);
    const RpcMethodInfo* find(const std::string& name) const;
    const std::map<std::string, RpcMethodInfo>& methods() const { return methods_; }
    // Calls a method by name (unknown → -32601). Control thread. The forwarder, when set, may
    // take the call first (clusters as processes: a call for a child's cluster goes there).
    void call(const std::string& name, const nlohmann::json& params, RpcReply reply) const;
    // This process's own handler, never forwarded.
    void call_local(const std::string& name, const nlohmann::json& params, RpcReply reply) const;
    // True when it answered (or will answer) the call itself.
    using Forwarder =
        std::function<bool(const std::string& name, const nlohmann::json& params, RpcReply& reply)>;
    void set_forwarder(Forwarder f) { forwarder_ = std::move(f); }

  private:
    std::map<std::string, RpcMethodInfo> methods_;
    Forwarder forwarder_;
};

// Methods that create bdevs take {"cluster": N}: the data cluster that owns the new bdevs.
bool rpc_method_creates_bdevs(const std::string& method);

// Each group of methods registers itself from its own file.
void register_framework_rpcs();
void register_bdev_rpcs();
void register_bdev_module_rpcs();
void register_bdev_nvme_rpcs();  // bdev_nvme_* (rpc_bdev_nvme.cpp)
nlohmann::json describe_bdev(const Bdev* b);
void register_nvmf_rpcs();
void register_config_rpcs();
void register_log_rpcs();     // log_* (rpc_log.cpp)
void register_raid_rpcs();    // bdev_raid_* (rpc_raid.cpp)
void register_lvol_rpcs();    // bdev_lvol_* (rpc_lvol.cpp)
void register_remote_rpcs();  // bdev_remote_* (rpc_remote.cpp)
void register_cache_rpcs();   // bdev_ocf_* (rpc_cache.cpp)
void register_iscsi_bdev_rpcs();  // bdev_iscsi_* (rpc_iscsi.cpp)
void register_iscsi_target_rpcs();  // iscsi_* (rpc_iscsi_target.cpp)
void register_vhost_rpcs();         // vhost_* (rpc_vhost.cpp)
void register_ublk_rpcs();          // ublk_* (rpc_ublk.cpp)
void register_keyring_rpcs();       // keyring_* (rpc_keyring.cpp)
void register_volume_rpcs();  // nocstor_volume_* (volume/rpc_volume.cpp)

}  // namespace nocstor::control
