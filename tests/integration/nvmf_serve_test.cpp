// Not a test by default: with NOCSTOR_NVMF_SERVE=<seconds> it serves a 256 MiB malloc namespace
// as nqn.2024-01.io.nocstor:vol1 on 127.0.0.1:${NOCSTOR_NVMF_PORT:-4420} (and discovery on the
// same port) for that long, for shared/interop/kernel-nvme-tcp.sh.
#include <chrono>
#include <cstdlib>
#include <thread>

#include "nvmf_test_env.h"

using namespace nocstor::nvmf::testing;

TEST(NvmfServe, ServeForKernelHarness) {
    const char* secs = std::getenv("NOCSTOR_NVMF_SERVE");
    if (!secs) GTEST_SKIP() << "set NOCSTOR_NVMF_SERVE=<seconds> to serve";
    const char* port = std::getenv("NOCSTOR_NVMF_PORT");
    TargetEnvOptions o;
    o.port = static_cast<uint16_t>(port ? std::atoi(port) : 4420);
    o.bdev_bytes = 256ull << 20;
    TargetEnv env(o);
    std::fprintf(stderr, "serving %s on 127.0.0.1:%u\n", kTestNqn, env.port());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::atoi(secs));
    while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}
