// Who may use the management socket: the JSON-RPC socket is created 0600 (its owner only), or
// 0660 with the group of --rpc-group; an unknown group stops the daemon with a clear error.
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_env.h"
#include "interop_util.h"

using namespace nocstor::testing;

TEST(RpcSocketAccess, OwnerOnlyByDefault) {
    Daemon d({"--empty"});
    struct stat st {};
    ASSERT_EQ(::stat(d.socket().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, ::getuid());
    d.ok("spdk_get_version");
}

TEST(RpcSocketAccess, AGroupGetsReadWriteWithRpcGroup) {
    const gid_t gid = ::getgid();
    Daemon d({"--empty", "--rpc-group", std::to_string(gid)});
    struct stat st {};
    ASSERT_EQ(::stat(d.socket().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(st.st_gid, gid);
    d.ok("spdk_get_version");
}

TEST(RpcSocketAccess, AnUnknownGroupIsAClearStartupError) {
    const std::string dir = temp_dir();
    const std::string sock = dir + "/rpc.sock";
    int rc = 0;
    const std::string out = run_command("timeout 20 " + std::string(NOCSTOR_BIN_DIR) +
                                            "/nocstor --empty --no-http -r " + sock +
                                            " --rpc-group no-such-group-nocstor 2>&1",
                                        &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(rc, 124) << "nocstor kept running: " << out;
    EXPECT_NE(out.find("no group 'no-such-group-nocstor'"), std::string::npos) << out;
    EXPECT_NE(::access(sock.c_str(), F_OK), 0) << "a socket was left behind";
}
