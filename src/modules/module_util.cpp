#include "modules/module_util.h"

#include <cerrno>

namespace nocstor {

bool parse_optional_uuid(const std::string& text, Uuid* out, std::string* err) {
    if (text.empty()) return true;
    if (uuid_parse(text, out)) return true;
    if (err) *err = "invalid uuid '" + text + "'";
    return false;
}

bool valid_block_size(uint32_t bs) {
    return bs >= 512 && bs <= 65536 && (bs & (bs - 1)) == 0;
}

void delete_module_bdev(const std::string& name, BdevModule* module,
                        std::function<void(int)> done) {
    Bdev* b = bdev_get_by_name(name);
    if (!b || b->module != module) {
        if (done) done(-ENODEV);
        return;
    }
    bdev_unregister(b, std::move(done));
}

}  // namespace nocstor
