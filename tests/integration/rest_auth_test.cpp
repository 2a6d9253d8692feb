// The REST API's trust boundary: without the management token (a 0600 file next to the RPC
// socket) it is read-only, for every local user; with it, it changes the configuration.
#include "daemon_env.h"

#include <grp.h>
#include <sys/stat.h>

#include <cstdio>

using namespace nocstor::testing;
using nlohmann::json;

namespace {

struct Mutation {
    const char* method;
    std::string path;
    std::string body;
};

// Every route that changes something (and the one that reveals the configuration).
std::vector<Mutation> mutations() {
    const std::string nqn = "nqn.2024-01.io.nocstor:auth";
    return {
        {"POST", "/api/v1/bdevs", R"({"type":"uring","name":"Shadow","filename":"/etc/shadow"})"},
        {"POST", "/api/v1/bdevs",
         R"({"type":"malloc","name":"X","num_blocks":64,"block_size":512})"},
        {"DELETE", "/api/v1/bdevs/Base", ""},
        {"POST", "/api/v1/subsystems",
         R"({"nqn":"nqn.2024-01.io.nocstor:evil","allow_any_host":true})"},
        {"DELETE", "/api/v1/subsystems/" + nqn, ""},
        {"POST", "/api/v1/subsystems/" + nqn + "/namespaces", R"({"bdev_name":"Base"})"},
        {"DELETE", "/api/v1/subsystems/" + nqn + "/namespaces/1", ""},
        {"POST", "/api/v1/subsystems/" + nqn + "/listeners",
         R"({"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"0"})"},
        {"POST", "/api/v1/subsystems/" + nqn + "/hosts",
         R"({"host":"nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001"})"},
        {"DELETE", "/api/v1/subsystems/" + nqn + "/hosts/nqn.2014-08.org.nvmexpress:uuid:x", ""},
        {"POST", "/api/v1/rpc/bdev_malloc_create",
         R"({"name":"Y","num_blocks":64,"block_size":512})"},
        {"POST", "/api/v1/rpc/bdev_get_bdevs", "{}"},
        {"GET", "/api/v1/config", ""},
    };
}

void set_up_state(Daemon& d) {
    d.ok("bdev_malloc_create", {{"name", "Base"}, {"num_blocks", 256}, {"block_size", 512}});
    d.ok("nvmf_create_subsystem", {{"nqn", "nqn.2024-01.io.nocstor:auth"}});
    d.ok("nvmf_subsystem_add_ns",
         {{"nqn", "nqn.2024-01.io.nocstor:auth"}, {"namespace", {{"bdev_name", "Base"}}}});
}

TEST(RestAuth, TokenFileIsPrivateAndRemovedAtStop) {
    Daemon d({"--empty"});
    const std::string path = d.socket() + ".token";
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, geteuid());
    const std::string token = d.token();
    ASSERT_EQ(token.size(), 64u);
    EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(d.log().find(path), std::string::npos) << "the token file is named at start";
    d.restart();
    EXPECT_NE(d.token(), token) << "a new token at every start";
    EXPECT_EQ(d.stop(), 0);
    EXPECT_NE(stat(path.c_str(), &st), 0) << "the token file is removed at a clean stop";
}

TEST(RestAuth, WithoutTheTokenNothingChanges) {
    Daemon d({"--empty"});
    set_up_state(d);
    const json before = d.ok("save_config");
    const uint16_t p = d.http_port();
    const std::string wrong(64, 'a');
    for (const auto& m : mutations()) {
        for (const std::string& token : {std::string(), wrong}) {
            HttpReply r = http_request(p, m.method, m.path, m.body, token);
            EXPECT_EQ(r.status, 401) << m.method << " " << m.path << " token '" << token << "'";
            EXPECT_NE(r.headers.find("WWW-Authenticate: Bearer"), std::string::npos);
            EXPECT_NE(r.body.find(d.socket() + ".token"), std::string::npos) << r.body;
        }
    }
    EXPECT_EQ(d.ok("save_config"), before);
    // Reads stay open.
    EXPECT_EQ(http_request(p, "GET", "/api/v1/bdevs").status, 200);
    EXPECT_EQ(http_request(p, "GET", "/api/v1/subsystems").status, 200);
    HttpReply metrics = http_request(p, "GET", "/metrics");
    ASSERT_EQ(metrics.status, 200);
    const size_t refused = 2 * mutations().size();
    EXPECT_NE(metrics.body.find("nocstor_http_auth_failures_total " + std::to_string(refused)),
              std::string::npos)
        << metrics.body;
    EXPECT_NE(d.log().find("management token"), std::string::npos) << "failures are logged";
    // A wrong token is refused even on a read.
    EXPECT_EQ(http_request(p, "GET", "/api/v1/bdevs", "", wrong).status, 401);
}

