// nocstorctl: command-line client for the nocstor JSON-RPC socket (SPDK-compatible methods), or,
// with --http, for its REST API (authenticated with the management token).
//
// Exit codes: 0 ok, 1 the RPC returned an error, 2 usage error, 3 cannot reach the daemon
// (connect failure, timeout, lost connection).
#include "tools/nocstorctl/client.h"
#include "tools/nocstorctl/commands.h"
#include "tools/nocstorctl/output.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace nocstor::ctl;
using nlohmann::json;

int cmd_status(Ctl& ctl) {
    json methods;
    if (int rc = ctl.call("rpc_get_methods", nullptr, &methods)) return rc;
    auto has = [&](const char* name) {
        for (const auto& m : methods) {
            if (m == name) return true;
        }
        return false;
    };
    json summary = {{"socket", ctl.socket}, {"methods", methods.size()}};
    for (const char* method :
         {"spdk_get_version", "framework_get_reactors", "nocstor_get_clusters"}) {
        if (!has(method)) continue;
        json result;
        if (int rc = ctl.call(method, nullptr, &result)) return rc;
        summary[method] = std::move(result);
    }
    if (ctl.json_output) {
        fmt::print("{}\n", summary.dump(2));
        return kExitOk;
    }
    fmt::print("socket:   {}\n", ctl.socket);
    if (summary.contains("spdk_get_version")) {
        fmt::print("version:  {}\n", str(summary["spdk_get_version"], "version"));
    }
    if (summary.contains("framework_get_reactors")) {
        const json& fr = summary["framework_get_reactors"];
        const json reactors = fr.value("reactors", json::array());
        fmt::print("reactors: {}", reactors.size());
        if (fr.contains("tick_rate")) fmt::print(" (tick rate {})", str(fr, "tick_rate"));
        fmt::print("\n");
        for (const json& r : reactors) {
            std::vector<std::string> threads;
            for (const json& t : r.value("lw_threads", json::array())) {
                threads.push_back(str(t, "name"));
            }
            fmt::print("  lcore {:<3} busy {} idle {} threads: {}\n", str(r, "lcore"),
                       str(r, "busy"), str(r, "idle"), fmt::join(threads, ", "));
        }
    }
    if (summary.contains("nocstor_get_clusters")) {
        const json& clusters = summary["nocstor_get_clusters"];
        const json list =
            clusters.is_array() ? clusters : clusters.value("clusters", json::array());
        fmt::print("clusters: {}\n", list.size());
        for (const json& c : list) {
            std::vector<std::string> fields;
            if (c.is_object()) {
                for (const auto& [k, v] : c.items()) {
                    fields.push_back(
                        fmt::format("{}={}", k, v.is_string() ? v.get<std::string>() : v.dump()));
                }
            } else {
                fields.push_back(c.dump());
            }
            fmt::print("  {}\n", fmt::join(fields, " "));
        }
    }
    fmt::print("methods:  {} available\n", methods.size());
    return kExitOk;
}

int cmd_bdev_list(Ctl& ctl) {
    json bdevs;
    if (int rc = ctl.call("bdev_get_bdevs", nullptr, &bdevs)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", bdevs.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& b : bdevs) {
        const std::uint64_t block = u64(b, "block_size");
        rows.push_back({str(b, "name"), human_size(u64(b, "num_blocks") * block),
                        std::to_string(block), str(b, "product_name"),
                        b.value("claimed", false) ? "yes" : "no"});
    }
    print_table({"NAME", "SIZE", "BLOCK", "TYPE", "CLAIMED"}, rows);
    return kExitOk;
}

// Maps a bdev_get_bdevs entry to its module's delete method.
std::optional<std::string> delete_method_for(const json& bdev) {
    std::string product = str(bdev, "product_name", "");
    for (char& c : product) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const json driver = bdev.value("driver_specific", json::object());
    for (const char* type : {"malloc", "null", "uring"}) {
        if (product.find(type) != std::string::npos || driver.contains(type)) {
            return fmt::format("bdev_{}_delete", type);
        }
    }
    return std::nullopt;
}

