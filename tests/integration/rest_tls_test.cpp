// The REST/metrics server over HTTPS (OpenSSL), checked with curl and certificates made by the
// openssl tool: TLS with the management token, client certificates required by a CA, public
// /metrics with --metrics-public, and the refusal to serve REST beyond loopback without TLS.
#include <fstream>

#include "daemon_env.h"
#include "interop_util.h"

using namespace nocstor::testing;

namespace {

// A CA, a server certificate for 127.0.0.1 and a client certificate, in dir.
bool make_certificates(const std::string& dir, std::string* out) {
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string cmd =
        "set -e; cd " + dir + "; " + "openssl req -x509 " + key +
        " -days 2 -subj /CN=nocstor-test-ca -keyout ca.key "
        "-out ca.pem; "
        "openssl req " +
        key +
        " -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr; "
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext; "
        "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile san.ext -out srv.pem; "
        "openssl req " +
        key +
        " -subj /CN=operator -keyout cli.key -out cli.csr; "
        "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-out cli.pem; "
        "openssl req -x509 " +
        key +
        " -days 2 -subj /CN=stranger -keyout other.key "
        "-out other.pem 2>&1";
    int rc = 0;
    *out = run_command("(" + cmd + ") 2>&1", &rc);
    return rc == 0;
}

struct Curl {
    std::string base;
    std::string dir;
    // curl with the CA; returns "HTTP-STATUS BODY", or "rc=N" when the transfer failed.
    std::string get(const std::string& path, const std::string& extra = "") const {
        int rc = 0;
        const std::string out =
            run_command("curl -sS --max-time 10 --cacert " + dir + "/ca.pem " + extra +
                            " -w ' HTTP=%{http_code}' " + base + path + " 2>&1",
                        &rc);
        return rc == 0 ? out : "rc=" + std::to_string(rc) + " " + out;
    }
};

class RestTls : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!have_tool("curl") || !have_tool("openssl"))
            GTEST_SKIP() << "curl or openssl is not installed";
        dir_ = temp_dir();
        std::string out;
        ASSERT_TRUE(make_certificates(dir_, &out)) << out;
    }
    std::vector<std::string> tls_args() const {
        return {"--empty", "--http-tls-cert", dir_ + "/srv.pem", "--http-tls-key",
                dir_ + "/srv.key"};
    }
    std::string dir_;
};

TEST_F(RestTls, HttpsWithTheTokenAndNoPlainHttp) {
    Daemon d(tls_args());
    Curl c{"https://127.0.0.1:" + std::to_string(d.http_port()), dir_};
    std::string r = c.get("/metrics");
    EXPECT_NE(r.find("HTTP=200"), std::string::npos) << r;
    EXPECT_NE(r.find("nocstor_"), std::string::npos) << r;
    r = c.get("/api/v1/version");
    EXPECT_NE(r.find("HTTP=200"), std::string::npos) << r;
    // Changes still need the token.
    const std::string body =
        "-X POST -H 'Content-Type: application/json' -d "
        "'{\"type\":\"malloc\",\"name\":\"M9\",\"num_blocks\":256,"
        "\"block_size\":512}'";
    r = c.get("/api/v1/bdevs", body);
    EXPECT_NE(r.find("HTTP=401"), std::string::npos) << r;
    std::string token;
    std::getline(std::ifstream(d.socket() + ".token"), token);
    ASSERT_FALSE(token.empty());
    r = c.get("/api/v1/bdevs", body + " -H 'Authorization: Bearer " + token + "'");
    EXPECT_NE(r.find("HTTP=201"), std::string::npos) << r;
    // Plain HTTP to the HTTPS port gets no answer; the daemon lives on.
    int rc = 0;
    const std::string plain = run_command(
        "curl -sS --max-time 5 http://127.0.0.1:" + std::to_string(d.http_port()) + "/metrics 2>&1",
        &rc);
    EXPECT_NE(rc, 0) << plain;
    EXPECT_NE(c.get("/api/v1/version").find("HTTP=200"), std::string::npos);
    EXPECT_NE(d.log().find("https://127.0.0.1"), std::string::npos);

    // nocstorctl over HTTPS: with the CA it works; without it the server is not trusted.
    const std::string ctl = std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket() +
                            " --http https://127.0.0.1:" + std::to_string(d.http_port());
    std::string out =
        run_command(ctl + " --cacert " + dir_ + "/ca.pem call bdev_get_bdevs 2>&1", &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("M9"), std::string::npos) << out;
    out = run_command(ctl + " call bdev_get_bdevs 2>&1", &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("TLS handshake"), std::string::npos) << out;
}

