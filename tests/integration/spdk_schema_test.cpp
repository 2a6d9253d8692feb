// SPDK's rpc.py v26.05 drives nocstor unchanged: for every method nocstor serves under an SPDK
// name, every parameter SPDK's schema (../shared/spdk/rpc-schema-v26.05.json) lists is accepted
// (a neutral value changes nothing), and values asking for features nocstor lacks are refused
// with a message naming the parameter. Skips when the schema is not beside the checkout.
#include "daemon_env.h"

#include <fstream>
#include <map>
#include <set>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

const std::string kNqn = "nqn.2024-01.io.nocstor:schema";
const std::string kMissingNqn = "nqn.2024-01.io.nocstor:missing";
const std::string kHost = "nqn.2014-08.org.nvmexpress:uuid:8a5f3c22-4d0e-4b1f-9d3c-0c1b2a3d4e5f";
const std::string kUuid = "7d4b7fa4-0d6b-4ac5-a5e9-1d2f5b6c0a11";

json listen_address(const std::string& port) {
    return {{"trtype", "TCP"}, {"adrfam", "IPv4"}, {"traddr", "127.0.0.1"}, {"trsvcid", port}};
}

// Params every test call starts from: valid, and either harmless to repeat or failing the same
// way every time after the parameters were checked (an object that does not exist or exists).
std::map<std::string, json> baselines(const std::string& port) {
    return {
        {"bdev_aio_create", {{"name", "Base"}, {"filename", "/nonexistent/aio"}}},
        {"bdev_aio_delete", {{"name", "Missing"}}},
        {"bdev_aio_rescan", {{"name", "Missing"}}},
        {"bdev_delay_create",
         {{"name", "Dly"},
          {"base_bdev_name", "Missing"},
          {"avg_read_latency", 1},
          {"p99_read_latency", 1},
          {"avg_write_latency", 1},
          {"p99_write_latency", 1}}},
        {"bdev_delay_delete", {{"name", "Missing"}}},
        {"bdev_delay_update_latency",
         {{"delay_bdev_name", "Missing"}, {"latency_type", "avg_read"}, {"latency_us", 1}}},
        {"bdev_enable_histogram", {{"name", "Base"}, {"enable", false}}},
        {"bdev_error_create", {{"base_name", "Missing"}}},
        {"bdev_error_delete", {{"name", "Missing"}}},
        {"bdev_error_inject_error",
         {{"name", "Missing"}, {"io_type", "read"}, {"error_type", "failure"}}},
        {"bdev_get_bdevs", json::object()},
        {"bdev_nvme_set_options", json::object()},
        {"nvmf_set_config", json::object()},
        {"bdev_get_histogram", {{"name", "Missing"}}},
        {"bdev_get_iostat", json::object()},
        {"bdev_lvol_clone", {{"snapshot_name", "Missing"}, {"clone_name", "c"}}},
        {"bdev_lvol_clone_bdev",
         {{"bdev", "Missing"}, {"lvs_name", "Missing"}, {"clone_name", "c"}}},
        {"bdev_lvol_create", {{"lvol_name", "v"}, {"size_in_mib", 1}, {"lvs_name", "Missing"}}},
        {"bdev_lvol_create_lvstore", {{"bdev_name", "Missing"}, {"lvs_name", "L"}}},
        {"bdev_lvol_decouple_parent", {{"name", "Missing"}}},
        {"bdev_lvol_delete", {{"name", "Missing"}}},
        {"bdev_lvol_delete_lvstore", {{"lvs_name", "Missing"}}},
        {"bdev_lvol_get_lvols", json::object()},
        {"bdev_lvol_get_lvstores", json::object()},
        {"bdev_lvol_grow_lvstore", {{"lvs_name", "Missing"}}},
        {"bdev_lvol_inflate", {{"name", "Missing"}}},
        {"bdev_lvol_rename", {{"old_name", "Missing"}, {"new_name", "n"}}},
        {"bdev_lvol_rename_lvstore", {{"old_name", "Missing"}, {"new_name", "N"}}},
        {"bdev_lvol_resize", {{"name", "Missing"}, {"size_in_mib", 1}}},
        {"bdev_lvol_set_parent", {{"lvol_name", "Missing"}, {"parent_name", "Missing"}}},
        {"bdev_lvol_set_parent_bdev", {{"lvol_name", "Missing"}, {"parent_name", "Missing"}}},
        {"bdev_lvol_set_read_only", {{"name", "Missing"}}},
        {"bdev_lvol_snapshot", {{"lvol_name", "Missing"}, {"snapshot_name", "s"}}},
        {"bdev_malloc_create", {{"name", "Base"}, {"num_blocks", 8}, {"block_size", 512}}},
        {"bdev_malloc_delete", {{"name", "Missing"}}},
        {"bdev_null_create", {{"name", "Base"}, {"num_blocks", 8}, {"block_size", 512}}},
        {"bdev_null_delete", {{"name", "Missing"}}},
        {"bdev_nvme_attach_controller",
         {{"name", "Nvme9"},
          {"trtype", "TCP"},
          {"traddr", "127.0.0.1"},
          {"trsvcid", "1"},
          {"subnqn", kMissingNqn}}},
        {"bdev_nvme_detach_controller", {{"name", "Missing"}}},
        {"bdev_nvme_get_controllers", {{"name", "Missing"}}},
        {"bdev_iscsi_create",
         {{"name", "I"},
          {"initiator_iqn", "iqn.2026-11.io.nocstor:schema"},
          {"url", "iscsi://127.0.0.1:1/iqn.2026-11.io.nocstor:missing/0"}}},
        {"bdev_iscsi_delete", {{"name", "Missing"}}},
        {"bdev_iscsi_set_options", {{"timeout_sec", 30}}},
        // The iSCSI target: calls that fail the same way whatever optional field is added
        // (missing tags or names, empty lists), or that succeed idempotently.
        {"iscsi_set_options", json::object()},
        {"iscsi_get_options", json::object()},
        {"iscsi_set_discovery_auth", json::object()},
        {"iscsi_create_auth_group", {{"tag", 0}}},
        {"iscsi_delete_auth_group", {{"tag", 99}}},
        {"iscsi_auth_group_add_secret", {{"tag", 99}, {"user", "u"}, {"secret", "s"}}},
        {"iscsi_auth_group_remove_secret", {{"tag", 99}, {"user", "u"}}},
        {"iscsi_get_auth_groups", json::object()},
        {"iscsi_create_portal_group", {{"tag", 1}, {"portals", json::array()}}},
        {"iscsi_start_portal_group", {{"tag", 99}}},
        {"iscsi_delete_portal_group", {{"tag", 99}}},
        {"iscsi_get_portal_groups", json::object()},
        {"iscsi_portal_group_set_auth", {{"tag", 99}}},
        {"iscsi_create_initiator_group",
         {{"tag", 1}, {"initiators", json::array()}, {"netmasks", json::array()}}},
        {"iscsi_initiator_group_add_initiators", {{"tag", 99}}},
        {"iscsi_initiator_group_remove_initiators", {{"tag", 99}}},
        {"iscsi_delete_initiator_group", {{"tag", 99}}},
        {"iscsi_get_initiator_groups", json::object()},
        {"iscsi_create_target_node",
         {{"name", "t"},
          {"alias_name", ""},
          {"pg_ig_maps", json::array()},
          {"luns", json::array()},
          {"queue_depth", 1}}},
        {"iscsi_delete_target_node", {{"name", "Missing"}}},
        {"iscsi_target_node_add_lun", {{"name", "Missing"}, {"bdev_name", "Base"}}},
        {"iscsi_target_node_add_pg_ig_maps", {{"name", "Missing"}, {"pg_ig_maps", json::array()}}},
        {"iscsi_target_node_remove_pg_ig_maps",
         {{"name", "Missing"}, {"pg_ig_maps", json::array()}}},
        {"iscsi_target_node_set_auth", {{"name", "Missing"}}},
        {"iscsi_get_target_nodes", json::object()},
        {"iscsi_get_connections", json::object()},
        {"iscsi_get_stats", json::object()},
        {"vhost_create_blk_controller", {{"ctrlr", "schema.sock"}, {"dev_name", "Missing"}}},
        {"vhost_delete_controller", {{"ctrlr", "Missing"}}},
        {"vhost_get_controllers", {{"name", "Missing"}}},
        {"vhost_controller_set_coalescing",
         {{"ctrlr", "Missing"}, {"delay_base_us", 0}, {"iops_threshold", 1}}},
        {"keyring_file_add_key", {{"name", "schema-key"}, {"path", "/nonexistent/key"}}},
        {"keyring_file_remove_key", {{"name", "Missing"}}},
        {"keyring_get_keys", json::object()},
        {"ublk_create_target", json::object()},
        {"ublk_destroy_target", json::object()},
        {"ublk_start_disk", {{"bdev_name", "Missing"}, {"ublk_id", 7}}},
        {"ublk_recover_disk", {{"bdev_name", "Missing"}, {"ublk_id", 7}}},
        {"ublk_stop_disk", {{"ublk_id", 7}}},
        {"ublk_get_disks", json::object()},
        {"bdev_ocf_create",
         {{"name", "C"},
          {"mode", "wt"},
          {"cache_bdev_name", "Missing"},
          {"core_bdev_name", "Base"}}},
        {"bdev_ocf_delete", {{"name", "Missing"}}},
        {"bdev_ocf_flush_start", {{"name", "Missing"}}},
        {"bdev_ocf_flush_status", {{"name", "Missing"}}},
        {"bdev_ocf_get_bdevs", json::object()},
        {"bdev_ocf_get_stats", {{"name", "Missing"}}},
        {"bdev_ocf_reset_stats", {{"name", "Missing"}}},
        {"bdev_ocf_set_cache_mode", {{"name", "Missing"}, {"mode", "wt"}}},
        {"bdev_ocf_set_seqcutoff", {{"name", "Missing"}, {"policy", "never"}}},
        {"bdev_passthru_create", {{"name", "P"}, {"base_bdev_name", "Missing"}}},
        {"bdev_passthru_delete", {{"name", "Missing"}}},
        {"bdev_raid_create",
         {{"name", "Base"},
          {"raid_level", "raid0"},
          {"base_bdevs", {"Missing"}},
          {"strip_size_kb", 4}}},
        {"bdev_raid_add_base_bdev", {{"raid_bdev", "Missing"}, {"base_bdev", "Base"}}},
        {"bdev_raid_delete", {{"name", "Missing"}}},
        {"bdev_raid_set_options", json::object()},
        {"bdev_raid_get_bdevs", {{"category", "all"}}},
        {"bdev_raid_remove_base_bdev", {{"name", "Missing"}}},
        {"bdev_reset_iostat", json::object()},
        {"bdev_wait_for_examine", json::object()},
        {"bdev_uring_create", {{"name", "Base"}, {"filename", "/nonexistent/uring"}}},
        {"bdev_uring_delete", {{"name", "Missing"}}},
        {"bdev_uring_rescan", {{"name", "Missing"}}},
        {"framework_get_config", {{"name", "bdev"}}},
        {"framework_get_reactors", json::object()},
        {"framework_get_subsystems", json::object()},
        {"framework_wait_init", json::object()},
        {"log_clear_flag", {{"flag", "nvmf"}}},
        {"log_get_flags", json::object()},
        {"log_get_level", json::object()},
        {"log_get_print_level", json::object()},
        {"log_set_flag", {{"flag", "nvmf"}}},
        {"log_set_level", {{"level", "NOTICE"}}},
        {"log_set_print_level", {{"level", "NOTICE"}}},
        {"nvmf_create_subsystem", {{"nqn", kNqn}}},
        {"nvmf_create_transport", {{"trtype", "TCP"}}},
        {"nvmf_delete_subsystem", {{"nqn", kMissingNqn}}},
        {"nvmf_get_stats", json::object()},
        {"nvmf_get_subsystems", json::object()},
        {"nvmf_get_transports", json::object()},
        {"nvmf_subsystem_add_host", {{"nqn", kMissingNqn}, {"host", kHost}}},
        {"nvmf_subsystem_add_listener",
         {{"nqn", kMissingNqn}, {"listen_address", listen_address(port)}}},
        {"nvmf_subsystem_add_ns", {{"nqn", kMissingNqn}, {"namespace", {{"bdev_name", "Base"}}}}},
        {"nvmf_subsystem_allow_any_host", {{"nqn", kMissingNqn}, {"allow_any_host", true}}},
        {"nvmf_subsystem_get_controllers", {{"nqn", kMissingNqn}}},
        {"nvmf_subsystem_get_listeners", {{"nqn", kMissingNqn}}},
        {"nvmf_subsystem_get_qpairs", {{"nqn", kMissingNqn}}},
        {"nvmf_subsystem_remove_host", {{"nqn", kMissingNqn}, {"host", kHost}}},
        {"nvmf_subsystem_remove_listener",
         {{"nqn", kMissingNqn}, {"listen_address", listen_address(port)}}},
        {"nvmf_subsystem_remove_ns", {{"nqn", kMissingNqn}, {"nsid", 1}}},
        {"rpc_get_methods", json::object()},
        {"spdk_get_version", json::object()},
        {"thread_get_stats", json::object()},
    };
}

