// The interface a bdev module implements, and the module registry. Modules are registered
// explicitly at start-up (register_builtin_bdev_modules in modules/builtin.cpp) rather than by
// static constructors, which a static library would silently drop.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <string>
#include <vector>

namespace nocstor {

class Bdev;

class BdevModule {
  public:
    explicit BdevModule(std::string name) : name_(std::move(name)) {}
    virtual ~BdevModule() = default;
    const std::string& name() const { return name_; }

    // Control thread, at start-up, before any bdev exists. Non-zero fails the start.
    virtual int init() { return 0; }
    // Control thread, at shutdown before any bdev is unregistered: a module that holds bdevs
    // open and claimed with no bdev of its own on top of them for the layer to remove first (an
    // lvstore on its base) closes them here.
    virtual void prepare_fini(std::function<void()> done) { done(); }
    // Control thread, at shutdown after every bdev of the module was unregistered.
    virtual void fini(std::function<void()> done) { done(); }
    // Control thread, once for every registered bdev: a vbdev module may read the bdev (its
    // superblock), claim it and build its stack on top (RAID, lvol, cache reassembly).
    virtual void examine(Bdev*) {}
    // Module-wide options for save_config ({"method": "bdev_x_set_options", ...}), appended to
    // `configs` (a JSON array).
    virtual void write_config_json(nlohmann::json&) const {}

  private:
    std::string name_;
};

void bdev_module_register(BdevModule* module);  // the module outlives the process run
const std::vector<BdevModule*>& bdev_modules();
BdevModule* bdev_module_find(const std::string& name);
// Runs every module's init(); false (and *err) when one fails.
bool bdev_modules_init(std::string* err);
// Unregisters every bdev (top of the stacks first), then runs every module's fini().
void bdev_layer_fini(std::function<void()> done);

}  // namespace nocstor
