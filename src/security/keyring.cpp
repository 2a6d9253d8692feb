#include "security/keyring.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "security/dhchap.h"

namespace nocstor::security {

namespace {

constexpr size_t kMaxKeyFileBytes = 4096;

bool valid_name(const std::string& s) {
    return !s.empty() && s.size() <= 255 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return c > 0x20 && c < 0x7f && c != '/';
    });
}

// A secret is shared by its holders; the last one wipes it.
std::shared_ptr<std::string> make_secret(std::string s) {
    return std::shared_ptr<std::string>(new std::string(std::move(s)), [](std::string* p) {
        wipe(*p);
        delete p;
    });
}

}  // namespace

Keyring& Keyring::instance() {
    static Keyring k;
    return k;
}

int Keyring::add_file_key(const std::string& name, const std::string& path, std::string* err) {
    if (!valid_name(name)) {
        *err = "key name must be 1-255 printable characters without spaces or '/'";
        return -EINVAL;
    }
    if (keys_.count(name)) {
        *err = "key " + name + " already exists";
        return -EEXIST;
    }
    if (path.empty() || path[0] != '/') {
        *err = "path must be absolute";
        return -EINVAL;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        const int e = errno;
        *err = fmt::format("cannot open {}: {}", path, std::strerror(e));
        return -e;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        *err = path + " is not a regular file";
        return -EINVAL;
    }
    if (st.st_mode & 0077) {
        ::close(fd);
        *err = fmt::format("{} is readable by others (mode 0{:o}): a key file must be 0600", path,
                           st.st_mode & 0777);
        return -EINVAL;
    }
    std::string content(kMaxKeyFileBytes + 1, '\0');
    ssize_t n = ::read(fd, content.data(), content.size());
    ::close(fd);
    if (n < 0) {
        const int e = errno;
        wipe(content);
        *err = fmt::format("cannot read {}: {}", path, std::strerror(e));
        return -e;
    }
    content.resize(size_t(n));
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r'))
        content.pop_back();
    if (size_t(n) > kMaxKeyFileBytes) {
        wipe(content);
        *err = fmt::format("{} is larger than {} bytes", path, kMaxKeyFileBytes);
        return -EINVAL;
    }
    if (content.empty()) {
        *err = path + " is empty";
        return -EINVAL;
    }
    keys_[name] = Entry{path, make_secret(std::move(content))};
    return 0;
}

int Keyring::remove(const std::string& name, std::string* err) {
    auto it = keys_.find(name);
    if (it == keys_.end()) {
        *err = "key " + name + " does not exist";
        return -ENOENT;
    }
    keys_.erase(it);
    return 0;
}

std::shared_ptr<const std::string> Keyring::get(const std::string& name) const {
    auto it = keys_.find(name);
    return it == keys_.end() ? nullptr : it->second.secret;
}

std::vector<KeyInfo> Keyring::list() const {
    std::vector<KeyInfo> out;
    for (const auto& [name, e] : keys_)
        out.push_back(KeyInfo{name, e.path, e.secret.use_count() - 1});
    return out;
}

void Keyring::clear() {
    keys_.clear();
}

namespace {

template <class T, class Parse>
bool parse_key(const Keyring& k, const std::string& name, T* out, std::string* err, Parse parse) {
    auto secret = k.get(name);
    if (!secret) {
        *err = "no key " + name + " in the keyring (keyring_file_add_key)";
        return false;
    }
    std::string why;
    if (!parse(*secret, out, &why)) {
        *err = "key " + name + ": " + why;
        return false;
    }
    return true;
}

}  // namespace

bool Keyring::dhchap_secret(const std::string& name, DhchapSecret* out, std::string* err) const {
    return parse_key(*this, name, out, err, parse_dhchap_secret);
}

bool Keyring::tls_psk(const std::string& name, TlsPsk* out, std::string* err) const {
    return parse_key(*this, name, out, err, parse_tls_psk);
}

}  // namespace nocstor::security