// Where the neutral value of a type is not neutral for that parameter (its default instead).
const std::map<std::string, json>& neutral_overrides() {
    static const std::map<std::string, json> m = {
        {"bdev_enable_histogram.granularity", 7},
        {"bdev_enable_histogram.max_nsec", 120000000000ull},
        {"bdev_enable_histogram.min_nsec", 1000},
        {"bdev_get_bdevs.name", "Base"},
        {"vhost_get_controllers.name", "Missing"},
        {"ublk_start_disk.queue_depth", 128},
        {"ublk_start_disk.num_queues", 1},
        {"bdev_get_iostat.reset_mode", "none"},
        {"bdev_malloc_create.numa_id", -1},
        {"bdev_nvme_attach_controller.adrfam", "IPv4"},
        {"bdev_ocf_create.cache_line_size", 4},
        {"bdev_iscsi_set_options.timeout_sec", 30},
        {"iscsi_set_options.node_base", "iqn.2016-06.io.spdk"},
        {"iscsi_set_options.nop_timeout", 60},
        {"iscsi_set_options.nop_in_interval", 30},
        {"iscsi_set_options.max_sessions", 128},
        {"iscsi_set_options.max_queue_depth", 64},
        {"iscsi_set_options.max_connections_per_session", 1},
        {"iscsi_set_options.first_burst_length", 8192},
        {"iscsi_set_options.immediate_data", true},
        {"bdev_nvme_attach_controller.max_bdevs", 128},
        {"bdev_nvme_attach_controller.num_io_queues", 1024},
        {"bdev_nvme_attach_controller.priority", "0"},
        {"bdev_raid_set_options.process_window_size_kb", 1024},
        {"bdev_reset_iostat.name", "Base"},
        {"nvmf_create_subsystem.max_cntlid", 65519},
        {"nvmf_create_subsystem.min_cntlid", 1},
        {"nvmf_create_subsystem.model_number", "nocstor"},
        {"nvmf_create_subsystem.serial_number", "SCHEMA1"},
        {"nvmf_get_subsystems.nqn", kNqn},
        {"nvmf_get_transports.trtype", "TCP"},
        {"nvmf_subsystem_add_listener.numa_id", -1},
        {"nvmf_subsystem_add_listener.sock_impl", "posix"},
    };
    return m;
}