TEST(RestAuth, WithTheTokenEveryMutationWorks) {
    Daemon d({"--empty"});
    set_up_state(d);
    const uint16_t p = d.http_port();
    const std::string t = d.token();
    EXPECT_EQ(http_request(p, "GET", "/api/v1/config", "", t).status, 200);
    EXPECT_EQ(http_request(p, "POST", "/api/v1/bdevs",
                           R"({"type":"malloc","name":"X","num_blocks":64,"block_size":512})", t)
                  .status,
              201);
    const std::string nqn = "nqn.2024-01.io.nocstor:auth";
    EXPECT_EQ(
        http_request(
            p, "POST", "/api/v1/subsystems/" + nqn + "/hosts",
            R"({"host":"nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001"})", t)
            .status,
        201);
    EXPECT_EQ(
        http_request(p, "DELETE", "/api/v1/subsystems/" + nqn + "/namespaces/1", "", t).status,
        200);
    EXPECT_EQ(http_request(p, "DELETE", "/api/v1/subsystems/" + nqn, "", t).status, 200);
    EXPECT_EQ(http_request(p, "DELETE", "/api/v1/bdevs/Base", "", t).status, 200);
    // "Bearer" is case-insensitive.
    HttpReply r = http_request(p, "POST", "/api/v1/rpc/bdev_get_bdevs", "{}", t);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body).size(), 1u);  // X
}

// The attack from the issue, as an unprivileged local user: it cannot read the token and every
// mutating request answers 401.
TEST(RestAuth, UnprivilegedUserCannotReadTheTokenOrChangeAnything) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run part of the test as nobody";
    Daemon d({"--empty"});
    set_up_state(d);
    const json before = d.ok("save_config");
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    const pid_t child = fork();
    if (child == 0) {
        close(pipefd[0]);
        if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
            setresuid(65534, 65534, 65534) != 0)
            _exit(90);
        std::string out;
        FILE* f = fopen((d.socket() + ".token").c_str(), "r");
        out += f ? "readable;" : "unreadable;";
        for (const auto& m : mutations())
            out +=
                std::to_string(http_request(d.http_port(), m.method, m.path, m.body).status) + ";";
        (void)!write(pipefd[1], out.data(), out.size());
        _exit(0);
    }
    close(pipefd[1]);
    std::string got;
    char buf[512];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0) got.append(buf, size_t(n));
    close(pipefd[0]);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    std::string expected = "unreadable;";
    for (size_t i = 0; i < mutations().size(); ++i) expected += "401;";
    EXPECT_EQ(got, expected);
    EXPECT_EQ(d.ok("save_config"), before);
}

// nocstorctl --http uses the token file; without a readable token it says so.
TEST(RestAuth, NocstorctlOverHttpUsesTheToken) {
    Daemon d({"--empty"});
    const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket() +
                            " --http http://127.0.0.1:" + std::to_string(d.http_port());
    auto run = [](const std::string& cmd, std::string* out) {
        FILE* p = popen((cmd + " 2>&1").c_str(), "r");
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
        return WEXITSTATUS(pclose(p));
    };
    std::string out;
    EXPECT_EQ(run(ctl + " bdev create malloc --name H --size 1M", &out), 0) << out;
    EXPECT_EQ(d.ok("bdev_get_bdevs", {{"name", "H"}}).size(), 1u);
    const std::string bad = d.dir() + "/bad.token";
    FILE* f = fopen(bad.c_str(), "w");
    fputs("0000\n", f);
    fclose(f);
    out.clear();
    EXPECT_EQ(run(ctl + " --token-file " + bad + " bdev create malloc --name I --size 1M", &out),
              1);
    EXPECT_NE(out.find("management token"), std::string::npos) << out;
    out.clear();
    EXPECT_EQ(run(ctl + " --token-file " + d.dir() + "/missing call spdk_get_version", &out), 3);
    EXPECT_NE(out.find("cannot read the management token"), std::string::npos) << out;
}

}  // namespace
