// What the raid module's files share on the control path: the module object, the registry of
// arrays still waiting for members, and the steps of creating an array. Internal.
#pragma once

#include "modules/raid/raid.h"
#include "modules/raid/raid_bdev.h"
#include "modules/raid/raid_superblock.h"

#include <memory>
#include <string>
#include <vector>

namespace nocstor::raid::detail {

class RaidModule : public BdevModule {
  public:
    RaidModule() : BdevModule("raid") {}
    // Builds arrays whose members appear: by name (configuring arrays) and from superblocks.
    void examine(Bdev* b) override;
    void write_config_json(nlohmann::json& calls) const override;
};
extern RaidModule g_module;

// An array created before all its members exist ("configuring", as in SPDK): the members that
// are there are claimed; examine() claims the others as they appear and builds the array once
// the last one is there.
struct PendingRaid {
    RaidCreateOptions opts;
    std::vector<BdevDesc*> descs;  // per slot; null while the member is missing
};
std::vector<std::unique_ptr<PendingRaid>>& pending();
PendingRaid* find_pending(const std::string& name);
RaidBdev* find_raid(const std::string& name);
// A registered array with this UUID.
RaidBdev* find_raid_by_uuid(const Uuid& uuid);

// Opens a member writable and claims it for the raid module (events go to raid/slot).
int open_member(const std::string& raid, uint32_t slot, const std::string& base, BdevDesc** out,
                std::string* err);
void close_members(std::vector<BdevDesc*>& descs);

// Checks what can be checked before the members exist.
int validate(const RaidCreateOptions& o, std::string* err);
// The array object over claimed members (null: missing at assembly), geometry from the members
// or from a superblock. Takes the descriptors (closed on failure).
std::unique_ptr<RaidBdev> make_raid(const RaidCreateOptions& o, std::vector<BdevDesc*> descs,
                                    const Superblock* from, std::string* err);
int register_raid(std::unique_ptr<RaidBdev> raid, bool initial_resync, std::string* err);
int build(const RaidCreateOptions& o, std::vector<BdevDesc*> descs, std::string* err);

// Superblock arrays (raid_assemble.cpp).
void create_with_superblock(const RaidCreateOptions& o, std::function<void(int, std::string)> done);
void examine_superblock(Bdev* b);
void assembly_list(const std::string& category, nlohmann::json* out);

}  // namespace nocstor::raid::detail
