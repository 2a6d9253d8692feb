// How nocstorctl's command groups plug into main(): each group adds its subcommands to the CLI
// and a handler per leaf subcommand; main runs the handler of the one that was parsed.
#pragma once

#include "tools/nocstorctl/client.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <utility>
#include <vector>

namespace nocstor::ctl {

struct Handlers {
    std::vector<std::pair<CLI::App*, std::function<int()>>> list;
    void add(CLI::App* cmd, std::function<int()> fn) { list.emplace_back(cmd, std::move(fn)); }
};

// nocstorctl raid ...
void add_raid_commands(CLI::App& app, Ctl& ctl, Handlers& handlers);
// nocstorctl lvol ...
void add_lvol_commands(CLI::App& app, Ctl& ctl, Handlers& handlers);
// nocstorctl volume ...
void add_volume_commands(CLI::App& app, Ctl& ctl, Handlers& handlers);
// nocstorctl iscsi ...
void add_iscsi_commands(CLI::App& app, Ctl& ctl, Handlers& handlers);
// nocstorctl vhost ...
void add_vhost_commands(CLI::App& app, Ctl& ctl, Handlers& handlers);
// nocstorctl ublk ...
void add_ublk_commands(CLI::App& app, Ctl& ctl, Handlers& handlers);

}  // namespace nocstor::ctl