int cmd_bdev_delete(Ctl& ctl, const std::string& name, const std::string& type) {
    std::string method;
    if (!type.empty()) {
        method = fmt::format("bdev_{}_delete", type);
    } else {
        json bdevs;
        if (int rc = ctl.call("bdev_get_bdevs", {{"name", name}}, &bdevs)) return rc;
        const json* bdev = nullptr;
        for (const json& b : bdevs) {
            if (b.is_object() && str(b, "name", "") == name) bdev = &b;
        }
        if (!bdev) {
            fmt::print(stderr, "error: bdev '{}' not found\n", name);
            return kExitRpcError;
        }
        auto found = delete_method_for(*bdev);
        if (!found) {
            fmt::print(stderr,
                       "error: cannot tell the type of bdev '{}' (product '{}'); use --type\n",
                       name, str(*bdev, "product_name"));
            return kExitUsage;
        }
        method = *found;
    }
    return ctl.call_and_report(method, {{"name", name}}, fmt::format("deleted {}", name));
}

std::string join_listeners(const json& subsystem) {
    std::vector<std::string> out;
    for (const json& l : subsystem.value("listen_addresses", json::array())) {
        const std::string addr = str(l, "traddr");
        out.push_back(fmt::format("{} {}:{}", str(l, "trtype"),
                                  addr.find(':') != std::string::npos ? "[" + addr + "]" : addr,
                                  str(l, "trsvcid")));
    }
    return out.empty() ? "-" : fmt::format("{}", fmt::join(out, ", "));
}

int cmd_subsystem_list(Ctl& ctl) {
    json subsystems;
    if (int rc = ctl.call("nvmf_get_subsystems", nullptr, &subsystems)) return rc;
    if (ctl.json_output) {
        fmt::print("{}\n", subsystems.dump(2));
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& s : subsystems) {
        std::vector<std::string> namespaces;
        for (const json& ns : s.value("namespaces", json::array())) {
            namespaces.push_back(fmt::format("{}:{}", str(ns, "nsid"), str(ns, "bdev_name")));
        }
        std::string hosts = s.value("allow_any_host", false) ? "any" : "";
        for (const json& h : s.value("hosts", json::array())) {
            hosts += (hosts.empty() ? "" : ", ") + str(h, "nqn");
        }
        rows.push_back({str(s, "nqn"), str(s, "subtype"), str(s, "serial_number"),
                        namespaces.empty() ? "-" : fmt::format("{}", fmt::join(namespaces, ", ")),
                        join_listeners(s), hosts.empty() ? "-" : hosts});
    }
    print_table({"NQN", "TYPE", "SERIAL", "NAMESPACES", "LISTENERS", "HOSTS"}, rows);
    return kExitOk;
}

// Converts --size/--block-size into num_blocks, printing a usage error on bad input.
std::optional<std::uint64_t> num_blocks(const std::string& size, std::uint32_t block_size) {
    auto bytes = parse_size(size);
    if (!bytes || *bytes == 0) {
        fmt::print(stderr, "error: invalid size '{}' (examples: 64M, 1G, 1048576)\n", size);
        return std::nullopt;
    }
    if (block_size == 0 || *bytes % block_size != 0) {
        fmt::print(stderr, "error: size {} is not a multiple of the block size {}\n", *bytes,
                   block_size);
        return std::nullopt;
    }
    return *bytes / block_size;
}

}  // namespace