struct Schema {
    json doc;
    std::map<std::string, json> methods;
    std::map<std::string, json> objects, enums;
};

bool load_schema(Schema* s) {
    std::ifstream in(std::string(NOCSTOR_SOURCE_DIR) + "/../shared/spdk/rpc-schema-v26.05.json");
    if (!in) return false;
    s->doc = json::parse(in);
    for (const auto& m : s->doc["methods"]) s->methods[m["name"]] = m;
    for (const auto& o : s->doc["objects"]) s->objects[o["name"]] = o;
    for (const auto& e : s->doc["enums"]) s->enums[e["name"]] = e;
    return true;
}

json neutral_value(const Schema& s, const std::string& method, const json& param) {
    const std::string name = param["name"];
    auto o = neutral_overrides().find(method + "." + name);
    if (o != neutral_overrides().end()) return o->second;
    const std::string type = param["type"];
    if (type == "boolean") return false;
    if (type == "string") return "";
    if (type == "uuid") return kUuid;
    if (type == "array") return json::array();
    if (type == "object") return json::object();
    if (type == "enum") return s.enums.at(param["class"])["fields"][0]["name"];
    return 0;  // int*, uint*
}

struct Outcome {
    bool ok;
    int code;
    std::string message;
};

Outcome call(Daemon& d, const std::string& method, const json& params) {
    auto r = d.call(method, params);
    return {r.ok(), r.code, r.message};
}

