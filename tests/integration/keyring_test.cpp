// The keyring methods against the real daemon: key files must be private (0600), secrets never
// come back out (keyring_get_keys, save_config and errors show names and paths only), and a
// saved configuration brings the keys back after a restart.
#include "daemon_env.h"

#include <sys/stat.h>

#include <fstream>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

const char* kSecret = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";

std::string write_key(const std::string& dir, const std::string& name, mode_t mode) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << kSecret << "\n";
    ::chmod(path.c_str(), mode);
    return path;
}

}  // namespace

TEST(Keyring, FileKeysArePrivateAndNeverShown) {
    const std::string keys = temp_dir();
    const std::string good = write_key(keys, "host0.key", 0600);
    const std::string open_to_all = write_key(keys, "world.key", 0644);
    Daemon d({"--empty"});
    EXPECT_EQ(d.ok("keyring_get_keys"), json::array());
    d.ok("keyring_file_add_key", {{"name", "key0"}, {"path", good}});
    auto r = d.call("keyring_file_add_key", {{"name", "key0"}, {"path", good}});
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("already exists"), std::string::npos) << r.message;
    r = d.call("keyring_file_add_key", {{"name", "key1"}, {"path", open_to_all}});
    EXPECT_EQ(r.code, -32602);
    EXPECT_NE(r.message.find("0600"), std::string::npos) << r.message;
    r = d.call("keyring_file_add_key", {{"name", "key2"}, {"path", "relative.key"}});
    EXPECT_EQ(r.code, -32602);
    r = d.call("keyring_file_add_key", {{"name", "key3"}, {"path", keys + "/missing.key"}});
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message.find("missing.key"), std::string::npos) << r.message;
    r = d.call("keyring_file_add_key", {{"name", "bad/name"}, {"path", good}});
    EXPECT_EQ(r.code, -32602);

    const json list = d.ok("keyring_get_keys");
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0]["name"], "key0");
    EXPECT_EQ(list[0]["path"], good);
    EXPECT_EQ(list[0]["module"], "keyring_file");
    const json saved = d.ok("save_config");
    for (const std::string& text : {list.dump(), saved.dump()})
        EXPECT_EQ(text.find("AAECAwQF"), std::string::npos) << "a secret leaked: " << text;
    bool in_config = false;
    for (const auto& s : saved["subsystems"])
        if (s["subsystem"] == "keyring")
            in_config = s["config"].dump().find("keyring_file_add_key") != std::string::npos;
    EXPECT_TRUE(in_config);
    EXPECT_EQ(d.log().find("AAECAwQF"), std::string::npos) << "a secret leaked into the log";

    d.ok("keyring_file_remove_key", {{"name", "key0"}});
    EXPECT_FALSE(d.call("keyring_file_remove_key", {{"name", "key0"}}).ok());
    EXPECT_EQ(d.ok("keyring_get_keys"), json::array());
}

TEST(Keyring, SavedConfigurationBringsKeysBack) {
    const std::string keys = temp_dir();
    const std::string path = write_key(keys, "k.key", 0400);
    const std::string dir = temp_dir();
    const std::string cfg = dir + "/nocstor.json";
    {
        Daemon d({"-c", cfg, "--persist"}, dir);
        d.ok("keyring_file_add_key", {{"name", "k"}, {"path", path}});
    }
    Daemon d({"-c", cfg}, temp_dir());
    const json list = d.ok("keyring_get_keys");
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0]["name"], "k");
}
