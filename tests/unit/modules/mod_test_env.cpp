#include "mod_test_env.h"

#include "util/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>

namespace nocstor::test {

namespace {
struct Waiter {
    std::promise<void> p;
    std::atomic<bool> set{false};
    void done() {
        if (!set.exchange(true)) p.set_value();
    }
};
}  // namespace

ModEnv::ModEnv(int data_threads)
    : ModEnv({{0, ClusterSpec::Role::Control, {0}},
              {1, ClusterSpec::Role::Data, std::vector<int>(size_t(data_threads), 0)}}) {}

ModEnv::ModEnv(std::vector<ClusterSpec> plan, uint32_t ring_slots) {
    set_log_level("*", "warn");
    register_builtin_bdev_modules();
    RuntimeOptions o;
    o.clusters = std::move(plan);
    o.reactor.pin = false;
    o.reactor.idle_sleep_us = 100;
    o.noc.ring_slots = ring_slots;
    // The default pool sizes for each data cluster's partition (the runtime splits the total).
    uint32_t data = 0;
    for (const auto& c : o.clusters) data += c.role == ClusterSpec::Role::Data;
    o.noc.buffers.small_count *= data;
    o.noc.buffers.large_count *= data;
    rt_ = std::make_unique<Runtime>(o);
    rt_->start();
}

ModEnv::~ModEnv() {
    EXPECT_TRUE(remove_all_bdevs());
    rt_->request_shutdown();
    rt_->wait();
}

bool ModEnv::run(Thread* t, std::function<void()> fn, int timeout_ms) {
    return run_async(
        t,
        [fn = std::move(fn)](std::function<void()> done) {
            fn();
            done();
        },
        timeout_ms);
}

bool ModEnv::run_async(Thread* t, std::function<void(std::function<void()>)> fn, int timeout_ms) {
    auto w = std::make_shared<Waiter>();
    auto f = std::make_shared<std::function<void(std::function<void()>)>>(std::move(fn));
    auto fut = w->p.get_future();
    t->send([w, f] { (*f)([w] { w->done(); }); });
    return fut.wait_for(std::chrono::milliseconds(timeout_ms)) == std::future_status::ready;
}

bool ModEnv::remove_all_bdevs() {
    bool ok = run_async(ctl(), [](std::function<void()> done) { bdev_layer_fini(done); });
    return ok && bdev_list().empty();
}

TestDesc::TestDesc(ModEnv& env, const std::string& name, bool writable) : env_(env) {
    env_.run(env_.data(), [&] {
        open_rc_ = bdev_open(name, writable, nullptr, &desc_);
        if (open_rc_ == 0) ch_ = bdev_get_io_channel(desc_);
    });
}

TestDesc::~TestDesc() {
    close();
}

void TestDesc::close() {
    if (!desc_) return;
    env_.run(env_.data(), [&] {
        bdev_put_io_channel(ch_);
        bdev_close(desc_);
    });
    desc_ = nullptr;
    ch_ = nullptr;
}

IoResult TestDesc::io(IoType t, iovec* iov, int iovcnt, uint64_t off, uint64_t n) {
    IoResult r;
    struct Ctx {
        IoResult* r;
        std::function<void()> done;
    };
    bool finished = env_.run_async(env_.data(), [&](std::function<void()> done) {
        auto* c = new Ctx{&r, std::move(done)};
        auto cb = [](BdevIo* io, bool ok, void* arg) {
            auto* c = static_cast<Ctx*>(arg);
            c->r->ok = ok;
            c->r->status = io->status;
            c->r->sct = io->nvme_sct;
            c->r->sc = io->nvme_sc;
            c->r->completed = true;
            bdev_free_io(io);
            auto d = std::move(c->done);
            delete c;
            d();
        };
        switch (t) {
            case IoType::Read:
                r.rc = bdev_readv(desc_, ch_, iov, iovcnt, off, n, cb, c);
                break;
            case IoType::Write:
                r.rc = bdev_writev(desc_, ch_, iov, iovcnt, off, n, cb, c);
                break;
            case IoType::Flush:
                r.rc = bdev_flush(desc_, ch_, off, n, cb, c);
                break;
            case IoType::Unmap:
                r.rc = bdev_unmap(desc_, ch_, off, n, cb, c);
                break;
            case IoType::WriteZeroes:
                r.rc = bdev_write_zeroes(desc_, ch_, off, n, cb, c);
                break;
            case IoType::Reset:
                r.rc = bdev_reset(desc_, ch_, cb, c);
                break;
            default:
                r.rc = -ENOTSUP;
        }
        if (r.rc != 0) {
            auto d = std::move(c->done);
            delete c;
            d();
        }
    });
    EXPECT_TRUE(finished) << "I/O did not complete in time";
    return r;
}

IoResult TestDesc::write(void* buf, uint64_t off, uint64_t n) {
    iovec v{buf, n * bdev()->block_size};
    return io(IoType::Write, &v, 1, off, n);
}

IoResult TestDesc::read(void* buf, uint64_t off, uint64_t n) {
    iovec v{buf, n * bdev()->block_size};
    return io(IoType::Read, &v, 1, off, n);
}

AlignedBuf::AlignedBuf(size_t n) : size(n) {
    void* m = nullptr;
    if (posix_memalign(&m, 4096, n ? n : 1) != 0) std::abort();
    p = static_cast<unsigned char*>(m);
    std::memset(p, 0, n);
}

AlignedBuf::~AlignedBuf() {
    free(p);
}

void fill_pattern(void* buf, size_t n, uint64_t seed) {
    auto* b = static_cast<unsigned char*>(buf);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = uint8_t(x);
    }
}

BdevStats get_stats(ModEnv& env, Bdev* b) {
    BdevStats out;
    env.run_async(env.ctl(), [&](std::function<void()> done) {
        bdev_get_stats(b, [&out, done](const BdevStats& s) {
            out = s;
            done();
        });
    });
    return out;
}

TempDir::TempDir() {
    char tmpl[] = "/var/tmp/nocstor-mod-XXXXXX";
    const char* p = mkdtemp(tmpl);
    path = p ? p : "";
}

TempDir::~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
}

std::string TempDir::make_file(const std::string& name, uint64_t size) {
    std::string f = path + "/" + name;
    int fd = ::open(f.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd >= 0) {
        if (ftruncate(fd, off_t(size)) != 0) f.clear();
        ::close(fd);
    }
    return f;
}

}  // namespace nocstor::test
