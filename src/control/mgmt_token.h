// The management token: a random secret the daemon creates at start and writes to a file only
// its owner can read (0600, next to the JSON-RPC socket by default). Whoever can read the file
// may change the configuration over REST; everyone else gets a read-only view. This gives the
// REST API the same trust boundary as the JSON-RPC socket.
#pragma once

#include <string>
#include <string_view>

namespace nocstor::control {

// 32 random bytes from OpenSSL's CSPRNG, as 64 lower-case hex characters.
std::string generate_mgmt_token();

// "<rpc_socket>.token": the default token file of a daemon with that RPC socket.
std::string default_token_path(const std::string& rpc_socket);

// Writes token to path with mode 0600 (a private temporary file renamed over the path, so the
// file is never readable by others, and a symlink planted at path is replaced, not followed).
bool write_token_file(const std::string& path, const std::string& token, std::string* error);
// Reads a token file (trailing whitespace dropped).
bool read_token_file(const std::string& path, std::string* token, std::string* error);

// True if the Authorization header value is "Bearer <token>" (scheme case-insensitive);
// the token is compared in constant time.
bool bearer_token_matches(std::string_view authorization, std::string_view token);

}  // namespace nocstor::control