int main(int argc, char** argv) {
    Ctl ctl;
    CLI::App app{"nocstorctl: manage a running nocstor target over its JSON-RPC socket"};
    app.require_subcommand(1);
    app.add_option("-s,--socket", ctl.socket, "JSON-RPC Unix socket path")->capture_default_str();
    app.add_option("--http", ctl.http_url,
                   "talk to the REST API at this URL (http://HOST:PORT or https://HOST:PORT) "
                   "instead of the socket; needs the management token");
    app.add_option("--cacert", ctl.http_ca,
                   "https: the CA (PEM) the server's certificate must chain to (default: the "
                   "system's)");
    app.add_option("--cert", ctl.http_cert,
                   "https: client certificate (PEM), for --http-client-ca");
    app.add_option("--key", ctl.http_key, "https: the client certificate's key (PEM)");
    app.add_option("--token-file", ctl.token_file,
                   "management token file for --http (default: the socket path + '.token', "
                   "which the daemon writes at start, readable by its user only)");
    app.add_flag("--json", ctl.json_output, "print raw JSON results");
    app.add_option("--timeout", ctl.timeout_s, "seconds to wait for each response")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);

    // call METHOD [PARAMS]
    auto* call = app.add_subcommand("call", "call any JSON-RPC method, print the result");
    std::string call_method, call_params;
    call->add_option("method", call_method, "method name")->required();
    call->add_option("params", call_params, "params as a JSON object or array");

    auto* status = app.add_subcommand("status", "show version, reactors and clusters");

    // bdev ...
    auto* bdev = app.add_subcommand("bdev", "block devices")->require_subcommand(1);
    auto* bdev_list = bdev->add_subcommand("list", "list bdevs");
    auto* bdev_create = bdev->add_subcommand("create", "create a bdev")->require_subcommand(1);
    std::string b_name, b_size, b_file, b_uuid, b_type, b_delete_name;
    std::uint32_t b_block = 512;
    std::optional<std::uint32_t> b_uring_block;
    auto* create_malloc = bdev_create->add_subcommand("malloc", "RAM-backed bdev");
    auto* create_null = bdev_create->add_subcommand("null", "bdev that discards writes");
    for (auto* sub : {create_malloc, create_null}) {
        sub->add_option("--name", b_name, "bdev name")->required();
        sub->add_option("--size", b_size, "total size, e.g. 64M, 1G")->required();
        sub->add_option("--block-size", b_block, "block size in bytes")->capture_default_str();
    }
    create_malloc->add_option("--uuid", b_uuid, "bdev UUID");
    auto* create_uring = bdev_create->add_subcommand("uring", "io_uring file/device bdev");
    create_uring->add_option("--name", b_name, "bdev name")->required();
    create_uring->add_option("--filename", b_file, "file or block device path")->required();
    create_uring->add_option("--block-size", b_uring_block, "block size in bytes");
    auto* bdev_delete = bdev->add_subcommand("delete", "delete a bdev");
    bdev_delete->add_option("name", b_delete_name, "bdev name")->required();
    bdev_delete->add_option("--type", b_type, "module: malloc, null or uring (default: detect)")
        ->check(CLI::IsMember({"malloc", "null", "uring"}));

    // subsystem ...
    auto* subsys = app.add_subcommand("subsystem", "NVMe-oF subsystems")->require_subcommand(1);
    auto* ss_list = subsys->add_subcommand("list", "list subsystems");
    std::string nqn, serial, model, ns_bdev, address = "127.0.0.1", host_nqn;
    bool allow_any = false, ipv6 = false;
    std::optional<std::uint32_t> nsid_opt;
    std::uint32_t nsid = 0;
    std::uint16_t port = 4420;
    auto* ss_create = subsys->add_subcommand("create", "create a subsystem");
    ss_create->add_option("nqn", nqn, "subsystem NQN")->required();
    ss_create->add_flag("--allow-any-host", allow_any, "allow any host to connect");
    ss_create->add_option("--serial", serial, "serial number");
    ss_create->add_option("--model", model, "model number");
    auto* ss_delete = subsys->add_subcommand("delete", "delete a subsystem");
    ss_delete->add_option("nqn", nqn, "subsystem NQN")->required();
    auto* ss_add_ns = subsys->add_subcommand("add-ns", "add a namespace");
    ss_add_ns->add_option("nqn", nqn, "subsystem NQN")->required();
    ss_add_ns->add_option("bdev", ns_bdev, "bdev name")->required();
    ss_add_ns->add_option("--nsid", nsid_opt, "namespace ID (default: first free)");
    auto* ss_remove_ns = subsys->add_subcommand("remove-ns", "remove a namespace");
    ss_remove_ns->add_option("nqn", nqn, "subsystem NQN")->required();
    ss_remove_ns->add_option("nsid", nsid, "namespace ID")->required();
    auto* ss_add_listener = subsys->add_subcommand("add-listener", "add a TCP listener");
    ss_add_listener->add_option("nqn", nqn, "subsystem NQN")->required();
    ss_add_listener->add_option("--address", address, "IP address")->capture_default_str();
    ss_add_listener->add_option("--port", port, "TCP port")->capture_default_str();
    ss_add_listener->add_flag("--ipv6", ipv6, "the address is IPv6 (implied by a ':')");
    auto* ss_add_host = subsys->add_subcommand("add-host", "allow a host NQN");
    ss_add_host->add_option("nqn", nqn, "subsystem NQN")->required();
    ss_add_host->add_option("host", host_nqn, "host NQN")->required();

    Handlers handlers;
    add_raid_commands(app, ctl, handlers);
    add_lvol_commands(app, ctl, handlers);
    add_volume_commands(app, ctl, handlers);
    add_iscsi_commands(app, ctl, handlers);
    add_vhost_commands(app, ctl, handlers);
    add_ublk_commands(app, ctl, handlers);

    auto dispatch = [&]() -> int {
        for (const auto& [cmd, run] : handlers.list)
            if (cmd->parsed()) return run();
        if (call->parsed()) {
            json params;
            if (!call_params.empty()) {
                params = json::parse(call_params, nullptr, false);
                if (params.is_discarded() || !(params.is_object() || params.is_array())) {
                    fmt::print(stderr, "error: params must be a JSON object or array: {}\n",
                               call_params);
                    return kExitUsage;
                }
            }
            json result;
            if (int rc = ctl.call(call_method, params, &result)) return rc;
            fmt::print("{}\n", result.dump(2));
            return kExitOk;
        }
        if (status->parsed()) return cmd_status(ctl);
        if (bdev_list->parsed()) return cmd_bdev_list(ctl);
        if (create_malloc->parsed() || create_null->parsed()) {
            auto blocks = num_blocks(b_size, b_block);
            if (!blocks) return kExitUsage;
            json params = {{"name", b_name}, {"num_blocks", *blocks}, {"block_size", b_block}};
            if (!b_uuid.empty()) params["uuid"] = b_uuid;
            const char* method =
                create_malloc->parsed() ? "bdev_malloc_create" : "bdev_null_create";
            return ctl.call_and_report(method, params, "");
        }
        if (create_uring->parsed()) {
            json params = {{"name", b_name}, {"filename", b_file}};
            if (b_uring_block) params["block_size"] = *b_uring_block;
            return ctl.call_and_report("bdev_uring_create", params, "");
        }
        if (bdev_delete->parsed()) return cmd_bdev_delete(ctl, b_delete_name, b_type);
        if (ss_list->parsed()) return cmd_subsystem_list(ctl);
        if (ss_create->parsed()) {
            json params = {{"nqn", nqn}, {"allow_any_host", allow_any}};
            if (!serial.empty()) params["serial_number"] = serial;
            if (!model.empty()) params["model_number"] = model;
            return ctl.call_and_report("nvmf_create_subsystem", params,
                                       fmt::format("created {}", nqn));
        }
        if (ss_delete->parsed()) {
            return ctl.call_and_report("nvmf_delete_subsystem", {{"nqn", nqn}},
                                       fmt::format("deleted {}", nqn));
        }
        if (ss_add_ns->parsed()) {
            json ns = {{"bdev_name", ns_bdev}};
            if (nsid_opt) ns["nsid"] = *nsid_opt;
            json result;
            if (int rc =
                    ctl.call("nvmf_subsystem_add_ns", {{"nqn", nqn}, {"namespace", ns}}, &result)) {
                return rc;
            }
            if (ctl.json_output) {
                fmt::print("{}\n", result.dump(2));
            } else {
                fmt::print("added namespace {} ({}) to {}\n", result.dump(), ns_bdev, nqn);
            }
            return kExitOk;
        }
        if (ss_remove_ns->parsed()) {
            return ctl.call_and_report("nvmf_subsystem_remove_ns", {{"nqn", nqn}, {"nsid", nsid}},
                                       fmt::format("removed namespace {} from {}", nsid, nqn));
        }
        if (ss_add_listener->parsed()) {
            const bool v6 = ipv6 || address.find(':') != std::string::npos;
            json listen = {{"trtype", "TCP"},
                           {"adrfam", v6 ? "IPv6" : "IPv4"},
                           {"traddr", address},
                           {"trsvcid", std::to_string(port)}};
            return ctl.call_and_report("nvmf_subsystem_add_listener",
                                       {{"nqn", nqn}, {"listen_address", listen}},
                                       fmt::format("{} listening on {}:{}", nqn, address, port));
        }
        if (ss_add_host->parsed()) {
            return ctl.call_and_report("nvmf_subsystem_add_host",
                                       {{"nqn", nqn}, {"host", host_nqn}},
                                       fmt::format("host {} allowed on {}", host_nqn, nqn));
        }
        return kExitUsage;
    };

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);  // prints help or the usage error
        return rc == 0 ? kExitOk : kExitUsage;
    }
    // Results of an unexpected shape make nlohmann throw; report instead of aborting.
    try {
        return dispatch();
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: unexpected response from the daemon: {}\n", e.what());
        return kExitRpcError;
    }
}
