// The passthru vbdev: everything it does comes from Vbdev (open + claim the base, forward each
// I/O on its own descriptor and per-thread channel with the same iovecs, complete the upper I/O
// from the base completion, unregister itself when the base is hot-removed, release the claim
// and close the base on destruct). A new vbdev starts as a copy of this file.
#include "modules/passthru.h"

#include "modules/module_util.h"
#include "modules/vbdev.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

namespace nocstor {

namespace {

class PassthruModule : public BdevModule {
  public:
    PassthruModule() : BdevModule("passthru") {}
};

PassthruModule g_module;

class PassthruBdev : public Vbdev {
  public:
    explicit PassthruBdev(const std::string& n) : Vbdev(n, &g_module) { product_name = "passthru"; }

    // submit_request: Vbdev forwards every type. A vbdev that changes an I/O overrides it and
    // calls forward(io, my_callback) with a callback that ends in complete_from_base().

    void dump_info_json(nlohmann::json& out) const override {
        out["passthru"] = {{"name", name}, {"base_bdev_name", base()->name}};
    }

    void write_config_json(nlohmann::json& out) const override {
        out = {
            {"method", "bdev_passthru_create"},
            {"params",
             {{"base_bdev_name", base()->name}, {"name", name}, {"uuid", uuid_to_string(uuid)}}}};
    }
};

}  // namespace

BdevModule* passthru_bdev_module() {
    return &g_module;
}

int passthru_bdev_create(const PassthruBdevOptions& o, std::string* err) {
    if (o.name.empty()) return fail(err, -EINVAL, "passthru: name is required");
    if (o.base_bdev_name.empty()) return fail(err, -EINVAL, "passthru: base_bdev_name is required");
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) return -EINVAL;
    if (bdev_get_by_name(o.name)) return fail(err, -EEXIST, "bdev " + o.name + " already exists");
    auto b = std::make_unique<PassthruBdev>(o.name);
    int rc = b->attach_base(o.base_bdev_name, err);
    if (rc) return rc;  // b's destructor undoes a partial attach
    b->uuid = uuid;
    rc = bdev_register(std::move(b));
    if (rc) return fail(err, rc, "passthru: cannot register " + o.name + ": " + std::strerror(-rc));
    return 0;
}

void passthru_bdev_delete(const std::string& name, std::function<void(int)> done) {
    delete_module_bdev(name, &g_module, std::move(done));
}

}  // namespace nocstor
