// Unix stream socket helpers shared by the JSON-RPC server and client.
#pragma once

#include <chrono>
#include <string>

namespace nocstor::control {

// Creates a non-blocking listening socket at path. A stale socket file (nobody answers) is
// removed first; a live listener or a non-socket file at path is an error. Returns -1 and
// sets *error on failure.
// The socket file is created 0600 (owner only), or 0660 owned by `group` (a name or a numeric
// gid) when given: whoever can open it can reconfigure the daemon.
int listen_unix_socket(const std::string& path, int backlog, std::string* error,
                       const std::string& group = "");

// Connects a blocking-mode-agnostic client socket (returned non-blocking) within timeout.
// Returns -1 and sets *error ("cannot connect to PATH: is nocstor running? (reason)").
int connect_unix_socket(const std::string& path, std::chrono::milliseconds timeout,
                        std::string* error);

}  // namespace nocstor::control
