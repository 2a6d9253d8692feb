// The keyring: named secrets (DH-HMAC-CHAP keys, later TLS PSKs) that other objects refer to by
// name, as SPDK's keyring does (keyring_file_add_key {name, path}). A key file must be a regular
// file readable by its owner only (mode 0600 or stricter: a secret others can read is no
// secret); its content is read when the key is added and kept in memory, never logged or
// returned by any method. Holders get a shared copy, so removing a key from the keyring does not
// pull it from under a subsystem that uses it. Control thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "security/dhchap.h"
#include "security/tls_psk.h"

namespace nocstor::security {

struct KeyInfo {
    std::string name;
    std::string path;
    long use_count = 0;  // holders besides the keyring
};

class Keyring {
  public:
    static Keyring& instance();

    // 0, or -EEXIST (name taken), -EINVAL (bad name, relative path, permissions, empty or
    // oversized file), -ENOENT / -EACCES (file) with *err.
    int add_file_key(const std::string& name, const std::string& path, std::string* err);
    int remove(const std::string& name, std::string* err);
    // The secret (nullptr when there is no such key).
    std::shared_ptr<const std::string> get(const std::string& name) const;
    std::vector<KeyInfo> list() const;  // by name

    // A DH-HMAC-CHAP secret ("DHHC-1:...") by key name; false with *err ("no key NAME in the
    // keyring ...", or what is wrong with the secret, never quoting it).
    bool dhchap_secret(const std::string& name, DhchapSecret* out, std::string* err) const;
    // A TLS PSK ("NVMeTLSkey-1:...") by key name, likewise.
    bool tls_psk(const std::string& name, TlsPsk* out, std::string* err) const;

    void clear();  // tests

  private:
    struct Entry {
        std::string path;
        std::shared_ptr<std::string> secret;
    };
    std::map<std::string, Entry> keys_;
};

}  // namespace nocstor::security
