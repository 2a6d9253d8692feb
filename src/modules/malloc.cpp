#include "modules/malloc.h"

#include "bdev/bdev.h"
#include "modules/deferred_completion.h"
#include "modules/iov_util.h"
#include "modules/module_util.h"
#include "util/log.h"

#include <sys/mman.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

namespace nocstor {

namespace {

class MallocModule : public BdevModule {
  public:
    MallocModule() : BdevModule("malloc") {}
};

MallocModule g_module;

class MallocBdev : public Bdev {
  public:
    MallocBdev(const std::string& n, void* mem, size_t len)
        : Bdev(n, &g_module), mem_(static_cast<char*>(mem)), len_(len) {
        product_name = "Malloc disk";
    }
    ~MallocBdev() override { munmap(mem_, len_); }

    bool io_type_supported(IoType t) const override { return t != IoType::Count; }

    std::unique_ptr<IoChannel> create_channel() override {
        return std::make_unique<DeferredCompletionChannel>("malloc_done");
    }

    void submit_request(IoChannel* ch, BdevIo* io) override {
        char* p = mem_ + io->offset_blocks * block_size;
        uint64_t len = io->num_blocks * block_size;
        switch (io->type) {
            case IoType::Read:
                iov_copy_from_buf(io->iovs, io->iovcnt, p, len);
                break;
            case IoType::Write:
                iov_copy_to_buf(io->iovs, io->iovcnt, p, len);
                break;
            case IoType::Unmap:
            case IoType::WriteZeroes:
                std::memset(p, 0, len);
                break;
            default:
                break;  // flush, reset: nothing to do in RAM
        }
        static_cast<DeferredCompletionChannel*>(ch)->complete_later(io, IoStatus::Success);
    }

    void dump_info_json(nlohmann::json& out) const override {
        out["malloc"] = {{"num_blocks", num_blocks}, {"block_size", block_size}};
    }

    void write_config_json(nlohmann::json& out) const override {
        nlohmann::json p = {{"name", name},
                            {"num_blocks", num_blocks},
                            {"block_size", block_size},
                            {"uuid", uuid_to_string(uuid)}};
        if (optimal_io_boundary) p["optimal_io_boundary"] = optimal_io_boundary;
        if (max_transfer_blocks) p["max_transfer_blocks"] = max_transfer_blocks;
        out = {{"method", "bdev_malloc_create"}, {"params", p}};
    }

  private:
    char* mem_;
    size_t len_;
};

}  // namespace

BdevModule* malloc_bdev_module() {
    return &g_module;
}

int malloc_bdev_create(const MallocBdevOptions& o, std::string* err) {
    if (o.name.empty()) return fail(err, -EINVAL, "malloc: name is required");
    if (!valid_block_size(o.block_size))
        return fail(err, -EINVAL,
                    "malloc: block_size " + std::to_string(o.block_size) +
                        " is not a power of two between 512 and 65536");
    if (o.num_blocks == 0) return fail(err, -EINVAL, "malloc: num_blocks must be > 0");
    if (o.num_blocks > (uint64_t(1) << 62) / o.block_size)
        return fail(err, -EINVAL, "malloc: size overflows");
    Uuid uuid{};
    if (!parse_optional_uuid(o.uuid, &uuid, err)) return -EINVAL;
    if (bdev_get_by_name(o.name)) return fail(err, -EEXIST, "bdev " + o.name + " already exists");
    size_t len = size_t(o.num_blocks * o.block_size);
    // Anonymous mmap: page aligned and zero filled. Populated now, on the control thread, so
    // that no write on the data path takes a page fault (first-touch faults cost 15% of a 4 KiB
    // random-write benchmark); 2 MiB huge pages when the pool has them, else THP if enabled.
    constexpr size_t kHuge = 2u << 20;
    void* mem = MAP_FAILED;
    if (len % kHuge == 0) {
        mem = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
    }
    if (mem == MAP_FAILED) {
        mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem != MAP_FAILED) {
            madvise(mem, len, MADV_HUGEPAGE);
            madvise(mem, len, MADV_POPULATE_WRITE);  // best effort (Linux 5.14+)
        }
    }
    if (mem == MAP_FAILED)
        return fail(
            err, -ENOMEM,
            "malloc: cannot allocate " + std::to_string(len) + " bytes: " + std::strerror(errno));
    auto b = std::make_unique<MallocBdev>(o.name, mem, len);
    b->block_size = o.block_size;
    b->num_blocks = o.num_blocks;
    b->uuid = uuid;
    b->optimal_io_boundary = o.optimal_io_boundary;
    b->max_transfer_blocks = o.max_transfer_blocks;
    int rc = bdev_register(std::move(b));  // frees the memory on failure
    if (rc) return fail(err, rc, "malloc: cannot register " + o.name + ": " + std::strerror(-rc));
    return 0;
}

void malloc_bdev_delete(const std::string& name, std::function<void(int)> done) {
    delete_module_bdev(name, &g_module, std::move(done));
}

}  // namespace nocstor
