#include "control/mgmt_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace nocstor::control {

std::string generate_mgmt_token() {
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1)
        throw std::runtime_error("cannot generate the management token: no randomness");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string token;
    for (unsigned char b : bytes) {
        token.push_back(kHex[b >> 4]);
        token.push_back(kHex[b & 0xF]);
    }
    OPENSSL_cleanse(bytes, sizeof(bytes));
    return token;
}

std::string default_token_path(const std::string& rpc_socket) {
    return rpc_socket + ".token";
}

bool write_token_file(const std::string& path, const std::string& token, std::string* error) {
    std::string tmp = path + ".XXXXXX";
    const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600, O_EXCL
    if (fd < 0) {
        *error = "cannot create " + tmp + ": " + std::strerror(errno);
        return false;
    }
    const std::string text = token + "\n";
    bool ok = ::fchmod(fd, 0600) == 0 &&
              ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fsync(fd) == 0;
    const int write_errno = errno;
    ::close(fd);
    if (!ok) {
        *error = "cannot write " + tmp + ": " + std::strerror(write_errno);
        ::unlink(tmp.c_str());
        return false;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        *error = "cannot create " + path + ": " + std::strerror(errno);
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

bool read_token_file(const std::string& path, std::string* token, std::string* error) {
    std::ifstream in(path);
    if (!in) {
        *error = "cannot read the management token from " + path + ": " + std::strerror(errno) +
                 (errno == EACCES ? " (only the daemon's user may read it)" : "");
        return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    if (text.empty()) {
        *error = path + " is empty";
        return false;
    }
    *token = std::move(text);
    return true;
}

bool bearer_token_matches(std::string_view authorization, std::string_view token) {
    constexpr std::string_view kScheme = "bearer ";
    if (token.empty() || authorization.size() < kScheme.size()) return false;
    for (size_t i = 0; i < kScheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
    }
    std::string_view given = authorization.substr(kScheme.size());
    while (!given.empty() && (given.front() == ' ' || given.front() == '\t'))
        given.remove_prefix(1);
    while (!given.empty() && (given.back() == ' ' || given.back() == '\t')) given.remove_suffix(1);
    // The length of the token is not a secret (always 64); its bytes are compared in constant
    // time so that timing does not reveal how much of a guess was right.
    if (given.size() != token.size()) return false;
    return CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

}  // namespace nocstor::control