TEST_F(RestTls, AClientCaRequiresCertificates) {
    auto args = tls_args();
    args.insert(args.end(), {"--http-client-ca", dir_ + "/ca.pem"});
    Daemon d(args);
    Curl c{"https://127.0.0.1:" + std::to_string(d.http_port()), dir_};
    EXPECT_EQ(c.get("/api/v1/version").rfind("rc=", 0), 0u) << "served without a certificate";
    EXPECT_EQ(c.get("/metrics").rfind("rc=", 0), 0u);
    const std::string foreign =
        "--cert " + dir_ + "/other.pem --key " + dir_ + "/other.key";  // not signed by the CA
    EXPECT_EQ(c.get("/api/v1/version", foreign).rfind("rc=", 0), 0u);
    const std::string mine = "--cert " + dir_ + "/cli.pem --key " + dir_ + "/cli.key";
    const std::string r = c.get("/api/v1/version", mine);
    EXPECT_NE(r.find("HTTP=200"), std::string::npos) << r;
    // nocstorctl with the client certificate.
    int rc = 0;
    const std::string out =
        run_command(std::string(NOCSTOR_BIN_DIR) + "/nocstorctl -s " + d.socket() +
                        " --http https://127.0.0.1:" + std::to_string(d.http_port()) +
                        " --cacert " + dir_ + "/ca.pem --cert " + dir_ + "/cli.pem --key " + dir_ +
                        "/cli.key call spdk_get_version 2>&1",
                    &rc);
    EXPECT_EQ(rc, 0) << out;
}

TEST_F(RestTls, MetricsPublicLeavesOnlyMetricsOpen) {
    auto args = tls_args();
    args.insert(args.end(), {"--http-client-ca", dir_ + "/ca.pem", "--metrics-public"});
    Daemon d(args);
    Curl c{"https://127.0.0.1:" + std::to_string(d.http_port()), dir_};
    std::string r = c.get("/metrics");
    EXPECT_NE(r.find("HTTP=200"), std::string::npos) << r;
    r = c.get("/api/v1/version");
    EXPECT_NE(r.find("HTTP=403"), std::string::npos) << r;
    EXPECT_NE(r.find("client certificate"), std::string::npos) << r;
    r = c.get("/api/v1/version", "--cert " + dir_ + "/cli.pem --key " + dir_ + "/cli.key");
    EXPECT_NE(r.find("HTTP=200"), std::string::npos) << r;
}

TEST_F(RestTls, BadSettingsAreClearStartupErrors) {
    const std::string nocstor = "timeout 20 " + std::string(NOCSTOR_BIN_DIR) +
                                "/nocstor --empty -r " + dir_ + "/x.sock --http-port " +
                                std::to_string(free_tcp_port());
    struct Case {
        std::string args, want;
    } cases[] = {
        {"--http-address 0.0.0.0", "not a loopback address"},
        {"--http-tls-cert " + dir_ + "/srv.pem", "go together"},
        {"--http-tls-cert " + dir_ + "/srv.pem --http-tls-key " + dir_ + "/cli.key",
         "is it the key of"},
        {"--http-tls-cert " + dir_ + "/missing.pem --http-tls-key " + dir_ + "/srv.key",
         "missing.pem"},
        {"--http-client-ca " + dir_ + "/ca.pem", "need HTTPS"},
    };
    for (const Case& k : cases) {
        int rc = 0;
        const std::string out = run_command(nocstor + " " + k.args + " 2>&1", &rc);
        EXPECT_NE(rc, 0) << k.args << ": " << out;
        EXPECT_NE(rc, 124) << k.args << ": kept running";
        EXPECT_NE(out.find(k.want), std::string::npos) << k.args << ": " << out;
    }
}

}  // namespace
