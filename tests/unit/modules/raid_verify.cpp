#include "raid_verify.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <map>

namespace nocstor::test {

struct RandomVerify::Impl {
    ModEnv& env;
    Thread* thread;
    std::string name;
    std::vector<uint8_t>* shadow;
    BdevDesc* desc = nullptr;
    IoChannel* ch = nullptr;
    uint32_t bs = 512;
    uint64_t blocks = 0;

    // One run.
    struct Slot {
        Impl* impl = nullptr;
        bool busy = false;
        bool write = false;
        uint64_t off = 0, n = 0;
        std::unique_ptr<AlignedBuf> buf;
        std::vector<iovec> iov;
        BdevIoWaitEntry wait;
    };
    VerifyOptions opts;
    VerifyResult res;
    std::mt19937_64 rng;
    std::vector<Slot> slots;
    uint32_t issued = 0, completed = 0;
    std::map<uint64_t, uint64_t> inflight;  // start -> end of ranges in flight
    std::promise<void> done;

    Impl(ModEnv& e, Thread* t, std::string n, std::vector<uint8_t>* s)
        : env(e), thread(t), name(std::move(n)), shadow(s) {}

    bool overlaps(uint64_t a, uint64_t b) const {
        auto it = inflight.lower_bound(a);
        if (it != inflight.end() && it->first < b) return true;
        if (it != inflight.begin()) {
            --it;
            if (it->second > a) return true;
        }
        return false;
    }

    std::vector<iovec> shape(uint8_t* p, size_t len) {
        std::vector<iovec> v;
        if (!opts.scattered_iovecs || rng() % 3 == 0) {
            v.push_back({p, len});
            return v;
        }
        size_t prev = 0;
        size_t pieces = 1 + rng() % 5;
        std::vector<size_t> cuts;
        for (size_t i = 1; i < pieces; ++i) cuts.push_back(1 + rng() % (len - 1));
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
        for (size_t c : cuts) {
            v.push_back({p + prev, c - prev});
            prev = c;
        }
        v.push_back({p + prev, len - prev});
        return v;
    }

    void submit_next(Slot& s) {
        if (issued >= opts.ops) return;
        const uint64_t region = opts.region_blocks ? opts.region_blocks : blocks;
        for (int tries = 0; tries < 100; ++tries) {
            s.n = 1 + rng() % std::min<uint64_t>(opts.max_blocks, region);
            s.off = rng() % (region - s.n + 1);
            if (!overlaps(s.off, s.off + s.n)) break;
            s.n = 0;
        }
        if (s.n == 0) return;  // everything overlaps: let others finish first
        s.write = rng() % 100 < opts.write_percent;
        ++issued;
        s.busy = true;
        inflight[s.off] = s.off + s.n;
        const size_t len = s.n * bs;
        // A buffer offset by a random multiple of 4 bytes: members get unaligned memory too.
        const size_t skew = opts.scattered_iovecs ? (rng() % 8) * 4 : 0;
        uint8_t* p = s.buf->p + skew;
        if (s.write) {
            for (size_t i = 0; i < len; ++i) p[i] = uint8_t(rng());
        } else {
            std::memset(p, 0xEE, len);
        }
        s.iov = shape(p, len);
        issue(s);
    }

    void issue(Slot& s) {
        int rc = s.write ? bdev_writev(desc, ch, s.iov.data(), int(s.iov.size()), s.off, s.n,
                                       &Impl::completion, &s)
                         : bdev_readv(desc, ch, s.iov.data(), int(s.iov.size()), s.off, s.n,
                                      &Impl::completion, &s);
        if (rc == -ENOMEM) {
            s.wait.cb = [](void* a) {
                auto* sl = static_cast<Slot*>(a);
                sl->impl->issue(*sl);
            };
            s.wait.arg = &s;
            bdev_queue_io_wait(ch, &s.wait);
        } else if (rc) {
            finish_slot(s, false, IoStatus::Failed);
        }
    }

    static void completion(BdevIo* io, bool ok, void* arg) {
        auto* s = static_cast<Slot*>(arg);
        const IoStatus st = io->status;
        bdev_free_io(io);
        s->impl->finish_slot(*s, ok, st);
    }

