#include "control/rest_api.h"

#include "control/rpc_registry.h"

#include <map>

namespace nocstor::control {

using nlohmann::json;

namespace {

int http_status_for(int rpc_code) {
    switch (rpc_code) {
        case rpc_error::kInvalidParams:
        case rpc_error::kInvalidRequest:
        case rpc_error::kParseError:
        case -22:  // EINVAL
            return 400;
        case rpc_error::kMethodNotFound:
        case -19:  // ENODEV
        case -2:   // ENOENT
            return 404;
        case -17:  // EEXIST
        case -16:  // EBUSY
        case -1:   // EPERM / invalid state
            return 409;
        default:
            return 500;
    }
}

// Calls a registry method and answers with its result (200/201) or a mapped error.
void call_and_answer(const std::string& method, json params, HttpResponder r, int ok_status = 200) {
    auto responder = std::make_shared<HttpResponder>(std::move(r));
    RpcRegistry::instance().call(method, params, RpcReply([responder, ok_status](bool ok, json v) {
                                     if (ok) {
                                         responder->json(ok_status, v);
                                     } else {
                                         responder->error(http_status_for(v.value("code", -32603)),
                                                          v.value("message", std::string("error")));
                                     }
                                 }));
}

bool parse_body(const HttpRequest& req, HttpResponder& r, json* out) {
    if (req.body.empty()) {
        *out = json::object();
        return true;
    }
    try {
        *out = json::parse(req.body);
    } catch (const json::parse_error& e) {
        r.error(400, std::string("request body is not valid JSON: ") + e.what());
        return false;
    }
    if (!out->is_object()) {
        r.error(400, "request body must be a JSON object");
        return false;
    }
    return true;
}

// POST /api/v1/bdevs {"type": "malloc", ...} → bdev_malloc_create {...}
void create_bdev(const HttpRequest& req, HttpResponder r) {
    json body;
    if (!parse_body(req, r, &body)) return;
    if (!body.contains("type") || !body["type"].is_string())
        return r.error(400, "'type' (malloc, null, uring, passthru, delay, error...) is required");
    std::string type = body["type"];
    body.erase("type");
    std::string method = type == "error" ? "bdev_error_create" : "bdev_" + type + "_create";
    if (!RpcRegistry::instance().find(method))
        return r.error(400, "unknown bdev type '" + type + "'");
    call_and_answer(method, body, std::move(r), 201);
}

// DELETE /api/v1/bdevs/{name}: finds the module from bdev_get_bdevs, then calls its delete.
void delete_bdev(const HttpRequest& req, HttpResponder r) {
    std::string name = req.path_params.at("name");
    auto responder = std::make_shared<HttpResponder>(std::move(r));
    RpcRegistry::instance().call(
        "bdev_get_bdevs", json{{"name", name}}, RpcReply([responder, name](bool ok, json v) {
            if (!ok || !v.is_array() || v.empty())
                return responder->error(404, "no bdev named '" + name + "'");
            std::string module = v[0].value("module", std::string());
            std::string method = "bdev_" + module + "_delete";
            json params = {{"name", name}};
            if (!RpcRegistry::instance().find(method))
                return responder->error(
                    409, "bdev '" + name + "' (module " + module + ") cannot be deleted over REST");
            RpcRegistry::instance().call(method, params, RpcReply([responder](bool ok, json v) {
                                             if (ok)
                                                 responder->json(200, v);
                                             else
                                                 responder->error(
                                                     http_status_for(v.value("code", -32603)),
                                                     v.value("message", std::string("error")));
                                         }));
        }));
}

}  // namespace

void register_rest_routes(HttpServer& s) {
    s.route("GET", "/api/v1/version", [](const HttpRequest&, HttpResponder r) {
        call_and_answer("spdk_get_version", {}, std::move(r));
    });
    s.route("GET", "/api/v1/clusters", [](const HttpRequest&, HttpResponder r) {
        call_and_answer("nocstor_get_clusters", {}, std::move(r));
    });
    s.route("GET", "/api/v1/reactors", [](const HttpRequest&, HttpResponder r) {
        call_and_answer("framework_get_reactors", {}, std::move(r));
    });
    s.route("GET", "/api/v1/noc", [](const HttpRequest&, HttpResponder r) {
        call_and_answer("nocstor_get_noc_stats", {}, std::move(r));
    });
    // The configuration may hold secrets (keys, CHAP secrets): the token is needed to read it.
    s.route(
        "GET", "/api/v1/config",
        [](const HttpRequest&, HttpResponder r) {
            call_and_answer("save_config", {}, std::move(r));
        },
        HttpAccess::kToken);
    s.route("GET", "/api/v1/bdevs", [](const HttpRequest&, HttpResponder r) {
        call_and_answer("bdev_get_bdevs", {}, std::move(r));
    });
    s.route("GET", "/api/v1/bdevs/{name}", [](const HttpRequest& req, HttpResponder r) {
        call_and_answer("bdev_get_bdevs", {{"name", req.path_params.at("name")}}, std::move(r));
    });
    s.route("GET", "/api/v1/bdevs/{name}/iostat", [](const HttpRequest& req, HttpResponder r) {
        call_and_answer("bdev_get_iostat", {{"name", req.path_params.at("name")}}, std::move(r));
    });
    s.route("POST", "/api/v1/bdevs", create_bdev);
    s.route("DELETE", "/api/v1/bdevs/{name}", delete_bdev);
    s.route("GET", "/api/v1/subsystems", [](const HttpRequest&, HttpResponder r) {
        call_and_answer("nvmf_get_subsystems", {}, std::move(r));
    });
    s.route("GET", "/api/v1/subsystems/{nqn}", [](const HttpRequest& req, HttpResponder r) {
        call_and_answer("nvmf_get_subsystems", {{"nqn", req.path_params.at("nqn")}}, std::move(r));
    });
    s.route("POST", "/api/v1/subsystems", [](const HttpRequest& req, HttpResponder r) {
        json body;
        if (!parse_body(req, r, &body)) return;
        call_and_answer("nvmf_create_subsystem", body, std::move(r), 201);
    });
    s.route("DELETE", "/api/v1/subsystems/{nqn}", [](const HttpRequest& req, HttpResponder r) {
        call_and_answer("nvmf_delete_subsystem", {{"nqn", req.path_params.at("nqn")}},
                        std::move(r));
    });
    s.route("POST", "/api/v1/subsystems/{nqn}/namespaces",
            [](const HttpRequest& req, HttpResponder r) {
                json body;
                if (!parse_body(req, r, &body)) return;
                call_and_answer("nvmf_subsystem_add_ns",
                                {{"nqn", req.path_params.at("nqn")}, {"namespace", body}},
                                std::move(r), 201);
            });
    s.route("DELETE", "/api/v1/subsystems/{nqn}/namespaces/{nsid}",
            [](const HttpRequest& req, HttpResponder r) {
                const std::string& nsid = req.path_params.at("nsid");
                char* end = nullptr;
                unsigned long v = strtoul(nsid.c_str(), &end, 10);
                if (nsid.empty() || *end || v == 0 || v > 0xFFFFFFFEul)
                    return r.error(400, "nsid must be a number between 1 and 4294967294");
                call_and_answer("nvmf_subsystem_remove_ns",
                                {{"nqn", req.path_params.at("nqn")}, {"nsid", v}}, std::move(r));
            });
    s.route("POST", "/api/v1/subsystems/{nqn}/listeners",
            [](const HttpRequest& req, HttpResponder r) {
                json body;
                if (!parse_body(req, r, &body)) return;
                call_and_answer("nvmf_subsystem_add_listener",
                                {{"nqn", req.path_params.at("nqn")}, {"listen_address", body}},
                                std::move(r), 201);
            });
    s.route("POST", "/api/v1/subsystems/{nqn}/hosts", [](const HttpRequest& req, HttpResponder r) {
        json body;
        if (!parse_body(req, r, &body)) return;
        if (!body.contains("host")) return r.error(400, "'host' (a host NQN) is required");
        call_and_answer("nvmf_subsystem_add_host",
                        {{"nqn", req.path_params.at("nqn")}, {"host", body["host"]}}, std::move(r),
                        201);
    });
    s.route("DELETE", "/api/v1/subsystems/{nqn}/hosts/{host}",
            [](const HttpRequest& req, HttpResponder r) {
                call_and_answer(
                    "nvmf_subsystem_remove_host",
                    {{"nqn", req.path_params.at("nqn")}, {"host", req.path_params.at("host")}},
                    std::move(r));
            });
    // Distributed volumes, each a tree across clusters (docs/remote.md).
    s.route("GET", "/api/v1/volumes", [](const HttpRequest&, HttpResponder r) {
        call_and_answer("nocstor_volume_get", json::object(), std::move(r));
    });
    s.route("GET", "/api/v1/volumes/{name}", [](const HttpRequest& req, HttpResponder r) {
        call_and_answer("nocstor_volume_get", {{"name", req.path_params.at("name")}}, std::move(r));
    });
    s.route("POST", "/api/v1/volumes", [](const HttpRequest& req, HttpResponder r) {
        json body;
        if (!parse_body(req, r, &body)) return;
        call_and_answer("nocstor_volume_create", body, std::move(r), 201);
    });
    s.route("DELETE", "/api/v1/volumes/{name}", [](const HttpRequest& req, HttpResponder r) {
        call_and_answer("nocstor_volume_delete", {{"name", req.path_params.at("name")}},
                        std::move(r));
    });
    // Any method, for what has no resource yet: POST /api/v1/rpc/<method> with params as body.
    s.route("POST", "/api/v1/rpc/{method}", [](const HttpRequest& req, HttpResponder r) {
        json body;
        if (!parse_body(req, r, &body)) return;
        call_and_answer(req.path_params.at("method"), body, std::move(r));
    });
    s.route("GET", "/metrics", [](const HttpRequest&, HttpResponder r) {
        auto responder = std::make_shared<HttpResponder>(std::move(r));
        render_metrics([responder](std::string text) {
            responder->text(200, std::move(text), kPrometheusContentType);
        });
    });
}

}  // namespace nocstor::control
