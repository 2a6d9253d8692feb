#include "modules/null.h"

#include "bdev/bdev.h"
#include "modules/deferred_completion.h"
#include "modules/iov_util.h"
#include "modules/module_util.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

namespace nocstor {

namespace {

class NullModule : public BdevModule {
  public:
    NullModule() : BdevModule("null") {}
};

NullModule g_module;

class NullBdev : public Bdev {
  public:
    NullBdev(const std::string& n, bool zero_reads) : Bdev(n, &g_module), zero_reads_(zero_reads) {
        product_name = "Null disk";
    }

    bool io_type_supported(IoType t) const override { return t != IoType::Count; }

    std::unique_ptr<IoChannel> create_channel() override {
        return std::make_unique<DeferredCompletionChannel>("null_done");
    }

    void submit_request(IoChannel* ch, BdevIo* io) override {
        if (io->type == IoType::Read && zero_reads_) iov_memset(io->iovs, io->iovcnt, 0);
        static_cast<DeferredCompletionChannel*>(ch)->complete_later(io, IoStatus::Success);
    }

    void dump_info_json(nlohmann::json& out) const override {
        out["null"] = {{"zero_reads", zero_reads_}};
    }

    void write_config_json(nlohmann::json& out) const override {
        out = {{"method", "bdev_null_create"},
               {"params",
                {{"name", name},
                 {"num_blocks", num_blocks},
                 {"block_size", block_size},
                 {"uuid", uuid_to_string(uuid)}}}};
    }

  private:
    bool zero_reads_;
};

}  // namespace

BdevModule* null_bdev_module() {
    return &g_module;
}

int null_bdev_create(const NullBdevOptions& o, std::string* err) {
    if (o.name.empty()) return fail(err, -EINVAL, "null: name is required");
    if (!valid_block_size(o.block_size))
        return fail(err, -EINVAL,
                    "null: block_size " + std::to_string(o.block_size) +
                        " is not a power of two between 512 and 65536");
    if (o.num_blocks == 0) return fail(err, -EINVAL, "null: num_blocks must be > 0");
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) return -EINVAL;
    if (bdev_get_by_name(o.name)) return fail(err, -EEXIST, "bdev " + o.name + " already exists");
    auto b = std::make_unique<NullBdev>(o.name, o.zero_reads);
    b->block_size = o.block_size;
    b->num_blocks = o.num_blocks;
    b->uuid = uuid;
    int rc = bdev_register(std::move(b));
    if (rc) return fail(err, rc, "null: cannot register " + o.name + ": " + std::strerror(-rc));
    return 0;
}

void null_bdev_delete(const std::string& name, std::function<void(int)> done) {
    delete_module_bdev(name, &g_module, std::move(done));
}

}  // namespace nocstor