class SpdkSchema : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!load_schema(&schema_)) GTEST_SKIP() << "../shared/spdk/rpc-schema-v26.05.json absent";
        port_ = std::to_string(free_tcp_port());
        d_ = std::make_unique<Daemon>(std::vector<std::string>{"--empty"});
        d_->ok("bdev_malloc_create", {{"name", "Base"}, {"num_blocks", 256}, {"block_size", 512}});
        d_->ok("nvmf_create_transport", {{"trtype", "TCP"}});
        d_->ok("nvmf_create_subsystem", {{"nqn", kNqn}, {"allow_any_host", true}});
        d_->ok("nvmf_subsystem_add_ns", {{"nqn", kNqn}, {"namespace", {{"bdev_name", "Base"}}}});
        d_->ok("nvmf_subsystem_add_listener",
               {{"nqn", kNqn}, {"listen_address", listen_address(port_)}});
    }
    Schema schema_;
    std::string port_;
    std::unique_ptr<Daemon> d_;
};

// Every parameter of every SPDK method nocstor serves, with a neutral value: the call ends as the
// same call without it does.
TEST_F(SpdkSchema, EveryParameterIsAccepted) {
    const json served = d_->ok("rpc_get_methods");
    const auto base = baselines(port_);
    size_t methods = 0, checked = 0;
    for (const auto& m : served) {
        const std::string method = m;
        auto sm = schema_.methods.find(method);
        if (sm == schema_.methods.end()) continue;  // nocstor's own methods
        ++methods;
        auto b = base.find(method);
        if (b == base.end()) {
            ADD_FAILURE() << method << " is served but has no baseline in this test";
            continue;
        }
        const Outcome ref = call(*d_, method, b->second);
        auto check = [&](const json& params, const std::string& what) {
            ++checked;
            const Outcome r = call(*d_, method, params);
            EXPECT_EQ(r.message.find("unknown parameter"), std::string::npos)
                << method << " " << what << ": " << r.message;
            EXPECT_EQ(r.ok, ref.ok) << method << " " << what << " " << params.dump() << ": "
                                    << r.message << " (without it: " << ref.message << ")";
            if (!r.ok && !ref.ok) {
                EXPECT_EQ(r.code, ref.code) << method << " " << what << ": " << r.message
                                            << " (without it: " << ref.message << ")";
            }
        };
        for (const auto& p : sm->second["params"]) {
            const std::string name = p["name"];
            if (!b->second.contains(name)) {
                json params = b->second;
                params[name] = neutral_value(schema_, method, p);
                check(params, name);
            }
            // Fields of an object parameter the baseline carries (listen_address, namespace).
            if (p["type"] == "object" && p.contains("class") && b->second.contains(name)) {
                for (const auto& f : schema_.objects.at(p["class"])["fields"]) {
                    if (b->second[name].contains(f["name"])) continue;
                    json params = b->second;
                    params[name][f["name"].get<std::string>()] =
                        neutral_value(schema_, method + "." + name, f);
                    check(params, name + "." + f["name"].get<std::string>());
                }
            }
        }
    }
    EXPECT_GE(methods, 50u);
    EXPECT_GE(checked, 150u);
}