    void finish_slot(Slot& s, bool ok, IoStatus st) {
        const size_t len = s.n * bs;
        if (!ok) {
            ++res.errors;
            if (res.first_error == IoStatus::Success) res.first_error = st;
        } else if (s.write) {
            ++res.writes;
            size_t at = s.off * bs;
            for (const iovec& v : s.iov) {
                std::memcpy(shadow->data() + at, v.iov_base, v.iov_len);
                at += v.iov_len;
            }
        } else {
            ++res.reads;
            size_t at = s.off * bs;
            for (const iovec& v : s.iov) {
                if (std::memcmp(shadow->data() + at, v.iov_base, v.iov_len) != 0) ++res.mismatches;
                at += v.iov_len;
            }
        }
        (void)len;
        inflight.erase(s.off);
        s.busy = false;
        ++completed;
        if (completed == opts.ops) {
            res.finished = true;
            done.set_value();
            return;
        }
        for (auto& other : slots)
            if (!other.busy) submit_next(other);
    }
};

RandomVerify::RandomVerify(ModEnv& env, Thread* t, const std::string& bdev,
                           std::vector<uint8_t>* shadow)
    : impl_(std::make_unique<Impl>(env, t, bdev, shadow)) {
    env.run(t, [this] {
        EXPECT_EQ(bdev_open(impl_->name, true, nullptr, &impl_->desc), 0);
        if (impl_->desc) {
            impl_->ch = bdev_get_io_channel(impl_->desc);
            impl_->bs = impl_->desc->bdev()->block_size;
            impl_->blocks = impl_->desc->bdev()->num_blocks;
        }
    });
}

RandomVerify::~RandomVerify() {
    impl_->env.run(impl_->thread, [this] {
        if (impl_->ch) bdev_put_io_channel(impl_->ch);
        if (impl_->desc) bdev_close(impl_->desc);
    });
}

VerifyResult RandomVerify::run(const VerifyOptions& opts, int timeout_ms) {
    Impl& i = *impl_;
    i.opts = opts;
    i.res = VerifyResult{};
    i.rng.seed(opts.seed);
    i.issued = i.completed = 0;
    i.done = std::promise<void>();
    i.slots = std::vector<Impl::Slot>(opts.queue_depth);
    for (auto& s : i.slots) {
        s.impl = &i;
        s.buf = std::make_unique<AlignedBuf>(opts.max_blocks * i.bs + 64);
    }
    auto fut = i.done.get_future();
    i.env.run(i.thread, [&i] {
        for (auto& s : i.slots) i.submit_next(s);
    });
    if (fut.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready)
        ADD_FAILURE() << "random I/O did not finish: " << i.completed << " of " << opts.ops;
    return i.res;
}

uint64_t RandomVerify::check_all(int timeout_ms) {
    Impl& i = *impl_;
    uint64_t bad = 0;
    const uint64_t step = 256;
    AlignedBuf buf(step * i.bs);
    for (uint64_t off = 0; off < i.blocks; off += step) {
        const uint64_t n = std::min(step, i.blocks - off);
        std::promise<bool> p;
        auto f = p.get_future();
        i.env.run(i.thread, [&] {
            iovec v{buf.p, n * i.bs};
            auto cb = [](BdevIo* io, bool ok, void* arg) {
                bdev_free_io(io);
                static_cast<std::promise<bool>*>(arg)->set_value(ok);
            };
            if (bdev_readv(i.desc, i.ch, &v, 1, off, n, cb, &p) != 0) p.set_value(false);
        });
        if (f.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready ||
            !f.get())
            return UINT64_MAX;
        for (uint64_t b = 0; b < n; ++b)
            bad += std::memcmp(buf.p + b * i.bs, i.shadow->data() + (off + b) * i.bs, i.bs) != 0;
    }
    return bad;
}

uint8_t gf_mul_ref(uint8_t a, uint8_t b) {
    uint8_t p = 0;
    while (b) {
        if (b & 1) p ^= a;
        const bool carry = a & 0x80;
        a = uint8_t(a << 1);
        if (carry) a ^= 0x1D;  // x^8 = x^4 + x^3 + x^2 + 1 (0x11D)
        b >>= 1;
    }
    return p;
}

uint64_t check_parity_on_members(ModEnv& env, const std::vector<std::string>& members,
                                 uint32_t parity, uint64_t strip_blocks, uint64_t data_offset,
                                 uint64_t member_blocks, uint32_t block_size,
                                 const std::vector<bool>& skip) {
    const uint32_t n = uint32_t(members.size());
    const uint32_t k = n - parity;
    std::vector<std::unique_ptr<TestDesc>> descs;
    for (const auto& m : members) descs.push_back(std::make_unique<TestDesc>(env, m, false));
    uint64_t bad = 0;
    const size_t strip_bytes = strip_blocks * block_size;
    std::vector<std::unique_ptr<AlignedBuf>> strips;
    for (uint32_t i = 0; i < n; ++i) strips.push_back(std::make_unique<AlignedBuf>(strip_bytes));
    for (uint64_t s = 0; s < member_blocks / strip_blocks; ++s) {
        for (uint32_t m = 0; m < n; ++m) {
            if (!skip.empty() && skip[m]) continue;
            if (!descs[m]->read(strips[m]->p, data_offset + s * strip_blocks, strip_blocks).ok)
                return UINT64_MAX;
        }
        // Left-symmetric: P on n-1 - s%n, Q after it, data after them.
        const uint32_t pm = uint32_t(n - 1 - s % n);
        const uint32_t qm = (pm + 1) % n;
        auto dm = [&](uint32_t d) { return (pm + parity + d) % n; };
        bool need_skip = false;
        for (uint32_t m = 0; m < n; ++m) need_skip = need_skip || (!skip.empty() && skip[m]);
        if (need_skip) {
            // Only members still in the array are compared: P/Q can only be checked when the
            // data and that parity are all present.
        }
        for (size_t byte = 0; byte < strip_bytes; ++byte) {
            uint8_t P = 0, Q = 0, g = 1;
            bool data_ok = true;
            for (uint32_t d = 0; d < k; ++d) {
                if (!skip.empty() && skip[dm(d)]) data_ok = false;
                const uint8_t v = strips[dm(d)]->p[byte];
                P ^= v;
                Q ^= gf_mul_ref(g, v);
                g = gf_mul_ref(g, 2);
            }
            if (!data_ok) continue;
            bool row_bad = false;
            if (skip.empty() || !skip[pm]) row_bad = row_bad || strips[pm]->p[byte] != P;
            if (parity == 2 && (skip.empty() || !skip[qm]))
                row_bad = row_bad || strips[qm]->p[byte] != Q;
            if (row_bad) {
                ++bad;
                byte = (byte / block_size + 1) * block_size - 1;  // count each block row once
            }
        }
    }
    return bad;
}

}  // namespace nocstor::test
