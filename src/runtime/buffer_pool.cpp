#include "runtime/buffer_pool.h"

#include <cstring>

namespace nocstor {
namespace {

constexpr uint64_t kPoolMagic = 0x4e4f'4342'5546'504full;  // "NOCBUFPO"

size_t align_up(size_t v, size_t a) {
    return (v + a - 1) / a * a;
}

uint32_t ring_capacity(uint32_t count) {
    uint32_t cap = 2;
    while (cap < 2 * count) cap *= 2;  // room for 2x: see detail::push_index
    return cap;
}

}  // namespace

// Lives in the arena; every offset is relative to the arena base.
struct BufferPool::Header {
    uint64_t magic;
    uint32_t size[2];
    uint32_t count[2];
    uint64_t ring_off[2];
    uint64_t data_off[2];
};

size_t BufferPool::bytes_needed(const BufferPoolConfig& cfg) {
    size_t n = align_up(sizeof(Header), 64);
    n += align_up(MpmcIndexRing::bytes_needed(ring_capacity(cfg.small_count)), 64);
    n += align_up(MpmcIndexRing::bytes_needed(ring_capacity(cfg.large_count)), 64);
    n = align_up(n, kAlign);
    n += size_t(cfg.small_count) * align_up(cfg.small_size, kAlign);
    n += size_t(cfg.large_count) * align_up(cfg.large_size, kAlign);
    return n;
}

BufferPool BufferPool::create(std::byte* arena_base, uint64_t offset, const BufferPoolConfig& cfg) {
    assert(offset % kAlign == 0 && reinterpret_cast<uintptr_t>(arena_base) % kAlign == 0);
    Header h{};
    h.magic = kPoolMagic;
    h.size[0] = uint32_t(align_up(cfg.small_size, kAlign));
    h.size[1] = uint32_t(align_up(cfg.large_size, kAlign));
    h.count[0] = cfg.small_count;
    h.count[1] = cfg.large_count;
    uint64_t pos = offset + align_up(sizeof(Header), 64);
    for (int c = 0; c < 2; ++c) {
        h.ring_off[c] = pos;
        pos += align_up(MpmcIndexRing::bytes_needed(ring_capacity(h.count[c])), 64);
    }
    pos = align_up(pos, kAlign);
    for (int c = 0; c < 2; ++c) {
        h.data_off[c] = pos;
        pos += uint64_t(h.count[c]) * h.size[c];
    }
    assert(pos - offset == bytes_needed(cfg));
    std::memcpy(arena_base + offset, &h, sizeof(h));
    for (int c = 0; c < 2; ++c) {
        MpmcIndexRing r =
            MpmcIndexRing::format(arena_base + h.ring_off[c], ring_capacity(h.count[c]));
        for (uint32_t i = 0; i < h.count[c]; ++i) r.push(i);
    }
    return attach(arena_base, offset);
}

BufferPool BufferPool::attach(std::byte* arena_base, uint64_t offset) {
    BufferPool p;
    p.arena_ = arena_base;
    p.h_ = reinterpret_cast<const Header*>(arena_base + offset);
    assert(p.h_->magic == kPoolMagic);
    for (int c = 0; c < 2; ++c) p.rings_[c] = MpmcIndexRing::attach(arena_base + p.h_->ring_off[c]);
    return p;
}

Buffer BufferPool::get(BufClass cls) {
    uint32_t i;
    if (!ring(cls).pop(&i)) return {};
    return at(cls, i);
}

Buffer BufferPool::at(BufClass cls, uint32_t index) const {
    int c = int(cls);
    Buffer b;
    b.offset = h_->data_off[c] + uint64_t(index) * h_->size[c];
    b.data = arena_ + b.offset;
    b.size = h_->size[c];
    b.index = index;
    b.cls = cls;
    return b;
}

bool BufferPool::owns(uint64_t off) const {
    for (int c = 0; c < 2; ++c) {
        if (off >= h_->data_off[c] &&
            off - h_->data_off[c] < uint64_t(h_->count[c]) * h_->size[c]) {
            return true;
        }
    }
    return false;
}

Buffer BufferPool::from_offset(uint64_t off) const {
    for (int c = 0; c < 2; ++c) {
        uint64_t rel = off - h_->data_off[c];
        if (off >= h_->data_off[c] && rel < uint64_t(h_->count[c]) * h_->size[c]) {
            return at(BufClass(c), uint32_t(rel / h_->size[c]));
        }
    }
    assert(false && "offset outside the buffer pool");
    return {};
}

uint32_t BufferPool::count(BufClass cls) const {
    return h_->count[int(cls)];
}
uint32_t BufferPool::buffer_size(BufClass cls) const {
    return h_->size[int(cls)];
}

}  // namespace nocstor
