// Command handlers, by queue type. Each takes a request whose SQE is in r->cmd and completes it
// through r->conn (now or later).
#pragma once

#include "nvmf/request.h"

namespace nocstor::nvmf {

void fabrics_command(Request* r);  // fabrics_cmds.cpp: Connect, Property Get/Set, Disconnect
void admin_command(Request* r);    // admin_cmds.cpp
void io_command(Request* r);       // io_cmds.cpp

}  // namespace nocstor::nvmf