// The methods SPDK users' scripts need that the issue names.
TEST_F(SpdkSchema, MethodsSpdkScriptsUseAreServed) {
    const json served = d_->ok("rpc_get_methods");
    const std::set<std::string> names(served.begin(), served.end());
    for (const char* m :
         {"bdev_aio_create", "bdev_aio_delete", "bdev_aio_rescan", "nvmf_subsystem_get_listeners",
          "nvmf_subsystem_get_qpairs", "bdev_enable_histogram", "bdev_get_histogram",
          "bdev_reset_iostat", "log_set_level", "log_get_level", "framework_wait_init",
          "nvmf_subsystem_remove_listener", "nvmf_subsystem_remove_host",
          "nvmf_subsystem_remove_ns"})
        EXPECT_TRUE(names.count(m)) << m;
}

// Values that ask for what nocstor does not have are refused, and the message says which.
TEST_F(SpdkSchema, MissingFeaturesAreRefusedByName) {
    const auto base = baselines(port_);
    struct Case {
        std::string method, param;
        json value;
    };
    const std::vector<Case> cases = {
        {"bdev_nvme_attach_controller", "multipath", "multipath"},
        {"bdev_nvme_attach_controller", "hostaddr", "127.0.0.1"},
        {"bdev_nvme_attach_controller", "allow_unrecognized_csi", true},
        {"bdev_nvme_attach_controller", "prchk_guard", true},
        {"nvmf_create_subsystem", "ana_reporting", true},
        {"nvmf_create_subsystem", "passthrough", true},
        {"nvmf_create_subsystem", "enable_nssr", true},
        {"nvmf_create_subsystem", "min_cntlid", 10},
        {"nvmf_create_subsystem", "tgt_name", "second_target"},
        {"nvmf_subsystem_add_listener", "ana_state", "inaccessible"},
        {"bdev_malloc_create", "md_size", 8},
        {"bdev_malloc_create", "dif_type", 1},
        {"bdev_null_create", "dif_pi_format", 1},
        {"nvmf_create_transport", "dif_insert_or_strip", true},
        {"nvmf_get_subsystems", "tgt_name", "second_target"},
    };
    for (const auto& c : cases) {
        json params = base.at(c.method);
        params[c.param] = c.value;
        const Outcome r = call(*d_, c.method, params);
        EXPECT_FALSE(r.ok) << c.method << " " << c.param;
        EXPECT_NE(r.message.find(c.param), std::string::npos) << c.method << ": " << r.message;
        EXPECT_NE(r.message.find("not supported"), std::string::npos) << r.message;
    }
    for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
             {"ptpl_file", "/tmp/ptpl"}, {"no_auto_visible", true}, {"anagrpid", 2}}) {
        json params = base.at("nvmf_subsystem_add_ns");
        params["namespace"][field] = value;
        const Outcome r = call(*d_, "nvmf_subsystem_add_ns", params);
        EXPECT_FALSE(r.ok) << field;
        EXPECT_NE(r.message.find(field), std::string::npos) << r.message;
    }
    // A parameter no SPDK version has is still refused as unknown.
    const Outcome r = call(*d_, "bdev_get_bdevs", {{"frobnicate", 1}});
    EXPECT_NE(r.message.find("unknown parameter 'frobnicate'"), std::string::npos) << r.message;
}

}  // namespace
